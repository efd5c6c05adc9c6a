"""自己診断 on 出動メール設定: the call-out's daily self-test, its hour (or off), the last result,
what administrators must know (shown above everything else), and 「今すぐ自己診断」."""

from __future__ import annotations

import streamlit as st

from core.actor import Actor
from core.timefmt import to_jst
from services.dispatch import selftest
from services.errors import ServiceError
from ui.common import run_action, show_error

HOURS = [None, *range(24)]


def selftest_section(actor: Actor, *, notice_key: str) -> None:
    try:
        status = selftest.status(actor)
    except ServiceError as exc:
        show_error(exc)
        return
    for warning in status.warnings:
        st.warning(warning, icon=":material/warning:")
    with st.expander("出動連絡の自己診断", icon=":material/health_and_safety:"):
        st.caption(
            "毎日決まった時刻に、受信メールの解析 → 出動の登録 → LINEへの送信確認を試します。"
            "LINEには確認用の窓口（validate）で送るため、団員には届きません。"
            "異常があれば、この画面とダッシュボードに表示し、災害出動の管理権限を持つ団員にLINEで知らせます。"
        )
        cols = st.columns(2)
        cols[0].metric(
            "実行時刻（日本時間）", "実行しない" if status.hour is None else f"毎日 {status.hour}時"
        )
        last = "未実行" if status.last_at is None else "異常" if status.last_error else "正常"
        cols[1].metric("前回の結果", last)
        if status.last_at is not None:
            st.caption(f"前回の実行: {to_jst(status.last_at)}（日本時間）")
        if status.running_since is not None:
            st.info(
                f"実行中です（{to_jst(status.running_since)}開始）。LINEへの送信確認は、"
                "出動メールの受信処理（mail-intake）の次の巡回（30秒ごと）で終わります。",
                icon=":material/hourglass_top:",
            )
        if not status.messaging:
            st.caption("LINEが設定されていないため、LINEへの送信確認は行いません（LINE未設定）。")
        with st.form("selftest_hour"):
            hour = st.selectbox(
                "実行時刻（日本時間）",
                HOURS,
                index=HOURS.index(status.hour),
                format_func=lambda h: "実行しない" if h is None else f"{h}時",
                key="selftest_hour_pick",
                placeholder="選択してください",
            )
            if st.form_submit_button("実行時刻を保存"):
                run_action(
                    lambda: selftest.set_hour(actor, hour, expected_version=status.version),
                    "自己診断の実行時刻を保存しました。",
                    notice_key=notice_key,
                )
        if st.button("今すぐ自己診断", key="selftest_run", icon=":material/play_arrow:"):
            run_action(lambda: selftest.run_now(actor), _started, notice_key=notice_key)


def _started(result: selftest.Result | None) -> str:
    if result is None:
        return (
            "自己診断を始めました。LINEへの送信確認の結果は、受信処理の次の巡回"
            "（30秒ごと）のあとにこの画面で確認できます。"
        )
    if result.passed:
        return (
            "自己診断が終わりました。異常はありませんでした（LINE未設定のためLINEの確認は省略）。"
        )
    return "自己診断が終わりました。異常が見つかりました（上の警告を確認してください）。"
