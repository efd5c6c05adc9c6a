"""The column-mapping step of CSV一括登録 for water-source files in a layout we do not know:
choose the sheet and the header row, say which column is which field, re-spell the kinds, and
save the mapping under a name for the next file."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from core.actor import Actor
from formats import sheet_layout
from services import import_mappings
from services.catalog import HEADER_SCAN_ROWS, WATER_SOURCE_KINDS, ColumnMapping
from services.errors import ServiceError
from services.water_import import SheetInfo, WaterFile
from ui import tables
from ui.common import show_error

UNUSED = ""


def kind_spellings(text: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in text.splitlines() if line.strip())
    return {their.strip(): ours.strip() for their, _, ours in pairs}


@dataclass(frozen=True)
class MappingStep:
    """The step for one upload: its widget keys start afresh with another file."""

    actor: Actor
    upload_id: str

    def key(self, *parts: object) -> str:
        """Widget keys of the mapping step, per upload: another file starts from a clean form."""
        return "_".join(["imp", self.upload_id, *map(str, parts)])

    def use_saved(self, found: WaterFile, mapping: ColumnMapping) -> None:
        """Fill the mapping form from a saved mapping (a callback: before the widgets exist)."""
        sheet = next(
            (s for s in found.sheets if mapping.sheet in (s.name, s.index)), found.sheets[0]
        )
        st.session_state[self.key("sheet")] = sheet.index
        header_row = mapping.header_row or sheet.header_row or 1
        st.session_state[self.key("header", sheet.index)] = header_row
        for index, cell in enumerate(sheet.header_at(header_row)):
            target = mapping.columns.get(cell, UNUSED)
            st.session_state[self.key("col", sheet.index, header_row, index)] = (
                target if target in found.targets else UNUSED
            )
        st.session_state[self.key("kinds", sheet.index)] = "\n".join(
            f"{k}={v}" for k, v in mapping.kinds.items()
        )

    def saved(self, found: WaterFile) -> None:
        saved = {m.name: m for m in import_mappings.list_mappings(self.actor)}
        if not saved:
            return
        cols = st.columns([3, 1, 1], vertical_alignment="bottom")
        pick = cols[0].selectbox(
            "保存した対応付け",
            list(saved),
            index=None,
            key=self.key("saved"),
            placeholder="選択してください",
        )
        chosen = saved.get(pick) if pick else None
        cols[1].button(
            "読み込む",
            disabled=chosen is None,
            on_click=self.use_saved,
            args=(found, chosen.mapping) if chosen else (),
            key=self.key("use_saved"),
        )
        if cols[2].button("削除", disabled=chosen is None, key=self.key("delete_saved")) and chosen:
            try:
                import_mappings.delete_mapping(self.actor, chosen.id)
            except ServiceError as exc:
                show_error(exc)
            else:
                st.rerun()

    def form(self, found: WaterFile, sheet: SheetInfo) -> ColumnMapping | None:
        targets = {UNUSED: "使わない", **found.targets}
        st.session_state.setdefault(self.key("header", sheet.index), sheet.header_row or 1)
        header_row = int(
            st.number_input(
                "見出しの行（何行目か）",
                min_value=1,
                max_value=max(1, min(HEADER_SCAN_ROWS, len(sheet.top))),
                key=self.key("header", sheet.index),
            )
        )
        header = sheet.header_at(header_row)
        sample = sheet.sample_below(header_row)
        width = len(header)
        st.caption(
            f"見出し行: {header_row}行目　その下の先頭{len(sample)}行（全{sheet.data_rows:,}行）"
        )
        suggested = sheet_layout.suggested_targets(header)
        if suggested:
            st.caption(
                f"見出しから分かった {len(suggested)} 列は選んであります。確かめてください。"
            )
        tables.show(
            pd.DataFrame(
                [(row + [""] * width)[:width] for row in sample],
                columns=[f"{i + 1}. {cell}" for i, cell in enumerate(header)],
            ),
            hide_index=True,
        )
        for index in range(width):
            # A default, never an override: a saved mapping or the administrator's own choice
            # is kept; another header row starts from what that row names.
            st.session_state.setdefault(
                self.key("col", sheet.index, header_row, index), suggested.get(index, UNUSED)
            )
        with st.form(self.key("form", sheet.index)):
            cols = st.columns(3)
            columns = {
                cell: cols[index % 3].selectbox(
                    f"「{cell}」の列",
                    list(targets),
                    format_func=targets.get,
                    key=self.key("col", sheet.index, header_row, index),
                    placeholder="選択してください",
                )
                for index, cell in enumerate(header)
                if cell
            }
            kinds = st.text_area(
                "種別の読み替え（1行に「ファイルの表記=種別」）",
                placeholder="消火栓（地下）=消火栓\n貯水そう=防火水槽",
                help="種別は " + "、".join(WATER_SOURCE_KINDS) + " のいずれかです。",
                key=self.key("kinds", sheet.index),
            )
            if not st.form_submit_button("この対応付けで読み込む", type="primary"):
                return None
        return ColumnMapping(
            columns={cell: key for cell, key in columns.items() if key != UNUSED},
            sheet=sheet.name or sheet.index,
            header_row=header_row,
            kinds=kind_spellings(kinds),
        )

    def sheet(self, found: WaterFile) -> SheetInfo:
        """The sheet to read: chosen when the workbook has several, starting on the one that
        looks like data (never a legend); choosing another detects its layout afresh."""
        if len(found.sheets) < 2:
            return found.sheets[0]
        shapes = [(s.name, s.header, s.data_rows) for s in found.sheets]
        st.session_state.setdefault(self.key("sheet"), sheet_layout.data_sheet(shapes))
        index = st.selectbox(
            "シート",
            [s.index for s in found.sheets],
            format_func=lambda i: found.sheets[i].name,
            key=self.key("sheet"),
            placeholder="選択してください",
        )
        return found.sheets[index]

    def manual(self, sheet: SheetInfo) -> bool:
        """For a sheet in a layout we know: whether the administrator asks to choose the header
        row and the columns themselves (the detected ones start selected)."""
        return st.toggle(
            "見出しの行と列の対応を自分で指定する",
            key=self.key("manual", sheet.index),
            help=f"見出しは {sheet.header_row}行目と判定しました。違う場合に指定してください。",
        )

    def choose(
        self, found: WaterFile, sheet: SheetInfo, *, asked: bool = False
    ) -> ColumnMapping | None:
        """The mapping step for a sheet in a layout we do not know (or know only in part), or
        one the administrator `asked` for; None until one is submitted."""
        st.info(
            "見出しの行と、ファイルの列をどの項目として読むかを指定してください。"
            if asked
            else "見出しが Hikeshi の形式どおりではないため、そのままでは読み込みません。"
            "ファイルの列を、どの項目として読むか確かめてください。"
        )
        self.saved(found)
        if (submitted := self.form(found, sheet)) is not None:
            st.session_state["imp_mapping"] = (self.upload_id, submitted)
        chosen = st.session_state.get("imp_mapping")
        return chosen[1] if chosen and chosen[0] == self.upload_id else None

    def save_form(self, mapping: ColumnMapping) -> None:
        with st.expander("この対応付けを保存する", icon=":material/save:"):
            label = st.text_input("名前（同じ名前なら上書きします）", key=self.key("mapping_name"))
            if st.button("保存", key=self.key("save_mapping")):
                try:
                    import_mappings.save_mapping(self.actor, name=label, mapping=mapping)
                except ServiceError as exc:
                    show_error(exc)
                else:
                    st.success(f"対応付け「{label.strip()}」を保存しました。")
