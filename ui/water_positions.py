"""The water import's position check on the page: when the preview finds latitude and longitude
exchanged in most rows, one click previews the file again with the two columns swapped (and one
click undoes it). The choice is kept per upload, so another file starts unswapped."""

from __future__ import annotations

import streamlit as st

from services.catalog import ImportPreview

SWAP_KEY = "imp_swap"


def swap_requested(upload_id: str) -> bool:
    return st.session_state.get(SWAP_KEY) == upload_id


def swap_offer(preview: ImportPreview, upload_id: str) -> None:
    if preview.swappable_rows:
        st.warning(f"緯度と経度が逆になっているようです（{preview.swappable_rows:,}行）。")
        if st.button("緯度と経度を入れ替える", key="imp_swap_on"):
            st.session_state[SWAP_KEY] = upload_id
            st.rerun()
    elif swap_requested(upload_id) and st.button("入れ替えをやめる", key="imp_swap_off"):
        st.session_state.pop(SWAP_KEY, None)
        st.rerun()
