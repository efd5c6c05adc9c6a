"""#18 "Japanese throughout": Streamlit writes an English placeholder into a selectbox or
multiselect that shows no value ("Choose an option", "Choose options", "No options to select")
and an English "Select all" into multiselects. Every such widget of the pages names its own
Japanese placeholder, and multiselects leave "Select all" out. Read-only tables go through
ui/tables.py (no "None" in empty cells, no "empty" for an empty table). (The file uploader's words:
ui/file_input.py; the tables' column menus and toolbar stay Streamlit's — see the README.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TABLES = ROOT / "ui" / "tables.py"  # the one place that draws st.dataframe
SOURCES = sorted({*ROOT.glob("app_pages/*.py"), *ROOT.glob("ui/*.py")} - {TABLES})


def offenders(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        widget = node.func.attr
        if widget not in ("selectbox", "multiselect", "dataframe"):
            continue
        if widget == "dataframe":
            found.append(f"line {node.lineno}: dataframe drawn directly (ui/tables.show)")
            continue
        given = {k.arg for k in node.keywords}
        if "placeholder" not in given:
            found.append(f"line {node.lineno}: {widget} without placeholder=")
        if widget == "multiselect" and "select_all" not in given:
            found.append(f"line {node.lineno}: multiselect without select_all=")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_choice_widget_has_a_japanese_placeholder_and_tables_are_shown_by_ui_tables(
    path: Path,
):
    assert offenders(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("source", "count"),
    [
        ("st.selectbox('a', [1])", 1),
        ("st.multiselect('a', [1], placeholder='x')", 1),
        ("cols[0].multiselect('a', [1])", 2),
        ("st.selectbox('a', [1], placeholder='選択してください')", 0),
        ("st.multiselect('a', [1], placeholder='すべて', select_all=False)", 0),
        ("st.text_input('a')", 0),
        ("st.dataframe(frame)", 1),
        ("cols[1].dataframe(frame, hide_index=True)", 1),
        ("tables.show(frame)", 0),
    ],
)
def test_the_checker_finds_what_it_should(source: str, count: int):
    assert len(offenders(source)) == count
