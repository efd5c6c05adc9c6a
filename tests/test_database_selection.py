"""The rule that leaves database-free tests out of the PostgreSQL pass (tests/conftest.py), and
the guard that keeps a test using a database from hiding among them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests import conftest
from tests.conftest import NO_DATABASE_REASON, uses_database


def fake_item(nodeid: str, fixturenames=(), markers=(), module=None):
    return SimpleNamespace(
        nodeid=nodeid,
        fixturenames=list(fixturenames),
        module=module,
        get_closest_marker=lambda name: name if name in markers else None,
    )


def test_a_test_asking_for_no_database_fixture_is_database_free(request, tmp_path):
    assert not uses_database(request.node)


def test_a_fixture_that_needs_the_database_makes_the_test_use_it(request, dialect):
    """The test names only `dialect`, which asks for `engine`, which asks for database_url."""
    assert uses_database(request.node)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (fake_item("tests/formats/test_x.py::test_a", ["tmp_path"]), False),
        (fake_item("tests/services/test_x.py::test_a", ["tenant", "engine", "database_url"]), True),
        # browser tests: only the both_databases smoke set runs on the PostgreSQL pass
        (fake_item("tests/e2e/test_x.py::test_a", ["base_url", "database_url"]), False),
        (fake_item("tests/e2e/test_x.py::test_a", markers=("both_databases",)), True),
        (fake_item("tests/x/test_x.py::test_a", markers=("e2e",)), False),
        (fake_item("tests/x/test_x.py::test_a", markers=("e2e", "both_databases")), True),
        (fake_item("tests/x/test_x.py::test_a", markers=("postgres_only",)), True),
        (
            fake_item(
                "tests/test_migrations.py::test_a",
                ["fresh_url"],
                module=SimpleNamespace(_create_postgres_database=object()),
            ),
            True,
        ),
        (fake_item("tests/x/test_x.py::test_a", module=SimpleNamespace()), False),
    ],
)
def test_what_counts_as_using_a_database(item, expected):
    assert uses_database(item) is expected


class FakeConfig:
    def __init__(self) -> None:
        self.deselected: list = []
        self.hook = SimpleNamespace(pytest_deselected=lambda items: self.deselected.extend(items))
        self.stash = pytest.Stash()


ITEMS = [
    fake_item("tests/formats/test_x.py::test_pure"),
    fake_item("tests/services/test_x.py::test_db", ["engine", "database_url"]),
    fake_item("tests/e2e/test_x.py::test_smoke", markers=("both_databases",)),
    fake_item("tests/e2e/test_x.py::test_browser", ["base_url", "database_url"]),
]


def test_only_the_postgresql_pass_leaves_database_free_tests_out(monkeypatch):
    monkeypatch.delenv("HIKESHI_TEST_DATABASE_URL", raising=False)
    config, items = FakeConfig(), list(ITEMS)
    conftest.pytest_collection_modifyitems(config, items)
    assert items == ITEMS and config.deselected == []

    monkeypatch.setenv("HIKESHI_TEST_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    conftest.pytest_collection_modifyitems(config, items)
    assert items == ITEMS[1:3] and config.deselected == [ITEMS[0], ITEMS[3]]
    assert config.stash[conftest.DESELECTED] == 2  # reported at the end of the run
    assert "SQLite pass only" in NO_DATABASE_REASON


def connection_to(url: str):
    from sqlalchemy.engine import make_url

    return SimpleNamespace(engine=SimpleNamespace(url=make_url(url)))


def test_the_guard_fails_a_database_free_test_that_reaches_the_test_database(tmp_path):
    guard = conftest._UndeclaredDatabase()
    item = fake_item("tests/x/test_x.py::test_a")
    guard.on_connect(connection_to(f"sqlite:///{conftest._TMP / 'test.db'}"))
    guard.check(item, "the test")  # not watching: nothing recorded

    guard.watching = True
    guard.on_connect(connection_to(f"sqlite:///{tmp_path / 'own.db'}"))  # the test's own file
    guard.on_connect(connection_to("sqlite://"))
    guard.check(item, "the test")
    for url in (
        f"sqlite:///{conftest._TMP / 'test.db'}",
        f"sqlite:///{conftest._TMP / 'hikeshi.db'}",
        "postgresql+psycopg://hikeshi_app@127.0.0.1:5432/hikeshi_test_x",
    ):
        guard.on_connect(connection_to(url))
        with pytest.raises(pytest.fail.Exception, match="request `engine`"):
            guard.check(item, "the test")
