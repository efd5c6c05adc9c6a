"""水利マップ: the map built from plain data (no Streamlit), and the page's non-map parts with
AppTest on the real services: filters, table, details panel, inspections, nearest sources,
adding at a clicked point, settings, and what a click on the map selects."""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

import folium
import pytest
from streamlit.testing.v1 import AppTest

from services import water_sources
from services.errors import NotFound
from services.geo import DEFAULT_TILE_LAYERS, map_assets
from services.water_sources import map_data
from tests.app_pages.conftest import answer, dialog_lines, open_dialog, page_text, sign_in
from tests.factories import admin, make_tenant
from tests.water_factories import ORIGIN, make_source, north_of_origin
from ui import tables, water_map_view
from ui.map_builder import html_safe_json
from ui.water_map_folium import (
    COVERAGE_PANE,
    build_map,
    map_points,
)

WATER_MAP = "app_pages/water_map.py"
TODAY = water_sources.today_jst()


# -- the map, built without Streamlit --------------------------------------------------------------


@dataclass
class Source:
    code: str
    kind: str = "消火栓"
    status: str = "使用可"
    memo: str = ""
    latitude: float | None = 36.0
    longitude: float | None = 138.0
    overdue: bool = False
    unit: str = "第1分団"


def points(n: int) -> list[dict]:
    sources = [
        Source(f"H-{i}", latitude=36 + (i % 100) / 1000, longitude=138 + i / 100_000)
        for i in range(n)
    ]
    return map_points(sources, lambda unit: 120)


def rendered(m: folium.Map) -> str:
    return m.get_root().render()


def test_map_is_one_data_array_not_a_marker_per_source():
    m = build_map(points(300))
    html = rendered(m)
    assert not any(isinstance(child, folium.Marker) for child in m._children.values())
    assert html.count("L.marker(") == 0
    assert html.count('"H-299"') == 1
    assert "prefer_canvas" in html or "preferCanvas" in html


def test_map_loads_only_leaflet_and_markercluster_and_clusters_at_any_size():
    assets = map_assets("https://assets.example.jp/npm")
    for n in (3, 2000):
        html = rendered(build_map(points(n), assets=assets))
        scripts = re.findall(r'<script src="([^"]+)"', html)
        assert scripts == [assets.leaflet_js, assets.cluster_js]
        styles = re.findall(r'<link rel="stylesheet" href="([^"]+)"', html)
        assert styles == [assets.leaflet_css, *assets.cluster_css]
        assert '"cluster": true' in html
        assert not re.search(r"jquery|bootstrap|fontawesome|font-awesome|awesome-markers", html)
    unclustered = rendered(build_map(points(3), cluster=False, assets=assets))
    assert re.findall(r'<script src="([^"]+)"', unclustered) == [assets.leaflet_js]


def test_the_first_layer_fits_the_view_unless_the_map_is_centred():
    assert '"fit": true' in rendered(build_map(points(3)))
    assert '"fit": false' in rendered(build_map(points(3), center=(36.0, 138.0)))


def test_coverage_is_drawn_in_its_own_pane_beneath_the_markers():
    html = rendered(build_map(points(3), show_coverage=True))
    assert f'map.createPane("{COVERAGE_PANE}")' in html
    assert "pane.style.zIndex = 350;" in html  # markerPane is 600, overlayPane 400
    assert f'pane: "{COVERAGE_PANE}"' in html
    assert '"coverage": true' in html


def test_gsi_tiles_by_default_with_attribution_and_alternatives():
    html = rendered(build_map(points(3)))
    for layer in DEFAULT_TILE_LAYERS:
        assert layer.url in html
        assert json.dumps(layer.name) in html
    assert json.dumps("地理院タイル")[1:-1] in html
    assert "https://maps.gsi.go.jp/development/ichiran.html" in html
    assert html.index("cyberjapandata.gsi.go.jp/xyz/std") < html.index("openstreetmap")


def test_memo_cannot_break_out_of_the_script():
    evil = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"
    html = rendered(build_map(map_points([Source("H-1", memo=evil)], lambda u: 120)))
    assert evil not in html and "<img src=x" not in html
    assert "\\u003c/script\\u003e" in html
    assert html_safe_json("a'b<c>&") == '"a\\u0027b\\u003cc\\u003e\\u0026"'


def test_map_points_skip_unplaced_sources_and_carry_the_units_radius():
    sources = [Source("A", unit="第2分団"), Source("B", latitude=None, longitude=None)]
    assert map_points(sources, {"第2分団": 140}.get) == [
        {
            "code": "A",
            "kind": "消火栓",
            "status": "使用可",
            "memo": "",
            "latitude": 36.0,
            "longitude": 138.0,
            "overdue": False,
            "radius_m": 140,
        }
    ]


def test_the_component_asks_for_its_data_at_the_data_route_before_its_args_come():
    script = (water_map_view.FRONTEND / "map.js").read_text(encoding="utf-8")
    assert f'var DATA_ROUTE = "{map_data.DATA_ROUTE}";' in script


def test_payload_for_20000_sources_stays_small():
    html = rendered(build_map(points(20_000)))
    assert len(html.encode()) < 20_000 * 80


# -- the page --------------------------------------------------------------------------------------


@pytest.fixture
def brigade(engine):
    tenant = make_tenant()
    sources = {
        "tank": make_source(
            tenant, code="T-1", memo="公園内", last_inspected_on=TODAY, **north_of_origin(1.0)
        ),
        "hydrant": make_source(
            tenant,
            code="H-1",
            kind="消火栓",
            capacity_m3=None,
            drop_m=None,
            depth_m=None,
            main_diameter_mm=150,
            unit="第2分団",
            **north_of_origin(3.0),
        ),
        "broken": make_source(
            tenant, code="T-2", status="使用不可", memo="断水工事中", **north_of_origin(0.5)
        ),
    }
    return tenant, sources


def open_map(open_app, token: str) -> AppTest:
    at = open_app(token)
    at.switch_page(WATER_MAP).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["水利マップ"]
    return at


def form_of(at: AppTest, form_id: str):
    return next((f for f in at.get("form") if f.proto.form.form_id == form_id), None)


def widget(elements, label: str):
    return next(e for e in elements if e.label == label)


def list_view(at: AppTest) -> AppTest:
    at.button_group(key="wm_view").set_value("一覧").run()
    assert not at.exception, at.exception
    return at


def test_table_lists_exactly_the_brigades_sources(open_app, brigade):
    tenant, _ = brigade
    other = make_tenant()
    foreign = make_source(other, code="X-999", memo="よその水利")
    user = sign_in(tenant, "団員")

    at = list_view(open_map(open_app, user.token))

    table = at.dataframe[0].value
    assert list(table["水利番号"]) == ["H-1", "T-1", "T-2"]
    assert list(table["判定"]) == ["基準水利", "基準水利", "基準水利"]
    assert at.caption[0].value == "3 件"
    text = page_text(at)
    assert foreign.code not in text and "よその水利" not in text
    assert "CSVをダウンロード" in text


def test_filters_narrow_the_list(open_app, brigade):
    tenant, _ = brigade
    at = list_view(open_map(open_app, sign_in(tenant).token))
    widget(at.multiselect, "種別").set_value(["防火水槽"]).run()
    assert list(at.dataframe[0].value["水利番号"]) == ["T-1", "T-2"]
    widget(at.multiselect, "メモ（ラベル）").set_value(["断水工事中"]).run()
    assert list(at.dataframe[0].value["水利番号"]) == ["T-2"]
    widget(at.multiselect, "種別").set_value([]).run()
    widget(at.multiselect, "メモ（ラベル）").set_value([]).run()
    widget(at.checkbox, "点検期限切れのみ").check().run()
    assert list(at.dataframe[0].value["水利番号"]) == ["H-1", "T-2"]
    at.text_input(key="wm_text").input("h-1").run()
    assert list(at.dataframe[0].value["水利番号"]) == ["H-1"]


def test_a_member_sees_details_but_no_edit_forms(open_app, brigade):
    tenant, sources = brigade
    at = open_map(open_app, sign_in(tenant, "団員").token)
    at.session_state["wm_selected"] = str(sources["tank"].id)
    at.run()
    assert headings(at) == ["T-1　防火水槽"]
    text = page_text(at)
    assert "判定の根拠" in text and "容量 40m³（40m³以上）" in text
    assert "点検の記録はまだありません。" in text
    assert not [e for e in at.expander if e.label in ("編集", "水利を追加（座標を入力）")]
    assert "点検を記録" not in text
    assert "地図の設定（基準距離・区域）" not in [e.label for e in at.expander]


def test_record_an_inspection_from_the_panel(open_app, brigade):
    tenant, sources = brigade
    user = sign_in(tenant, "班長")  # INSPECTIONS edit, WATER_SOURCES view
    at = open_map(open_app, user.token)
    at.session_state["wm_selected"] = str(sources["hydrant"].id)
    at.run()
    assert "編集" not in [e.label for e in at.expander]
    widget(at.selectbox, "結果").set_value("使用不可")
    widget(at.selectbox, "点検者（団員）").set_value(
        next(
            o
            for o in widget(at.selectbox, "点検者（団員）").options
            if user.member.member_code in o
        )
    )
    widget(at.text_area, "記録").input("キャップ破損")
    widget(at.button, "点検を記録").click().run()
    assert not at.exception, at.exception
    assert [s.value for s in at.success] == ["H-1 の点検を記録しました。"]
    after = water_sources.get_water_source(admin(tenant), sources["hydrant"].id)
    assert (after.status, after.last_inspected_on) == ("使用不可", TODAY)
    history = at.dataframe[1].value
    assert list(history["結果"]) == ["使用不可"]
    assert list(history["点検者"]) == [user.member.name]


def test_edit_from_the_panel_and_a_stale_edit_conflicts(open_app, brigade):
    tenant, sources = brigade
    at = open_map(open_app, sign_in(tenant).token)
    at.session_state["wm_selected"] = str(sources["tank"].id)
    at.run()
    water_sources.update_water_source(
        admin(tenant),
        sources["tank"].id,
        data=water_sources.WaterSourceUpdate(memo="先に更新"),
        expected_version=sources["tank"].version,
    )
    form = form_of(at, f"wm_edit_{sources['tank'].id}")
    widget(form.text_input, "メモ（ラベル）").input("後から更新")
    widget(form.button, "保存").click().run()
    assert [e.value for e in at.error] == [
        "他の利用者が先に更新しました。画面を再読み込みしてからやり直してください。"
    ]
    assert water_sources.get_water_source(admin(tenant), sources["tank"].id).memo == "先に更新"


def test_delete_asks_in_a_dialog_naming_the_source(open_app, brigade):
    tenant, sources = brigade
    tank = sources["tank"]
    at = open_map(open_app, sign_in(tenant).token)
    at.session_state["wm_selected"] = str(tank.id)
    at.run()
    assert not [c for c in at.checkbox if c.key == f"wm_del_{tank.id}"]

    at.button(key=f"wm_delete_{tank.id}").click().run()
    assert dialog_lines(at) == [
        "水利 T-1（防火水槽）を削除します。点検履歴も削除されます。よろしいですか？"
    ]
    answer(at, "キャンセル")
    assert open_dialog(at) is None
    assert water_sources.get_water_source(admin(tenant), tank.id).code == "T-1"

    at.button(key=f"wm_delete_{tank.id}").click().run()
    answer(at, "実行する")

    assert not at.exception and open_dialog(at) is None
    assert [s.value for s in at.success] == ["T-1 を削除しました。"]
    assert at.session_state["wm_selected"] is None
    with pytest.raises(NotFound):
        water_sources.get_water_source(admin(tenant), tank.id)


def test_a_point_shows_the_nearest_usable_sources_and_adds_one_there(open_app, brigade):
    tenant, _ = brigade
    at = open_map(open_app, sign_in(tenant).token)
    at.session_state["wm_point"] = ORIGIN
    at.run()
    assert headings(at) == ["選択した地点"]
    nearest = at.dataframe[0].value
    assert list(nearest["水利番号"]) == ["T-1", "H-1"]  # T-2 is out of service
    assert list(nearest["距離"]) == ["111 m", "334 m"]
    assert list(nearest["基準距離内"]) == ["○（120m）", "×（120m）"]
    assert [s.value for s in at.success] == ["基準距離内に使用可能な水利が 1 か所あります。"]

    form = form_of(at, "wm_add")
    assert widget(form.number_input, "緯度").value == pytest.approx(ORIGIN[0])
    assert widget(form.number_input, "経度").value == pytest.approx(ORIGIN[1])
    widget(form.text_input, "水利番号 *").input("H-NEW")
    widget(form.number_input, "配水管の口径（mm）").set_value(150)
    widget(form.button, "登録").click().run()
    assert not at.exception, at.exception
    assert [s.value for s in at.success] == ["H-NEW を登録しました。"]
    created = next(s for s in water_sources.list_water_sources(admin(tenant)) if s.code == "H-NEW")
    assert headings(at) == ["H-NEW　消火栓"]  # the new source is selected
    assert (created.latitude, created.longitude, created.grade) == (ORIGIN[0], ORIGIN[1], "基準")


def test_an_uncovered_point_is_reported(open_app, brigade):
    tenant, _ = brigade
    at = open_map(open_app, sign_in(tenant).token)
    at.session_state["wm_point"] = (ORIGIN[0] - 0.01, ORIGIN[1])
    at.run()
    assert [w.value for w in at.warning] == ["基準距離内に使用可能な水利がありません。"]


def test_add_form_reports_errors_in_japanese(open_app, brigade):
    tenant, _ = brigade
    at = open_map(open_app, sign_in(tenant).token)
    at.session_state["wm_point"] = ORIGIN
    at.run()
    form = form_of(at, "wm_add")
    widget(form.text_input, "水利番号 *").input("T-1")
    widget(form.number_input, "容量（m³）").set_value(40.0)
    widget(form.button, "登録").click().run()
    [error] = at.error
    assert "水利番号「T-1」は既に使われています。" in error.value
    assert "消火栓には容量を入力できません。" in error.value


def test_typed_coordinates_pick_a_point(open_app, brigade):
    tenant, _ = brigade
    at = open_map(open_app, sign_in(tenant, "団員").token)
    finder = form_of(at, "wm_find_point")
    finder.text_input[0].input("３６．０, 138.0")
    finder.button[0].click().run()
    assert headings(at) == ["選択した地点"]
    assert list(at.dataframe[0].value["水利番号"]) == ["T-1", "H-1"]
    finder = form_of(at, "wm_find_point")
    finder.text_input[0].input("北緯36度")
    finder.button[0].click().run()
    assert at.error[0].value.startswith("座標は「緯度, 経度」の形で")


def test_the_settings_are_a_link_to_their_page_for_those_who_may_change_them(open_app, brigade):
    tenant, _ = brigade
    at = open_map(open_app, sign_in(tenant).token)
    assert "brigade-settings" in [link.proto.page for link in at.get("page_link")]
    at = open_map(open_app, sign_in(tenant, "分団長").token)  # SETTINGS view only
    assert "app_pages/brigade_settings.py" not in [link.proto.page for link in at.get("page_link")]


def headings(at) -> list[str]:
    """The subheaders as shown: codes are drawn escaped (ui.common.plain), 「T\\-1」 reads T-1."""
    return [re.sub(r"\\(.)", r"\1", h.value) for h in at.subheader]


class FakeMap:
    """Stands in for the map component: records what the page passed on each run."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return kwargs["default"]


@pytest.fixture
def fake_map(monkeypatch) -> FakeMap:
    fake = FakeMap()
    monkeypatch.setattr(water_map_view, "_component", fake)
    return fake


def click(at: AppTest, n: int, **where) -> AppTest:
    """What the browser's map sends for its n-th click, then the rerun it starts."""
    at.session_state["water_map"] = {"n": n, **where}
    return at.run()


def sent_codes(fake_map: FakeMap, tenant) -> list[str]:
    """The codes the map shows after the page's last run: the rows of the version it named
    (fetched from the data route), kept by the filters' bit set."""
    sent = fake_map.calls[-1]
    data = map_data.water_map(admin(tenant))
    assert sent["version"] == data.version and sent["data_url"].endswith(data.version)
    rows = json.loads(data.body)["rows"]
    if sent["mask"] is None:
        return sorted(r[5] for r in rows)
    bits = base64.b64decode(sent["mask"])
    return sorted(r[5] for i, r in enumerate(rows) if bits[i >> 3] >> (i & 7) & 1)


def test_clicks_on_the_map_select_a_source_or_a_point_in_the_same_run(open_app, brigade, fake_map):
    tenant, sources = brigade
    hydrant = sources["hydrant"]
    at = open_map(open_app, sign_in(tenant).token)
    # The page sends no view: panning and zooming stay in the browser and report nothing.
    assert not {"center", "zoom"} & {k for k, v in fake_map.calls[-1].items() if v is not None}
    assert sent_codes(fake_map, tenant) == ["H-1", "T-1", "T-2"]
    runs = len(fake_map.calls)

    click(at, 1, kind="source", code="H-1")
    assert headings(at) == ["H-1　消火栓"]
    assert at.session_state["wm_selected"] == str(hydrant.id)
    # one run: the click is read before the map is drawn, so the map already shows it
    assert len(fake_map.calls) == runs + 1 and fake_map.calls[-1]["selected"] == "H-1"

    at.run()  # the same click again (any rerun) changes nothing
    assert headings(at) == ["H-1　消火栓"]

    click(at, 2, kind="point", lat=36.0, lng=138.0)
    assert headings(at) == ["選択した地点"]
    assert at.session_state["wm_selected"] is None
    assert fake_map.calls[-1]["point"] == [36.0, 138.0]
    assert fake_map.calls[-1]["selected"] is None

    click(at, 3, kind="source", code="H-1")  # the same source clicked again is a new click
    assert headings(at) == ["H-1　消火栓"]
    at.button(key="wm_clear").click().run()
    assert not at.subheader

    click(at, 4, kind="source", code="NO-SUCH")  # gone meanwhile: nothing is selected
    assert not at.subheader

    widget(at.multiselect, "種別").set_value(["防火水槽"]).run()
    assert sent_codes(fake_map, tenant) == ["T-1", "T-2"]  # only a bit set travels
    assert not at.subheader  # and an old click does not select again

    widget(at.multiselect, "種別").set_value([]).run()
    make_source(tenant, code="FAR-1", latitude=36.5, longitude=138.0)
    at.run()  # new data: a new version for the browser to fetch
    assert sent_codes(fake_map, tenant) == ["FAR-1", "H-1", "T-1", "T-2"]


def record_inspection(at: AppTest) -> None:
    widget(at.selectbox, "結果").set_value("異常なし")
    widget(at.text_input, "点検者（団員以外の氏名）").input("消防 太郎")
    widget(at.button, "点検を記録").click().run()
    assert not at.exception, at.exception


def test_a_notice_stays_through_other_reruns_until_the_user_moves_on(open_app, brigade, fake_map):
    tenant, _ = brigade
    at = open_map(open_app, sign_in(tenant).token)
    click(at, 1, kind="source", code="H-1")
    record_inspection(at)
    assert [s.value for s in at.success] == ["H-1 の点検を記録しました。"]

    widget(at.checkbox, "点検期限切れのみ").check().run()
    at.toggle(key="wm_show_labels").set_value(True).run()
    assert [s.value for s in at.success] == ["H-1 の点検を記録しました。"]

    click(at, 2, kind="point", lat=36.0, lng=138.0)  # the user moves on
    assert headings(at) == ["選択した地点"]
    assert not [s for s in at.success if "点検を記録しました" in s.value]


@pytest.fixture
def numbered(engine):
    """H-0001 sorts first; H-9001 is the one the user looks for."""
    tenant = make_tenant()
    first = make_source(tenant, code="H-0001", **north_of_origin(1.0))
    make_source(tenant, code="H-0002", **north_of_origin(2.0))
    wanted = make_source(tenant, code="H-9001", **north_of_origin(3.0))
    return tenant, first, wanted


def test_a_picked_row_stays_picked_when_the_search_is_cleared(open_app, numbered):
    tenant, _, wanted = numbered
    at = list_view(open_map(open_app, sign_in(tenant).token))
    at.text_input(key="wm_text").input("H-9001").run()
    table = at.dataframe[0]
    assert list(table.value["水利番号"]) == ["H-9001"]
    at.session_state[table.key] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert headings(at)[0].startswith("H-9001")

    record_inspection(at)
    assert [s.value for s in at.success] == ["H-9001 の点検を記録しました。"]
    at.text_input(key="wm_text").input("").run()

    assert list(at.dataframe[0].value["水利番号"]) == ["H-0001", "H-0002", "H-9001"]
    assert at.session_state["wm_selected"] == str(wanted.id)
    assert headings(at)[0].startswith("H-9001")
    assert [s.value for s in at.success] == ["H-9001 の点検を記録しました。"]
    at.run()  # and any later rerun leaves it there
    assert at.session_state["wm_selected"] == str(wanted.id)


def test_a_source_clicked_on_the_map_stays_selected_when_the_search_is_cleared(
    open_app, numbered, fake_map
):
    tenant, _, wanted = numbered
    at = open_map(open_app, sign_in(tenant).token)
    at.text_input(key="wm_text").input("H-9001").run()
    assert sent_codes(fake_map, tenant) == ["H-9001"]
    click(at, 1, kind="source", code="H-9001")
    assert at.session_state["wm_selected"] == str(wanted.id)

    record_inspection(at)
    at.text_input(key="wm_text").input("").run()

    assert sent_codes(fake_map, tenant) == ["H-0001", "H-0002", "H-9001"]
    assert at.session_state["wm_selected"] == str(wanted.id)
    assert headings(at)[0].startswith("H-9001")


def test_a_page_for_a_brigade_without_sources(open_app):
    tenant = make_tenant()
    at = open_map(open_app, sign_in(tenant).token)
    assert "表示中 0 件" in at.caption[0].value
    at = list_view(at)
    assert not at.dataframe  # no empty grid with Streamlit's English "empty" …
    assert tables.NOTHING in [c.value for c in at.caption]  # … but the Japanese line


def test_overdue_and_outside_warnings_in_the_panel(open_app, engine):
    tenant = make_tenant()
    for k in range(3):
        make_source(tenant, code=f"IN-{k}", last_inspected_on=TODAY, **north_of_origin(k))
    far = make_source(
        tenant,
        code="FAR-1",
        latitude=43.0,
        longitude=141.3,
        last_inspected_on=TODAY - timedelta(days=400),
    )
    at = open_map(open_app, sign_in(tenant).token)
    at.session_state["wm_selected"] = str(far.id)
    at.run()
    warnings = [w.value for w in at.warning]
    assert warnings[0].startswith("点検期限切れです（期限 ")
    assert warnings[1] == "団の区域の外にあります。座標を確認してください。"
    assert uuid.UUID(at.session_state["wm_selected"]) == far.id
