"""水利マップ: the brigade's water sources on a map and in a table; click a source for its details,
inspections and edit form, click an empty spot for the nearest usable sources and "add here".

The map keeps one Leaflet map in the browser (ui.water_map_view) and fetches the sources once
per version; a rerun reads the process-wide map data (services.water_sources.map_data), so it
sends only the filters and the selection, and panning or zooming runs nothing here (#19)."""

from __future__ import annotations

import hashlib

import streamlit as st

from core.access import Need, allows
from services import water_sources
from services.catalog import (
    WATER_SOURCE_KINDS,
    WATER_SOURCE_STATUSES,
    Function,
    Level,
)
from services.errors import ServiceError
from services.water_sources import WaterSourceFilter, map_data
from ui import tables
from ui import water_forms as forms
from ui import water_panels as panels
from ui.common import current_actor, show_error
from ui.water_map_view import water_map

MAP_KEY, SEEN = "water_map", "wm_seen_click"

# The map is the page: the main block gives up most of its side padding to it.
WIDE = (
    '<style>[data-testid="stMainBlockContainer"] {padding-left: 2rem; padding-right: 2rem}</style>'
)

actor = current_actor()
can_edit = allows(actor, Need(Function.WATER_SOURCES, Level.EDIT))
can_inspect = allows(actor, Need(Function.INSPECTIONS, Level.EDIT))
can_configure = allows(actor, Need(Function.SETTINGS, Level.EDIT))
rights = panels.Rights(actor, can_edit=can_edit, can_inspect=can_inspect)


def filters(data: map_data.WaterMap) -> WaterSourceFilter:
    cols = st.columns([2, 2, 2, 2, 2])
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
                "担当分団", data.units, key="wm_units", placeholder="すべて", select_all=False
            )
        ),
        labels=tuple(
            cols[3].multiselect(
                "メモ（ラベル）",
                data.labels,
                key="wm_labels",
                placeholder="すべて",
                select_all=False,
            )
        ),
        text=cols[4].text_input("番号・所在地・メモで検索", key="wm_text"),
        overdue_only=st.checkbox("点検期限切れのみ", key="wm_overdue"),
    )


def take_click(data: map_data.WaterMap) -> None:
    """The map's last click, read before anything is drawn (so this run already shows what it
    selects): a source clicked selects it, a spot clicked elsewhere picks that point. The value
    stays the component's until the next click, so each click is taken once."""
    click = st.session_state.get(MAP_KEY)
    if not click or click == st.session_state.get(SEEN):
        return
    st.session_state[SEEN] = click
    if click.get("kind") == "source":
        if (row := data.by_code(str(click.get("code")))) is not None:
            panels.choose(row.id, None)
    elif click.get("kind") == "point":
        panels.choose(None, (float(click["lat"]), float(click["lng"])))


def map_view(data: map_data.WaterMap, kept: list[int], selected) -> None:
    cols = st.columns(2)
    labels = cols[0].toggle("メモのラベルを表示（重ならない所だけ）", key="wm_show_labels")
    coverage = cols[1].toggle(
        f"包含範囲を表示（基準距離 {data.settings.coverage_radius_m}m）", key="wm_coverage"
    )
    water_map(
        data,
        tenant_id=actor.tenant_id,
        mask=map_data.shown_mask(data, kept),
        selected=selected.code if selected is not None else None,
        point=st.session_state.get(panels.POINT),
        labels=labels,
        coverage=coverage,
        center=None if data.placed else data.settings.area_center,
        key=MAP_KEY,
    )
    placed = len(set(kept).intersection(data.placed))
    st.caption(
        f"表示中 {placed} 件（座標未登録 {len(kept) - placed} 件）。"
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
    st.session_state.pop(forms.NOTICE, None)
# The notice stays until the user does something else (panels.choose, forms.run). Its place is
# kept empty without one: an element appearing above the map would move it, and a moved map
# reloads in the browser.
notice_slot = st.empty()
try:
    data = map_data.water_map(actor)
except ServiceError as exc:
    show_error(exc)
    st.stop()
take_click(data)
if notice := st.session_state.get(forms.NOTICE):
    notice_slot.success(notice)
chosen = filters(data)
kept = map_data.matching(data, chosen)
view = st.segmented_control("表示", ["地図", "一覧"], default="地図", key="wm_view") or "地図"
if view == "地図":
    map_col, panel_col = st.columns([5, 2])
    selected = panels.selected_source(actor)
    with map_col:
        map_view(data, kept, selected)
    with panel_col:
        panels.side_panel(rights, data, selected)
else:
    list_view(water_sources.list_water_sources(actor, chosen), chosen)
    panels.side_panel(rights, data, panels.selected_source(actor))
if can_configure:  # the distances and the area are set on 団設定 (#18: a page of its own)
    st.page_link(
        "app_pages/brigade_settings.py",
        label="基準距離・区域の設定（団設定）",
        icon=":material/tune:",
    )
