"""Outbound e-mail: queued with the change that asks for it, sent by a durable job through a
real SMTP server, retried while the server is down, and never given a new Message-ID."""

from __future__ import annotations

import logging
import uuid
from datetime import date
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.billing.invoice_pdf import InvoiceDocument, Line, Party, render_invoice_pdf
from atiende.core.clock import TestClock
from atiende.core.config import Settings
from atiende.core.db import Database, Scope
from atiende.core.errors import ValidationFailed
from atiende.jobs import service as jobs
from atiende.jobs.models import Job, JobStatus
from atiende.jobs.registry import JobContext, JobRegistry
from atiende.mail import service as mail
from atiende.mail import tasks as mail_tasks
from atiende.mail.models import MailStatus, OutboundMail, OutboundMailAttachment
from atiende.tasks import build_registry
from factories import make_tenant
from smtp_server import SmtpServer

TO = "ana@example.com"
SUBJECT = "Factura ATI-2026-000042 — USD 60.00"
TEXT = "Hola:\n\nAdjuntamos la factura ATI-2026-000042 por USD 60.00.\n"
HTML = "<p>Hola:</p><p>Adjuntamos la factura <b>ATI-2026-000042</b>.</p>\n"


def _invoice_pdf() -> bytes:
    line = Line("Atiende Cloud — 2 agentes", 2, 3000, 6000)
    return render_invoice_pdf(
        InvoiceDocument(
            issuer=Party("Atiende Cloud"),
            customer=Party("Ñandú S.A.", email=TO),
            number="ATI-2026-000042",
            issued_on=date(2026, 1, 5),
            due_on=date(2026, 1, 10),
            currency="USD",
            lines=[line],
            total_cents=6000,
            paid=False,
        )
    )


async def _queue(db: Database, scope: Scope | None = None, **fields: Any) -> OutboundMail:
    values: dict[str, Any] = {
        "to": TO,
        "subject": SUBJECT,
        "text": TEXT,
        "kind": "billing.invoice",
    }
    async with db.session(scope or Scope.system()) as session:
        return await mail.queue_mail(session, **(values | fields))


async def _mail(db: Database, mail_id: uuid.UUID) -> OutboundMail:
    async with db.session(Scope.system()) as session:
        row = await session.get(OutboundMail, mail_id)
        assert row is not None
        return row


async def _job(db: Database, mail_id: uuid.UUID) -> Job:
    async with db.session(Scope.system()) as session:
        job = await session.scalar(select(Job).where(Job.dedupe_key == f"mail.send:{mail_id}"))
        assert job is not None
        return job


async def _count(db: Database, model: type[Any], scope: Scope | None = None) -> int:
    async with db.session(scope or Scope.system(), read_only=True) as session:
        # count(id), not count(*) from the table: only a statement that names the model's
        # columns gets the tenant filter.
        return int(await session.scalar(select(func.count(model.id))) or 0)


def _only_eml(directory: Path) -> EmailMessage:
    [path] = list(directory.glob("*.eml"))
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert isinstance(message, EmailMessage)
    return message


def _smtp_runner(
    db: Database, settings: Settings, server: SmtpServer, registry: JobRegistry | None = None
) -> jobs.JobRunner:
    smtp = settings.model_copy(update=server.settings())
    return jobs.JobRunner(db, registry or build_registry(), smtp)


async def test_a_mail_is_not_visible_to_workers_before_its_unit_of_work_commits(
    db: Database, settings: Settings
) -> None:
    with SmtpServer() as server:
        runner = _smtp_runner(db, settings, server)
        async with db.session(Scope.system()) as session:
            await mail.queue_mail(session, to=TO, subject=SUBJECT, text=TEXT, kind="test")
            assert await _count(db, Job) == 0, "a worker cannot see the job yet"
            assert await _count(db, OutboundMail) == 0
        assert server.messages == [], "queueing sends nothing by itself"
        assert await runner.run_due() == 1
        assert len(server.messages) == 1


async def test_a_mail_queued_in_a_unit_of_work_that_rolls_back_is_never_sent(
    db: Database, settings: Settings
) -> None:
    with SmtpServer() as server:
        runner = _smtp_runner(db, settings, server)

        async def failing_change() -> None:
            async with db.session(Scope.system()) as session:
                await mail.queue_mail(session, to=TO, subject=SUBJECT, text=TEXT, kind="test")
                raise RuntimeError("the business change failed")

        with pytest.raises(RuntimeError, match="business change failed"):
            await failing_change()
        assert await runner.run_due() == 0
        assert server.messages == []
        assert await _count(db, OutboundMail) == 0


async def test_the_job_sends_one_message_with_headers_bodies_and_the_pdf_intact(
    db: Database, settings: Settings, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    pdf = _invoice_pdf()
    with SmtpServer() as server:
        runner = _smtp_runner(db, settings, server)
        queued = await _queue(
            db,
            Scope.tenant(tenant.id),
            html=HTML,
            attachments=[mail.Attachment("ATI-2026-000042.pdf", "application/pdf", pdf)],
        )
        assert queued.tenant_id == tenant.id
        assert queued.message_id == f"<{queued.id.hex}@{mail.MESSAGE_ID_DOMAIN}>"
        assert await runner.run_due() == 1
        assert await runner.run_due() == 0

    [received] = server.messages
    assert received.rcpt_tos == [TO]
    message = received.message
    assert message["From"] == settings.mail_from
    assert message["To"] == TO
    assert message["Subject"] == SUBJECT
    assert message["Message-ID"] == queued.message_id
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/mixed"
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None
    assert plain.get_content() == TEXT
    assert html is not None
    assert html.get_content() == HTML
    [attachment] = list(message.iter_attachments())
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_filename() == "ATI-2026-000042.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == pdf

    row = await _mail(db, queued.id)
    assert (row.status, row.attempts, row.sent_at, row.last_error) == (
        MailStatus.sent,
        1,
        clock.now(),
        None,
    )
    assert (await _job(db, queued.id)).tenant_id == tenant.id


async def test_while_the_server_is_down_the_mail_is_retried_then_sent_once_it_is_up(
    db: Database, settings: Settings, clock: TestClock
) -> None:
    server = SmtpServer()  # not started yet: connections to its port are refused
    runner = _smtp_runner(db, settings, server)
    queued = await _queue(db)
    assert await runner.run_due() == 1
    job = await _job(db, queued.id)
    assert (job.status, job.attempts) == (JobStatus.pending, 1)
    assert "MailTransportError" in str(job.last_error)
    assert (await _mail(db, queued.id)).status == MailStatus.queued

    with server:
        assert await runner.run_due() == 0, "not before the backoff"
        clock.advance(jobs.backoff_seconds(1))
        assert await runner.run_due() == 1
    assert len(server.messages) == 1
    row = await _mail(db, queued.id)
    assert (row.status, row.attempts, row.sent_at) == (MailStatus.sent, 2, clock.now())
    assert (await _job(db, queued.id)).status == JobStatus.done


async def test_a_retry_after_a_crash_after_sending_keeps_the_message_id(
    db: Database, settings: Settings, clock: TestClock
) -> None:
    crashes = ["once"]

    async def send_then_crash(
        session: AsyncSession, payload: dict[str, Any], ctx: JobContext
    ) -> None:
        await mail_tasks.send_mail(session, payload, ctx)
        if crashes:
            crashes.pop()
            raise RuntimeError("the worker died before its commit")

    registry = JobRegistry()
    registry.register(mail.SEND_JOB, send_then_crash)
    pdf = _invoice_pdf()
    with SmtpServer() as server:
        runner = _smtp_runner(db, settings, server, registry)
        queued = await _queue(
            db, attachments=[mail.Attachment("factura.pdf", "application/pdf", pdf)]
        )
        await runner.run_due()
        assert len(server.messages) == 1
        assert (await _mail(db, queued.id)).status == MailStatus.queued, "rolled back"
        clock.advance(jobs.backoff_seconds(1))
        await runner.run_due()

    first, second = (received.message for received in server.messages)
    assert first["Message-ID"] == second["Message-ID"] == queued.message_id
    assert first["Date"] == second["Date"]
    for message in (first, second):
        [attachment] = list(message.iter_attachments())
        assert isinstance(attachment, EmailMessage)
        assert attachment.get_content() == pdf
    assert (await _mail(db, queued.id)).status == MailStatus.sent


async def test_a_mail_that_keeps_failing_ends_failed_with_its_last_error(
    db: Database, settings: Settings, clock: TestClock
) -> None:
    runner = _smtp_runner(db, settings, SmtpServer())  # never started
    queued = await _queue(db)
    for _ in range(mail.MAX_ATTEMPTS + 2):
        await runner.run_due()
        clock.advance(jobs.MAX_BACKOFF_SECONDS)
    row = await _mail(db, queued.id)
    assert (row.status, row.attempts, row.sent_at) == (MailStatus.failed, mail.MAX_ATTEMPTS, None)
    assert "SMTPConnectError" in str(row.last_error)
    job = await _job(db, queued.id)
    assert (job.status, job.attempts) == (JobStatus.done, mail.MAX_ATTEMPTS)


async def test_a_recipient_the_server_refuses_fails_at_once(
    db: Database, settings: Settings
) -> None:
    with SmtpServer(refuse=frozenset({"nobody@example.com"})) as server:
        runner = _smtp_runner(db, settings, server)
        queued = await _queue(db, to="nobody@example.com")
        assert await runner.run_due() == 1
    assert server.messages == []
    row = await _mail(db, queued.id)
    assert (row.status, row.attempts) == (MailStatus.failed, 1)
    assert "550 5.1.1 No such user" in str(row.last_error)
    assert (await _job(db, queued.id)).status == JobStatus.done


async def test_the_file_backend_writes_a_parseable_eml(db: Database, settings: Settings) -> None:
    assert settings.mail_backend == "file"
    pdf = _invoice_pdf()
    queued = await _queue(
        db, html=HTML, attachments=[mail.Attachment("../../factura.pdf", "application/pdf", pdf)]
    )
    assert await jobs.JobRunner(db, build_registry(), settings).run_due() == 1

    message = _only_eml(settings.data_dir / "mail")
    assert message["Message-ID"] == queued.message_id
    assert (message["To"], message["Subject"]) == (TO, SUBJECT)
    [attachment] = list(message.iter_attachments())
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_filename() == "factura.pdf", "only the last path segment is kept"
    assert attachment.get_content() == pdf
    assert (await _mail(db, queued.id)).status == MailStatus.sent


async def test_the_log_backend_only_logs(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    queued = await _queue(db)
    caplog.set_level(logging.INFO, logger="atiende.mail.sender")
    logged = settings.model_copy(update={"mail_backend": "log"})
    assert await jobs.JobRunner(db, build_registry(), logged).run_due() == 1
    assert queued.message_id in caplog.text
    assert not (settings.data_dir / "mail").exists()
    assert (await _mail(db, queued.id)).status == MailStatus.sent


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"to": "not-an-address"}, "invalid_email"),
        ({"to": "ana@example.com, eve@example.com"}, "invalid_email"),
        ({"subject": "Hola\r\nBcc: eve@example.com"}, "invalid_subject"),
        ({"subject": "   "}, "invalid_subject"),
        ({"attachments": [mail.Attachment("a.pdf", "pdf", b"%PDF")]}, "invalid_attachment"),
        (
            {"attachments": [mail.Attachment("../", "application/pdf", b"%PDF")]},
            "invalid_attachment",
        ),
        (
            {
                "attachments": [
                    mail.Attachment("big.bin", "application/octet-stream", bytes(6 << 20)),
                    mail.Attachment("big2.bin", "application/octet-stream", bytes(6 << 20)),
                ]
            },
            "mail_too_large",
        ),
    ],
)
async def test_bad_input_is_refused_with_422_and_queues_nothing(
    db: Database, fields: dict[str, Any], code: str
) -> None:
    values: dict[str, Any] = {"to": TO, "subject": SUBJECT, "text": TEXT, "kind": "test"}
    async with db.session(Scope.system()) as session:
        with pytest.raises(ValidationFailed) as refused:
            await mail.queue_mail(session, **(values | fields))
        # The unit of work carries on and commits: nothing was added to it.
    assert (refused.value.status_code, refused.value.error_code) == (422, code)
    assert await _count(db, OutboundMail) == 0
    assert await _count(db, OutboundMailAttachment) == 0
    assert await _count(db, Job) == 0


async def test_a_tenant_sees_only_its_own_mail(db: Database) -> None:
    mine, other = await make_tenant(db), await make_tenant(db)
    await _queue(
        db, Scope.tenant(mine.id), attachments=[mail.Attachment("a.txt", "text/plain", b"hi")]
    )
    await _queue(db)  # the vendor's own mail, no tenant
    assert await _count(db, OutboundMail, Scope.tenant(mine.id)) == 1
    assert await _count(db, OutboundMailAttachment, Scope.tenant(mine.id)) == 1
    assert await _count(db, OutboundMail, Scope.tenant(other.id)) == 0
    assert await _count(db, OutboundMailAttachment, Scope.tenant(other.id)) == 0
    assert await _count(db, OutboundMail) == 2


def test_smtp_starttls_and_implicit_tls_cannot_both_be_on() -> None:
    with pytest.raises(ValidationError, match="not both"):
        Settings(smtp_starttls=True, smtp_tls=True)
