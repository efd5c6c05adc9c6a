"""cli.py refuses bad input with one Japanese line, not a Python traceback (#18)."""

from __future__ import annotations

import io
import uuid

import pytest

import cli


def run(monkeypatch, capsys, *argv: str, stdin: str = "") -> str:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as ended:
        cli.main(list(argv))
    assert ended.value.code not in (0, None)
    assert "Traceback" not in capsys.readouterr().err
    return str(ended.value.code)


def test_a_short_password_and_an_existing_name_are_one_line(engine, monkeypatch, capsys):
    name = f"op-{uuid.uuid4().hex[:8]}"
    said = run(monkeypatch, capsys, "create-operator", name, stdin="short\n")
    assert said.startswith("エラー: ") and "\n" not in said and "文字" in said

    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-password-1\n"))
    cli.main(["create-operator", name])
    said = run(monkeypatch, capsys, "create-operator", name, stdin="a-long-enough-password-2\n")
    assert said.startswith("エラー: ") and "\n" not in said


def test_set_password_for_nobody_is_one_line(engine, monkeypatch, capsys):
    said = run(
        monkeypatch, capsys, "set-password", "nobody-here", stdin="a-long-enough-password-1\n"
    )
    assert said.startswith("エラー: ") and "\n" not in said
