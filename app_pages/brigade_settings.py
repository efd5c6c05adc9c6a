"""団設定 (#18: a page of its own, no longer only an expander on the 水利マップ): the coverage
distance of the 消防水利の基準 for the brigade and per 分団 — only 分団 the brigade has, chosen
from a list — and the brigade's area (centre and radius) that the map, the far-point warnings
of imports and the templates use. Saved with the version it was read at (a concurrent save is
refused, not overwritten)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import Need, allows
from services import brigade_settings, geo
from services.catalog import Function, Level
from services.errors import ServiceError
from ui.common import current_actor, run_action, show_error
from ui.import_view import require

NOTICE = "bs_notice"
UNIT, RADIUS = "分団", "基準距離（m）"

actor = current_actor()
require(actor, Function.SETTINGS, Level.VIEW)
can_edit = allows(actor, Need(Function.SETTINGS, Level.EDIT))
st.title("団設定")
if notice := st.session_state.pop(NOTICE, None):
    st.success(notice)
try:
    page = brigade_settings.settings_page(actor)  # one read: settings, 分団, limits, version
except ServiceError as exc:
    show_error(exc)
    st.stop()
settings, units = page.map, page.units
radii = list(brigade_settings.COVERAGE_RADII_M)
round_ = st.session_state.get("bs_round", 0)  # a saved form starts afresh, a refused one stays
# the version the page was first drawn at: a save made meanwhile elsewhere is a conflict
seen = st.session_state.setdefault(f"bs_seen_{round_}", page.version)

st.subheader("消防水利の基準距離")
st.caption(
    "水利からこの距離の範囲を、その水利が受け持つ範囲として水利マップに描きます。"
    "商業・工業系 100m、その他の用途地域 120m、市街地に準ずる地域 140m"
    "（年間平均風速4m/s以上の地域は 80m・100m）。"
)
radius = st.selectbox(
    "団の基準距離（m）",
    radii,
    radii.index(settings.coverage_radius_m),
    placeholder="選択してください",
    disabled=not can_edit,
    key=f"bs_radius_{round_}",
)
st.markdown("**分団ごとの基準距離**（団と違う分団だけ）")
if not units:
    st.caption("分団はまだありません（団員の所属か消防水利の担当分団に分団が入ると選べます）。")
per_unit = st.data_editor(
    pd.DataFrame(list(settings.unit_coverage_radii.items()), columns=[UNIT, RADIUS]).astype(
        {RADIUS: "Int64"}
    ),
    num_rows="dynamic" if can_edit else "fixed",
    disabled=not can_edit,
    column_config={
        UNIT: st.column_config.SelectboxColumn(
            UNIT, options=sorted(set(units) | set(settings.unit_coverage_radii)), required=True
        ),
        RADIUS: st.column_config.SelectboxColumn(RADIUS, options=radii, required=True),
    },
    hide_index=True,
    key=f"bs_units_{round_}",
)

st.subheader("団の区域")
derived = settings.area_center_derived or settings.area_center is None
st.caption(
    "区域の中心から半径の外にある水利は、水利マップと一括登録で「区域外」と示します。"
    + (
        f"いまの中心は登録済みの水利の位置から求めたもの（{settings.area_center[0]:.5f}, "
        f"{settings.area_center[1]:.5f}）です。"
        if derived and settings.area_center is not None
        else ""
    )
)
cols = st.columns([3, 1])
centre = cols[0].text_input(
    "区域の中心（緯度, 経度。空欄なら水利の位置から自動）",
    "" if derived else f"{settings.area_center[0]:.6f}, {settings.area_center[1]:.6f}",
    disabled=not can_edit,
    key=f"bs_centre_{round_}",
)
area_radius = cols[1].number_input(
    "区域の半径（km）",
    value=settings.area_radius_km,
    min_value=0.5,
    max_value=100.0,
    disabled=not can_edit,
    key=f"bs_area_{round_}",
)

if can_edit and st.button("団設定を保存", type="primary", key="bs_save"):
    try:
        lat, lon = geo.parse_lat_lon(centre) if centre.strip() else (None, None)
    except ValueError as exc:
        st.error(str(exc))
        st.stop()
    rows = per_unit.dropna(how="all")
    if rows[UNIT].isna().any() or rows[RADIUS].isna().any():
        st.error("分団ごとの基準距離は、分団と距離の両方を選んでください。")
        st.stop()
    if rows[UNIT].duplicated().any():
        st.error("同じ分団が2行あります。1行にしてください。")
        st.stop()

    def next_round(_result: object) -> None:
        st.session_state["bs_round"] = round_ + 1

    run_action(
        lambda: brigade_settings.update_water_map_settings(
            actor,
            coverage_radius_m=radius,
            unit_coverage_radii={
                str(u): int(r) for u, r in zip(rows[UNIT], rows[RADIUS], strict=True)
            },
            area_center_lat=lat,
            area_center_lon=lon,
            area_radius_km=area_radius,
            expected_version=seen,
        ),
        "団設定を保存しました。",
        notice_key=NOTICE,
        then=next_round,
    )
elif not can_edit:
    st.caption("変更には「団設定」の編集権限が必要です。")

st.subheader("一括変更の確認")
limits = page.limits
st.caption(
    "CSV一括登録や復元で、多くの団員を退団にするときや消防水利を削除するとき、確認のため"
    "消防団名の入力を求めます。次の件数と割合（いまの登録数に対して）の小さいほうを超えると"
    f"求めます。いまは {limits.text} です。退団・削除の前には、いつでも自動でバックアップを取ります。"
)
with st.form(f"bs_bulk_{round_}"):
    cols = st.columns(2)
    rows_limit = cols[0].number_input(
        "件数", min_value=1, max_value=1000, value=limits.rows, disabled=not can_edit
    )
    percent_limit = cols[1].number_input(
        "割合（%）", min_value=1, max_value=100, value=limits.percent, disabled=not can_edit
    )
    if st.form_submit_button("確認の基準を保存", disabled=not can_edit):
        run_action(
            lambda: brigade_settings.update_bulk_limits(
                actor,
                rows=int(rows_limit),
                percent=int(percent_limit),
                expected_version=seen,
            ),
            "一括変更の確認の基準を保存しました。",
            notice_key=NOTICE,
            then=lambda _result: st.session_state.update(bs_round=round_ + 1),
        )
