"""The mail intake process end to end on loopback (#20): SMTP in, incident out; a brigade's IMAP
mailbox polled; the demo's sample mail read completely by the example profile."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable, Iterator

import pytest
from sqlmodel import select

from integrations.mail import free_loopback_port, send_mail
from models.dispatch import InboundMail, MailTransport
from services import tenants
from services.db import unit_of_work
from services.demo import seed_demo
from services.demo_data import DEMO_BRIGADE
from services.dispatch import incidents, sources
from services.dispatch.sources import SourceInput
from services.dispatch.worker import MailIntake, send_sample
from tests.dispatch_factories import SENDER, body, mail, make_source
from tests.factories import PLATFORM, admin, make_tenant
from tests.fakes.imap_server import FakeImap


def eventually(check: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def running(own_database) -> Iterator[Callable[..., MailIntake]]:
    """Intakes started on a free loopback port, on a database of this test's own (the intake
    polls every brigade's mailbox, and the shared database holds other tests' brigades)."""
    started: list[MailIntake] = []

    def start(**kwargs) -> MailIntake:
        intake = MailIntake(port=free_loopback_port(), **kwargs)
        intake.start()
        started.append(intake)
        return intake

    yield start
    for intake in started:
        intake.stop()


def test_a_mail_sent_over_smtp_becomes_an_incident(running):
    tenant = make_tenant()
    source = make_source(tenant)
    intake = running(imap=False)
    send_mail(
        mail(source.address, body()),
        host="127.0.0.1",
        port=intake.receiver.port,
        mail_from=SENDER,
        rcpt_tos=[source.address],
    )
    (incident,) = incidents.list_incidents(admin(tenant))
    assert incident.kind == "建物火災" and incident.units == ("第1分団", "第2分団")


def test_an_unknown_recipient_is_refused_at_rcpt_and_noted(running, caplog):
    intake = running(imap=False)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send_mail(
            mail("dispatch+" + "0" * 24 + "@localhost", body()),
            host="127.0.0.1",
            port=intake.receiver.port,
            mail_from=SENDER,
            rcpt_tos=["dispatch+" + "0" * 24 + "@localhost"],
        )
    assert "refused mail to an unknown address at localhost" in caplog.text
    assert "0" * 24 not in caplog.text


def test_the_demo_brigade_receives_its_sample_mail_completely_read(running):
    """What `make run` does: seed the demo, start the intake, send the sample."""
    seeded = seed_demo()
    assert seeded.created
    intake = running(imap=False)
    address = send_sample(DEMO_BRIGADE["name"], port=intake.receiver.port)
    tenant = tenants.get_tenant_by_name(PLATFORM, DEMO_BRIGADE["name"]).id
    (incident,) = incidents.list_incidents(admin(tenant))
    assert address.startswith("dispatch+")
    assert not incident.needs_review, incident.review_reasons
    assert incident.kind == "建物火災" and incident.occurred_at is not None
    assert incident.units == ("第1分団", "第3分団")
    assert incident.landmark == "髙橋商店"  # CP50220 under an ISO-2022-JP label, kept


def test_a_brigade_mailbox_is_polled_and_its_mail_marked_seen(running):
    tenant = make_tenant()
    with FakeImap() as server:
        source = make_source(
            tenant,
            transport=MailTransport.IMAP,
            imap_host=server.host,
            imap_port=server.port,
            imap_ssl=False,
            imap_username=server.username,
            imap_password=server.password,
        )
        uid = server.deliver(mail("dispatch@example.jp", body()))
        intake = running(imap=True)
        assert eventually(lambda: server.is_seen(uid))
        (incident,) = incidents.list_incidents(admin(tenant))
        assert incident.reference == "2026-00123"
        with unit_of_work(tenant) as db:
            row = db.exec(select(InboundMail).where(InboundMail.tenant_id == tenant)).one()
        assert row.transport == "imap" and row.source_id == source.id
        intake.stop()


def test_a_mailbox_added_or_disabled_later_is_picked_up_by_the_sweep(running):
    tenant = make_tenant()
    intake = running(imap=True)
    with FakeImap() as server:
        imap = {
            "transport": MailTransport.IMAP,
            "imap_host": server.host,
            "imap_port": server.port,
            "imap_ssl": False,
            "imap_username": server.username,
            "imap_password": server.password,
        }
        source = make_source(tenant, **imap)
        uid = server.deliver(mail("dispatch@example.jp", body()))
        intake.refresh_pollers()  # what each sweep does
        assert eventually(lambda: server.is_seen(uid))
        (stop, thread) = next(iter(intake.pollers.values()))
        assert server.password not in repr(next(iter(intake.pollers)))
        settings = {k: getattr(source, k) for k in ("name", "senders", "profile")}
        sources.update_source(
            admin(tenant),
            source.id,
            SourceInput(**settings, **{**imap, "imap_password": ""}, active=False),
            expected_version=source.version,
        )
        intake.refresh_pollers()
        assert intake.pollers == {} and stop.is_set()
        thread.join(timeout=10)
        assert not thread.is_alive()
