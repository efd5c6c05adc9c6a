"""The registry of personal data matches what the tables store."""

from __future__ import annotations

from sqlmodel import SQLModel

import models  # noqa: F401  (registers every table)
from core.personal import ENCRYPTED_MEMBER_FIELDS, PERSONAL_FIELDS, personal_field
from formats import member_csv


def _columns() -> dict[str, set[str]]:
    return {name: set(table.columns.keys()) for name, table in SQLModel.metadata.tables.items()}


def test_every_encrypted_column_is_registered_and_every_registered_field_is_stored():
    columns = _columns()
    stored_encrypted = {
        (table, column.removesuffix("_enc"))
        for table, names in columns.items()
        for column in names
        if column.endswith("_enc")
    }
    registered = {(f.table, f.name) for f in PERSONAL_FIELDS if f.encrypted}
    assert stored_encrypted == registered
    for f in PERSONAL_FIELDS:
        assert f.column in columns[f.table], f


def test_labels_are_japanese_and_fields_unique():
    assert len({(f.table, f.name) for f in PERSONAL_FIELDS}) == len(PERSONAL_FIELDS)
    assert all(f.label and not f.label.isascii() for f in PERSONAL_FIELDS)


def test_the_roster_export_names_the_personal_columns_it_carries():
    assert set(ENCRYPTED_MEMBER_FIELDS) <= set(member_csv.PERSONAL_COLUMNS)
    assert "notes" in member_csv.PERSONAL_COLUMNS
    assert "affiliation" not in member_csv.PERSONAL_COLUMNS  # 所属 stays a readable label


def test_an_unregistered_field_is_an_error():
    try:
        personal_field("member", "affiliation")
    except KeyError:
        return
    raise AssertionError("affiliation is not personal data in the registry")
