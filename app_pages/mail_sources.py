"""出動メール設定: where the brigade's dispatch mail comes from (each 消防本部), whom to accept it
from, and the parser profile that reads it, with a test area that reads a sample mail with the
profile as edited, before it is saved. 災害出動 管理 only: the receiving address is a credential
(whoever knows it can send mail to the brigade's intake, within the sender allow-list)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from services.catalog import Function, Level, MailTransport
from services.dispatch import sources
from services.dispatch.sources import SourceView
from services.errors import ServiceError
from ui import mail_source_form as form
from ui import tables
from ui.callout_rules_view import callout_rules_form
from ui.callout_settings_view import callout_settings_form, test_callout_form
from ui.common import current_actor, run_action, show_error
from ui.confirm import Confirmation, confirm_button
from ui.import_view import require
from ui.profile_preview import try_profile
from ui.selftest_view import selftest_section

NOTICE, PICK, PICK_NEXT, LOADED = "ms_notice", "ms_pick", "ms_pick_next", "ms_loaded"
NEW = "new"

actor = current_actor()
require(actor, Function.DISPATCH, Level.ADMIN)
state = st.session_state
# A widget's value may be set only before it is drawn: a saved source is picked on the next run.
if PICK_NEXT in state:
    state[PICK] = state.pop(PICK_NEXT)
    state.pop(LOADED, None)

st.title("出動メール設定")
st.caption(
    "消防本部から届く出動メールの受け取り方と読み取り方を設定します。"
    "許可した送信元以外のメールは拒否し、すべてメール受信ログ（イベントログ）に記録します。"
)
if notice := state.pop(NOTICE, None):
    st.success(notice)
selftest_section(actor, notice_key=NOTICE)
with st.expander("出動連絡の設定（LINE）", icon=":material/campaign:"):
    callout_settings_form(actor, notice_key=NOTICE)
    callout_rules_form(actor, notice_key=NOTICE)
    test_callout_form(actor, notice_key=NOTICE)

try:
    saved = sources.list_sources(actor)
    examples = sources.example_profiles()
except ServiceError as exc:
    show_error(exc)
    st.stop()
by_id = {str(s.id): s for s in saved}

if saved:
    tables.show(
        pd.DataFrame(
            [
                {
                    "名称": s.name,
                    "受信方法": s.transport.label,
                    "送信元": "、".join(s.senders),
                    "DKIM必須": "必須" if s.dkim_required else "",
                    "解析ルール": s.profile.get("name", ""),
                    "状態": "有効" if s.active else "停止中",
                }
                for s in saved
            ]
        ),
        hide_index=True,
        width="stretch",
    )
else:
    st.info("出動メールの送信元はまだ登録されていません。下のフォームから登録してください。")

picked = st.selectbox(
    "編集する送信元",
    [NEW, *by_id],
    format_func=lambda key: "（新しく登録する）" if key == NEW else by_id[key].name,
    key=PICK,
    placeholder="選択してください",
)
source: SourceView | None = by_id.get(picked)


def reload() -> None:
    state.pop(LOADED, None)


# The form is filled once per chosen source (and after each save), not from every fresh read:
# edits survive reruns, and a change by someone else meanwhile is refused on saving (版の照合).
if state.get(LOADED) != picked:
    form.load(source, next(iter(examples.values())))
    state[LOADED] = picked
    state["ms_version"] = source.version if source else 0

if source is not None and source.transport == MailTransport.SMTP and source.address:
    st.markdown("**受信アドレス**（消防本部にこのアドレスへ送ってもらいます）")
    st.code(source.address, language=None)
    st.caption(
        "このアドレスは秘密にしてください。知られた場合は再発行します（古いアドレスは使えなくなります）。"
    )
    rotate = Confirmation(
        message=f"「{source.name}」の受信アドレスを再発行します。",
        details=(
            "今のアドレスに届くメールは、この後すべて拒否されます。",
            "消防本部に新しいアドレスへの変更を依頼してください。",
            "編集中で保存していない変更は破棄されます。",
        ),
        action=lambda: sources.rotate_address(actor, source.id),
        notice=lambda view: f"受信アドレスを再発行しました: {view.address}",
        notice_key=NOTICE,
        then=lambda _: reload(),
    )
    confirm_button(st, "アドレスを再発行", rotate, key="ms_rotate", icon=":material/autorenew:")
elif source is None:
    st.caption(
        "受信方法が受信アドレス（SMTP）の場合、保存するとこの団専用の受信アドレスを発行します。"
    )

st.subheader("基本設定")
form.source_fields(source)
st.subheader("解析ルール")
profile = form.profile_fields(examples)

st.subheader("解析の確認（保存前に試せます）")
st.caption("見本のメールを、上の解析ルール（編集中のまま）で読み取ります。何も保存しません。")
try_profile(actor, profile, state.get(form.FIELDS["charset_override"]) or "")

st.divider()
entered = form.entered_source(profile)
cols = st.columns([1, 1, 2])
if source is None:
    if cols[0].button("登録する", type="primary", key="ms_save"):
        run_action(
            lambda: sources.create_source(actor, entered),
            lambda view: f"「{view.name}」を登録しました。",
            notice_key=NOTICE,
            then=lambda view: state.update({PICK_NEXT: str(view.id)}),
        )
else:
    if cols[0].button("変更を保存", type="primary", key="ms_save"):
        run_action(
            lambda: sources.update_source(
                actor, source.id, entered, expected_version=state["ms_version"]
            ),
            lambda view: f"「{view.name}」を保存しました。",
            notice_key=NOTICE,
            then=lambda view: state.update({PICK_NEXT: str(view.id)}),
        )
    cols[1].button("保存前の内容に戻す", key="ms_reload", on_click=reload)
