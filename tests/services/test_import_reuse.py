"""#19: applying a previewed import uses the preview's validation only when neither the file's
rows nor the brigade data it was checked against changed in between; otherwise the rows are
validated again against the data as it is then. The gate, the tenant and the actor's rights are
checked at apply as before."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

from models import MemberUpdate
from models.enums import Function, Level
from models.water import WaterSourceUpdate
from services import member_import, members, permissions, roles, water_import, water_sources
from services.errors import PermissionDenied, ValidationError
from services.imports import ImportPreview, MissingRows, RowStatus
from services.permissions import CellChange, Grant
from tests.factories import actor_with, admin, make_member, make_tenant, rank_id
from tests.fixtures.water_files import hydrant, layout_file, stored
from tests.services.test_member_import import IMPORTER, by_code, csv_file, row
from tests.water_factories import make_source

KEEP = MissingRows.KEEP
KEYS = ("member_code", "name", "rank", "roles", "phone")


def member_preview(tenant: uuid.UUID, data: bytes) -> ImportPreview:
    found = member_import.preview_member_import(
        actor_with(tenant, IMPORTER), data=data, filename="団員.csv"
    )
    assert found.ready and found.token, [str(e) for e in found.errors]
    return found


def member_apply(tenant: uuid.UUID, found: ImportPreview):
    return member_import.apply_member_import(actor_with(tenant, IMPORTER), found, missing=KEEP)


def with_cell(found: ImportPreview, index: int, **cells: str) -> ImportPreview:
    rows = list(found.rows)
    rows[index] = replace(rows[index], raw=rows[index].raw | cells)
    return replace(found, rows=rows)


# -- members -------------------------------------------------------------------------------------


def test_an_unchanged_roster_uses_the_previews_validation(tenant, watch):
    make_member(tenant, member_code="A1", phone="090-1111-2222")
    found = member_preview(
        tenant, csv_file([row("A1", phone="090-9999-0000"), row("B1")], keys=KEYS)
    )
    audit = watch(tenant)

    result = member_apply(tenant, found)

    assert result.reused_preview
    assert (result.created, result.updated) == (1, 1)
    now = by_code(tenant)
    assert now["A1"].phone == "090-9999-0000" and now["B1"].name == "消防　B1"
    (event,) = audit.new()
    assert json.loads(event.details)["validated"] == "preview"


def test_a_member_changed_since_the_preview_is_validated_again(tenant, watch):
    """The file's row was unchanged at preview; someone then edits the member: applying
    compares with the member as he is now and writes the file's value back."""
    member = make_member(tenant, member_code="A1", name="消防　A1", phone="090-1111-2222")
    found = member_preview(tenant, csv_file([row("A1", phone="090-1111-2222")], keys=KEYS))
    assert found.rows[0].status == RowStatus.UNCHANGED
    members.update_member(
        admin(tenant),
        member.id,
        data=MemberUpdate(phone="090-3333-4444"),
        expected_version=member.version,
    )
    audit = watch(tenant)

    result = member_apply(tenant, found)

    assert not result.reused_preview
    assert (result.updated, result.unchanged) == (1, 0)
    assert by_code(tenant)["A1"].phone == "090-1111-2222"
    assert json.loads(audit.new()[0].details)["validated"] == "apply"


def test_a_role_renamed_since_the_preview_makes_the_row_invalid_at_apply(tenant):
    roles.create_role(admin(tenant), name="機関員", rank_id=rank_id(tenant, "団員"))
    found = member_preview(tenant, csv_file([row("B1", roles="機関員")], keys=KEYS))
    role = next(r for r in roles.list_roles(admin(tenant)) if r.name == "機関員")
    roles.rename_role(admin(tenant), role.id, name="機関長")

    with pytest.raises(ValidationError):
        member_apply(tenant, found)

    assert "B1" not in by_code(tenant)


def test_a_grant_changed_since_the_preview_means_validating_again(tenant):
    found = member_preview(tenant, csv_file([row("B1")], keys=KEYS))
    permissions.update_matrix(
        admin(tenant),
        [CellChange("rank", rank_id(tenant, "班長"), Function.REPORTS, Grant(Level.EDIT))],
    )

    result = member_apply(tenant, found)

    assert not result.reused_preview and result.created == 1


def test_rows_altered_after_the_preview_are_validated_and_written_as_they_are(tenant):
    found = member_preview(tenant, csv_file([row("B1", phone="090-1111-2222")], keys=KEYS))

    result = member_apply(tenant, with_cell(found, 0, phone="090-5555-6666"))

    assert not result.reused_preview
    assert by_code(tenant)["B1"].phone == "090-5555-6666"


def test_another_brigades_apply_never_uses_the_kept_plans(tenant):
    found = member_preview(tenant, csv_file([row("B1")], keys=KEYS))
    other = make_tenant()

    result = member_apply(other, found)

    assert not result.reused_preview and result.created == 1
    assert "B1" in by_code(other) and "B1" not in by_code(tenant)


def test_an_actor_with_other_rights_does_not_use_the_kept_plans(tenant):
    found = member_preview(tenant, csv_file([row("B1")], keys=KEYS))
    more = IMPORTER | {Function.REPORTS: Level.ADMIN}

    result = member_import.apply_member_import(actor_with(tenant, more), found, missing=KEEP)

    assert not result.reused_preview and result.created == 1


def test_a_kept_preview_gives_no_right_to_apply(tenant):
    found = member_preview(tenant, csv_file([row("B1")], keys=KEYS))
    without_import = IMPORTER | {Function.CSV_IMPORT: Level.VIEW}

    with pytest.raises(PermissionDenied):
        member_import.apply_member_import(actor_with(tenant, without_import), found, missing=KEEP)

    assert "B1" not in by_code(tenant)


def test_a_token_serves_once(tenant):
    found = member_preview(tenant, csv_file([row("B1")], keys=KEYS))
    assert member_apply(tenant, found).reused_preview

    again = member_apply(tenant, found)

    assert not again.reused_preview and again.unchanged == 1


# -- water sources -------------------------------------------------------------------------------


def water_preview(tenant: uuid.UUID, data: bytes) -> ImportPreview:
    found = water_import.preview_water_import(admin(tenant), data=data, filename="water.csv")
    assert found.ready and found.token, [str(e) for e in found.errors]
    return found


def water_apply(tenant: uuid.UUID, found: ImportPreview):
    return water_import.apply_water_import(admin(tenant), found, missing=KEEP)


def test_an_unchanged_registry_uses_the_previews_validation(tenant):
    found = water_preview(tenant, layout_file([hydrant("W-1", memo="新")]))

    result = water_apply(tenant, found)

    assert result.reused_preview and result.created == 1
    assert stored(tenant)["W-1"]["memo"] == "新"


def test_a_source_changed_since_the_preview_is_validated_again(tenant):
    source = make_source(tenant, code="W-1", memo="元")
    found = water_preview(tenant, layout_file([{"code": "W-1", "kind": "防火水槽", "memo": "元"}]))
    assert found.rows[0].status == RowStatus.UNCHANGED
    water_sources.update_water_source(
        admin(tenant),
        source.id,
        data=WaterSourceUpdate(memo="他の人"),
        expected_version=source.version,
    )

    result = water_apply(tenant, found)

    assert not result.reused_preview and result.updated == 1
    assert stored(tenant)["W-1"]["memo"] == "元"


def test_water_rows_altered_after_the_preview_are_validated_again(tenant):
    found = water_preview(tenant, layout_file([hydrant("W-1", memo="新")]))

    result = water_apply(tenant, with_cell(found, 0, memo="差し替え"))

    assert not result.reused_preview
    assert stored(tenant)["W-1"]["memo"] == "差し替え"


def test_another_brigade_never_uses_kept_water_plans(tenant):
    found = water_preview(tenant, layout_file([hydrant("W-1")]))
    other = make_tenant()

    result = water_apply(other, found)

    assert not result.reused_preview and "W-1" in stored(other) and "W-1" not in stored(tenant)
