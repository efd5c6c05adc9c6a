"""出動情報: the page a member opens from the call-out's LINE message (?incident=<id>), made for
a phone: the place in full, a link to the map app, a compact map with the nearest usable water.
Opening it records the member's 既読 once per visit, not on every rerun. Without an incident it
lists the brigade's open incidents."""

from __future__ import annotations

import uuid

import streamlit as st

from services.catalog import Function, Level
from services.dispatch import incidents, reads
from services.errors import NotFound, ServiceError
from ui.common import current_actor, plain, show_error
from ui.import_view import require
from ui.turnout_view import show_member_incident

PAGE = "app_pages/turnout.py"
READ = "turnout_read"  # the incidents whose 既読 this visit has recorded

actor = current_actor()
require(actor, Function.DISPATCH, Level.VIEW)
st.title("出動情報")

linked = st.query_params.get("incident")
if not linked:
    try:
        open_rows = incidents.list_incidents(actor, open_only=True)
    except ServiceError as exc:
        show_error(exc)
        st.stop()
    if not open_rows:
        st.info("対応中の出動はありません。")
    for row in open_rows:
        st.page_link(
            PAGE,
            label=f"第{row.number}号　{plain(row.kind) or '種別不明'}　{plain(row.place)}",
            icon=":material/local_fire_department:",
            query_params={"incident": str(row.id)},
            width="stretch",
        )
    st.stop()

try:
    incident_id = uuid.UUID(linked)
except ValueError:
    show_error(NotFound())
    st.stop()
read = st.session_state.setdefault(READ, set())
try:
    # a brigade account that is no member (事務局) reads without leaving a 既読
    if actor.member_id is not None and incident_id not in read:
        reads.mark_read(actor, incident_id)
        read.add(incident_id)
    incident = reads.member_view(actor, incident_id)
except ServiceError as exc:
    show_error(exc)
    st.stop()
show_member_incident(incident)
