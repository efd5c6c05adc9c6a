"""復元: a backup ZIP made on CSV出力・バックアップ, verified and previewed file by file, then
restored in one transaction that replaces the brigade's roles, permissions, roster, water sources,
inspections, dispatch mail sources and incidents (the メール受信ログ is not restored). The restore
is asked for twice: the brigade's name typed, and, for another brigade's backup, an explicit
checkbox."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from services import backup, bulk_guard
from services.catalog import Function, Level
from services.errors import ServiceError
from ui import bulk_change_view as bulk_view
from ui import import_view as view
from ui import tables
from ui.common import current_actor, show_error

# everything else absent is deleted
MISSING_EFFECTS = {
    backup.MEMBERS: "退団にします",
    backup.MAIL_SOURCES: "無効にします（メール受信ログが参照するため削除しません）",
}
RESULT_COLUMNS = ["内容", "新規", "変更", "変更なし", "削除・退団"]

actor = current_actor()
view.require(actor, Function.RESTORE, Level.EDIT)
state = st.session_state
st.title("復元")
if notice := state.pop("rst_notice", None):
    st.success(notice[0])
    tables.show(pd.DataFrame(notice[1], columns=RESULT_COLUMNS), hide_index=True)
bulk_view.undo_section(actor)
st.subheader("バックアップファイルから復元")
st.warning(
    "復元すると、この消防団の役職・権限の設定・団員名簿・消防水利・点検記録・出動メール設定・"
    "災害出動の事案がバックアップの内容に置き換わります。バックアップにない団員は退団に、"
    "出動メールの送信元は無効になり、消防水利・役職・点検記録・事案は削除されます。"
)
generation = state.setdefault("rst_generation", 0)
upload = view.uploaded_file(
    "バックアップファイル（.zip）",
    ["zip"],
    f"rst_file_{generation}",
    max_bytes=backup.MAX_BACKUP_BYTES,
)
password = st.text_input(
    "パスワード（作成時に設定した場合）", type="password", key=f"rst_password_{generation}"
)
if upload is None:
    st.stop()
data, _, upload_id = upload
try:
    preview = view.once(
        "rst_preview",
        (upload_id, password),
        lambda: backup.inspect_backup(actor, data=data, password=password or None),
    )
except ServiceError as exc:
    show_error(exc)
    st.stop()
view.show_errors(preview.errors)
if preview.manifest is None:
    st.stop()

st.subheader("バックアップの内容")
cols = st.columns(3)
cols[0].metric("消防団", preview.brigade)
cols[1].metric("作成日時（JST）", preview.created_at_jst)
cols[2].metric("パスワード", "あり" if preview.encrypted else "なし")
st.caption("検証済み: すべてのファイルが管理情報（SHA-256・行数）と一致しました。")
tables.show(
    pd.DataFrame(
        [
            [label, preview.manifest.rows[backup.ENTITIES[name]]]
            for name, label in backup.ENTITY_LABELS.items()
            if backup.ENTITIES[name] in preview.manifest.rows
        ],
        columns=["内容", "件数"],
    ),
    hide_index=True,
)
for note in preview.notes:
    st.info(note)
allow_other = False
if preview.other_brigade:
    allow_other = st.checkbox(
        f"別の消防団（{preview.brigade}）のバックアップであることを確認し、"
        f"この消防団（{actor.tenant_name}）へ復元します",
        key=f"rst_other_{generation}",
    )

st.subheader("復元で変わる内容")
for tab, (name, plan) in zip(
    st.tabs([backup.ENTITY_LABELS[n] for n in preview.plans]), preview.plans.items(), strict=True
):
    with tab:
        view.show_preview(plan)
        if plan.missing:
            effect = MISSING_EFFECTS.get(name, "削除します")
            st.warning(f"バックアップにない {len(plan.missing):,}件は{effect}。")

typed = st.text_input(
    f"確認のため、この消防団の名前「{actor.tenant_name}」を入力してください",
    key=f"rst_confirm_{generation}",
)
ready = preview.ready and bulk_guard.name_matches(typed, actor.tenant_name)
if st.button(
    "復元を実行",
    type="primary",
    disabled=not ready or (preview.other_brigade and not allow_other),
    key="rst_apply",
):
    try:
        result = backup.restore_backup(
            actor,
            preview,
            allow_other_brigade=allow_other,
            confirm_name=typed,
            progress=view.progress_bar("復元しています"),
        )
    except ServiceError as exc:
        show_error(exc)
    else:
        view.forget("rst_preview")
        state["rst_generation"] = generation + 1
        state["rst_notice"] = (
            f"{preview.brigade}（{preview.created_at_jst} 作成）のバックアップから復元しました。",
            [
                [
                    backup.ENTITY_LABELS[name],
                    c["created"],
                    c["updated"],
                    c["unchanged"],
                    c["retired"],
                ]
                for name, c in result.counts().items()
            ],
        )
        st.rerun()
