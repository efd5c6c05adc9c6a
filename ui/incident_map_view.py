"""The incident page's map (#22): the incident's point, the nearest usable water within a radius
with their coverage rings (the water map's layers on the generic map builder, so it works with
no internet), the table of those sources, where the point came from, and for 編集 a way to pin
the point by a click on the map or by typing it."""

from __future__ import annotations

import folium
import pandas as pd
import streamlit as st
from streamlit_folium import st_folium

from core.actor import Actor
from services import geo
from services.dispatch import incident_map
from services.dispatch.incident_map import IncidentPosition, NearestWater
from services.dispatch.incidents import IncidentView
from services.errors import ServiceError
from ui import tables
from ui.common import run_action, show_error
from ui.map_builder import fit_to
from ui.water_map_folium import build_map

RADII_M = (200, 300, 500, 1000, 2000)
CLICKED = "im_clicked"


def show_incident_map(
    actor: Actor, incident: IncidentView, *, can_edit: bool, notice_key: str
) -> None:
    st.markdown("**発生地点と近くの水利**")
    cols = st.columns(2)
    radius = cols[0].selectbox(
        "半径",
        RADII_M,
        index=RADII_M.index(500),
        format_func=lambda r: f"{r} m",
        key="im_radius",
        placeholder="選択してください",
    )
    k = int(cols[1].number_input("表示する件数", 1, 20, 5, key="im_k"))
    try:
        found = incident_map.nearest_water(actor, incident.id, k=k, radius_m=radius)
        unsought = not found.position.known and found.position.checked_at is None
        if can_edit and unsought:  # the point is filled in once: map link, else the geocoder
            incident_map.locate(actor, incident.id)
            found = incident_map.nearest_water(actor, incident.id, k=k, radius_m=radius)
    except ServiceError as exc:
        show_error(exc)
        return
    position = found.position
    position_caption(position)
    clicked = draw_map(found, pick=can_edit)
    if position.known:
        water_table(found)
    if can_edit:
        pin_controls(actor, incident, position, clicked, notice_key)


def position_caption(position: IncidentPosition) -> None:
    if not position.known:
        st.warning(position.message or "発生地点が未設定です。", icon=":material/location_off:")
        return
    text = f"発生地点: {position.latitude:.6f}, {position.longitude:.6f}（{position.source_label}）"
    st.caption(text)
    if position.approximate:
        st.info(
            f"住所検索による概略の位置です。検索した住所: {position.query}"
            f" → 見つかった住所: {position.title or '—'}",
            icon=":material/travel_explore:",
        )


def draw_map(found: NearestWater, *, pick: bool, height: int = 420) -> tuple[float, float] | None:
    """The map; returns the point last clicked on it (for pinning), if any."""
    position = found.position
    point = (position.latitude, position.longitude) if position.known else None
    if point is None and not pick:
        return None
    rows = [
        {
            "code": n.source.code,
            "kind": n.source.kind,
            "status": n.source.status,
            "memo": n.source.memo,
            "latitude": n.source.latitude,
            "longitude": n.source.longitude,
            "overdue": n.source.overdue,
            "radius_m": n.radius_m,
        }
        for n in found.sources
    ]
    here = folium.FeatureGroup(name="発生地点")
    if point is not None:
        folium.Circle(
            point, radius=found.radius_m, color="#d32f2f", weight=1, dash_array="6 6", fill=False
        ).add_to(here)
        folium.CircleMarker(
            point,
            radius=9,
            color="#fff",
            weight=3,
            fill_color="#d32f2f",
            fill_opacity=1,
            tooltip="発生地点" + ("（概略）" if position.approximate else ""),
        ).add_to(here)
    m = build_map(
        rows,
        center=point or found.area_center,
        show_labels=True,
        show_coverage=True,
        cluster=False,
        overlays=(here,) if point is not None else (),
    )
    if point is not None:
        fit_to(m, [point, *((r["latitude"], r["longitude"]) for r in rows)])
    if point is None and found.area_center is None:
        st.caption("地図を拡大して、発生地点をクリックしてください。")
    event = st_folium(
        m,
        key="incident_map",
        height=height,
        use_container_width=True,
        returned_objects=["last_clicked"] if pick else [],
    )
    clicked = (event or {}).get("last_clicked")
    if clicked:
        st.session_state[CLICKED] = (round(clicked["lat"], 6), round(clicked["lng"], 6))
    return st.session_state.get(CLICKED)


def capacity(n) -> str:
    s = n.source
    if s.main_diameter_mm:
        return f"口径 {s.main_diameter_mm} mm"
    return f"{s.capacity_m3:g} m³" if s.capacity_m3 else "—"


def water_table(found: NearestWater) -> None:
    if not found.sources:
        st.info(f"半径 {found.radius_m} m 以内に使用可の水利はありません。")
        return
    tables.show(
        pd.DataFrame(
            [
                {
                    "距離": f"{n.distance_m:,.0f} m",
                    "番号": n.source.code,
                    "種別": n.source.kind,
                    "容量・口径": capacity(n),
                    "メモ": n.source.memo,
                    "最終点検": str(n.source.last_inspected_on or "未点検"),
                    "点検期限": "期限切れ" if n.source.overdue else "",
                }
                for n in found.sources
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    st.caption(
        f"使用可の水利のうち、半径 {found.radius_m} m 以内で近い順に最大 {found.k}件。"
        "円は各水利の基準距離（包含範囲）です。"
    )


def pin_controls(
    actor: Actor,
    incident: IncidentView,
    position: IncidentPosition,
    clicked: tuple[float, float] | None,
    notice_key: str,
) -> None:
    def pin(lat: float, lon: float) -> None:
        run_action(
            lambda: incident_map.pin_position(actor, incident.id, latitude=lat, longitude=lon),
            "発生地点を手動で指定しました。",
            notice_key=notice_key,
            forget=(CLICKED,),
        )

    cols = st.columns(2)
    if clicked and cols[0].button(
        f"クリックした地点（{clicked[0]:.5f}, {clicked[1]:.5f}）を発生地点に設定",
        icon=":material/add_location:",
        key="im_pin_click",
    ):
        pin(*clicked)
    if position.source != "manual" and cols[1].button(
        "位置を調べる", icon=":material/travel_explore:", key="im_locate"
    ):
        run_action(
            lambda: incident_map.locate(actor, incident.id, again=True),
            lambda p: "発生地点を調べました。" if p.known else p.message,
            notice_key=notice_key,
        )
    with st.form("im_pin_form", border=False):
        text = st.text_input("座標を入力して指定（緯度, 経度）", placeholder="36.4020, 138.2490")
        if st.form_submit_button("この座標を発生地点に設定"):
            try:
                lat, lon = geo.parse_lat_lon(text)
            except ValueError as exc:
                st.error(str(exc))
            else:
                pin(lat, lon)
