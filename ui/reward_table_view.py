"""The 出動報酬 table on 出動報告の設定 (#22): the saved table in plain Japanese, an editor
started from the saved table or a municipal preset (categories, hour bands, options), saving
with every validation message, and a 試算 of one activity under the table as edited.

The editor's widgets hold the draft across reruns; loading a table (the saved one or a preset)
sets them once, and a save is checked against the settings version read at that moment."""

from __future__ import annotations

import numbers
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime, time, timedelta

import pandas as pd
import streamlit as st

from core.actor import Actor
from core.rewards import (
    PRESETS,
    Band,
    CategoryRule,
    HourRounding,
    PayLine,
    RewardTable,
    duration_label,
    yen,
)
from core.timefmt import JST, today_jst
from services.errors import ServiceError
from services.reports import rewards
from ui.common import run_action, show_error

DRAFT, VERSION, SOURCE = "rt_draft", "rt_version", "rt_source"
NAME, RULES, BANDS, ALIASES = "rt_name", "rt_rules", "rt_bands", "rt_aliases"
HIGHEST, UNIT, TURNED, FALSE_ALARM, OTHER = (
    "rt_highest",
    "rt_unit",
    "rt_turned",
    "rt_false",
    "rt_other",
)
SAVED = "保存済みの表"
NONE = "（なし）"
# the editors' columns
CATEGORY, METHOD, RATE, ROUNDING, CAP = "区分", "計算方法", "時間単価", "端数", "1日の上限"
FROM, TO, AMOUNT = "開始（時間:分）", "終了（時間:分）", "金額"
KIND, TARGET = "種別", "読み替え先の区分"
PER_CALL, PER_DAY, HOURLY = "時間帯（1回ごと）", "時間帯（1日ごと）", "時間単価"
ROUNDINGS = {r.label: r for r in HourRounding}
HOURS_MINUTES = re.compile(r"(\d{1,3})(?::(\d{1,2}))?")


def show_saved_table(table: RewardTable | None) -> None:
    st.subheader("現在の出動報酬の表")
    if table is None:
        st.info("出動報酬の表はまだ保存されていません。下の編集欄でひな形から作成してください。")
        return
    st.markdown("\n".join(f"- {line}" for line in summary_lines(table)))


def summary_lines(table: RewardTable) -> list[str]:
    """The table in plain Japanese: one line per category, then the options."""
    lines = [f"**{table.name}**"]
    lines.extend(_rule_summary(rule) for rule in table.rules)
    if table.highest_per_day_only:
        lines.append("同じ日に複数の活動があるときは、最も高い報酬のみ支給")
    if table.day_unit_hours:
        lines.append(
            f"{table.day_unit_hours}時間を超える活動は{table.day_unit_hours}時間ごとに1日として計算"
        )
    for label, amount in (
        ("現場到着前の引揚げ", table.turned_back_amount),
        ("誤報", table.false_alarm_amount),
    ):
        if amount is not None:
            lines.append(f"{label}: {yen(amount)}")
    if table.other_category:
        lines.append(f"表にない区分は「{table.other_category}」として計算")
    targets: dict[str, list[str]] = {}
    for kind, target in table.aliases.items():
        targets.setdefault(target, []).append(kind)
    lines.extend(f"読み替え: {'・'.join(kinds)} → {target}" for target, kinds in targets.items())
    return lines


def _rule_summary(rule: CategoryRule) -> str:
    if rule.hourly_rate is not None:
        text = f"1時間 {yen(rule.hourly_rate)}（{rule.rounding.label}）"
    else:
        text = " / ".join(" ".join(p for p in (b.label, yen(b.amount)) if p) for b in rule.bands)
        text += "（1日ごと）" if rule.per_day else "（1回ごと）"
    if rule.daily_cap is not None:
        text += f"・1日の上限 {yen(rule.daily_cap)}"
    return f"{rule.name}: {text}"


# --- the editor -------------------------------------------------------------------------------


def reward_table_editor(
    actor: Actor, saved: RewardTable | None, version: int, *, notice_key: str
) -> None:
    st.subheader("出動報酬の表の編集")
    state = st.session_state
    sources = {**({SAVED: saved} if saved else {}), **{f"ひな形: {t.name}": t for t in PRESETS}}
    if DRAFT not in state:
        _load(saved or PRESETS[0], version)
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    source = left.selectbox("読み込む表", list(sources), key=SOURCE, placeholder="選択してください")
    if right.button("読み込む", icon=":material/download:"):
        _load(sources[source], version)
    st.caption("読み込むと、編集中で保存していない変更は破棄されます。")
    draft, problems = _edited(state[DRAFT])
    if st.button("出動報酬の表を保存", type="primary"):
        if problems:
            _show_problems(problems)
        else:
            run_action(
                lambda: rewards.save_reward_table(actor, draft, expected_version=state[VERSION]),
                f"出動報酬の表「{draft.name}」を保存しました。",
                notice_key=notice_key,
                then=lambda _: state.pop(DRAFT),
            )
    _trial_form(actor, draft, problems)


def _load(table: RewardTable, version: int) -> None:
    """Put `table` into the editor's widgets (before they are drawn)."""
    state = st.session_state
    state[DRAFT], state[VERSION] = table, version
    state[NAME], state[HIGHEST] = table.name, table.highest_per_day_only
    state[UNIT], state[TURNED] = table.day_unit_hours, table.turned_back_amount
    state[FALSE_ALARM], state[OTHER] = table.false_alarm_amount, table.other_category or NONE
    for key in (RULES, BANDS, ALIASES):
        state.pop(key, None)


def _edited(loaded: RewardTable) -> tuple[RewardTable, list[str]]:
    """The editor's widgets, and the table they describe with what could not be read."""
    st.text_input("表の名前", key=NAME, max_chars=rewards.MAX_TABLE_NAME_CHARS)
    st.markdown("**区分**")
    rules = st.data_editor(
        _rules_frame(loaded),
        key=RULES,
        num_rows="dynamic",
        hide_index=True,
        width="stretch",
        column_config={
            CATEGORY: st.column_config.TextColumn(CATEGORY, max_chars=rewards.MAX_NAME_CHARS),
            METHOD: st.column_config.SelectboxColumn(METHOD, options=[PER_CALL, PER_DAY, HOURLY]),
            RATE: st.column_config.NumberColumn(RATE, min_value=0, step=1, format="%d円"),
            ROUNDING: st.column_config.SelectboxColumn(ROUNDING, options=list(ROUNDINGS)),
            CAP: st.column_config.NumberColumn(CAP, min_value=0, step=1, format="%d円"),
        },
    )
    names = [_text(n) for n in rules[CATEGORY] if _text(n)]
    st.markdown("**時間帯**（時間単価の区分には不要です）")
    st.caption(
        "区分ごとに上から順に、開始を含み終了を含みません。最後の行の終了は空欄（上限なし）にします。"
    )
    bands = st.data_editor(
        _bands_frame(loaded),
        key=BANDS,
        num_rows="dynamic",
        hide_index=True,
        width="stretch",
        column_config={
            CATEGORY: st.column_config.SelectboxColumn(CATEGORY, options=names),
            FROM: st.column_config.TextColumn(FROM, help="例: 4:00"),
            TO: st.column_config.TextColumn(TO, help="例: 7:45（空欄は上限なし）"),
            AMOUNT: st.column_config.NumberColumn(AMOUNT, min_value=0, step=1, format="%d円"),
        },
    )
    st.markdown("**そのほかの決まり**")
    st.checkbox("同じ日に複数の活動があるときは、最も高い報酬のみ支給する", key=HIGHEST)
    st.number_input(
        "日の単位（時間）: この時間を超える活動を分けて数える（空欄はなし）",
        min_value=1,
        max_value=24,
        value=None,
        key=UNIT,
    )
    st.number_input(
        "現場到着前の引揚げの金額（空欄は時間で計算）", min_value=0, value=None, key=TURNED
    )
    st.number_input("誤報の金額（空欄は時間で計算）", min_value=0, value=None, key=FALSE_ALARM)
    st.selectbox(
        "表にない区分（広報・会議など）を計算する区分",
        [NONE, *names],
        key=OTHER,
        placeholder="選択してください",
    )
    st.markdown("**種別の読み替え**（例: 火災 → 災害）")
    aliases = st.data_editor(
        pd.DataFrame(list(loaded.aliases.items()), columns=[KIND, TARGET]),
        key=ALIASES,
        num_rows="dynamic",
        hide_index=True,
        width="stretch",
        column_config={TARGET: st.column_config.SelectboxColumn(TARGET, options=names)},
    )
    return _table(rules, bands, aliases)


def _rules_frame(table: RewardTable) -> pd.DataFrame:
    rows = [
        {
            CATEGORY: r.name,
            METHOD: HOURLY if r.hourly_rate is not None else PER_DAY if r.per_day else PER_CALL,
            RATE: r.hourly_rate,
            ROUNDING: r.rounding.label if r.hourly_rate is not None else None,
            CAP: r.daily_cap,
        }
        for r in table.rules
    ]
    return pd.DataFrame(rows, columns=[CATEGORY, METHOD, RATE, ROUNDING, CAP]).astype(
        {RATE: "Int64", CAP: "Int64"}
    )


def _bands_frame(table: RewardTable) -> pd.DataFrame:
    rows = [
        {CATEGORY: r.name, FROM: _clock(b.from_minutes), TO: _clock(b.to_minutes), AMOUNT: b.amount}
        for r in table.rules
        for b in r.bands
    ]
    return pd.DataFrame(rows, columns=[CATEGORY, FROM, TO, AMOUNT]).astype({AMOUNT: "Int64"})


def _clock(minutes: int | None) -> str:
    return "" if minutes is None else f"{minutes // 60}:{minutes % 60:02d}"


def _table(
    rules: pd.DataFrame, bands: pd.DataFrame, aliases: pd.DataFrame
) -> tuple[RewardTable, list[str]]:
    problems: list[str] = []
    bands_of: dict[str, list[Band]] = {}
    for n, row in enumerate(bands.to_dict("records"), start=1):
        band = _band(n, row, problems)
        if band is not None:
            bands_of.setdefault(_text(row[CATEGORY]), []).append(band)
    found = []
    for row in rules.to_dict("records"):
        name = _text(row[CATEGORY])
        if not name and _blank(row.values()):
            continue
        hourly = row[METHOD] == HOURLY
        found.append(
            CategoryRule(
                name=name,
                bands=tuple(bands_of.pop(name, ())),
                per_day=row[METHOD] == PER_DAY,
                hourly_rate=_number(row[RATE]) if hourly else None,
                rounding=ROUNDINGS.get(_text(row[ROUNDING]), HourRounding.STARTED),
                daily_cap=_number(row[CAP]),
            )
        )
    problems.extend(f"時間帯: 区分「{name}」は区分の表にありません。" for name in bands_of)
    state = st.session_state
    table = RewardTable(
        name=state[NAME].strip(),
        rules=tuple(found),
        aliases={
            _text(r[KIND]): _text(r[TARGET]) for r in aliases.to_dict("records") if _text(r[KIND])
        },
        other_category=None if state[OTHER] == NONE else state[OTHER],
        highest_per_day_only=state[HIGHEST],
        day_unit_hours=state[UNIT],
        turned_back_amount=state[TURNED],
        false_alarm_amount=state[FALSE_ALARM],
    )
    return table, problems


def _band(n: int, row: dict, problems: list[str]) -> Band | None:
    if _blank(row.values()):
        return None
    where = f"時間帯 {n}行目"
    before = len(problems)
    try:
        start, end = _minutes(row[FROM]), _minutes(row[TO])
    except ValueError:
        problems.append(f"{where}: 開始と終了は「4:00」のように時間:分で入力してください。")
        start = end = None
    if start is None and len(problems) == before:
        problems.append(f"{where}: 開始を入力してください（最初の行は 0:00）。")
    amount = _number(row[AMOUNT])
    if amount is None:
        problems.append(f"{where}: 金額を入力してください。")
    if not _text(row[CATEGORY]):
        problems.append(f"{where}: 区分を選んでください。")
    if len(problems) > before or start is None or amount is None:
        return None
    return Band(start, end, amount)


def _minutes(value: object) -> int | None:
    """時間:分 as minutes, None for an empty cell; ValueError when it cannot be read."""
    text = unicodedata.normalize("NFKC", _text(value))
    if not text:
        return None
    match = HOURS_MINUTES.fullmatch(text)
    if match is None or int(match[2] or 0) >= 60:
        raise ValueError(text)
    return int(match[1]) * 60 + int(match[2] or 0)


def _show_problems(problems: list[str]) -> None:
    st.error("入力内容を確認してください。\n\n" + "\n".join(f"- {p}" for p in problems))


def _blank(values: Iterable[object]) -> bool:
    return all(_text(v) == "" for v in values)


def _text(value: object) -> str:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return str(value).strip()


def _number(value: object) -> int | None:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return int(value) if isinstance(value, numbers.Real) else None


# --- 試算 -------------------------------------------------------------------------------------


def _trial_form(actor: Actor, table: RewardTable, problems: list[str]) -> None:
    st.subheader("試算")
    st.caption("編集中の表（保存前でも）で、1件の活動の報酬を計算します。")
    with st.form("rt_trial"):
        category = st.selectbox(
            "区分",
            table.categories or [""],
            key="rt_trial_category",
            placeholder="選択してください",
        )
        day = st.date_input("開始日", value=today_jst())
        left, right = st.columns(2)
        start = left.time_input("開始時刻", value=time(9, 0), step=300, key="rt_trial_start")
        end = right.time_input(
            "終了時刻（開始より前なら翌日）", value=time(13, 0), step=300, key="rt_trial_end"
        )
        turned_back = st.checkbox("現場到着前に引き揚げた")
        false_alarm = st.checkbox("誤報だった")
        if not st.form_submit_button("試算する"):
            return
    if problems:
        _show_problems(problems)
        return
    begins = datetime.combine(day, start, JST)
    ends = datetime.combine(day, end, JST)
    if ends < begins:
        ends += timedelta(days=1)
    try:
        lines = rewards.preview(
            actor, table, category, begins, ends, turned_back=turned_back, false_alarm=false_alarm
        )
    except ServiceError as exc:
        show_error(exc)
        return
    length = duration_label(int((ends - begins).total_seconds()) // 60)
    st.success(f"{length}の活動: 合計 {yen(sum(line.amount for line in lines))}")
    st.markdown("\n".join(f"- {line.day:%m月%d日}: {_reason(line)}" for line in lines))


def _reason(line: PayLine) -> str:
    return " → ".join((line.explanation, *line.adjustments))
