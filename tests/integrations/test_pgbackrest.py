"""The pgBackRest configuration the provider backups run with (the restore drill in
tests/operations runs it for real)."""

from __future__ import annotations

import secrets
from datetime import date
from pathlib import Path

import pytest

from integrations.pgbackrest import (
    BackupToolError,
    Layout,
    archive_command,
    configure,
    render_config,
    scheduled_type,
)

LAYOUT = Layout(pg_data=Path("/var/lib/postgresql/15/main"), repo_path=Path("/srv/backup"))


def settings(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#")


def test_repository_is_encrypted_and_kept_35_days():
    passphrase = secrets.token_urlsafe(48)
    values = settings(render_config(LAYOUT, passphrase))
    assert values["repo1-cipher-type"] == "aes-256-cbc"
    assert values["repo1-cipher-pass"] == passphrase
    assert values["repo1-retention-full-type"] == "time"
    assert values["repo1-retention-full"] == "35"
    assert values["pg1-path"] == str(LAYOUT.pg_data)
    with pytest.raises(BackupToolError):
        render_config(LAYOUT, passphrase, retention_days=34)


def test_configure_writes_a_private_file_and_the_archive_settings(tmp_path):
    secret = tmp_path / "passphrase"
    secret.write_text(secrets.token_urlsafe(48) + "\n")
    output = tmp_path / "etc" / "pgbackrest.conf"
    archive = configure(LAYOUT, secret, output, os_user="")
    assert output.stat().st_mode & 0o777 == 0o600
    assert settings(output.read_text())["repo1-cipher-pass"] == secret.read_text().strip()
    assert "archive_mode = on" in archive
    assert f"archive_command = '{archive_command(output)}'" in archive


@pytest.mark.parametrize("passphrase", ["", "short", "two words " + "x" * 40])
def test_weak_or_malformed_passphrases_are_refused(tmp_path, passphrase):
    secret = tmp_path / "passphrase"
    secret.write_text(passphrase)
    with pytest.raises(BackupToolError):
        configure(LAYOUT, secret, tmp_path / "out.conf", os_user="")
    assert not (tmp_path / "out.conf").exists()


def test_full_backup_on_sundays_differential_otherwise():
    week = [date(2026, 12, day) for day in range(7, 14)]  # Monday 7 to Sunday 13
    assert [scheduled_type(day) for day in week] == ["diff"] * 6 + ["full"]


def test_committed_template_holds_no_passphrase():
    template = (Path(__file__).parents[2] / "deploy/pgbackrest/pgbackrest.conf").read_text()
    assert settings(template)["repo1-cipher-pass"] == "{cipher_pass}"
