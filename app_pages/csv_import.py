"""CSV一括登録: members or water sources from a file, previewed row by row (nothing written)
before one transaction writes them all. Water sources also come from Excel workbooks, in our
layout, the municipal open-data layout, or any other through a column mapping that can be saved
under a name. Every preview and write is the services' work; this page only asks and shows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from services import import_mappings, member_import, water_import
from services.catalog import (
    HEADER_SCAN_ROWS,
    WATER_SOURCE_KINDS,
    ColumnMapping,
    Function,
    ImportPreview,
    ImportResult,
    Level,
    MissingRows,
)
from services.errors import ServiceError
from services.water_import import SheetInfo, WaterFile
from ui import import_view as view
from ui.common import current_actor, show_error

UNUSED = ""
LAYOUTS = {"hikeshi": "Hikeshi の形式", "opendata": "自治体標準オープンデータの形式"}


@dataclass(frozen=True)
class Entity:
    label: str
    template: Callable[[], bytes]
    apply: Callable[..., ImportResult]
    missing: dict[MissingRows, str]


ENTITIES = {
    "members": Entity(
        "団員",
        member_import.member_template,
        member_import.apply_member_import,
        {MissingRows.KEEP: "そのまま残す", MissingRows.RETIRE: "退団にする"},
    ),
    "water_sources": Entity(
        "消防水利",
        water_import.water_template,
        water_import.apply_water_import,
        {MissingRows.KEEP: "そのまま残す", MissingRows.RETIRE: "削除（廃止）する"},
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
    data=entity.template(),
    file_name=f"{name}_template.csv",
    mime="text/csv",
    icon=":material/download:",
)
generation = state.setdefault("imp_generation", 0)
upload = view.uploaded_file(
    "ファイルを選択（CSV: UTF-8 または Shift_JIS、Excel: .xlsx）",
    ["csv", "xlsx"],
    f"imp_file_{name}_{generation}",
)
if upload is None:
    st.stop()
data, filename, upload_id = upload


def key(*parts: object) -> str:
    """Widget keys of the mapping step, per upload: another file starts from a clean form."""
    return "_".join(["imp", upload_id, *map(str, parts)])


def use_saved(found: WaterFile, mapping: ColumnMapping) -> None:
    """Fill the mapping form from a saved mapping (a callback: before the widgets exist)."""
    sheet = next((s for s in found.sheets if mapping.sheet in (s.name, s.index)), found.sheets[0])
    state[key("sheet")] = sheet.index
    header_row = mapping.header_row or sheet.header_row or 1
    state[key("header", sheet.index)] = header_row
    for index, cell in enumerate(sheet.header_at(header_row)):
        target = mapping.columns.get(cell, UNUSED)
        state[key("col", sheet.index, header_row, index)] = (
            target if target in found.targets else UNUSED
        )
    state[key("kinds", sheet.index)] = "\n".join(f"{k}={v}" for k, v in mapping.kinds.items())


def kind_spellings(text: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in text.splitlines() if line.strip())
    return {their.strip(): ours.strip() for their, _, ours in pairs}


def saved_mappings(found: WaterFile) -> None:
    saved = {m.name: m for m in import_mappings.list_mappings(actor)}
    if not saved:
        return
    cols = st.columns([3, 1, 1], vertical_alignment="bottom")
    pick = cols[0].selectbox("保存した対応付け", list(saved), index=None, key=key("saved"))
    chosen = saved.get(pick) if pick else None
    cols[1].button(
        "読み込む",
        disabled=chosen is None,
        on_click=use_saved,
        args=(found, chosen.mapping) if chosen else (),
        key=key("use_saved"),
    )
    if cols[2].button("削除", disabled=chosen is None, key=key("delete_saved")) and chosen:
        try:
            import_mappings.delete_mapping(actor, chosen.id)
        except ServiceError as exc:
            show_error(exc)
        else:
            st.rerun()


def mapping_form(found: WaterFile, sheet: SheetInfo) -> ColumnMapping | None:
    targets = {UNUSED: "使わない", **found.targets}
    state.setdefault(key("header", sheet.index), sheet.header_row or 1)
    header_row = int(
        st.number_input(
            "見出しの行（何行目か）",
            min_value=1,
            max_value=max(1, min(HEADER_SCAN_ROWS, len(sheet.top))),
            key=key("header", sheet.index),
        )
    )
    header = sheet.header_at(header_row)
    sample = sheet.sample_below(header_row)
    width = len(header)
    st.caption(f"見出しの下の先頭{len(sample)}行（全{sheet.data_rows:,}行）")
    st.dataframe(
        pd.DataFrame(
            [(row + [""] * width)[:width] for row in sample],
            columns=[f"{i + 1}. {cell}" for i, cell in enumerate(header)],
        ),
        hide_index=True,
    )
    with st.form(key("form", sheet.index)):
        cols = st.columns(3)
        columns = {
            cell: cols[index % 3].selectbox(
                f"「{cell}」の列",
                list(targets),
                format_func=targets.get,
                key=key("col", sheet.index, header_row, index),
            )
            for index, cell in enumerate(header)
            if cell
        }
        kinds = st.text_area(
            "種別の読み替え（1行に「ファイルの表記=種別」）",
            placeholder="消火栓（地下）=消火栓\n貯水そう=防火水槽",
            help="種別は " + "、".join(WATER_SOURCE_KINDS) + " のいずれかです。",
            key=key("kinds", sheet.index),
        )
        if not st.form_submit_button("この対応付けで読み込む", type="primary"):
            return None
    return ColumnMapping(
        columns={cell: key for cell, key in columns.items() if key != UNUSED},
        sheet=sheet.name or sheet.index,
        header_row=header_row,
        kinds=kind_spellings(kinds),
    )


def choose_mapping(found: WaterFile) -> ColumnMapping | None:
    """The mapping step for a file in a layout we do not know; None until one is submitted."""
    st.info("この形式は自動では読めません。ファイルの列を、どの項目として読むか選んでください。")
    saved_mappings(found)
    index = 0
    if len(found.sheets) > 1:
        index = st.selectbox(
            "シート",
            [s.index for s in found.sheets],
            format_func=lambda i: found.sheets[i].name,
            key=key("sheet"),
        )
    if (submitted := mapping_form(found, found.sheets[index])) is not None:
        state["imp_mapping"] = (upload_id, submitted)
    chosen = state.get("imp_mapping")
    return chosen[1] if chosen and chosen[0] == upload_id else None


def save_mapping_form(mapping: ColumnMapping) -> None:
    with st.expander("この対応付けを保存する", icon=":material/save:"):
        label = st.text_input("名前（同じ名前なら上書きします）", key=key("mapping_name"))
        if st.button("保存", key=key("save_mapping")):
            try:
                import_mappings.save_mapping(actor, name=label, mapping=mapping)
            except ServiceError as exc:
                show_error(exc)
            else:
                st.success(f"対応付け「{label.strip()}」を保存しました。")


def water_preview() -> ImportPreview | None:
    found = view.once(
        "imp_inspect",
        upload_id,
        lambda: water_import.inspect_water_file(actor, data=data, filename=filename),
    )
    for message in found.file_errors:
        st.error(message)
    if found.file_errors:
        return None
    st.caption(f"文字コード: {found.encoding}　形式: {LAYOUTS.get(found.layout or '', 'その他')}")
    mapping = None if found.layout else choose_mapping(found)
    if found.layout is None and mapping is None:
        return None
    preview = view.once(
        "imp_preview",
        (name, upload_id, mapping),
        lambda: water_import.preview_water_import(
            actor, data=data, filename=filename, mapping=mapping
        ),
    )
    if mapping is not None:
        save_mapping_form(mapping)
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
if st.button(
    "この内容で登録する",
    type="primary",
    disabled=not preview.ready or choice is None,
    key="imp_apply",
):
    try:
        result = entity.apply(
            actor, preview, missing=choice, progress=view.progress_bar("登録しています")
        )
    except ServiceError as exc:
        show_error(exc)
    else:
        view.forget("imp_preview", "imp_inspect", "imp_mapping")
        state["imp_generation"] = generation + 1
        retired = f"、{entity.missing[MissingRows.RETIRE]} {result.retired:,}件"
        state["imp_notice"] = (
            f"{entity.label}を登録しました: 新規 {result.created:,}件、変更 {result.updated:,}件、"
            f"変更なし {result.unchanged:,}件{retired if result.retired else ''}。"
        )
        st.rerun()
