"""水利マップ: the brigade's water sources on a map and in a table; click a source for its details,
inspections and edit form, click an empty spot for the nearest usable sources and "add here"."""

from __future__ import annotations

import hashlib

import folium
import streamlit as st
from streamlit_folium import st_folium

from core.access import Need, allows
from services import water_sources
from services.catalog import (
    WATER_SOURCE_KINDS,
    WATER_SOURCE_STATUSES,
    Function,
    Level,
)
from services.errors import ServiceError
from services.water_sources import Registry, WaterSourceFilter
from ui import tables
from ui import water_forms as forms
from ui import water_panels as panels
from ui.common import current_actor, show_error
from ui.water_map_folium import map_points, source_at, water_base_map, water_layer

VIEWPORT, SEEN, MAP_SIGNATURE = "wm_viewport", "wm_seen_event", "wm_map_signature"
MAP_EVENTS = [
    "last_clicked",
    "last_object_clicked",
    "last_object_clicked_count",
    "last_object_clicked_tooltip",
    "center",
    "zoom",
]

# The map is the page: the main block gives up most of its side padding to it.
WIDE = (
    '<style>[data-testid="stMainBlockContainer"] {padding-left: 2rem; padding-right: 2rem}</style>'
)

actor = current_actor()
can_edit = allows(actor, Need(Function.WATER_SOURCES, Level.EDIT))
can_inspect = allows(actor, Need(Function.INSPECTIONS, Level.EDIT))
can_configure = allows(actor, Need(Function.SETTINGS, Level.EDIT))
rights = panels.Rights(actor, can_edit=can_edit, can_inspect=can_inspect)


def load_registry() -> Registry:
    """The whole registry, reloaded only when the stamp says something changed (this session's
    own cache: nothing is shared between users)."""
    key = (
        str(actor.tenant_id),
        str(actor.member_id or actor.account_id or actor.label),
        water_sources.registry_stamp(actor),
        str(water_sources.today_jst()),
    )
    cached = st.session_state.get("wm_registry")
    if cached is None or cached[0] != key:
        cached = (key, water_sources.load_registry(actor))
        st.session_state["wm_registry"] = cached
    return cached[1]


def filters(registry: Registry) -> WaterSourceFilter:
    cols = st.columns([2, 2, 2, 2, 2])
    units = sorted({s.unit for s in registry.sources if s.unit})
    labels = sorted({s.memo for s in registry.sources if s.memo})
    return WaterSourceFilter(
        kinds=tuple(
            cols[0].multiselect(
                "種別", WATER_SOURCE_KINDS, key="wm_kinds", placeholder="すべて", select_all=False
            )
        ),
        statuses=tuple(
            cols[1].multiselect(
                "状態",
                WATER_SOURCE_STATUSES,
                key="wm_statuses",
                placeholder="すべて",
                select_all=False,
            )
        ),
        units=tuple(
            cols[2].multiselect(
                "担当分団", units, key="wm_units", placeholder="すべて", select_all=False
            )
        ),
        labels=tuple(
            cols[3].multiselect(
                "メモ（ラベル）", labels, key="wm_labels", placeholder="すべて", select_all=False
            )
        ),
        text=cols[4].text_input("番号・所在地・メモで検索", key="wm_text"),
        overdue_only=st.checkbox("点検期限切れのみ", key="wm_overdue"),
    )


def handle_map_event(event: dict | None, registry: Registry) -> None:
    """Keep the viewport; a new click on a source selects it, a new click elsewhere picks a point."""
    if not event:
        return
    if event.get("center") and event.get("zoom"):
        centre = event["center"]
        st.session_state[VIEWPORT] = ((centre["lat"], centre["lng"]), event["zoom"])
    seen = st.session_state.get(SEEN, {})
    clicked_object, clicked_map = event.get("last_object_clicked"), event.get("last_clicked")
    clicks = event.get("last_object_clicked_count")
    st.session_state[SEEN] = {"clicks": clicks, "map": clicked_map}
    if clicked_object and clicks and clicks != seen.get("clicks"):
        source = source_at(
            registry.sources,
            clicked_object["lat"],
            clicked_object["lng"],
            event.get("last_object_clicked_tooltip"),
        )
        if source is not None:
            panels.choose(source.id, None)
            st.rerun()  # so the highlight and the panel show the new selection
    elif clicked_map and clicked_map != seen.get("map"):
        panels.choose(None, (clicked_map["lat"], clicked_map["lng"]))
        st.rerun()


def highlight(registry: Registry) -> folium.FeatureGroup:
    """The selection, drawn without rebuilding the map."""
    group = folium.FeatureGroup(name="選択")
    source = panels.selected_source(registry)
    if source is not None and source.latitude is not None:
        folium.CircleMarker(
            (source.latitude, source.longitude), radius=17, color="#ffd600", weight=4, fill=False
        ).add_to(group)
    if (point := st.session_state.get(panels.POINT)) is not None:
        folium.CircleMarker(
            point, radius=7, color="#000", weight=2, fill_color="#ffd600", fill_opacity=1
        ).add_to(group)
    return group


def viewport_for_a_new_map(signature: tuple):
    """The saved viewport, but only when the map is about to be rebuilt in the browser (the page
    opened anew, or its base changed). Passing it on every rerun would make the map and the
    reruns chase each other's stale view reports."""
    rebuilt = st.session_state.get(MAP_SIGNATURE) != signature
    st.session_state[MAP_SIGNATURE] = signature
    return st.session_state.get(VIEWPORT) if rebuilt else None


def map_view(registry: Registry, shown: list) -> None:
    cols = st.columns(2)
    labels = cols[0].toggle("メモのラベルを表示（重ならない所だけ）", key="wm_show_labels")
    coverage = cols[1].toggle(
        f"包含範囲を表示（基準距離 {registry.settings.coverage_radius_m}m）", key="wm_coverage"
    )
    points = map_points(shown, registry.settings.radius_for)
    # The map that stays in the browser holds no data: filters and saves swap only the layer.
    placed = any(s.latitude is not None for s in registry.sources)
    centre = None if placed else registry.settings.area_center
    m = water_base_map(center=centre)
    folium.LayerControl(collapsed=True).add_to(m)
    viewport = viewport_for_a_new_map((centre,))
    event = st_folium(
        m,
        key="water_map",
        height=620,
        use_container_width=True,
        returned_objects=MAP_EVENTS,
        center=viewport[0] if viewport else None,
        zoom=viewport[1] if viewport else None,
        feature_group_to_add=[
            water_layer(points, show_labels=labels, show_coverage=coverage),
            highlight(registry),
        ],
    )
    handle_map_event(event, registry)
    st.caption(
        f"表示中 {len(points)} 件（座標未登録 {len(shown) - len(points)} 件）。"
        "近い水利はまとめて数で表示し、拡大すると分かれます。"
        "背景地図を読み込めないときも、水利の位置・一覧・検索は使えます。"
        "　栓=消火栓 私=私設消火栓 槽=防火水槽 プ=プール 川=河川・溝 池=濠・池 海=海・湖 井=井戸"
        " 下=下水道 他=その他／灰色=使用不可、破線=点検中、赤枠=点検期限切れ"
    )


def list_view(shown: list, chosen: WaterSourceFilter) -> None:
    """The table, keyed by its rows: a picked row number is read against the rows it was picked
    from, never against others (another search, a cleared filter)."""
    st.caption(f"{len(shown)} 件")
    ids = [str(s.id) for s in shown]
    rows_digest = hashlib.blake2b("".join(ids).encode(), digest_size=8).hexdigest()
    picked = tables.show(
        forms.table(shown),
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key=f"wm_table_{rows_digest}",
    )
    rows = picked.selection.rows if picked else []
    picked_id = ids[rows[0]] if rows and rows[0] < len(ids) else None
    if picked_id != st.session_state.get("wm_table_seen"):
        st.session_state["wm_table_seen"] = picked_id
        if picked_id is not None:
            panels.choose(picked_id, None)
    st.download_button(
        "CSVをダウンロード",
        data=lambda: water_sources.export_water_sources_csv(actor, chosen),
        file_name=f"water_sources_{water_sources.today_jst():%Y%m%d}.csv",
        mime="text/csv",
        icon=":material/download:",
    )


st.html(WIDE)
st.title("水利マップ")
if "wm_view" not in st.session_state:  # first run on this page: the browser has no map yet
    st.session_state.pop(MAP_SIGNATURE, None)
    st.session_state.pop(forms.NOTICE, None)
# The notice stays until the user does something else (panels.choose, forms.run): the map's own
# reruns (its view reported after a pan or zoom) must not wipe it. Its place is kept empty without
# one: an element appearing above the map would move it, and a moved map reloads in the browser.
notice_slot = st.empty()
if notice := st.session_state.get(forms.NOTICE):
    notice_slot.success(notice)
try:
    registry = load_registry()
except ServiceError as exc:
    show_error(exc)
    st.stop()
chosen = filters(registry)
shown = water_sources.filter_sources(registry.sources, chosen)
view = st.segmented_control("表示", ["地図", "一覧"], default="地図", key="wm_view") or "地図"
if view == "地図":
    map_col, panel_col = st.columns([5, 2])
    with map_col:
        map_view(registry, shown)
    with panel_col:
        panels.side_panel(rights, registry)
else:
    list_view(shown, chosen)
    panels.side_panel(rights, registry)
if can_configure:  # the distances and the area are set on 団設定 (#18: a page of its own)
    st.page_link(
        "app_pages/brigade_settings.py",
        label="基準距離・区域の設定（団設定）",
        icon=":material/tune:",
    )
