"""The administrator's manual (docs/manual/) against the code: the default permission table is
generated from services.grants, every page of the navigation is described, and every screenshot
it shows exists and is one the screenshot script takes."""

from __future__ import annotations

import importlib.util
import re

import pytest

from services.catalog import RANK_NAMES, Function, Level
from services.grants import DEFAULT_RANK_MATRIX, DEFAULT_ROLE_MATRIX, choices
from ui import manual
from ui.registry import LINE_PAGES, LOGIN_PAGE, MEMBER_PAGES, OPERATOR_PAGES

SCRIPT = manual.MANUAL_DIR.parent.parent / "scripts" / "manual_screenshots.py"


def all_text() -> str:
    return "\n".join(manual.chapter_text(c) for c in manual.chapters())


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Each Markdown table in text as rows of cells, the header first, the --- line dropped."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(set(cell) <= {"-"} for cell in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def as_grid(table: list[list[str]], first_column: int) -> dict[str, dict[str, str]]:
    header, *rows = table
    return {
        row[0]: dict(zip(header[first_column:], row[first_column:], strict=True)) for row in rows
    }


def test_the_rank_table_is_the_code_s_default_matrix():
    ranks, _roles = markdown_tables(manual.permission_table())

    assert ranks[0] == ["機能", "設定できる権限", *RANK_NAMES]
    assert as_grid(ranks, 2) == {
        f.label: {rank: DEFAULT_RANK_MATRIX[rank].get(f, Level.NONE).label for rank in RANK_NAMES}
        for f in Function
    }
    assert {row[0]: row[1] for row in ranks[1:]} == {
        f.label: "・".join(g.label for g in choices(f)) for f in Function
    }


def test_the_role_table_is_the_code_s_default_roles():
    _ranks, roles = markdown_tables(manual.permission_table())

    assert as_grid(roles, 1) == {
        f.label: {
            name: levels.get(f, Level.NONE).label for name, levels in DEFAULT_ROLE_MATRIX.items()
        }
        for f in Function
    }


def test_a_changed_default_changes_the_table(monkeypatch):
    before = manual.permission_table()
    manual.permission_table.cache_clear()
    monkeypatch.setitem(DEFAULT_RANK_MATRIX, "団員", {Function.ROSTER: Level.EDIT})
    try:
        after = manual.permission_table()
        member_cell = as_grid(markdown_tables(after)[0], 2)[Function.ROSTER.label]["団員"]
    finally:
        manual.permission_table.cache_clear()
    assert after != before
    assert member_cell == "編集"


def test_the_permission_chapter_shows_the_generated_table():
    chapters = [
        c for c in manual.chapters() if manual.PERMISSION_MARKER in c.path.read_text("utf-8")
    ]

    assert len(chapters) == 1
    shown = manual.chapter_text(chapters[0])
    assert manual.PERMISSION_MARKER not in shown
    assert manual.permission_table() in shown


PAGE_TITLES = sorted(
    {spec.title for spec in (*MEMBER_PAGES, *OPERATOR_PAGES, LOGIN_PAGE, *LINE_PAGES.values())}
)


@pytest.mark.parametrize("title", PAGE_TITLES)
def test_the_manual_names_every_page(title):
    """Each page of ui/registry.py is named as a label (in bold) somewhere in the manual."""
    assert f"**{title}**" in all_text()


def test_every_chapter_has_a_japanese_title():
    titles = [c.title for c in manual.chapters()]

    assert len(titles) >= 10
    assert all(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", t) for t in titles), titles
    assert len(set(titles)) == len(titles)


def test_the_manual_links_nowhere_outside():
    """Pages load nothing from outside (tests/security/test_no_external_urls.py); the help page
    shows every chapter, so no chapter may carry an outside address."""
    assert re.findall(r"https?://", all_text()) == []


def referenced_images() -> set[str]:
    return {image.path.name for image in manual.images(all_text())}


def test_every_image_the_manual_shows_exists():
    missing = {name for name in referenced_images() if not (manual.IMAGES_DIR / name).is_file()}

    assert referenced_images()
    assert missing == set()


def test_every_image_in_the_folder_is_shown():
    stored = {path.name for path in manual.IMAGES_DIR.glob("*.png")}

    assert stored == referenced_images()


def test_the_screenshot_script_takes_the_pictures_the_manual_shows():
    spec = importlib.util.spec_from_file_location("manual_screenshots", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    assert {f"{name}.png" for name in script.SHOTS} == referenced_images()
    assert script.IMAGES == manual.IMAGES_DIR


def test_images_are_cut_out_of_the_text():
    text = "前の文\n\n![一覧の画面](images/a.png)\n\n後の文 ![文中](images/b.png) は画像にしない\n"

    found = manual.parts(text)

    assert [type(p).__name__ for p in found] == ["str", "Image", "str"]
    assert found[1] == manual.Image(manual.MANUAL_DIR / "images" / "a.png", "一覧の画面")
    assert "images/b.png" in found[2]
