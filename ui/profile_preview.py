"""The test area of 出動メール設定: a sample mail (pasted text or an .eml file) read with the
profile as it is being edited, before it is saved. What the profile finds is shown in a table
(plain text: the sample's values never become Markdown), with the decoding and its problems."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.actor import Actor
from core.timefmt import to_jst
from formats.dispatch_profile import FIELD_LABELS, ParsedDispatch
from services.dispatch import sources
from services.dispatch.sources import Preview
from services.errors import ServiceError
from ui import tables
from ui.common import show_error
from ui.file_input import file_input


def _sample() -> bytes | None:
    """The uploaded .eml if there is one, else the pasted text."""
    upload = file_input(
        "見本メールのファイル（.eml）",
        ["eml", "txt"],
        key="ms_sample_file",
        max_bytes=sources.PREVIEW_MAX_BYTES,
    )
    text = st.text_area(
        "または本文を貼り付け",
        key="ms_sample_text",
        height=200,
        help="ヘッダー（From: や Subject:）ごと貼り付けると、件名も使って判定します。",
    )
    if upload is not None:
        return upload.getvalue()
    return text.encode("utf-8") if text.strip() else None


def problem_lines(problems: tuple[str, ...]) -> None:
    """Decoding problems may name a charset label taken from the mail: plain text only."""
    if problems:
        st.warning("復号・解析で次の点がありました。", icon=":material/info:")
        for problem in problems:
            st.text(f"・{problem}")


def try_profile(actor: Actor, profile: dict[str, Any], charset_override: str) -> None:
    sample = _sample()
    if not st.button("この解析ルールで試す", icon=":material/science:"):
        return
    if sample is None:
        st.info("見本メールのファイルを選ぶか、本文を貼り付けてください。")
        return
    try:
        preview = sources.preview_profile(actor, sample, profile, charset_override=charset_override)
    except ServiceError as exc:
        show_error(exc)
        return
    show_preview(preview)


def _place(parsed: ParsedDispatch) -> str:
    if parsed.place_withheld:
        return "（非公開と記載）"
    return parsed.place or ""


def _time(parsed: ParsedDispatch) -> str:
    if parsed.occurred_at is None:
        return parsed.occurred_text or ""
    return f"{parsed.occurred_text} → {to_jst(parsed.occurred_at)}（日本時間）"


def show_preview(preview: Preview) -> None:
    mail, parsed = preview.mail, preview.parsed
    charset = mail.charset_used or "—"
    if mail.charset_declared and mail.charset_declared != mail.charset_used:
        charset = f"{mail.charset_declared}（指定）→ {charset}（使用）"
    rows = [
        ("続報の種類", parsed.followup.label),
        (FIELD_LABELS["kind"], parsed.kind or ""),
        (FIELD_LABELS["place"], _place(parsed)),
        (FIELD_LABELS["landmark"], parsed.landmark or ""),
        (FIELD_LABELS["time"], _time(parsed)),
        ("出動分団", "、".join(parsed.units)),
        ("出動隊（メールでの表記）", "、".join(parsed.unit_words)),
        (FIELD_LABELS["reference"], parsed.reference or ""),
        (FIELD_LABELS["map_url"], parsed.map_url or ""),
        ("不足項目", "、".join(parsed.missing) or "なし"),
        ("正規化した内容", "、".join(parsed.normalised) or "なし"),
        ("件名", mail.subject),
        ("文字コード", charset),
        ("復号", mail.decode_status.label),
    ]
    if parsed.missing:
        st.warning(
            "不足項目があるため、このようなメールは「要確認」として登録されます: "
            + "、".join(parsed.missing),
            icon=":material/warning:",
        )
    else:
        st.success("必要な項目を読み取れました。")
    tables.show(
        pd.DataFrame(rows, columns=["項目", "読み取った値"]), hide_index=True, width="stretch"
    )
    problem_lines(tuple(mail.problems) + tuple(parsed.problems))
    with st.expander("復号した本文"):
        st.code(mail.body or "（本文なし）", language=None)
