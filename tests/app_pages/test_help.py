"""ヘルプ: every signed-in member of a brigade reaches the manual, each chapter renders, the
permission chapter shows the table generated from the code and the screenshots are drawn."""

from __future__ import annotations

import pytest

from models.enums import SubjectType
from services import permissions
from services.catalog import Function
from services.grants import Grant
from services.permissions import CellChange
from tests.app_pages.conftest import nav_registers, page_text, sign_in
from tests.factories import admin, make_tenant, rank_id
from ui import manual

HELP = "app_pages/help.py"


def open_help(open_app, rank: str = "団長"):
    user = sign_in(make_tenant(), rank=rank)
    at = open_app(user.token)
    assert nav_registers(at, HELP)
    at.switch_page(HELP).run()
    assert not at.exception
    return at


def test_the_help_page_shows_the_first_chapter(open_app):
    at = open_help(open_app)

    assert [t.value for t in at.title] == ["ヘルプ"]
    first = manual.chapters()[0]
    assert at.selectbox(key="help_chapter").value == first
    assert first.title in page_text(at)


@pytest.mark.parametrize("chapter", manual.chapters(), ids=lambda c: c.path.stem)
def test_every_chapter_renders_with_its_screenshots(open_app, chapter):
    at = open_help(open_app)

    at.selectbox(key="help_chapter").set_value(chapter).run()

    assert not at.exception
    assert chapter.title in page_text(at)
    assert len(at.get("image")) == len(manual.images(manual.chapter_text(chapter)))


def test_the_permission_chapter_shows_the_default_table(open_app):
    chapter = next(
        c for c in manual.chapters() if manual.PERMISSION_MARKER in c.path.read_text("utf-8")
    )
    at = open_help(open_app)

    at.selectbox(key="help_chapter").set_value(chapter).run()

    shown = "\n".join(m.value for m in at.markdown)
    assert manual.permission_table() in shown
    assert manual.PERMISSION_MARKER not in shown


def test_a_member_without_any_grant_still_reaches_help(open_app):
    tenant = make_tenant()
    permissions.update_matrix(
        admin(tenant),
        [CellChange(SubjectType.RANK, rank_id(tenant), f, Grant()) for f in Function],
    )
    user = sign_in(tenant, rank="団員")
    at = open_app(user.token)

    assert not at.exception
    assert nav_registers(at, HELP)
