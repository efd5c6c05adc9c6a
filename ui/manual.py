"""The administrator's manual (docs/manual/, white paper 7.2.2, 9.2.1, 9.2.2, CLD.12.1.5) as the
ヘルプ page shows it: chapters read from the Markdown files, the default permission table
generated from services.grants where a chapter holds the marker, and screenshots drawn with
st.image (Streamlit's Markdown cannot serve files from the repository)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import streamlit as st

from services.catalog import RANK_NAMES, Function, Level
from services.grants import DEFAULT_RANK_MATRIX, DEFAULT_ROLE_MATRIX, choices

MANUAL_DIR = Path(__file__).resolve().parent.parent / "docs" / "manual"
IMAGES_DIR = MANUAL_DIR / "images"
PERMISSION_MARKER = "<!-- permission-table -->"
# A screenshot stands on a line of its own: ![caption](images/name.png)
IMAGE_LINE = re.compile(r"^!\[(?P<caption>[^\]]*)\]\((?P<src>images/[^)\s]+)\)[ \t]*$", re.M)


@dataclass(frozen=True)
class Chapter:
    path: Path
    title: str


@dataclass(frozen=True)
class Image:
    path: Path
    caption: str


def chapters() -> list[Chapter]:
    """The chapters in file-name order, each titled by its first level-1 heading."""
    return [Chapter(path, _title(path)) for path in sorted(MANUAL_DIR.glob("*.md"))]


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem


def chapter_text(chapter: Chapter) -> str:
    """The chapter's Markdown with the generated permission table in place of its marker."""
    return chapter.path.read_text(encoding="utf-8").replace(PERMISSION_MARKER, permission_table())


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join([_row(header), _row(["---"] * len(header)), *(_row(cells) for cells in rows)])


@cache
def permission_table() -> str:
    """A new brigade's default grants, rank by rank and role by role, as Markdown tables
    (services.grants is the only source: the manual cannot drift from the code)."""
    ranks = _table(
        ["機能", "設定できる権限", *RANK_NAMES],
        [
            [
                f.label,
                "・".join(g.label for g in choices(f)),
                *(DEFAULT_RANK_MATRIX[rank].get(f, Level.NONE).label for rank in RANK_NAMES),
            ]
            for f in Function
        ],
    )
    role_names = list(DEFAULT_ROLE_MATRIX)
    roles = _table(
        ["機能", *role_names],
        [
            [f.label, *(DEFAULT_ROLE_MATRIX[role].get(f, Level.NONE).label for role in role_names)]
            for f in Function
        ],
    )
    return (
        f"**階級ごとの既定の権限**\n\n{ranks}\n\n"
        f"**役職ごとの既定の権限**（その名前の役職を追加したときに設定されます）\n\n{roles}"
    )


def parts(text: str) -> list[str | Image]:
    """The chapter cut into Markdown passages and the screenshots between them."""
    found: list[str | Image] = []
    start = 0
    for match in IMAGE_LINE.finditer(text):
        found.append(text[start : match.start()])
        found.append(Image(MANUAL_DIR / match["src"], match["caption"]))
        start = match.end()
    found.append(text[start:])
    return [p for p in found if not isinstance(p, str) or p.strip()]


def images(text: str) -> list[Image]:
    return [p for p in parts(text) if isinstance(p, Image)]


def show_chapter(chapter: Chapter) -> None:
    for part in parts(chapter_text(chapter)):
        if isinstance(part, Image):
            st.image(str(part.path), caption=part.caption)
        else:
            st.markdown(part)
