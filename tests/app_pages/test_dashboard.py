"""ダッシュボード page with AppTest on real services: it opens first, its numbers are the
service's, it counts the actor's brigade only, shows nothing personal, and its sections follow
the viewer's permissions."""

from __future__ import annotations

import json

import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from models.enums import Function, Level
from services import dashboard, members, permissions
from services.errors import PermissionDenied
from services.permissions import CellChange, Grant
from services.signin import sessions
from tests.app_pages.conftest import nav_registers, page_text, sign_in
from tests.factories import actor_with, admin, make_member, make_tenant, rank_id
from tests.water_factories import make_source
from ui.registry import MEMBER_PAGES, specs_for

PAGE = "app_pages/dashboard.py"


def table_with(at: AppTest, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart"))


def chart_bars(at: AppTest, index: int) -> tuple[dict, list[tuple]]:
    """A chart's encoding and its rows as drawn (Vega-Lite spec, Arrow data)."""
    proto = at.get("vega_lite_chart")[index].proto
    frame = convert_arrow_bytes_to_pandas_df(proto.data.data)
    return json.loads(proto.spec)["encoding"], list(frame.itertuples(index=False, name=None))


def test_dashboard_is_the_first_page_and_matches_the_service(open_app):
    tenant, other = make_tenant(), make_tenant()
    user = sign_in(tenant)  # 団長, 第1分団
    make_member(tenant, affiliation="第2分団 第1部", rank_id=rank_id(tenant, "班長"))
    suspended = make_member(tenant, affiliation="第2分団")
    members.suspend_member(admin(tenant), suspended.id)
    make_source(tenant)
    for _ in range(4):
        make_member(other, affiliation="第9分団")

    at = open_app(user.token)

    assert not at.exception
    assert MEMBER_PAGES[0].path == PAGE
    assert [t.value for t in at.title] == ["ダッシュボード"]
    data = dashboard.load(sessions.resolve(user.token))
    assert metrics(at) == {
        "在籍": f"{data.members.active} 名",
        "利用停止中": f"{data.members.suspended} 名",
        "LINE未連携（在籍）": f"{data.members.not_linked} 名",
        "退団": f"{data.members.retired} 名",
        "登録数": f"{data.water.total} か所",
        "点検期限切れ": f"{data.water.overdue} か所",
    }
    assert metrics(at)["在籍"] == "2 名"
    units = table_with(at, "分団")
    assert list(zip(units["分団"], units["人数"], strict=True)) == [("第1分団", 1), ("第2分団", 2)]
    ranks = table_with(at, "階級").set_index("階級")["人数"]
    assert [ranks[c.label] for c in data.members.by_rank] == [c.count for c in data.members.by_rank]
    kinds = table_with(at, "種別")
    assert list(kinds["種別"]) == [c.label for c in data.water.by_kind]
    assert charts(at) == 4
    encoding, bars = chart_bars(at, 0)  # horizontal, in the service's order (not sorted)
    assert (encoding["y"]["field"], encoding["y"]["sort"], encoding["x"]["field"]) == (
        "分団",
        None,
        "人数",
    )
    assert bars == [("第1分団", 1), ("第2分団", 2)]
    assert "第9分団" not in page_text(at)
    events = table_with(at, "操作")
    assert list(events["操作"])[:2] == ["消防水利の登録", "団員の利用停止"]  # labels (#18)
    assert list(events["結果"])[:2] == ["成功", "成功"]


def test_dashboard_shows_no_personal_data(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    colleague = make_member(tenant, name="秘密　花子", email="hanako@example.jp")
    at = open_app(user.token)
    text = page_text(at)
    assert colleague.name not in text and colleague.email not in text
    assert colleague.phone not in text


def test_sections_follow_the_permissions_of_a_plain_member(open_app):
    """団員: dashboard and water sources, no event logs."""
    tenant = make_tenant()
    user = sign_in(tenant, rank="団員")
    at = open_app(user.token)
    assert [t.value for t in at.title] == ["ダッシュボード"]
    subheaders = [s.value for s in at.subheader]
    assert "消防水利" in subheaders and "最近のイベント" not in subheaders
    assert not [d for d in at.dataframe if "操作" in d.value.columns]


def test_member_without_dashboard_starts_at_home_and_the_service_refuses(open_app):
    tenant = make_tenant()
    permissions.update_matrix(
        admin(tenant), [CellChange("rank", rank_id(tenant), Function.DASHBOARD, Grant())]
    )
    user = sign_in(tenant, rank="団員")
    actor = sessions.resolve(user.token)
    assert PAGE not in [s.path for s in specs_for(actor)]
    at = open_app(user.token)
    assert not at.exception
    assert not nav_registers(at, PAGE)
    assert [t.value for t in at.title] == [actor.tenant_name]
    with pytest.raises(PermissionDenied):
        dashboard.load(actor)


def test_dashboard_of_an_empty_section(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    at = open_app(user.token)
    assert not at.exception
    assert "データがありません。" in [i.value for i in at.info]
    assert dashboard.load(actor_with(tenant, {Function.DASHBOARD: Level.VIEW})).water is None
