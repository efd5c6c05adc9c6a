"""Widgets of the 水利マップ page: the source form, the details panel, inspections and the table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from services import water_rules, water_sources
from services.catalog import (
    HYDRANT_KINDS,
    OWNERSHIPS,
    WATER_SOURCE_KINDS,
    WATER_SOURCE_STATUSES,
    WaterInspectionCreate,
    WaterSourcePublic,
)
from ui import tables
from ui.common import run_action

NOTICE = "water_notice"
AUTO = "自動判定"
OWNERSHIP_BY_LABEL = {label: value for value, label in OWNERSHIPS.items()}


def run(action: Callable[[], Any], notice: str, **options: Any) -> None:
    """run_action with the 水利マップ's notice (the last one goes: it is about something else)."""
    st.session_state.pop(NOTICE, None)
    run_action(action, notice, notice_key=NOTICE, **options)


def fresh_key(base: str) -> str:
    """A form key that renew() replaces, so a saved form comes back empty but a refused one
    keeps what was typed."""
    return f"{base}{st.session_state.get(f'{base}_round', '')}"


def renew(key: str) -> None:
    base = key.rstrip("0123456789")
    st.session_state[f"{base}_round"] = st.session_state.get(f"{base}_round", 0) + 1


def _index(options: list, value: Any, default: int = 0) -> int:
    return options.index(value) if value in options else default


def source_form(
    key: str,
    current: WaterSourcePublic | None = None,
    position: tuple[float, float] | None = None,
    units: list[str] | None = None,
) -> dict | None:
    """Add (current None) or edit a source; returns the submitted values or None."""
    c = current
    kinds, statuses = list(WATER_SOURCE_KINDS), list(WATER_SOURCE_STATUSES)
    ownerships = list(OWNERSHIP_BY_LABEL)
    grades = [AUTO, *water_rules.GRADES]
    lat = c.latitude if c else position[0] if position else None
    lon = c.longitude if c else position[1] if position else None
    with st.form(key):
        cols = st.columns(2)
        values: dict[str, Any] = {
            "code": cols[0].text_input("水利番号 *", c.code if c else ""),
            "kind": cols[1].selectbox(
                "種別 *",
                kinds,
                _index(kinds, c.kind if c else "消火栓"),
                placeholder="選択してください",
            ),
        }
        cols = st.columns(2)
        ownership = cols[0].selectbox(
            "区分",
            ownerships,
            _index(ownerships, OWNERSHIPS.get(c.ownership) if c else "公設"),
            placeholder="選択してください",
        )
        values["ownership"] = OWNERSHIP_BY_LABEL[ownership]
        values["status"] = cols[1].selectbox(
            "状態",
            statuses,
            _index(statuses, c.status if c else "使用可"),
            placeholder="選択してください",
        )
        cols = st.columns(2)
        values["latitude"] = cols[0].number_input("緯度", value=lat, format="%.6f", step=0.0001)
        values["longitude"] = cols[1].number_input("経度", value=lon, format="%.6f", step=0.0001)
        values["address"] = st.text_input("所在地", c.address if c else "")
        values["unit"] = st.text_input(
            "担当分団",
            c.unit if c else "",
            help="例: " + "、".join((units or ["第1分団"])[:3]),
        )
        st.caption("消火栓・私設消火栓")
        cols = st.columns(2)
        values["main_diameter_mm"] = cols[0].number_input(
            "配水管の口径（mm）", value=c.main_diameter_mm if c else None, step=25, min_value=0
        )
        hydrant_types = ["", *water_sources.HYDRANT_TYPES]
        values["hydrant_type"] = (
            cols[1].selectbox(
                "地上式・地下式",
                hydrant_types,
                _index(hydrant_types, c.hydrant_type if c else ""),
                placeholder="選択してください",
            )
            or None
        )
        st.caption("防火水槽・プール・河川など（消火栓以外）")
        cols = st.columns(2)
        values["capacity_m3"] = cols[0].number_input(
            "容量（m³）", value=c.capacity_m3 if c else None, step=5.0, min_value=0.0
        )
        values["drop_m"] = cols[1].number_input(
            "落差（m）", value=c.drop_m if c else None, step=0.1, min_value=0.0
        )
        cols = st.columns(2)
        values["depth_m"] = cols[0].number_input(
            "水深（m）", value=c.depth_m if c else None, step=0.1, min_value=0.0
        )
        values["supply_m3_per_min"] = cols[1].number_input(
            "毎分の取水量（m³）", value=c.supply_m3_per_min if c else None, step=0.1, min_value=0.0
        )
        values["supply_minutes"] = st.number_input(
            "取水の継続時間（分）", value=c.supply_minutes if c else None, step=5, min_value=0
        )
        cols = st.columns(2)
        grade = cols[0].selectbox(
            "基準水利／参考水利",
            grades,
            _index(grades, c.grade_override if c else None),
            help="自動判定は消防水利の基準の数値から判定します。",
            placeholder="選択してください",
        )
        values["grade_override"] = None if grade == AUTO else grade
        values["grade_override_reason"] = cols[1].text_input(
            "上書きの理由", c.grade_override_reason if c else ""
        )
        values["memo"] = st.text_input(
            "メモ（ラベル）", c.memo if c else "", help="地図のラベルと絞り込みに使います。"
        )
        values["inspection_interval_days"] = st.number_input(
            "点検周期（日）", value=c.inspection_interval_days if c else 365, step=30, min_value=1
        )
        submitted = st.form_submit_button("登録" if c is None else "保存")
    return values if submitted else None


def details(source: WaterSourcePublic) -> None:
    grade = f"{source.grade}水利" + ("（手動設定）" if source.grade_overridden else "")
    st.markdown(f"**{source.kind}**　{source.status}　{grade}")
    if source.overdue:
        due = source.next_inspection_due
        st.warning(f"点検期限切れです（期限 {due}）。" if due else "点検の記録がありません。")
    if source.outside_area:
        st.warning("団の区域の外にあります。座標を確認してください。")
    rows = {
        "区分": OWNERSHIPS.get(source.ownership, source.ownership),
        "担当分団": source.unit,
        "所在地": source.address,
        "座標": f"{source.latitude:.6f}, {source.longitude:.6f}"
        if source.latitude is not None and source.longitude is not None
        else "未登録",
        "メモ": source.memo,
        "最終点検日": str(source.last_inspected_on or "—"),
        "次回点検期限": str(source.next_inspection_due or "—"),
    }
    if source.kind in HYDRANT_KINDS:
        rows["口径"] = f"{source.main_diameter_mm}mm" if source.main_diameter_mm else "不明"
        rows["形式"] = source.hydrant_type or "不明"
    else:
        rows["容量"] = f"{source.capacity_m3:g}m³" if source.capacity_m3 is not None else "不明"
        rows["落差"] = f"{source.drop_m:g}m" if source.drop_m is not None else "不明"
        rows["水深"] = f"{source.depth_m:g}m" if source.depth_m is not None else "不明"
    tables.show(
        pd.DataFrame({"項目": list(rows), "内容": list(rows.values())}),
        hide_index=True,
        width="stretch",
    )
    st.markdown("**判定の根拠**\n" + "\n".join(f"- {reason}" for reason in source.grade_reasons))


def inspections(actor, source: WaterSourcePublic, can_record: bool) -> None:
    st.markdown("**点検履歴**")
    history = water_sources.list_inspections(actor, source.id)
    if history:
        tables.show(
            pd.DataFrame(
                [
                    {
                        "点検日": i.inspected_on,
                        "結果": i.result,
                        "点検者": i.inspector,
                        "記録": i.notes,
                    }
                    for i in history
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("点検の記録はまだありません。")
    if not can_record:
        return
    inspectors = {o.label: o.member_id for o in water_sources.inspector_choices(actor)}
    results = list(water_rules.INSPECTION_RESULTS)
    form = fresh_key(f"inspect_{source.id}")
    with st.form(form):
        st.markdown("**点検を記録**")
        cols = st.columns(2)
        inspected_on = cols[0].date_input(
            "点検日", water_sources.today_jst(), max_value=water_sources.today_jst()
        )
        result = cols[1].selectbox("結果", results, placeholder="選択してください")
        inspector = st.selectbox(
            "点検者（団員）", list(inspectors), index=None, placeholder="選択してください"
        )
        outsider = st.text_input("点検者（団員以外の氏名）")
        notes = st.text_area("記録", height=80)
        if st.form_submit_button("点検を記録"):
            run(
                lambda: water_sources.record_inspection(
                    actor,
                    source.id,
                    data=WaterInspectionCreate(
                        inspected_on=inspected_on,
                        result=result,
                        inspector_member_id=inspectors.get(inspector),
                        inspector_name=outsider,
                        notes=notes,
                    ),
                ),
                f"{source.code} の点検を記録しました。",
                then=lambda _: renew(form),
            )


def table(sources: list[WaterSourcePublic]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "水利番号": s.code,
                "種別": s.kind,
                "区分": OWNERSHIPS.get(s.ownership, s.ownership),
                "判定": f"{s.grade}水利" + ("＊" if s.grade_overridden else ""),
                "状態": s.status,
                "担当分団": s.unit,
                "所在地": s.address,
                "メモ": s.memo,
                "最終点検日": s.last_inspected_on,
                "次回点検期限": s.next_inspection_due,
                "期限切れ": "○" if s.overdue else "",
                "区域外": "○" if s.outside_area else "",
            }
            for s in sources
        ],
        columns=[
            "水利番号",
            "種別",
            "区分",
            "判定",
            "状態",
            "担当分団",
            "所在地",
            "メモ",
            "最終点検日",
            "次回点検期限",
            "期限切れ",
            "区域外",
        ],
    )
