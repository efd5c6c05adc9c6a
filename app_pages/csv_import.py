"""CSV一括登録: members or water sources from a file, previewed row by row (nothing written)
before one transaction writes them all. Water sources also come from Excel workbooks, in our
layout, the municipal open-data layout, or any other through a column mapping that can be saved
under a name. Every preview and write is the services' work; this page only asks and shows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from core.actor import Actor
from services import member_import, water_import
from services.catalog import (
    Function,
    ImportPreview,
    ImportResult,
    Level,
    MissingRows,
)
from services.errors import ServiceError
from ui import bulk_change_view as bulk_view
from ui import import_view as view
from ui import water_positions as positions
from ui.column_mapping import MappingStep
from ui.common import current_actor, show_error

LAYOUTS = {"hikeshi": "Hikeshi の形式", "opendata": "自治体標準オープンデータの形式"}


@dataclass(frozen=True)
class Entity:
    label: str
    template: Callable[[Actor], bytes]
    apply: Callable[..., ImportResult]
    missing: dict[MissingRows, str]
    max_bytes: int


ENTITIES = {
    "members": Entity(
        "団員",
        lambda _actor: member_import.member_template(),
        member_import.apply_member_import,
        {MissingRows.KEEP: "そのまま残す", MissingRows.RETIRE: "退団にする"},
        member_import.MAX_FILE_BYTES,
    ),
    "water_sources": Entity(
        "消防水利",
        water_import.water_template,
        water_import.apply_water_import,
        {MissingRows.KEEP: "そのまま残す", MissingRows.RETIRE: "削除（廃止）する"},
        water_import.MAX_FILE_BYTES,
    ),
}

actor = current_actor()
view.require(actor, Function.CSV_IMPORT, Level.EDIT)
state = st.session_state
st.title("CSV一括登録")
if notice := state.pop("imp_notice", None):
    st.success(notice)

name = st.radio(
    "登録するデータ",
    list(ENTITIES),
    format_func=lambda n: ENTITIES[n].label,
    horizontal=True,
    key="imp_entity",
)
entity = ENTITIES[name]
st.download_button(
    f"{entity.label}のテンプレート（CSV）",
    data=entity.template(actor),
    file_name=f"{name}_template.csv",
    mime="text/csv",
    icon=":material/download:",
)
generation = state.setdefault("imp_generation", 0)
upload = view.uploaded_file(
    "ファイルを選択（CSV: UTF-8 または Shift_JIS、Excel: .xlsx）",
    ["csv", "xlsx"],
    f"imp_file_{name}_{generation}",
    max_bytes=entity.max_bytes,
)
if upload is None:
    st.stop()
data, filename, upload_id = upload
step = MappingStep(actor, upload_id)


def water_preview() -> ImportPreview | None:
    found = view.once(
        "imp_inspect",
        upload_id,
        lambda: water_import.inspect_water_file(actor, data=data, filename=filename),
    )
    view.show_errors(found.file_errors)
    if found.file_errors:
        return None
    sheet = step.sheet(found)
    st.caption(f"文字コード: {found.encoding}　形式: {LAYOUTS.get(sheet.layout or '', 'その他')}")
    asked = bool(sheet.layout) and step.manual(sheet)
    mapping = step.choose(found, sheet, asked=asked) if asked or not sheet.layout else None
    if (asked or sheet.layout is None) and mapping is None:
        return None
    swap = positions.swap_requested(upload_id)
    preview = view.once(
        "imp_preview",
        (name, upload_id, sheet.index, mapping, swap),
        lambda: water_import.preview_water_import(
            actor,
            data=data,
            filename=filename,
            mapping=mapping,
            sheet=sheet.index,
            swap_coordinates=swap,
        ),
    )
    if mapping is not None:
        step.save_form(mapping)
    positions.swap_offer(preview, upload_id)
    return preview


try:
    if name == "members":
        preview = view.once(
            "imp_preview",
            (name, upload_id),
            lambda: member_import.preview_member_import(actor, data=data, filename=filename),
        )
    else:
        preview = water_preview()
except ServiceError as exc:
    show_error(exc)
    st.stop()
if preview is None:
    st.stop()

view.show_preview(preview)
choice = view.missing_choice(preview, entity.missing, f"imp_missing_{name}_{generation}")
typed, confirmed = bulk_view.typed_confirmation(
    actor, preview, choice, key=f"imp_confirm_{name}_{generation}"
)
if st.button(
    "この内容で登録する",
    type="primary",
    disabled=not preview.ready or choice is None or not confirmed,
    key="imp_apply",
):
    try:
        result = entity.apply(
            actor,
            preview,
            missing=choice,
            confirm_name=typed,
            progress=view.progress_bar("登録しています"),
        )
    except ServiceError as exc:
        show_error(exc)
    else:
        view.forget("imp_preview", "imp_inspect", "imp_mapping")
        state["imp_generation"] = generation + 1
        retired = f"、{entity.missing[MissingRows.RETIRE]} {result.retired:,}件"
        state["imp_notice"] = (
            f"{entity.label}を登録しました: 新規 {result.created:,}件、変更 {result.updated:,}件、"
            f"変更なし {result.unchanged:,}件{retired if result.retired else ''}"
            f"{f'（うち位置なし {result.unplaced:,}件）' if result.unplaced else ''}。"
            + bulk_view.result_note(result)
        )
        st.rerun()
