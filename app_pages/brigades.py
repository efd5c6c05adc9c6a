"""消防団管理 (platform operator): the brigades, creating one with its first administrator, and
cancelling a contract (its data is then deleted within 10 business days)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.timefmt import to_jst, today_jst
from services import recovery, registrations, tenant_lifecycle, tenants
from services.errors import ServiceError
from services.signin import line
from ui import tables
from ui.common import current_actor, show_error
from ui.registration_batch_view import local_only

STATUS_LABELS = {"active": "利用中", "cancelled": "解約（削除待ち）", "deleted": "解約・削除済み"}

FORMS_KEY = "brigades_forms"


def next_forms() -> None:
    """After a success: the page's forms start empty on the next run."""
    st.session_state[FORMS_KEY] = st.session_state.get(FORMS_KEY, 0) + 1
    st.rerun()


actor = current_actor()
st.title("消防団管理")
st.caption("運営者は団の一覧と新規作成のみを行います。団の内部データは表示されません。")

if notice := st.session_state.pop("brigades_notice", None):
    st.success(notice)

brigades = tenants.list_brigades(actor)
tables.show(
    pd.DataFrame(
        [
            {
                "消防団": b.name,
                "市町村": b.municipality,
                "状態": STATUS_LABELS.get(b.status, b.status),
                "作成日時 (JST)": to_jst(b.created_at),
                "解約日": b.cancelled_on,
                "データ削除期限": b.deletion_due,
            }
            for b in brigades
        ],
        columns=["消防団", "市町村", "状態", "作成日時 (JST)", "解約日", "データ削除期限"],
    ),
    hide_index=True,
    width="stretch",
)

# One LINE Login channel serves every brigade of this installation (config.Settings).
st.subheader("LINEログイン（すべての団で共通）")
if line.is_configured():
    st.info(
        "LINEログイン: 設定済み。各団は団員の登録コードを発行できます。"
        f"LINE Developers のコールバックURL: {line.callback_url()}"
    )
else:
    st.warning(
        "LINEログイン: 未設定。団員はLINEでログインできず、どの団も登録コードを発行できません。"
        "HIKESHI_LINE_CHANNEL_ID と HIKESHI_LINE_CHANNEL_SECRET を設定してください。"
    )
st.caption(f"公開URL（登録用紙のQRコードの接続先）: {registrations.public_base_url()}")
if local_only(registrations.public_base_url()):
    st.warning(
        "公開URLがこのパソコン自身を指しているため、登録用紙のQRコードは団員のスマートフォンから"
        "開けません。HIKESHI_PUBLIC_BASE_URL に団員が開けるURLを設定してください。"
    )

st.subheader("消防団を作成")
# A form starts empty again only after it succeeded (#18: the initial password stayed in it);
# a refused one keeps what was typed, to be corrected.
generation = st.session_state.get(FORMS_KEY, 0)
with st.form(f"brigade_create_{generation}"):
    c = st.columns(2)
    name = c[0].text_input("消防団名 *")
    municipality = c[1].text_input("市町村")
    st.markdown("**最初の管理者（階級: 団長）**")
    c = st.columns(2)
    admin_code = c[0].text_input("団員番号 *")
    admin_name = c[1].text_input("氏名 *")
    c = st.columns(2)
    admin_login = c[0].text_input("ログイン名 *")
    admin_password = c[1].text_input("初期パスワード（12文字以上） *", type="password")
    submitted = st.form_submit_button("作成")

if submitted:
    try:
        tenants.create_brigade(
            actor,
            name=name,
            municipality=municipality,
            admin_code=admin_code,
            admin_name=admin_name,
            admin_login=admin_login,
            admin_password=admin_password,
        )
    except ServiceError as exc:
        show_error(exc)
    else:
        st.session_state["brigades_notice"] = f"「{name}」を作成しました。"
        next_forms()

st.subheader("解約")
st.caption(
    "解約日以降はログインできなくなり、団のデータは解約日から10稼働日以内に削除されます"
    "（`python cli.py purge-cancelled` を毎日実行）。イベントログは1年間保管されます。"
)
active = {b.name: b.id for b in brigades if b.status == "active"}
with st.form(f"brigade_cancel_{generation}"):
    chosen = st.selectbox("消防団", list(active), index=None, placeholder="選択してください")
    cancelled_on = st.date_input("解約日", value=today_jst(), format="YYYY/MM/DD")
    confirmed = st.checkbox("解約すると元に戻せないことを確認しました")
    cancel = st.form_submit_button("解約する", type="primary")

if cancel:
    if chosen is None or not confirmed:
        st.error("消防団を選び、確認のチェックを入れてください。")
    else:
        try:
            due = tenant_lifecycle.cancel_brigade(actor, active[chosen], cancelled_on=cancelled_on)
        except ServiceError as exc:
            show_error(exc)
        else:
            st.session_state["brigades_notice"] = (
                f"「{chosen}」を解約しました。データ削除期限: {due:%Y-%m-%d}"
            )
            next_forms()

st.subheader("アクセスの復旧")
st.caption(
    "団の管理者が全員ログインできなくなったときに使います。指定した団員の利用停止・退団を"
    "解除し、必要なら役職「権限管理（復旧）」（役職・権限 管理）を付与します。"
    "操作は運営者の操作として団と運営者の両方のイベントログに記録されます。"
)
with st.form(f"brigade_recover_{generation}"):
    target = st.selectbox("消防団", list(active), index=None, placeholder="選択してください")
    member_code = st.text_input("団員番号")
    give_admin = st.checkbox("役職・権限の管理権限を付与する")
    recover = st.form_submit_button("復旧する")

if recover:
    if target is None or not member_code.strip():
        st.error("消防団を選び、団員番号を入力してください。")
    else:
        try:
            done = recovery.recover_member(
                actor, tenant_id=active[target], member_code=member_code, give_admin=give_admin
            )
        except ServiceError as exc:
            show_error(exc)
        else:
            st.session_state["brigades_notice"] = (
                f"「{done.brigade}」の団員 {done.member_code}: {'、'.join(done.done)}しました。"
            )
            next_forms()
