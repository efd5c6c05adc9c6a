"""出動中の事案 (#22): the board a leader keeps open on a tablet at the station — every open
incident with the answers per 分団 against the crew minimum, who is coming and when, and who has
not answered. It refreshes itself (ui.board_view); names of members are shown to 編集 only."""

from __future__ import annotations

import streamlit as st

from services.catalog import Function, Level
from ui.board_view import live_board
from ui.common import current_actor
from ui.import_view import require

actor = current_actor()
require(actor, Function.DISPATCH, Level.VIEW)
st.title("出動中の事案")
st.caption("時刻は日本時間。到着見込みは回答時刻に団員が答えた所要時間を足したものです。")
live_board(actor)
