"""Layer rules that keep the app safe by construction (GUIDE §1, §4)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE_PACKAGES = (ROOT / "app_pages", ROOT / "ui")  # the pages and their helpers
FORBIDDEN = frozenset({"sqlmodel", "sqlalchemy", "psycopg", "psycopg2", "models"})


def test_no_legacy_pages_directory():
    """Streamlit would serve a pages/ folder beside the entrypoint without the login check."""
    assert not (ROOT / "pages").exists()


def imported_modules(source: str, package: str) -> set[str]:
    """Absolute names of every module an Import or ImportFrom statement in source names.

    package is the dotted package the source lives in, to resolve relative imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".") if package else []
            base = parts[: max(0, len(parts) - node.level + 1)] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            # `from x import y` may import the submodule x.y; `from .. import models` too.
            found.update(f"{module}.{alias.name}".lstrip(".") for alias in node.names)
    return found


def forbidden_imports(source: str, package: str = "app_pages") -> set[str]:
    return {name for name in imported_modules(source, package) if name.split(".")[0] in FORBIDDEN}


def page_files() -> list[Path]:
    return sorted(path for package in PAGE_PACKAGES for path in package.rglob("*.py"))


def _package(path: Path) -> str:
    return ".".join(path.parent.relative_to(ROOT).parts)


def test_pages_import_no_database_layer():
    offenders = {
        str(path.relative_to(ROOT)): sorted(found)
        for path in page_files()
        if (found := forbidden_imports(path.read_text(encoding="utf-8"), _package(path)))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    "source",
    [
        "import sqlmodel",
        "import sqlalchemy.orm as orm",
        "import psycopg",
        "import models",
        "import os, models.member",
        "from sqlmodel import select",
        "from sqlalchemy.orm import Session",
        "from models import Member",
        "from models.member import Member",
        "from .. import models",
        "from ..models import Member",
        "from ...... import models",
        "def f():\n    from sqlmodel import Session\n",
        "if True:\n    import sqlalchemy\n",
    ],
)
def test_checker_catches_imports(source):
    assert forbidden_imports(source)


@pytest.mark.parametrize(
    "source",
    [
        "import streamlit as st",
        "from services import members",
        "from services.catalog import MemberCreate",
        "from ui.common import current_actor",
        "from . import common",
        "import modelsx",
        "x = 'import sqlmodel'",
        "# from sqlalchemy import text\n",
        '"""Uses models via services; never sqlalchemy directly."""',
    ],
)
def test_checker_ignores_everything_else(source):
    assert forbidden_imports(source) == set()
