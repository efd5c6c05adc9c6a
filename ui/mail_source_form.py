"""The 出動メール設定 form: a mail source's settings and its parser profile (解析ルール).

The fields are plain widgets, not an st.form: the test area below them must read the profile as
it is being edited, before anything is saved. Their values live in session state under the keys
below, filled by `load` from a saved source (or, for a new one, from an example profile)."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import streamlit as st

from formats.dispatch_profile import FIELD_LABELS, FollowUp
from services.catalog import MailTransport
from services.dispatch.sources import SourceInput, SourceView

FIELDS = {
    "name": "ms_name",
    "transport": "ms_transport",
    "senders": "ms_senders",
    "dkim_required": "ms_dkim",
    "charset_override": "ms_charset",
    "followup_window_minutes": "ms_window",
    "raw_retention_days": "ms_retention",
    "active": "ms_active",
}
IMAP_FIELDS = {
    "imap_host": "ms_imap_host",
    "imap_port": "ms_imap_port",
    "imap_ssl": "ms_imap_ssl",
    "imap_username": "ms_imap_user",
    "imap_folder": "ms_imap_folder",
}
PASSWORD = "ms_imap_password"
PROFILE_NAME, DESCRIPTION = "ms_p_name", "ms_p_description"
SECTION_START, SECTION_END, WITHHELD = "ms_p_section_start", "ms_p_section_end", "ms_p_withheld"
VOCABULARY, VOCABULARY_ROUND = "ms_vocab", "ms_vocab_round"
WORD, UNIT = "メールでの表記", "分団"
EXAMPLE = "ms_example"
_WORD_SEPARATORS = re.compile(r"[、,，]")
PATTERN_HELP = (
    "正規表現で書きます。取り出す部分を (?P<value>…) で囲みます。"
    "全角の英数字・空白は半角にそろえてから照合します。空欄の項目は読み取りません。"
)


def pattern_key(field: str) -> str:
    return f"ms_p_{field}"


def words_key(followup: FollowUp) -> str:
    return f"ms_fw_{followup}"


def _words(text: str) -> list[str]:
    return [w.strip() for w in _WORD_SEPARATORS.split(text) if w.strip()]


def _title(profile: dict[str, Any]) -> str:
    """An example's short name: its description up to the first ": "."""
    return (profile.get("description") or "").split(": ", 1)[0] or profile.get("name", "")


def load(source: SourceView | None, default_profile: dict[str, Any]) -> None:
    """Fill the form from a saved source, or with defaults and an example for a new one."""
    state = st.session_state
    values = {
        "name": source.name if source else "",
        "transport": source.transport if source else MailTransport.SMTP,
        "senders": "\n".join(source.senders) if source else "",
        "dkim_required": source.dkim_required if source else False,
        "charset_override": source.charset_override if source else "",
        "followup_window_minutes": source.followup_window_minutes if source else 180,
        "raw_retention_days": source.raw_retention_days if source else 30,
        "active": source.active if source else True,
        "imap_host": source.imap_host if source else "",
        "imap_port": source.imap_port if source else 993,
        "imap_ssl": source.imap_ssl if source else True,
        "imap_username": source.imap_username if source else "",
        "imap_folder": source.imap_folder if source else "INBOX",
    }
    for name, key in {**FIELDS, **IMAP_FIELDS}.items():
        state[key] = values[name]
    state[PASSWORD] = ""
    load_profile(source.profile if source else default_profile)


def load_profile(profile: dict[str, Any]) -> None:
    state = st.session_state
    state[PROFILE_NAME] = profile.get("name") or ""
    state[DESCRIPTION] = profile.get("description") or ""
    patterns = profile.get("patterns") or {}
    for field in FIELD_LABELS:
        state[pattern_key(field)] = patterns.get(field, "")
    words = profile.get("followup_words") or {}
    for followup in FollowUp:
        state[words_key(followup)] = "、".join(words.get(followup.value, []))
    state[SECTION_START] = profile.get("section_start") or ""
    state[SECTION_END] = profile.get("section_end") or ""
    state[WITHHELD] = "、".join(profile.get("withheld_words") or [])
    vocabulary = profile.get("vocabulary") or {}
    state[VOCABULARY] = [{WORD: word, UNIT: unit} for word, unit in vocabulary.items()]
    # The editor keeps its edits against the table it was given: a new table, a new editor.
    state[VOCABULARY_ROUND] = state.get(VOCABULARY_ROUND, 0) + 1


def source_fields(source: SourceView | None) -> None:
    state = st.session_state
    # Hidden widgets lose their values at the end of a run; these survive a switch to SMTP.
    for key in IMAP_FIELDS.values():
        if key in state:
            state[key] = state[key]
    st.text_input("名称", key=FIELDS["name"], placeholder="〇〇市消防本部")
    st.radio(
        "受信方法",
        list(MailTransport),
        format_func=lambda t: MailTransport(t).label,
        horizontal=True,
        key=FIELDS["transport"],
    )
    st.text_area(
        "送信元（1行に1つ。アドレス、または @ドメイン）",
        key=FIELDS["senders"],
        placeholder="shirei@fd.example.lg.jp\n@fd.example.lg.jp",
        help="ここにない送信元からのメールは拒否し、メール受信ログに記録します。",
    )
    cols = st.columns(4)
    cols[0].checkbox("DKIM必須", key=FIELDS["dkim_required"], help="署名を確認できないメールを拒否")
    cols[1].text_input(
        "文字コード指定",
        key=FIELDS["charset_override"],
        help="空欄ならメールの指定に従います。ラベルが誤っている本部だけ指定します（例: cp932）。",
    )
    cols[2].number_input(
        "続報の照合時間（分）", min_value=0, step=10, key=FIELDS["followup_window_minutes"]
    )
    cols[3].number_input("原文の保存日数", min_value=0, step=1, key=FIELDS["raw_retention_days"])
    st.checkbox("有効（受信する）", key=FIELDS["active"])
    if state.get(FIELDS["transport"]) != MailTransport.IMAP:
        return
    cols = st.columns([3, 1, 1])
    cols[0].text_input("IMAPサーバー", key=IMAP_FIELDS["imap_host"])
    cols[1].number_input("ポート", min_value=1, step=1, key=IMAP_FIELDS["imap_port"])
    cols[2].checkbox("SSL/TLS", key=IMAP_FIELDS["imap_ssl"])
    cols = st.columns(3)
    cols[0].text_input("ユーザー名", key=IMAP_FIELDS["imap_username"])
    cols[1].text_input(
        "パスワード",
        type="password",
        key=PASSWORD,
        placeholder="保存済み（変えるときだけ入力）" if source and source.imap_password_set else "",
    )
    cols[2].text_input("フォルダ", key=IMAP_FIELDS["imap_folder"])


def profile_fields(examples: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Draw the profile editor; returns the profile as edited (not yet checked or saved)."""
    state = st.session_state
    cols = st.columns([2, 1])
    example = cols[0].selectbox(
        "例から始める",
        list(examples),
        format_func=lambda name: _title(examples[name]),
        key=EXAMPLE,
        placeholder="選択してください",
    )
    cols[1].button(
        "この例で置き換える",
        on_click=lambda: load_profile(examples[example]),
        help="下の解析ルールを、選んだ例の内容に置き換えます（保存するまで反映されません）。",
    )
    st.caption(examples[example].get("description") or "")
    cols = st.columns([1, 2])
    cols[0].text_input("解析ルールの名前", key=PROFILE_NAME)
    cols[1].text_input("説明", key=DESCRIPTION)
    st.markdown("**項目ごとのパターン**")
    for field, label in FIELD_LABELS.items():
        st.text_input(f"{label}（{field}）", key=pattern_key(field), help=PATTERN_HELP)
    st.markdown("**続報の種類を見分ける語**（「、」区切り。件名、次に本文で探します）")
    for followup in FollowUp:
        st.text_input(followup.label, key=words_key(followup))
    st.markdown("**出動分団の読み替え**（メールでの表記 → この団の分団名）")
    vocabulary = st.data_editor(
        pd.DataFrame(state.get(VOCABULARY, []), columns=[WORD, UNIT], dtype="string"),
        num_rows="dynamic",
        hide_index=True,
        key=f"{VOCABULARY}_{state.get(VOCABULARY_ROUND, 0)}",
    )
    cols = st.columns(3)
    cols[0].text_input("解析範囲の開始の目印", key=SECTION_START, help="空欄: 本文の先頭から")
    cols[1].text_input("解析範囲の終わりの目印", key=SECTION_END, help="空欄: 本文の最後まで")
    cols[2].text_input("場所を非公開とする語（「、」区切り）", key=WITHHELD)
    return {
        "name": state[PROFILE_NAME],
        "description": state[DESCRIPTION],
        "patterns": {f: state[pattern_key(f)] for f in FIELD_LABELS if state[pattern_key(f)]},
        "followup_words": {
            f.value: _words(state[words_key(f)]) for f in FollowUp if _words(state[words_key(f)])
        },
        "vocabulary": {
            str(row[WORD]).strip(): "" if pd.isna(row[UNIT]) else str(row[UNIT]).strip()
            for _, row in vocabulary.iterrows()
            if not pd.isna(row[WORD]) and str(row[WORD]).strip()
        },
        "section_start": state[SECTION_START] or None,
        "section_end": state[SECTION_END] or None,
        "withheld_words": _words(state[WITHHELD]),
    }


def entered_source(profile: dict[str, Any]) -> SourceInput:
    state = st.session_state
    values = {name: state.get(key) for name, key in {**FIELDS, **IMAP_FIELDS}.items()}
    imap = state.get(FIELDS["transport"]) == MailTransport.IMAP
    return SourceInput(
        name=values["name"] or "",
        transport=MailTransport(values["transport"] or MailTransport.SMTP),
        senders=tuple(line.strip() for line in (values["senders"] or "").splitlines()),
        dkim_required=bool(values["dkim_required"]),
        charset_override=values["charset_override"] or "",
        profile=profile,
        followup_window_minutes=int(values["followup_window_minutes"] or 0),
        raw_retention_days=int(values["raw_retention_days"] or 0),
        imap_host=(values["imap_host"] or "") if imap else "",
        imap_port=int(values["imap_port"] or 993),
        imap_ssl=bool(values["imap_ssl"]) if imap else True,
        imap_username=(values["imap_username"] or "") if imap else "",
        imap_password=(state.get(PASSWORD) or "") if imap else "",
        imap_folder=(values["imap_folder"] or "INBOX") if imap else "INBOX",
        active=bool(values["active"]),
    )
