"""水利マップ: the brigade's water sources on a map and in a table; click a source for its details,
inspections and edit form, click an empty spot for the nearest usable sources and "add here"."""

from __future__ import annotations

import folium
import streamlit as st
from streamlit_folium import st_folium

from core.access import Need, allows
from services import brigade_settings, geo, water_sources
from services.catalog import (
    WATER_SOURCE_KINDS,
    WATER_SOURCE_STATUSES,
    Function,
    Level,
    WaterSourceCreate,
    WaterSourceUpdate,
)
from services.errors import ServiceError
from services.water_sources import Registry, WaterSourceFilter
from ui import water_forms as forms
from ui.common import current_actor, show_error
from ui.water_map_folium import build_map, map_points, source_at

SELECTED, POINT, VIEWPORT, SEEN = "wm_selected", "wm_point", "wm_viewport", "wm_seen_event"
EDIT_VERSION, MAP_SIGNATURE = "wm_edit_version_", "wm_map_signature"
SETTINGS_VERSION = "wm_settings_version"
MAP_EVENTS = [
    "last_clicked",
    "last_object_clicked",
    "last_object_clicked_count",
    "last_object_clicked_tooltip",
    "center",
    "zoom",
]

actor = current_actor()
can_edit = allows(actor, Need(Function.WATER_SOURCES, Level.EDIT))
can_inspect = allows(actor, Need(Function.INSPECTIONS, Level.EDIT))
can_configure = allows(actor, Need(Function.SETTINGS, Level.EDIT))


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
            cols[0].multiselect("種別", WATER_SOURCE_KINDS, key="wm_kinds", placeholder="すべて")
        ),
        statuses=tuple(
            cols[1].multiselect(
                "状態", WATER_SOURCE_STATUSES, key="wm_statuses", placeholder="すべて"
            )
        ),
        units=tuple(cols[2].multiselect("担当分団", units, key="wm_units", placeholder="すべて")),
        labels=tuple(
            cols[3].multiselect("メモ（ラベル）", labels, key="wm_labels", placeholder="すべて")
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
            select(source.id, None)
            st.rerun()  # so the highlight and the panel show the new selection
    elif clicked_map and clicked_map != seen.get("map"):
        select(None, (clicked_map["lat"], clicked_map["lng"]))
        st.rerun()


def select(source_id, point) -> None:
    for key in [k for k in st.session_state if str(k).startswith(EDIT_VERSION)]:
        del st.session_state[key]
    st.session_state[SELECTED] = str(source_id) if source_id else None
    st.session_state[POINT] = point


def highlight(registry: Registry) -> folium.FeatureGroup:
    """The selection, drawn without rebuilding the map."""
    group = folium.FeatureGroup(name="選択")
    source = selected_source(registry)
    if source is not None and source.latitude is not None:
        folium.CircleMarker(
            (source.latitude, source.longitude), radius=17, color="#ffd600", weight=4, fill=False
        ).add_to(group)
    if (point := st.session_state.get(POINT)) is not None:
        folium.CircleMarker(
            point, radius=7, color="#000", weight=2, fill_color="#ffd600", fill_opacity=1
        ).add_to(group)
    return group


def selected_source(registry: Registry):
    wanted = st.session_state.get(SELECTED)
    return next((s for s in registry.sources if str(s.id) == wanted), None)


def viewport_for_a_new_map(signature: tuple):
    """The saved viewport, but only when the map is about to be rebuilt in the browser (other
    data or options). Passing it on every rerun would make the map and the reruns chase each
    other's stale view reports."""
    rebuilt = st.session_state.get(MAP_SIGNATURE) != signature
    st.session_state[MAP_SIGNATURE] = signature
    return st.session_state.get(VIEWPORT) if rebuilt else None


def map_view(registry: Registry, shown: list, chosen: WaterSourceFilter) -> None:
    cols = st.columns(2)
    labels = cols[0].toggle("メモを常に表示", key="wm_show_labels")
    coverage = cols[1].toggle(
        f"包含範囲を表示（基準距離 {registry.settings.coverage_radius_m}m）", key="wm_coverage"
    )
    points = map_points(shown, registry.settings.radius_for)
    centre = None if points else registry.settings.area_center
    m = build_map(points, center=centre, show_labels=labels, show_coverage=coverage)
    viewport = viewport_for_a_new_map(
        (st.session_state["wm_registry"][0], chosen, labels, coverage)
    )
    event = st_folium(
        m,
        key="water_map",
        height=620,
        use_container_width=True,
        returned_objects=MAP_EVENTS,
        center=viewport[0] if viewport else None,
        zoom=viewport[1] if viewport else None,
        feature_group_to_add=highlight(registry),
    )
    handle_map_event(event, registry)
    st.caption(
        f"表示中 {len(points)} 件（座標未登録 {len(shown) - len(points)} 件）。"
        "背景地図を読み込めないときも、水利の位置・一覧・検索は使えます。"
        "　栓=消火栓 私=私設消火栓 槽=防火水槽 プ=プール 川=河川・溝 池=濠・池 海=海・湖 井=井戸"
        " 下=下水道 他=その他／灰色=使用不可、破線=点検中、赤枠=点検期限切れ"
    )


def list_view(shown: list, chosen: WaterSourceFilter) -> None:
    st.caption(f"{len(shown)} 件")
    picked = st.dataframe(
        forms.table(shown),
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="wm_table",
    )
    rows = picked.selection.rows if picked else []
    picked_id = str(shown[rows[0]].id) if rows and rows[0] < len(shown) else None
    if picked_id != st.session_state.get("wm_table_seen"):
        st.session_state["wm_table_seen"] = picked_id
        if picked_id is not None:
            select(picked_id, None)
    st.download_button(
        "CSVをダウンロード",
        data=lambda: water_sources.export_water_sources_csv(actor, chosen),
        file_name=f"water_sources_{water_sources.today_jst():%Y%m%d}.csv",
        mime="text/csv",
        icon=":material/download:",
    )


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
            select(None, point)
            st.rerun()


def side_panel(registry: Registry) -> None:
    source = selected_source(registry)
    point = st.session_state.get(POINT)
    if source is not None:
        source_panel(registry, source)
    elif point is not None:
        point_panel(registry, point)
    else:
        st.info(
            "地図上の水利をクリックすると詳細と点検履歴を表示します。"
            "何もない場所をクリックすると、その地点に近い使用可能な水利を調べたり、"
            "水利を追加したりできます。"
        )
        if can_edit:
            with st.expander("水利を追加（座標を入力）", icon=":material/add_location:"):
                add_form(registry, None)
    point_finder()


def source_panel(registry: Registry, source) -> None:
    st.subheader(f"{source.code}　{source.kind}")
    forms.details(source)
    forms.inspections(actor, source, can_inspect)
    if can_edit:
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
            confirm = st.checkbox("削除する（点検履歴も削除されます）", key=f"wm_del_{source.id}")
            if st.button("削除", disabled=not confirm, key=f"wm_delete_{source.id}"):
                forms.run(
                    lambda: water_sources.delete_water_source(
                        actor, source.id, expected_version=seen
                    ),
                    f"{source.code} を削除しました。",
                    then=lambda _: select(None, None),
                    forget=(version_key,),
                )
    if st.button("選択を解除", key="wm_clear"):
        select(None, None)
        st.rerun()


def point_panel(registry: Registry, point: tuple[float, float]) -> None:
    lat, lon = point
    st.subheader("選択した地点")
    st.caption(f"緯度 {lat:.6f}, 経度 {lon:.6f}")
    covering = water_sources.covering_usable_in(registry.sources, registry.settings, lat, lon)
    if covering:
        st.success(f"基準距離内に使用可能な水利が {len(covering)} か所あります。")
    else:
        st.warning("基準距離内に使用可能な水利がありません。")
    nearest = water_sources.nearest_usable_in(registry.sources, registry.settings, lat, lon, 5)
    st.dataframe(
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
    if can_edit:
        with st.expander("この地点に水利を追加", icon=":material/add_location:", expanded=True):
            add_form(registry, point)
    if st.button("選択を解除", key="wm_clear_point"):
        select(None, None)
        st.rerun()


def add_form(registry: Registry, point) -> None:
    units = sorted({s.unit for s in registry.sources if s.unit})
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


def parse_unit_radii(text: str) -> dict[str, int]:
    """Turns "第1分団=100, 第5分団=140" into {"第1分団": 100, "第5分団": 140}."""
    pairs = [part.split("=") for part in text.replace("、", ",").split(",") if part.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError(text)
    return {unit.strip(): int(radius) for unit, radius in pairs}


def settings_form(registry: Registry) -> None:
    settings = registry.settings
    seen = st.session_state.setdefault(SETTINGS_VERSION, settings.version)
    radii = list(brigade_settings.COVERAGE_RADII_M)
    with st.form("wm_settings"):
        radius = st.selectbox(
            "基準距離（m）",
            radii,
            radii.index(settings.coverage_radius_m),
            help="商業・工業系 100m、その他の用途地域 120m、市街地に準ずる地域 140m"
            "（年間平均風速4m/s以上の地域は 80m・100m）。",
        )
        unit_radii = st.text_input(
            "分団ごとの基準距離（例: 第1分団=100, 第5分団=140）",
            ", ".join(f"{u}={r}" for u, r in settings.unit_coverage_radii.items()),
        )
        centre = st.text_input(
            "区域の中心（緯度, 経度。空欄なら水利の位置から自動）",
            ""
            if settings.area_center_derived or settings.area_center is None
            else f"{settings.area_center[0]:.6f}, {settings.area_center[1]:.6f}",
        )
        area_radius = st.number_input(
            "区域の半径（km）", value=settings.area_radius_km, min_value=0.5, max_value=100.0
        )
        if st.form_submit_button("設定を保存"):
            try:
                lat, lon = geo.parse_lat_lon(centre) if centre.strip() else (None, None)
            except ValueError as exc:
                st.error(str(exc))
                return
            try:
                unit_map = parse_unit_radii(unit_radii)
            except ValueError:
                st.error("分団ごとの基準距離は「分団名=距離」をカンマで区切って入力してください。")
                return
            forms.run(
                lambda: brigade_settings.update_water_map_settings(
                    actor,
                    coverage_radius_m=radius,
                    unit_coverage_radii=unit_map,
                    area_center_lat=lat,
                    area_center_lon=lon,
                    area_radius_km=area_radius,
                    expected_version=seen,
                ),
                "地図の設定を保存しました。",
                forget=(SETTINGS_VERSION,),
            )


st.title("水利マップ")
if "wm_view" not in st.session_state:  # first run on this page: the browser has no map yet
    st.session_state.pop(MAP_SIGNATURE, None)
if notice := st.session_state.pop(forms.NOTICE, None):
    st.success(notice)
try:
    registry = load_registry()
except ServiceError as exc:
    show_error(exc)
    st.stop()
chosen = filters(registry)
shown = water_sources.filter_sources(registry.sources, chosen)
view = st.segmented_control("表示", ["地図", "一覧"], default="地図", key="wm_view") or "地図"
if view == "地図":
    map_col, panel_col = st.columns([3, 2])
    with map_col:
        map_view(registry, shown, chosen)
    with panel_col:
        side_panel(registry)
else:
    list_view(shown, chosen)
    side_panel(registry)
if can_configure:
    with st.expander("地図の設定（基準距離・区域）", icon=":material/settings:"):
        settings_form(registry)
