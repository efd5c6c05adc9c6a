"""Creating a backup: every function it holds, decrypted for the file (credentials excepted:
see services/backup/mail_sources.py), audited by hash and counts (white paper 12.3.1)."""

from __future__ import annotations

import tomllib
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from functools import cache

from sqlmodel import select

from config import ROOT
from core.access import Need
from core.actor import Actor
from core.timefmt import JST
from formats import backup as fmt
from formats import member_csv, water_csv
from models import Member, MemberPublic, Permission, Rank, Role
from models.base import utcnow
from models.enums import Function
from models.water import WaterInspection, WaterSource
from services import members, water_sources
from services.backup.callouts import callout_files
from services.backup.incidents import incident_files
from services.backup.mail_sources import mail_source_settings
from services.backup.model import BACKUP_NEEDS, FILENAME_UNSAFE, BackupFile, F, L
from services.backup.reports import report_files
from services.base import Tx, require, scoped, transaction
from services.errors import ValidationError
from services.permissions import (
    Grant,
    grant_of,
)

# -- creating ----------------------------------------------------------------------------------


def zip_of(tx: Tx, *, password: str | None = None) -> tuple[fmt.Manifest, bytes]:
    """The brigade as it is in this transaction, as one backup ZIP (a download, or the
    automatic backup before a bulk change: services.pre_change)."""
    files = _backup_files(tx)
    manifest = fmt.build_manifest(
        files,
        tenant_id=tx.tenant_id,
        brigade=tx.brigade_name,
        created_at=utcnow(),
        app_version=app_version(),
    )
    return manifest, fmt.write_zip(manifest, files, password=password)


def create_backup(actor: Actor, *, password: str | None = None) -> BackupFile:
    """The brigade's data as one ZIP; AES-256 encrypted when a password is given."""
    require(actor, *BACKUP_NEEDS, action="backup.create")
    if password is not None:
        _check_password(password)
    with transaction(actor, Need(F.CSV_EXPORT, L.VIEW), action="backup.create") as tx:
        manifest, data = zip_of(tx, password=password)
        backup = BackupFile(_filename(tx.tenant_id, manifest), data, manifest, password is not None)
        tx.audit(
            "backup.create",
            target_type="backup",
            details={
                "filename": backup.filename,
                "sha256": backup.sha256,
                "bytes": len(data),
                "encrypted": backup.encrypted,
                "rows": manifest.rows,
            },
        )
        tx.commit()
    return backup


def _check_password(password: str) -> None:
    try:
        fmt.check_password(password)
    except fmt.BackupError as exc:
        raise ValidationError({"password": str(exc)}) from None


def _backup_files(tx: Tx) -> dict[str, bytes]:
    callouts = callout_files(tx)  # first: they name members and incidents read below
    reports = report_files(tx)  # so do reports, and inspections
    roles = tx.session.exec(scoped(select(Role), tx.actor).order_by(Role.name)).all()
    ranks = {r.id: r for r in tx.session.exec(scoped(select(Rank), tx.actor)).all()}
    return {
        fmt.ROLES: fmt.encode_roles(fmt.RoleRow(r.name, ranks[r.rank_id].name) for r in roles),
        fmt.PERMISSIONS: fmt.encode_permissions(_matrix_rows(tx, ranks, roles)),
        fmt.MEMBERS: member_csv.encode(_current_members(tx)),
        fmt.WATER_SOURCES: water_csv.encode(_current_sources(tx)),
        fmt.INSPECTIONS: fmt.encode_inspections(_inspection_rows(tx)),
        fmt.MAIL_SOURCES: mail_source_settings(tx),
        **incident_files(tx),
        **callouts,
        **reports,
    }


def _matrix_rows(tx: Tx, ranks: Mapping[uuid.UUID, Rank], roles: Sequence[Role]) -> list:
    grants = grants_by_subject(tx)
    subjects = [(fmt.SUBJECT_RANK, r) for r in sorted(ranks.values(), key=lambda r: r.position)]
    subjects += [(fmt.SUBJECT_ROLE, r) for r in roles]
    return [
        fmt.PermissionRow(
            kind,
            subject.name,
            {f: g.label for f, g in grants.get(subject.id, {}).items() if g.level > L.NONE},
        )
        for kind, subject in subjects
    ]


def grants_by_subject(tx: Tx) -> dict[uuid.UUID, dict[Function, Grant]]:
    found: dict[uuid.UUID, dict[Function, Grant]] = {}
    for row in tx.session.exec(scoped(select(Permission), tx.actor)).all():
        if (grant := grant_of(row)) is not None:
            found.setdefault(row.subject_id, {})[Function(row.function)] = grant
    return found


def _current_members(tx: Tx) -> list[MemberPublic]:
    rows = tx.session.exec(scoped(select(Member), tx.actor).order_by(Member.member_code)).all()
    org = members.load_org(tx)
    return [members.to_public(tx, member, org) for member in rows]


def _current_sources(tx: Tx) -> list[WaterSource]:
    """The stored rows: the water layout holds registry fields only, nothing computed."""
    return list(
        tx.session.exec(scoped(select(WaterSource), tx.actor).order_by(WaterSource.code)).all()
    )


def _inspection_rows(tx: Tx) -> list[fmt.InspectionRow]:
    """Read together with their sources' codes, so that one statement sees both."""
    codes = member_codes(tx)
    query = select(WaterInspection, WaterSource.code).join(
        WaterSource, WaterSource.id == WaterInspection.water_source_id
    )
    rows = [
        fmt.InspectionRow(
            source_code=source_code,
            inspected_on=row.inspected_on,
            result=row.result,
            inspector_code=codes.get(row.inspector_member_id, ""),
            created_at=row.created_at,
            **water_sources.inspection_personal(tx, row),
        )
        for row, source_code in tx.session.exec(scoped(query, tx.actor)).all()
    ]
    return sorted(rows, key=lambda r: (r.source_code, r.inspected_on, r.created_at))


def member_codes(tx: Tx) -> dict[uuid.UUID, str]:
    return dict(tx.session.exec(scoped(select(Member.id, Member.member_code), tx.actor)).all())


def _filename(tenant_id: uuid.UUID, manifest: fmt.Manifest) -> str:
    """<brigade name>_<JST time>.zip, so an administrator finds the brigade's backups by name
    (the download sends a non-ASCII name as RFC 5987 `filename*`, which browsers decode).
    Characters no file system takes are replaced; a name with nothing left falls back to the
    ASCII hikeshi-backup-<start of the id>."""
    name = FILENAME_UNSAFE.sub("-", unicodedata.normalize("NFKC", manifest.brigade)).strip("-.")
    stamp = manifest.created_at.astimezone(JST).strftime("%Y%m%d-%H%M")
    return f"{name[:40] or 'hikeshi-backup-' + str(tenant_id)[:8]}_{stamp}.zip"


@cache
def app_version() -> str:
    try:
        with open(ROOT / "pyproject.toml", "rb") as project:
            return str(tomllib.load(project)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"
