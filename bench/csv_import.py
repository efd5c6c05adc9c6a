"""CSV import throughput: members and water sources (1,000 and 5,000 of each by default) through
the services' preview (read, decode, validate, compare) and apply (encrypt, write), against
writing the same validated rows with a SQLAlchemy Core bulk insert and, on PostgreSQL, with
COPY — all measured in the same run on the same database.

Apply is measured twice (#19): as it was before, validating every row again inside its
transaction (the preview's token withheld), and as it is now, taking the preview's own
validation back because nothing changed in between (services/import_reuse.py: the stamp of
the brigade's data is read again, the rows are not validated again).

    .venv/bin/python bench/csv_import.py [--sizes 1000,5000] [--repeat 3]
        [--entities members,water_sources] [--clock wall|cpu]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

SQLite always runs; with --database-url PostgreSQL runs after it.

The files are CSV bytes made from the demo generators (invented Japanese names, kana, phones,
addresses; water sources of every kind around the demo town). The database is a scratch one: a
temporary SQLite file by default; with --database-url a fresh PostgreSQL database on that server,
migrated as the owner, the services running as the application role under row-level security
(as the app does), dropped at the end. Each import goes into a fresh brigade.

The baseline writes exactly the rows the import wrote, into another fresh brigade: for members
the stored rows re-encrypted beforehand by the same cipher for that brigade (so the baseline
skips validation and encryption, and nothing else: the same columns, the same role links);
for water sources the stored rows with new ids. Core runs as the application role; COPY runs as
the owner, because PostgreSQL does not allow COPY FROM on a table with row-level security.
Each figure is the best of --repeat runs (3 by default), each into fresh brigades, wall-clock in
this process: the machines are shared, and the fastest run is the one least disturbed. The last
line of each block also gives the min and median over the runs of each run's own ratio of
preview + apply to its Core insert. Garbage is collected before each timed step, on both
sides alike, so that no step pays for a collection of what the steps before it left.

With --clock cpu (SQLite only) every figure is this process's CPU time instead: SQLite runs in
this process, so the import and the Core insert are measured alike, without the other work of a
shared machine (the commit's wait for the disk is left out of both). Wall-clock is the figure of
record; the CPU clock compares code before and after a change when the machine is busy.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import statistics
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from scratch import APP_ROLE, Database
from sqlalchemy import Engine, insert, select, text

from core.actor import Actor, system_actor
from core.personal import ENCRYPTED_MEMBER_FIELDS
from formats import csv_safe, member_csv, water_csv
from models import Member, MemberRole, Rank, Role
from models.enums import MemberStatus
from models.water import WaterSource
from services import demo_data, member_import, members, roles, tenants, water_import
from services.base import Tx
from services.db import unit_of_work
from services.imports import MissingRows

TODAY = datetime.date(2026, 11, 26)
PLATFORM = Actor(kind="system", display_name="bench", label="bench")
TARGET = 3.0
MEMBER_TABLES = (Member.__table__, MemberRole.__table__)
CHUNK = 1000  # members per generator call: its uniqueness checks grow faster than linearly


# -- the files -----------------------------------------------------------------------------------


def member_file(count: int) -> bytes:
    people = [
        person
        for start in range(0, count, CHUNK)
        for person in demo_data.generate_members(
            seed=demo_data.DEFAULT_SEED + start, count=min(CHUNK, count - start), today=TODAY
        )
    ]
    return csv_safe.encode(
        member_csv.HEADER,
        (
            [
                f"M{number:05d}",
                p.name,
                p.kana,
                p.rank,
                member_csv.ROLE_SEPARATOR.join(p.roles),
                p.affiliation,
                MemberStatus(p.status).label,
                p.phone,
                p.email,
                f"長野県デモ市中央{number % 40 + 1}丁目{number % 29 + 1}-{number % 9 + 1}",
                p.joined_on.isoformat(),
                p.notes,
            ]
            for number, p in enumerate(people, start=1)
        ),
    )


def water_file(count: int) -> bytes:
    blank = dict.fromkeys(column.key for column in water_csv.COLUMNS)
    sources = demo_data.generate_water_sources(count=count, today=TODAY)
    return water_csv.encode(SimpleNamespace(**(blank | vars(s))) for s in sources)


# -- the database --------------------------------------------------------------------------------


def brigade(label: str) -> Actor:
    tenant = tenants.create_tenant(PLATFORM, name=f"ベンチ消防団{label}{uuid.uuid4().hex[:6]}")
    actor = system_actor(tenant, label="bench")
    ranks = {r.name: r.id for r in members.list_ranks(actor)}
    for role, rank in demo_data.DEMO_ROLES.items():
        roles.create_role(actor, name=role, rank_id=ranks[rank])
    return actor


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds of run(), and its result. Garbage is collected before the clock starts: a full
    collection of this process's heap (~90 ms, SQLAlchemy's and the app's objects) falls due
    now and then, and whichever timed step it fell in counted it as its own (the 1,000-row Core
    insert of a run took 90-110 ms instead of 16 ms once per bench, the run-by-run min 0.47x)."""
    gc.collect()
    started = clock()
    result = run()
    return clock() - started, result


# -- the baselines -------------------------------------------------------------------------------


def stored(engine: Engine, table: Any, tenant: uuid.UUID) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT set_config('app.tenant_id', :t, false)"), {"t": str(tenant)})
        return [
            dict(r._mapping) for r in conn.execute(select(table).where(table.c.tenant_id == tenant))
        ]


def names(session: Any, model: Any, tenant: uuid.UUID) -> dict[uuid.UUID, str]:
    query = select(model.id, model.name).where(model.tenant_id == tenant)
    return dict(session.execute(query).all())


def member_rows(
    db: Database, source: Actor, target: Actor, *, encrypt: bool = True
) -> tuple[list[dict], list[dict]]:
    """The imported members and role links as the target brigade would store them: new ids,
    the target's rank and role ids, personal fields encrypted by its cipher (or, with
    encrypt=False, in clear under "plain" for a baseline that encrypts while it writes)."""
    table = Member.__table__
    rows = stored(db.app, table, source.tenant_id)
    links = stored(db.app, MemberRole.__table__, source.tenant_id)
    with unit_of_work(source.tenant_id) as session:
        tx = Tx(session, source)
        plain = {
            row["id"]: {
                name: tx.cipher.decrypt(
                    row[f"{name}_enc"], field=f"member.{name}", row_id=row["id"]
                )
                for name in ENCRYPTED_MEMBER_FIELDS
            }
            for row in rows
        }
        rank_names = names(session, Rank, source.tenant_id)
        role_names = names(session, Role, source.tenant_id)
        session.commit()
    new_ids = {row["id"]: uuid.uuid4() for row in rows}
    with unit_of_work(target.tenant_id) as session:
        tx = Tx(session, target)
        ranks = {name: i for i, name in names(session, Rank, target.tenant_id).items()}
        target_roles = {name: i for i, name in names(session, Role, target.tenant_id).items()}
        out = [
            row
            | {
                "id": new_ids[row["id"]],
                "tenant_id": target.tenant_id,
                "rank_id": ranks[rank_names[row["rank_id"]]],
            }
            | (
                members.personal_columns(tx, new_ids[row["id"]], plain[row["id"]])
                if encrypt
                else {"plain": plain[row["id"]]}
            )
            for row in rows
        ]
        session.commit()
    out_links = [
        {
            "tenant_id": target.tenant_id,
            "member_id": new_ids[link["member_id"]],
            "role_id": target_roles[role_names[link["role_id"]]],
        }
        for link in links
    ]
    return out, out_links


def water_rows(db: Database, source: Actor, target: Actor) -> list[dict]:
    rows = stored(db.app, WaterSource.__table__, source.tenant_id)
    return [row | {"id": uuid.uuid4(), "tenant_id": target.tenant_id} for row in rows]


def core_insert(engine: Engine, tenant: uuid.UUID, batches: list[tuple[Any, list[dict]]]) -> float:
    def run() -> None:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)}
                )
            for table, rows in batches:
                if rows:
                    conn.execute(insert(table), rows)

    return timed(run)[0]


def core_insert_encrypting(target: Actor, batches: list[tuple[Any, list[dict]]]) -> float:
    """The Core bulk insert, sealing each member's personal fields on the way: what any writer
    of validated rows must do, since they are stored encrypted."""

    def run() -> None:
        with unit_of_work(target.tenant_id) as session:
            tx = Tx(session, target)
            (members_table, plain_rows), (links_table, links) = batches
            rows = [
                {k: v for k, v in row.items() if k != "plain"}
                | members.personal_columns(tx, row["id"], row["plain"])
                for row in plain_rows
            ]
            session.connection().execute(insert(members_table), rows)
            if links:
                session.connection().execute(insert(links_table), links)
            session.commit()

    return timed(run)[0]


def copy_in(engine: Engine, batches: list[tuple[Any, list[dict]]]) -> float:
    def run() -> None:
        with engine.begin() as conn:
            raw = conn.connection.dbapi_connection
            with raw.cursor() as cursor:
                for table, rows in batches:
                    columns = list(rows[0]) if rows else []
                    names = ", ".join(f'"{c}"' for c in columns)
                    with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row([row[c] for c in columns])

    return timed(run)[0]


# -- one entity ----------------------------------------------------------------------------------


def best_of(repeat: int, db: Database, entity: str, data: bytes, rows: int) -> dict[str, float]:
    """Each figure is the fastest of `repeat` runs, each into fresh brigades: the machines are
    shared, and the minimum is the run least disturbed by others."""
    runs = [measure(db, entity, data, rows) for _ in range(repeat)]
    best = {name: min(run[name] for run in runs) for name in runs[0]}
    ratios = [(run["preview"] + run["apply"]) / run["core"] for run in runs]
    return best | {"ratio_min": min(ratios), "ratio_median": statistics.median(ratios)}


def import_file(entity: str, data: bytes, rows: int, *, reuse: bool) -> tuple[float, float, Actor]:
    """(preview seconds, apply seconds, the brigade) of one import into a fresh brigade; without
    reuse the preview's token is withheld, so apply validates every row again."""
    importer = brigade("取込" if reuse else "再検証")
    if entity == "members":
        preview, apply = member_import.preview_member_import, member_import.apply_member_import
    else:
        preview, apply = water_import.preview_water_import, water_import.apply_water_import
    preview_s, found = timed(lambda: preview(importer, data=data, filename="f.csv"))
    if not found.ready:
        raise SystemExit(f"{entity}: the generated file does not validate: {found.errors[:5]}")
    if not reuse:
        found = dataclasses.replace(found, token="")
    ticks: list[int] = []
    apply_s, result = timed(
        lambda: apply(
            importer, found, missing=MissingRows.KEEP, progress=lambda d, t: ticks.append(d)
        )
    )
    assert result.created == rows and result.reused_preview == reuse, result
    return preview_s, apply_s, importer


def measure(db: Database, entity: str, data: bytes, rows: int) -> dict[str, float]:
    # The first import's preview is not a figure: timed once per run, like the Core insert, the
    # preview is not the better of two.
    _, again_s, _ = import_file(entity, data, rows, reuse=False)
    preview_s, apply_s, importer = import_file(entity, data, rows, reuse=True)
    baseline, copier = brigade("基準"), brigade("COPY")
    sealing = brigade("暗号化込み") if entity == "members" else None
    if entity == "members":
        batches = list(zip(MEMBER_TABLES, member_rows(db, importer, baseline), strict=True))
        copy_batches = list(zip(MEMBER_TABLES, member_rows(db, importer, copier), strict=True))
    else:
        batches = [(WaterSource.__table__, water_rows(db, importer, baseline))]
        copy_batches = [(WaterSource.__table__, water_rows(db, importer, copier))]
    figures = {
        "rows": rows,
        "bytes": len(data),
        "preview": preview_s,
        "apply": apply_s,
        "apply_again": again_s,
        "core": core_insert(db.app, baseline.tenant_id, batches),
    }
    if sealing is not None:
        plain = member_rows(db, importer, sealing, encrypt=False)
        figures["core_sealing"] = core_insert_encrypting(
            sealing, list(zip(MEMBER_TABLES, plain, strict=True))
        )
    if db.dialect == "postgresql":
        figures["copy"] = copy_in(db.owner, copy_batches)
    return figures


def report(entity: str, f: dict[str, float]) -> None:
    rows = f["rows"]
    before, after = f["preview"] + f["apply_again"], f["preview"] + f["apply"]
    print(f"\n-- {entity}: {rows:,} rows, {f['bytes'] / 1_048_576:.1f} MB of CSV")
    line = "{:<46}{:>8.2f} s{:>12,.0f} rows/s"
    for label, seconds in (
        ("preview (read, validate, compare)", f["preview"]),
        ("apply, validating again (before #19)", f["apply_again"]),
        ("apply, preview's validation reused", f["apply"]),
        ("preview + apply, before", before),
        ("preview + apply, now", after),
        ("baseline: Core bulk insert", f["core"]),
        *([("baseline: Core, encrypting", f["core_sealing"])] if "core_sealing" in f else []),
        *([("baseline: COPY (owner)", f["copy"])] if "copy" in f else []),
    ):
        print(line.format(label, seconds, rows / seconds))
    baselines = [("Core", f["core"])]
    if "core_sealing" in f:
        baselines.append(("Core, encrypting", f["core_sealing"]))
    if "copy" in f:
        baselines.append(("COPY", f["copy"]))
    for name, seconds in baselines:
        print(
            f"preview+apply / {name:<17} before {before / seconds:5.1f}x   "
            f"now {after / seconds:5.1f}x   {verdict(after / seconds)}"
        )
    print(
        f"preview+apply / Core, run by run (same run's figures): min {f['ratio_min']:.2f}x"
        f"   median {f['ratio_median']:.2f}x"
    )


def verdict(ratio: float) -> str:
    return (
        f"within the {TARGET:.0f}x target" if ratio <= TARGET else f"over the {TARGET:.0f}x target"
    )


FILES = {"members": member_file, "water_sources": water_file}


def run(url: str | None, sizes: list[int], repeat: int, entities: list[str]) -> None:
    db = Database(url)
    try:
        where = (
            "SQLite (temporary file)"
            if db.dialect == "sqlite"
            else (f"PostgreSQL {db.name}, services as {APP_ROLE} under row-level security")
        )
        print(f"\n== {where}")
        for size in sizes:
            for entity in entities:
                report(entity, best_of(repeat, db, entity, FILES[entity](size), size))
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000", help="rows per file, comma-separated")
    parser.add_argument("--database-url", help="also on this PostgreSQL server, after SQLite")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best counts")
    parser.add_argument(
        "--clock",
        choices=CLOCKS,
        default="wall",
        help="wall-clock time (the figure), or this process's CPU time: SQLite only, on a loaded machine",
    )
    parser.add_argument(
        "--entities",
        default=",".join(FILES),
        help="which imports, comma-separated: " + ", ".join(FILES),
    )
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    if args.clock == "cpu" and args.database_url:
        parser.error("--clock cpu leaves out the PostgreSQL server's work: SQLite only")
    sizes = [int(size) for size in args.sizes.split(",")]
    entities = args.entities.split(",")
    if unknown := set(entities) - set(FILES):
        parser.error(f"unknown entities: {', '.join(sorted(unknown))}")
    for url in (None, args.database_url) if args.database_url else (None,):
        run(url, sizes, args.repeat, entities)


if __name__ == "__main__":
    main()
