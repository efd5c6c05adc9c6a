"""Safe bulk changes on the pages (#17): the typed brigade name under an import that would retire
or delete more than the threshold (CSV一括登録), and the list of automatic pre-change backups
with 「元に戻す」 (復元). The services enforce both; these only ask and show."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.actor import Actor
from services import backup, bulk_guard, pre_change
from services.catalog import ImportPreview, ImportResult, MissingRows
from ui import tables
from ui.confirm import Confirmation, confirm_button

WHAT = {"member": "退団", "water_sources": "削除（廃止）"}
NAME_LABEL = "確認のため消防団名を入力してください"
UNDO_NOTICE = "rst_notice"
BACKUP_SAID = (
    "登録の前に、この消防団のデータを自動でバックアップします（{days}日間保存）。"
    "「復元」の画面の「元に戻す」で、登録前の状態に戻せます。"
)


def typed_confirmation(
    actor: Actor, preview: ImportPreview, choice: MissingRows | None, *, key: str
) -> tuple[str | None, bool]:
    """Under an import preview: say what the choice retires or deletes, that a backup comes
    first, and, above the threshold, ask for the brigade's name. (the typed name or None,
    whether the import may be started)."""
    count = preview.retiring(choice)
    if not count:
        return None, True
    st.info(BACKUP_SAID.format(days=pre_change.RETENTION_DAYS))
    if not preview.needs_name(choice):
        return None, True
    what = WHAT.get(preview.entity, "退団・削除")
    st.warning(
        f"この登録で{what} {count:,}件になります（現在 {preview.current:,}件）。"
        f"{preview.limits.text}を超える変更には、消防団名の入力が必要です（団設定）。"
    )
    typed = st.text_input(NAME_LABEL, key=key, placeholder=actor.tenant_name)
    matches = bulk_guard.name_matches(typed, actor.tenant_name)
    if typed and not matches:
        st.caption("入力された名前が消防団名と一致しません。")
    return typed, matches


def undo_section(actor: Actor) -> None:
    """The brigade's pre-change backups, newest first, each with 「元に戻す」 behind a
    confirmation dialog; the restore itself is the service's (pre_change.undo)."""
    st.subheader("変更前の自動バックアップ（元に戻す）")
    st.caption(
        f"退団・利用停止・削除を伴う一括登録や復元の前に自動で取ったバックアップです。"
        f"{pre_change.RETENTION_DAYS}日間（最大{pre_change.KEEP}件）保存されます。"
    )
    entries = pre_change.list_backups(actor)
    if not entries:
        st.caption("自動バックアップはありません。")
        return
    tables.show(
        pd.DataFrame(
            [
                [
                    e.created_at_jst,
                    e.reason,
                    e.actor_label,
                    f"{e.bytes / 1024:,.0f} KB",
                    e.expires_at_jst,
                ]
                for e in entries
            ],
            columns=["日時（JST）", "内容", "実行した人", "サイズ", "保存期限"],
        ),
        hide_index=True,
    )
    for entry in entries:
        cols = st.columns([4, 1])
        cols[0].markdown(f"**{entry.created_at_jst}** {entry.reason}（{entry.actor_label}）")
        confirm_button(
            cols[1],
            "元に戻す",
            Confirmation(
                message=f"{entry.created_at_jst} の変更（{entry.reason}）の前の状態に戻します。",
                details=(
                    "その後に登録・変更した内容は、このバックアップの内容に置き換わります。",
                    "戻す前の状態も、退団・削除があれば自動でバックアップされます。",
                ),
                action=lambda entry=entry: pre_change.undo(actor, entry.id),
                notice=lambda result, entry=entry: (
                    f"{entry.created_at_jst} の変更前の状態に戻しました（{entry.reason}）。",
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
                ),
                notice_key=UNDO_NOTICE,
            ),
            key=f"undo_{entry.id}",
        )


def result_note(result: ImportResult) -> str:
    """What the import's notice adds: the backup taken first, the actor left in place."""
    note = ""
    if result.backup_id is not None:
        note += (
            "変更前の状態を自動でバックアップしました（「復元」の画面の「元に戻す」で戻せます）。"
        )
    if result.kept_self:
        note += f"あなた自身（団員番号 {result.kept_self}）は退団にしていません。"
    return note
