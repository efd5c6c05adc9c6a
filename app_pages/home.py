"""ホーム: who I am in this brigade, what I may do, and (for its administrators) what is left
to set up."""

from __future__ import annotations

import streamlit as st

from core.access import Need, allows
from core.timefmt import to_jst
from services import members, notices, registrations
from services.catalog import FUNCTION_LABELS, Function, Level
from services.dispatch import incidents
from services.reports import reports
from ui import tables
from ui.common import current_actor
from ui.setup_checklist_view import show_setup_checklist

actor = current_actor()

st.title(actor.tenant_name)
st.write(f"ようこそ、{actor.display_name} さん。")
cols = st.columns(2)
cols[0].metric("階級", actor.rank_name or "—")
cols[1].metric("役職", "・".join(actor.role_names) or "—")

if allows(actor, Need(Function.DISPATCH, Level.VIEW)) and (
    reviews := incidents.open_reviews(actor)
):
    st.error(
        f"要確認の出動が {reviews} 件あります。出動メールを読み取れなかった項目があります。"
        "「災害出動」で内容を確認してください。",
        icon=":material/warning:",
    )
    st.page_link(
        "app_pages/incidents.py", label="災害出動を開く", icon=":material/local_fire_department:"
    )

if allows(actor, Need(Function.REPORTS, Level.VIEW)) and (
    todo := [r for r in reports.my_reports(actor) if r.editable]
):
    st.warning(
        f"入力・提出が必要な出動報告が {len(todo)}件あります（差し戻しを含みます）。",
        icon=":material/assignment:",
    )
    st.page_link("app_pages/reports.py", label="出動報告を開く", icon=":material/assignment:")
if allows(actor, Need(Function.APPROVALS, Level.EDIT)) and (
    waiting := reports.pending_approval(actor)
):
    st.info(
        f"承認の順番が来ている出動報告が {len(waiting)}件あります。", icon=":material/approval:"
    )
    st.page_link("app_pages/approvals.py", label="報告の承認を開く", icon=":material/approval:")

for notice in registrations.code_notices(actor):
    when = to_jst(notice.issued_at)
    if notice.for_me:
        st.warning(
            f"{when} に、あなたのLINE登録コードが {notice.issued_by} により発行されました。"
            "心当たりがない場合は、すぐに団の管理者に連絡してください。",
            icon=":material/key:",
        )
    else:
        st.info(
            f"{when} に、団員 {notice.member_code}（パスワードでログインする団員、または"
            f"権限を編集できる団員）のLINE登録コードが {notice.issued_by} により発行されました。",
            icon=":material/key:",
        )

show_setup_checklist(actor)

st.subheader("付与されている権限")
labels = {f: actor.level(f).label for f in Function if allows(actor, Need(f, Level.VIEW))}
if Function.ROSTER in labels and not allows(actor, Need(Function.ROSTER, Level.EDIT)):
    if unit := members.edit_scope(actor).unit:
        labels[Function.ROSTER] = f"編集（自所属: {unit}）"
rows = [{"機能": FUNCTION_LABELS[f], "権限": label} for f, label in labels.items()]
if rows:
    tables.show(rows, hide_index=True, width="content")
else:
    st.info("現在利用できる機能はありません。団の管理者にお問い合わせください。")

st.subheader("運営からのお知らせ")
if upcoming := notices.current_notices(actor):
    for notice in upcoming:
        until = f"〜{to_jst(notice.ends_at)}" if notice.ends_at else "〜"
        with st.expander(
            f"【{notice.kind_label}】{notice.title}　{to_jst(notice.starts_at)}{until}"
        ):
            st.write(notice.body or "（本文なし）")
else:
    st.caption("現在お知らせはありません。")
