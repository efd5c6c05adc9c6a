"""The 水利マップ's side panel (the selected source with its inspections and edit form, or the
clicked point with the nearest usable sources and "add here") and the map settings form."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import streamlit as st

from core.actor import Actor
from services import geo, water_sources
from services.catalog import WaterSourceCreate, WaterSourcePublic, WaterSourceUpdate
from services.errors import NotFound
from services.water_sources.map_data import WaterMap
from ui import tables
from ui import water_forms as forms
from ui.common import plain
from ui.confirm import Confirmation, confirm_button

SELECTED, POINT = "wm_selected", "wm_point"
EDIT_VERSION = "wm_edit_version_"


@dataclass(frozen=True)
class Rights:
    """What the panel offers; the services check again on every call."""

    actor: Actor
    can_edit: bool
    can_inspect: bool


def select(source_id, point) -> None:
    for key in [k for k in st.session_state if str(k).startswith(EDIT_VERSION)]:
        del st.session_state[key]
    st.session_state[SELECTED] = str(source_id) if source_id else None
    st.session_state[POINT] = point


def choose(source_id, point) -> None:
    """A selection the user made: the notice of the last action has been read."""
    st.session_state.pop(forms.NOTICE, None)
    select(source_id, point)


def selected_source(actor: Actor) -> WaterSourcePublic | None:
    """The selected source as it is now; None when nothing is selected or it was deleted."""
    wanted = st.session_state.get(SELECTED)
    if not wanted:
        return None
    try:
        return water_sources.get_water_source(actor, uuid.UUID(wanted))
    except NotFound:
        return None


def point_finder() -> None:
    with st.form("wm_find_point"):
        typed = st.text_input(
            "座標から近くの水利を探す（緯度, 経度）", placeholder="36.4020, 138.2490"
        )
        if st.form_submit_button("探す"):
            try:
                point = geo.parse_lat_lon(typed)
            except ValueError as exc:
                st.error(str(exc))
                return
            choose(None, point)
            st.rerun()


def side_panel(rights: Rights, data: WaterMap, source: WaterSourcePublic | None) -> None:
    point = st.session_state.get(POINT)
    if source is not None:
        source_panel(rights, source)
    elif point is not None:
        point_panel(rights, data, point)
    else:
        st.info(
            "地図上の水利をクリックすると詳細と点検履歴を表示します。"
            "何もない場所をクリックすると、その地点に近い使用可能な水利を調べたり、"
            "水利を追加したりできます。"
        )
        if rights.can_edit:
            with st.expander("水利を追加（座標を入力）", icon=":material/add_location:"):
                add_form(rights.actor, data, None)
    point_finder()


def source_panel(rights: Rights, source: WaterSourcePublic) -> None:
    actor = rights.actor
    st.subheader(f"{plain(source.code)}　{plain(source.kind)}")
    forms.details(source)
    forms.inspections(actor, source, rights.can_inspect)
    if rights.can_edit:
        # The version the user saw when the panel opened: a save after someone else's change
        # must conflict, not overwrite it with a form rebuilt from the newer data.
        version_key = f"{EDIT_VERSION}{source.id}"
        seen = st.session_state.setdefault(version_key, source.version)
        with st.expander("編集", icon=":material/edit:"):
            if (values := forms.source_form(f"wm_edit_{source.id}", source)) is not None:
                forms.run(
                    lambda: water_sources.update_water_source(
                        actor, source.id, data=WaterSourceUpdate(**values), expected_version=seen
                    ),
                    f"{values['code']} を保存しました。",
                    forget=(version_key,),
                )
            delete = Confirmation(
                message=f"水利 {source.code}（{source.kind}）を削除します。"
                "点検履歴も削除されます。よろしいですか？",
                action=lambda: water_sources.delete_water_source(
                    actor, source.id, expected_version=seen
                ),
                notice=f"{source.code} を削除しました。",
                notice_key=forms.NOTICE,
                then=lambda _: select(None, None),
                forget=(version_key,),
            )
            confirm_button(st, "削除", delete, key=f"wm_delete_{source.id}")
    if st.button("選択を解除", key="wm_clear"):
        choose(None, None)
        st.rerun()


def point_panel(rights: Rights, data: WaterMap, point: tuple[float, float]) -> None:
    lat, lon = point
    st.subheader("選択した地点")
    st.caption(f"緯度 {lat:.6f}, 経度 {lon:.6f}")
    covering = water_sources.covering_usable_in(data.rows, data.settings, lat, lon)
    if covering:
        st.success(f"基準距離内に使用可能な水利が {len(covering)} か所あります。")
    else:
        st.warning("基準距離内に使用可能な水利がありません。")
    nearest = water_sources.nearest_usable_in(data.rows, data.settings, lat, lon, 5)
    tables.show(
        [
            {
                "水利番号": hit.source.code,
                "種別": hit.source.kind,
                "距離": f"{hit.distance_m:,.0f} m",
                "基準距離内": f"○（{hit.radius_m}m）" if hit.covers else f"×（{hit.radius_m}m）",
            }
            for hit in nearest
        ],
        hide_index=True,
        width="stretch",
    )
    if rights.can_edit:
        with st.expander("この地点に水利を追加", icon=":material/add_location:", expanded=True):
            add_form(rights.actor, data, point)
    if st.button("選択を解除", key="wm_clear_point"):
        choose(None, None)
        st.rerun()


def add_form(actor: Actor, data: WaterMap, point) -> None:
    units = list(data.units)
    key = forms.fresh_key("wm_add")

    def show_added(created) -> None:
        forms.renew(key)
        select(created.id, None)

    if (values := forms.source_form(key, None, point, units)) is not None:
        forms.run(
            lambda: water_sources.create_water_source(actor, data=WaterSourceCreate(**values)),
            f"{values['code']} を登録しました。",
            then=show_added,
        )
