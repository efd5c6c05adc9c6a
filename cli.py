"""Command line: `python cli.py bootstrap | migrate | seed-demo | create-operator | set-password |
recover | ...` (see `python cli.py --help`)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

import config
from services.errors import ServiceError, ValidationError

ROOT = Path(__file__).resolve().parent


def migrate() -> None:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("sqlalchemy.url", config.migration_database_url())
    command.upgrade(cfg, "head")


def seed_demo() -> None:
    from services.demo import seed_demo as seed

    result = seed()
    if result.created:
        print(
            "\n================ デモ消防団を作成しました ================\n"
            f"  ログイン名: {result.admin_login}\n"
            f"  パスワード: {result.admin_password}\n"
            "  (この表示は一度だけです。忘れた場合は\n"
            f"   `.venv/bin/python cli.py set-password {result.admin_login}` で再設定できます)\n"
            "===========================================================\n"
        )
    else:
        print("デモ消防団は作成済みです。")


def bootstrap() -> None:
    if config.generate_local_settings():
        print(f"ローカル用の鍵と設定を {config.LOCAL_SETTINGS} に生成しました。")
    migrate()
    seed_demo()


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("新しいパスワード: ")
    if first != getpass.getpass("もう一度: "):
        sys.exit("パスワードが一致しません。")
    return first


def create_operator(login_name: str) -> None:
    from services.demo import PLATFORM
    from services.signin.local import create_account

    create_account(PLATFORM, login_name=login_name, password=_read_password(), is_operator=True)
    print(f"運営者アカウント {login_name} を作成しました。")


def set_password(login_name: str) -> None:
    from services.demo import PLATFORM
    from services.signin.local import set_password as set_pw

    set_pw(PLATFORM, login_name=login_name, password=_read_password())
    print(f"{login_name} のパスワードを再設定しました。")


def purge_cancelled() -> int:
    from core.timefmt import today_jst
    from services.keys import CLI_ACTOR
    from services.tenant_lifecycle import delete_cancelled_data, pending_deletions

    for report in delete_cancelled_data(CLI_ACTOR, today=today_jst()):
        rows = sum(report.rows_deleted.values())
        print(f"削除 {report.name}: {rows} 行、鍵 {report.keys_destroyed} 個（期限 {report.due}）")
    for pending in pending_deletions(CLI_ACTOR):
        print(f"待機 {pending.name}: 解約日 {pending.cancelled_on}、削除期限 {pending.due}")
    return 0


def mail_intake(port: int | None, send_sample: str | None) -> None:
    import signal

    from config import get_settings
    from services.dispatch.worker import MailIntake

    intake = MailIntake(port=port)
    intake.start()
    signal.signal(signal.SIGTERM, lambda *_: intake.stop_event.set())
    print(f"出動メールの受信を開始しました（SMTP {intake.receiver.host}:{intake.receiver.port}）。")
    if not get_settings().line_messaging_configured:
        print("LINE（Messaging API）が未設定のため、出動連絡は団員に送信されません。")
    if send_sample is not None:
        send_test_mail(send_sample or None, intake.receiver.port)
    try:
        intake.run()
    except KeyboardInterrupt:
        pass
    finally:
        intake.stop()


def worker(
    once: bool, only: list[str], smtp: bool, port: int | None, send_sample: str | None = None
) -> int:
    """The scheduled jobs without cron; any number of instances may run (services/jobs)."""
    import logging
    import signal

    from services.jobs.runner import Worker
    from services.jobs.schedule import MailPolling, default_jobs

    # warnings and failed runs, with their time; not every SMTP command or LINE request
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    polling = MailPolling()
    jobs = default_jobs(polling)
    if unknown := sorted(set(only) - {job.name for job in jobs}):
        sys.exit(f"エラー: そのようなジョブはありません: {', '.join(unknown)}")
    if send_sample is not None and not smtp:
        sys.exit("エラー: --send-sample は --smtp と一緒に指定してください。")
    runner = Worker([job for job in jobs if not only or job.name in only])
    try:
        if once:
            ran = runner.run_once()
            print(
                f"実行したジョブ: {', '.join(ran) or 'なし（期限前、または他のワーカーが実行中）'}"
            )
            return 0
        receiver = _smtp_receiver(port) if smtp else None
        for stop_signal in (signal.SIGTERM, signal.SIGINT):  # a run under way ends first
            signal.signal(stop_signal, lambda *_: runner.stop())
        print(
            f"ワーカーを開始しました（{runner.worker_id}）: {', '.join(j.name for j in runner.jobs)}"
        )
        if receiver is not None and send_sample is not None:
            send_test_mail(send_sample or None, receiver.port)
        try:
            runner.run()
        finally:
            if receiver is not None:
                receiver.stop()
        print("ワーカーを停止しました。")
        return 0
    finally:
        polling.close()


def _smtp_receiver(port: int | None):
    """The dispatch mail's SMTP receiver inside the worker (`worker --smtp`)."""
    from config import get_settings
    from integrations.mail import SmtpReceiver
    from services.dispatch.worker import accept_rcpt, smtp_sink

    settings = get_settings()
    receiver = SmtpReceiver(
        smtp_sink,
        host=settings.smtp_host,
        port=port or settings.smtp_port,
        max_bytes=settings.mail_max_bytes,
        accept_rcpt=accept_rcpt,
    )
    receiver.start()
    print(f"出動メールの受信を開始しました（SMTP {receiver.host}:{receiver.port}）。")
    return receiver


def send_test_mail(brigade: str | None, port: int | None) -> None:
    from services.demo_data import DEMO_BRIGADE
    from services.dispatch.worker import send_sample

    name = brigade or DEMO_BRIGADE["name"]
    address = send_sample(name, port=port)
    print(f"見本の出動指令メールを {name} の受信アドレス {address} に送信しました。")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cli.py", description="Hikeshi administration")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("bootstrap", help="generate local settings, migrate, seed the demo")
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("seed-demo", help="create the demo brigade if it does not exist")
    for name in ("create-operator", "set-password"):
        sub.add_parser(name).add_argument("login_name")
    sub.add_parser(
        "verify-audit",
        help="verify audit hash chains with the public key; exit 1 broken, 3 warnings",
    ).add_argument("tenant", nargs="?", help="brigade id or name, or 'platform'; all when omitted")
    sub.add_parser(
        "checkpoint-audit",
        help="sign a checkpoint of every audit chain that grew and export it to a file",
    )
    sub.add_parser(
        "audit-public-key", help="print HIKESHI_AUDIT_VERIFY_KEY for the configured signing key"
    )
    sub.add_parser("purge-audit", help="delete events past the retention, up to a checkpoint")
    sub.add_parser("purge-cancelled", help="delete the data of brigades whose contract ended")
    sub.add_parser("rotate-master-key", help="re-wrap every brigade key with the active master key")
    sub.add_parser(
        "export-keys", help="write the wrapped brigade keys, for adopt-keys after a restore"
    ).add_argument("file")
    sub.add_parser(
        "adopt-keys", help="on a restored database: take the live keys, destroy purged brigades'"
    ).add_argument("file")
    sub.add_parser("backup-db", help="encrypted snapshot of the SQLite database, kept 35 days")
    restore_db = sub.add_parser(
        "restore-db", help="restore a SQLite snapshot (lists them without an argument)"
    )
    restore_db.add_argument("snapshot", nargs="?")
    restore_db.add_argument("--yes", action="store_true", help="replace the whole database")
    from integrations import pgbackrest

    pgbackrest.add_arguments(
        sub.add_parser("provider-backup", help="PostgreSQL backups with pgBackRest (35 days)")
    )
    sub.add_parser("rotate-tenant-key", help="re-encrypt one brigade's data").add_argument("tenant")
    intake = sub.add_parser(
        "mail-intake",
        help="receive dispatch mail and send the call-out: SMTP, IMAP mailboxes, the LINE outbox",
    )
    intake.add_argument("--port", type=int, help="SMTP port (default HIKESHI_SMTP_PORT, 2525)")
    intake.add_argument(
        "--send-sample",
        nargs="?",
        const="",
        metavar="BRIGADE",
        help="once listening, send BRIGADE (default: the demo brigade) a sample mail",
    )
    work = sub.add_parser(
        "worker",
        help="run the scheduled jobs (audit checkpoints and purges, cancelled brigades, IMAP "
        "polling, the LINE outbox and call-out timers); any number of instances may run",
    )
    work.add_argument("--once", action="store_true", help="run each due job once, then exit")
    work.add_argument("--job", action="append", default=[], help="only this job (repeatable)")
    work.add_argument("--smtp", action="store_true", help="also receive dispatch mail by SMTP")
    work.add_argument("--port", type=int, help="SMTP port with --smtp (default 2525)")
    work.add_argument(
        "--send-sample",
        nargs="?",
        const="",
        metavar="BRIGADE",
        help="with --smtp, once listening, send BRIGADE (default: the demo brigade) a sample mail",
    )
    test_mail = sub.add_parser(
        "send-test-mail", help="send a sample dispatch mail to a brigade's receiving address"
    )
    test_mail.add_argument("brigade", nargs="?", help="brigade name (default: the demo brigade)")
    test_mail.add_argument("--port", type=int, help="SMTP port of the receiver")
    recover = sub.add_parser(
        "recover",
        help="let a member of a locked-out brigade back in: lift a suspension or readmit, "
        "and with --give-admin give 役職・権限 管理",
    )
    recover.add_argument("tenant", help="brigade id or name")
    recover.add_argument("member_code")
    recover.add_argument("--give-admin", action="store_true")
    args = parser.parse_args(argv)
    try:
        match args.command:
            case "bootstrap":
                bootstrap()
            case "migrate":
                migrate()
            case "seed-demo":
                seed_demo()
            case "create-operator":
                create_operator(args.login_name)
            case "set-password":
                set_password(args.login_name)
            case "verify-audit":
                from services.audit_verify import main_verify

                sys.exit(main_verify(args.tenant))
            case "checkpoint-audit":
                from services.audit_checkpoint import main_checkpoint

                sys.exit(main_checkpoint())
            case "audit-public-key":
                from services.audit_checkpoint import main_public_key

                sys.exit(main_public_key())
            case "purge-audit":
                from services.audit_retention import main_purge

                sys.exit(main_purge())
            case "purge-cancelled":
                sys.exit(purge_cancelled())
            case "rotate-master-key":
                from services.keys import main_rotate_master

                sys.exit(main_rotate_master())
            case "export-keys":
                from services.keys import main_export_keys

                sys.exit(main_export_keys(args.file))
            case "adopt-keys":
                from services.keys import main_adopt_keys

                sys.exit(main_adopt_keys(args.file))
            case "backup-db":
                from services.db_snapshot import main_backup

                sys.exit(main_backup())
            case "restore-db":
                from services.db_snapshot import main_restore

                sys.exit(main_restore(args.snapshot, confirmed=args.yes))
            case "provider-backup":
                sys.exit(pgbackrest.main(args))
            case "rotate-tenant-key":
                from services.keys import main_rotate_tenant

                sys.exit(main_rotate_tenant(args.tenant))
            case "mail-intake":
                mail_intake(args.port, args.send_sample)
            case "worker":
                sys.exit(worker(args.once, args.job, args.smtp, args.port, args.send_sample))
            case "send-test-mail":
                send_test_mail(args.brigade, args.port)
            case "recover":
                from services.recovery import main_recover

                sys.exit(main_recover(args.tenant, args.member_code, give_admin=args.give_admin))
    except config.ConfigError as exc:
        sys.exit(f"設定エラー: {exc}")
    except ServiceError as exc:  # refused input: its Japanese message, not a traceback
        sys.exit(f"エラー: {one_line(exc)}")


def one_line(exc: ServiceError) -> str:
    """A refused command's message on one line: each field's message of a ValidationError."""
    if isinstance(exc, ValidationError):
        return " ".join(exc.errors.values())
    return exc.message


if __name__ == "__main__":
    main()
