"""The member template's example row imports as it is into a new brigade (#17: its 役職
「機関員」 did not exist there, so the template's own row failed)."""

from __future__ import annotations

import pytest

from services import member_import as mi
from services.imports import RowStatus
from tests.factories import admin, make_tenant

pytestmark = pytest.mark.usefixtures("engine")


def test_the_template_example_is_valid_in_a_new_brigade():
    preview = mi.preview_member_import(
        admin(make_tenant()), data=mi.member_template(), filename="template.csv"
    )
    assert preview.file_errors == []
    assert [row.status for row in preview.rows] == [RowStatus.NEW]
