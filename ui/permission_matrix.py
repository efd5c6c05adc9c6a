"""The rank × role matrix of 役職・権限, one tab per group of functions (#18: the 15 functions
did not fit one grid — 6 of 12 columns were in view). Each tab is its own grid of the same rows;
the changes of every tab are saved together by the page."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from services import permissions
from services.catalog import Function
from ui import tables

F = Function
GROUPS: dict[str, tuple[Function, ...]] = {
    "団員・組織": (F.DASHBOARD, F.ROSTER, F.MEMBER_ACCOUNTS, F.PERMISSIONS),
    "災害出動": (F.DISPATCH, F.REPORTS, F.APPROVALS),
    "消防水利": (F.WATER_SOURCES, F.INSPECTIONS),
    "データ・記録・設定": (
        F.CSV_IMPORT,
        F.CSV_EXPORT,
        F.RESTORE,
        F.EVENT_LOGS,
        F.NOTICES,
        F.SETTINGS,
    ),
}
assert sorted(f for group in GROUPS.values() for f in group) == sorted(Function)
SUBJECT = "対象"
HOLDERS = "在籍人数"
EDITOR_KEY = "matrix_editor_{revision}_{group}"


def group_of(function: Function) -> int:
    return next(i for i, group in enumerate(GROUPS.values()) if function in group)


def _frame(matrix: Sequence[permissions.MatrixRow], functions: Sequence[Function]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {SUBJECT: row.label, HOLDERS: row.members}
            | {f.label: row.grants[f].label for f in functions}
            for row in matrix
        ],
        columns=[SUBJECT, HOLDERS, *(f.label for f in functions)],
    )


def _columns(functions: Sequence[Function], options: dict | None) -> dict:
    config = {
        SUBJECT: st.column_config.TextColumn(SUBJECT, pinned=True, width="medium"),
        HOLDERS: st.column_config.NumberColumn(HOLDERS, width="small"),
    }
    for f in functions:
        config[f.label] = (
            st.column_config.SelectboxColumn(f.label, options=list(options[f]), required=True)
            if options is not None
            else st.column_config.TextColumn(f.label)
        )
    return config


def matrix_tabs(
    matrix: Sequence[permissions.MatrixRow],
    *,
    editable: bool,
    locked: Sequence[Function] = (),
    revision: int = 0,
) -> list[permissions.CellChange]:
    """The matrix in GROUPS tabs; editable: a grid per tab, and the changes made in all of them
    (cells of `locked` functions cannot be changed here; the service refuses them too)."""
    options = {f: {g.label: g for g in permissions.choices(f)} for f in Function}
    changes: list[permissions.CellChange] = []
    for index, (tab, functions) in enumerate(
        zip(st.tabs(list(GROUPS)), GROUPS.values(), strict=True)
    ):
        table = _frame(matrix, functions)
        with tab:
            if not editable:
                tables.show(
                    table, key=f"matrix_table_{index}", column_config=_columns(functions, None)
                )
                continue
            edited = st.data_editor(
                table,
                key=EDITOR_KEY.format(revision=revision, group=index),
                disabled=[SUBJECT, HOLDERS, *(f.label for f in functions if f in locked)],
                column_config=_columns(functions, options),
                hide_index=True,
                width="stretch",
            )
        changes += [
            permissions.CellChange(row.subject_type, row.subject_id, f, options[f][value])
            for i, row in enumerate(matrix)
            for f in functions
            if (value := edited.iloc[i][f.label]) != table.iloc[i][f.label] and value in options[f]
        ]
    return changes
