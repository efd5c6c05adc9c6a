"""What the import and restore pages share: the page guard, the uploaded file, a preview computed
once per file, the drawing of an import preview (counts, new rows with every field, changes
field by field, normalisations as original → stored, errors, notes), the explicit
choice for records missing from the file, and a progress bar for the services to drive."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

import pandas as pd
import streamlit as st

from core.access import Need, allows
from core.actor import Actor
from services.catalog import (
    ENCODING_LABELS,
    Function,
    ImportPreview,
    Level,
    MissingRows,
    Progress,
    RowPlan,
    RowStatus,
)
from ui import tables
from ui.file_input import file_input

T = TypeVar("T")
CHANGE_COLUMNS = ["行", "番号", "区分", "項目", "変更前", "変更後"]
ERROR_COLUMNS = ["行", "列", "内容"]
NORMALISED_COLUMNS = ["行", "番号", "列", "ファイルの値", "登録される値"]
NEW_ROWS_SHOWN = 500
_INVISIBLE = str.maketrans({"\t": "\\t", "\r": "\\r", "\n": "\\n"})
# What one page run draws of a hostile file's errors (#16): a few boxes, a bounded table.
ERRORS_SHOWN = 10
ERROR_ROWS_SHOWN = 1_000


def require(actor: Actor, function: Function, level: Level) -> None:
    """A page reached without its permission (a direct run) shows nothing but the refusal; the
    services refuse again on every call."""
    if not allows(actor, Need(function, level)):
        st.error("この画面を使う権限がありません。")
        st.stop()


def uploaded_file(
    label: str, types: list[str], key: str, *, max_bytes: int
) -> tuple[bytes, str, str] | None:
    """(data, file name, upload id) of the chosen file (at most max_bytes), or None."""
    upload = file_input(label, types, key=key, max_bytes=max_bytes)
    if upload is None:
        return None
    return upload.getvalue(), upload.name, upload.file_id


def once(key: str, identity: Hashable, compute: Callable[[], T]) -> T:
    """compute() for this identity, kept in this session: reruns reuse it, a new file or a new
    mapping computes afresh (nothing is shared between users)."""
    cached = st.session_state.get(key)
    if cached is None or cached[0] != identity:
        cached = (identity, compute())
        st.session_state[key] = cached
    return cached[1]


def forget(*keys: str) -> None:
    for key in keys:
        st.session_state.pop(key, None)


def show_errors(messages: Sequence[str]) -> None:
    """The first ERRORS_SHOWN messages, each in its box, and how many more there are."""
    for message in messages[:ERRORS_SHOWN]:
        st.error(message)
    if len(messages) > ERRORS_SHOWN:
        st.error(f"ほかに {len(messages) - ERRORS_SHOWN:,}件のエラーがあります。")


def show_preview(preview: ImportPreview) -> None:
    show_errors(preview.file_errors)
    if preview.file_errors:
        return
    where = f"・シート「{preview.sheet}」" if preview.sheet else ""
    header = f"・見出し {preview.header_row}行目" if preview.header_row else ""
    encoding = ENCODING_LABELS.get(preview.encoding, preview.encoding)
    st.caption(f"{preview.filename}（{encoding}{where}{header}）")
    cols = st.columns(len(RowStatus))
    for col, (status, count) in zip(cols, preview.counts.items(), strict=True):
        col.metric(status.label, f"{count:,}件")
    for note in preview.notes:
        st.info(note)
    if warnings := preview.warnings:
        st.markdown(f"**確認 {len(warnings):,}件**（このまま登録できます。内容を確かめてください）")
        tables.show(
            pd.DataFrame([[w.row, w.column, w.message] for w in warnings], columns=ERROR_COLUMNS),
            hide_index=True,
            width="stretch",
        )
    show_new_rows([r for r in preview.rows if r.status == RowStatus.NEW], key=preview.entity)
    if changed := [r for r in preview.rows if r.status == RowStatus.CHANGED]:
        st.markdown(f"**変更になる行 {len(changed):,}件**（項目ごとの変更前と変更後）")
        tables.show(
            pd.DataFrame(
                [line for r in changed for line in change_lines(r)], columns=CHANGE_COLUMNS
            ),
            hide_index=True,
            width="stretch",
        )
    show_normalised(preview.rows)
    if errors := preview.errors:
        st.markdown(f"**エラー {len(errors):,}件**（すべて直してから、もう一度読み込んでください）")
        shown = errors[:ERROR_ROWS_SHOWN]
        tables.show(
            pd.DataFrame([[e.row, e.column, e.message] for e in shown], columns=ERROR_COLUMNS),
            hide_index=True,
            width="stretch",
        )
        if len(errors) > ERROR_ROWS_SHOWN:
            st.caption(f"最初の {ERROR_ROWS_SHOWN:,}件を表示しています。")


def change_lines(plan: RowPlan) -> list[list[object]]:
    """One line per changed field."""
    head = [plan.row, plan.code, plan.status.label]
    return [[*head, c.column, c.before, c.after] for c in plan.changes]


def show_new_rows(rows: Sequence[RowPlan], *, key: str) -> None:
    """Every field of every new row as it will be stored, NEW_ROWS_SHOWN rows a page. The pager
    is keyed by entity and page count: a restore shows several previews on one page, and a
    page number kept from a larger file must not outrun a smaller one."""
    if not rows:
        return
    st.markdown(f"**新規になる行 {len(rows):,}件**（登録される値）")
    pages = -(-len(rows) // NEW_ROWS_SHOWN)
    page = 1
    if pages > 1:
        page = int(
            st.number_input(
                f"ページ（全{pages:,}ページ）", 1, pages, key=f"new_rows_page_{key}_{pages}"
            )
        )
        st.caption(f"{NEW_ROWS_SHOWN:,}件ずつ表示しています。")
    shown = rows[(page - 1) * NEW_ROWS_SHOWN : page * NEW_ROWS_SHOWN]
    tables.show(
        pd.DataFrame([{"行": r.row, **dict(r.fields)} for r in shown]),
        hide_index=True,
        width="stretch",
    )


def show_normalised(rows: Sequence[RowPlan]) -> None:
    """Each cell stored as other text than the file gave, new, changed or unchanged."""
    lines = [
        [r.row, r.code, n.column, visible(n.original), visible(n.stored)]
        for r in rows
        for n in r.normalised
    ]
    if not lines:
        return
    st.markdown(f"**正規化 {len(lines):,}件**（ファイルの値を次のように直して登録します）")
    tables.show(pd.DataFrame(lines, columns=NORMALISED_COLUMNS), hide_index=True, width="stretch")


def visible(text: str) -> str:
    """「text」 with tab, CR and LF written out, so that trimmed whitespace can be seen."""
    return "「" + text.translate(_INVISIBLE) + "」"


def missing_choice(
    preview: ImportPreview, labels: dict[MissingRows, str], key: str
) -> MissingRows | None:
    """What to do with the records the file does not mention: asked every time, nothing
    preselected; None until chosen. With none missing there is nothing to ask."""
    if not preview.missing:
        return MissingRows.KEEP
    shown = "、".join(preview.missing[:10]) + (" ほか" if len(preview.missing) > 10 else "")
    st.warning(f"ファイルにない登録済みのデータが {len(preview.missing):,}件あります: {shown}")
    return st.radio(
        f"ファイルにない {len(preview.missing):,}件の扱い",
        list(labels),
        format_func=labels.get,
        index=None,
        key=key,
    )


def progress_bar(text: str) -> Progress:
    bar = st.progress(0.0, text=text)

    def report(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"{text}（{done:,} / {total:,}件）")

    return report
