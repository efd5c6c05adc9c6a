"""出動情報 on a phone (#22): one column, the place in large type with a link to the phone's map
app, a compact map and the nearest usable water as a list (a table would scroll sideways)."""

from __future__ import annotations

from urllib.parse import quote

import streamlit as st

from core.timefmt import to_jst
from services.catalog import IncidentStatus
from services.dispatch.reads import MemberIncident
from services.water_sources.model import NearbySource
from ui.common import plain
from ui.incident_map_view import capacity, draw_map

MAP_HEIGHT = 300
# Google Maps' documented cross-platform search URL: it opens the map app on iOS and Android.
MAP_APP_URL = "https://www.google.com/maps/search/?api=1&query={query}"
UNDER_WAY = frozenset({IncidentStatus.RECEIVED, IncidentStatus.DISPATCHED})
NO_POINT = "発生地点の位置はまだ地図に表示できません。住所から地図アプリで探してください。"


def map_app_url(incident: MemberIncident) -> str:
    position = incident.water.position
    if position.known:
        query = f"{position.latitude:.6f},{position.longitude:.6f}"
    else:
        query = incident.place
    return MAP_APP_URL.format(query=quote(query, safe=","))


def show_member_incident(incident: MemberIncident) -> None:
    if incident.status not in UNDER_WAY:
        st.warning(f"この出動は「{incident.status.label}」です。", icon=":material/info:")
    st.header(plain(incident.kind) or "種別不明")
    st.markdown(f"### {plain(incident.place) or '発生場所の記載なし'}")
    if incident.place_approximate:
        st.caption("本部の記載による概略の場所です。")
    if incident.landmark:
        st.markdown(f"**目標物**　{plain(incident.landmark)}")
    if incident.place or incident.water.position.known:
        st.link_button(
            "地図アプリで開く",
            map_app_url(incident),
            icon=":material/map:",
            type="primary",
            width="stretch",
        )
    times = f"覚知 {to_jst(incident.occurred_at)}　" if incident.occurred_at else ""
    st.markdown(f"{times}受信 {to_jst(incident.received_at)}")
    own_answer(incident)
    nearest_water(incident)


def own_answer(incident: MemberIncident) -> None:
    if incident.answer is None:
        st.info("まだ回答していません。LINEのメッセージのボタンで回答してください。")
        return
    eta = f"（到着見込み {incident.eta_minutes}分）" if incident.eta_minutes else ""
    st.success(f"あなたの回答: {incident.answer.label}{eta}")


def nearest_water(incident: MemberIncident) -> None:
    found = incident.water
    st.subheader("発生地点と近くの水利")
    if not found.position.known:
        st.info(NO_POINT, icon=":material/location_off:")
        return
    if found.position.approximate:
        st.caption("発生地点は住所検索による概略の位置です。")
    draw_map(found, pick=False, height=MAP_HEIGHT)
    if not found.sources:
        st.info(f"半径 {found.radius_m} m 以内に使用可の水利はありません。")
        return
    for n in found.sources:
        water_line(n)
    st.caption(f"使用可の水利のうち、半径 {found.radius_m} m 以内で近い順に最大 {found.k}件。")


def water_line(n: NearbySource) -> None:
    overdue = "　:red[**点検期限切れ**]" if n.source.overdue else ""
    memo = f"　{plain(n.source.memo)}" if n.source.memo else ""
    st.markdown(
        f"**{n.distance_m:,.0f} m**　{plain(n.source.kind)}　{capacity(n)}{overdue}  \n"
        f"{plain(n.source.code)}{memo}"
    )
