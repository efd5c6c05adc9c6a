"""CSV出力・バックアップ: the roster and the water sources as CSV (UTF-8 with a BOM, or Shift_JIS
for older Excel), and the whole brigade as one backup ZIP, optionally protected by a password.

Files are made when a button asks for them, not on every rerun: every export is audited, and a
Shift_JIS export can fail with the cells it cannot hold, which a deferred download could not
show on the page."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from core.timefmt import to_jst, today_jst
from services import backup, member_import, water_import
from services.catalog import MIN_PASSWORD_CHARS, Function, Level, Unencodable
from services.errors import ServiceError
from ui import tables
from ui.common import current_actor, show_error
from ui.import_view import require

ENCODINGS = {
    "utf-8": "UTF-8（BOM付き・推奨）",
    "cp932": "Shift_JIS（CP932・古いExcel向け）",
}
EXPORTS: dict[str, tuple[str, Callable[..., bytes]]] = {
    "members": ("団員名簿", member_import.export_members_csv),
    "water_sources": ("消防水利", water_import.export_water_csv),
}
FILE_LABELS = {backup.ENTITIES[e]: label for e, label in backup.ENTITY_LABELS.items()}

actor = current_actor()
require(actor, Function.CSV_EXPORT, Level.VIEW)
state = st.session_state
st.title("CSV出力・バックアップ")

st.subheader("CSV出力")
encoding = st.radio(
    "文字コード", list(ENCODINGS), format_func=ENCODINGS.get, horizontal=True, key="exp_encoding"
)
for name, (label, export) in EXPORTS.items():
    cols = st.columns([1, 2])
    if cols[0].button(f"{label}のCSVを作成", key=f"exp_make_{name}"):
        state.pop(f"exp_{name}", None)
        try:
            data = export(actor, encoding=encoding)
        except Unencodable as exc:
            st.error(
                f"{label}に Shift_JIS（CP932）で表せない文字が {len(exc.problems):,}箇所あります。"
                "UTF-8 で出力するか、該当する文字を直してください。"
            )
            tables.show(pd.DataFrame(exc.problems, columns=["対象", "列", "文字"]), hide_index=True)
        except ServiceError as exc:
            show_error(exc)
        else:
            suffix = "_sjis" if encoding == "cp932" else ""
            state[f"exp_{name}"] = (f"{name}_{today_jst():%Y%m%d}{suffix}.csv", data)
    if made := state.get(f"exp_{name}"):
        cols[1].download_button(
            f"{made[0]} をダウンロード",
            data=made[1],
            file_name=made[0],
            mime="text/csv",
            icon=":material/download:",
            key=f"exp_download_{name}",
        )

st.divider()
st.subheader("バックアップ")
st.write(
    "団員名簿・役職・権限・消防水利・点検記録・出動メール設定・災害出動の記録をまとめた"
    " ZIP ファイルです。「復元」の画面で、この消防団に戻せます。受信アドレスの秘密部分と"
    "IMAPのパスワードは含まれません。メール受信ログは含まれません（イベントログと同じく記録として残ります）。"
)
st.warning(
    "バックアップには団員の氏名・電話番号・住所などの個人情報が含まれます。"
    "USBメモリなど持ち運べる媒体に保存するときは必ずパスワードを設定し、"
    "媒体の紛失・置き忘れに注意してください。"
)
with st.form("exp_backup_form", clear_on_submit=True):
    password = st.text_input(f"パスワード（任意・{MIN_PASSWORD_CHARS}文字以上）", type="password")
    again = st.text_input("パスワード（確認）", type="password")
    submitted = st.form_submit_button("バックアップを作成", icon=":material/archive:")
if submitted:
    state.pop("exp_backup", None)
    if password != again:
        st.error("パスワードと確認用のパスワードが一致しません。")
    else:
        try:
            state["exp_backup"] = backup.create_backup(actor, password=password or None)
        except ServiceError as exc:
            show_error(exc)
if made := state.get("exp_backup"):
    manifest = made.manifest
    st.success(
        f"{manifest.brigade} のバックアップを作成しました（{to_jst(manifest.created_at)} JST）。"
    )
    tables.show(
        pd.DataFrame(
            [[FILE_LABELS.get(f.name, f.name), f.rows] for f in manifest.files],
            columns=["内容", "件数"],
        ),
        hide_index=True,
    )
    st.download_button(
        f"{made.filename} をダウンロード",
        data=made.data,
        file_name=made.filename,
        mime="application/zip",
        icon=":material/download:",
        key="exp_download_backup",
    )
