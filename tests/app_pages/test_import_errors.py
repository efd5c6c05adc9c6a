"""A hostile file's errors take a bounded part of the page (#16): a handful of boxes and a count,
never one box per column."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.app_pages.conftest import sign_in
from tests.app_pages.test_csv_import import apply_button, open_import, upload
from tests.factories import make_tenant
from tests.formats import bombs


def test_a_flood_of_file_errors_is_ten_boxes_and_a_count():
    def page() -> None:
        from ui import import_view

        import_view.show_errors([f"エラー{n}" for n in range(10_000)])

    at = AppTest.from_function(page, default_timeout=60).run()
    assert [e.value for e in at.error] == [
        *(f"エラー{n}" for n in range(10)),
        "ほかに 9,990件のエラーがあります。",
    ]


def test_a_header_of_a_million_columns_is_one_error_on_the_import_page(open_app):
    user = sign_in(make_tenant())
    at = upload(open_import(open_app, user.token), "x.csv", bombs.million_column_csv())
    assert [e.value for e in at.error] == [
        "1行目の列が多すぎます（1,000列まで）。不要な列を削除してください。"
    ]
    assert apply_button(at).disabled
