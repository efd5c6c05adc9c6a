"""The approval chain editor on the 出動報告の設定 page: the steps a report goes through (e.g.
班長（分団内） → 分団長（分団内） → 団長（団全体））, each a rank and whether it is taken within
the reporter's 分団 or for the whole brigade."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.actor import Actor
from services.errors import ServiceError
from services.reports import approvals
from services.reports.approvals import ChainStep, StepScope
from ui.common import run_action, show_error

RANK, SCOPE = "階級", "範囲"


def show_chain_editor(actor: Actor, *, notice_key: str) -> None:
    st.subheader("承認の順番")
    try:
        chain = approvals.get_chain(actor)
    except ServiceError as exc:
        show_error(exc)
        return
    st.markdown("　→　".join(step.label for step in chain.steps))
    if chain.version == 0:
        st.caption("まだ設定されていないため、既定の順番（分団長 → 団長）です。")
    st.caption(
        "「分団内」の段階は、報告した団員と同じ分団の、その階級以上の方が承認します。"
        "「団全体」の段階は、団のその階級以上の方が承認します。承認には「出動報告の承認」の権限が"
        "必要です。同じ人が2つの段階を承認することはできません。"
    )
    ranks = [name for _, name in chain.ranks]
    scopes = {s.label: s for s in StepScope}
    edited = st.data_editor(
        pd.DataFrame(
            [{RANK: s.rank, SCOPE: s.scope.label} for s in chain.steps], columns=[RANK, SCOPE]
        ),
        column_config={
            RANK: st.column_config.SelectboxColumn(RANK, options=ranks, required=True),
            SCOPE: st.column_config.SelectboxColumn(SCOPE, options=list(scopes), required=True),
        },
        num_rows="dynamic",
        hide_index=True,
        key="chain_editor",
    )
    if st.button("承認の順番を保存", key="chain_save"):
        steps = [
            ChainStep(str(row[RANK] or ""), scopes.get(row[SCOPE], StepScope.BRIGADE))
            for row in edited.to_dict("records")
            if row[RANK] or row[SCOPE]
        ]
        run_action(
            lambda: approvals.save_chain(actor, steps, expected_version=chain.version),
            "承認の順番を保存しました。承認待ちの報告は、今の段階から新しい順番で進みます。",
            notice_key=notice_key,
        )
