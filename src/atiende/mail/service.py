"""Queueing and sending outbound e-mail. The only writer of ``outbound_mail`` and
``outbound_mail_attachments``.

``queue_mail`` adds the mail and its ``mail.send`` job to the caller's unit of work, so a mail
leaves only if the change that asked for it commits. The job calls ``deliver``, which builds
the message from the stored row (same bytes, same Message-ID on every attempt) and hands it
to the configured sender. A transport failure raises, so the job runner retries with backoff;
a permanent refusal, or the failure of the last attempt, marks the mail ``failed`` instead.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import PurePosixPath

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.core.db import now
from atiende.core.errors import ValidationFailed
from atiende.core.ids import new_id
from atiende.jobs import service as jobs
from atiende.mail.models import MailStatus, OutboundMail, OutboundMailAttachment
from atiende.mail.sender import MailSender, MailTransportError

log = logging.getLogger(__name__)

SEND_JOB = "mail.send"
# Backoff 5 s, 10 s, 20 s … capped at an hour: twelve attempts keep trying for about 2.4 h.
MAX_ATTEMPTS = 12
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024  # all attachments of one mail together
# The right-hand side of every Message-ID we set: "<mail id hex>@atiende.mail". Fixed when the
# mail is queued (services do not read settings), unique by the mail id.
MESSAGE_ID_DOMAIN = "atiende.mail"

_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file to send with a mail, e.g. ``Attachment("F-0042.pdf", "application/pdf",
    pdf_bytes)``."""

    filename: str
    content_type: str
    content: bytes


async def queue_mail(
    session: AsyncSession,
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    attachments: Sequence[Attachment] = (),
    kind: str,
    tenant_id: uuid.UUID | None = None,
) -> OutboundMail:
    """Add a mail to this unit of work and schedule its sending; nothing is sent unless the
    unit commits. ``tenant_id`` defaults to the session's tenant (none in the system scope).
    Bad input raises ``422`` (``invalid_email``, ``invalid_subject``, ``invalid_attachment``,
    ``mail_too_large``) and adds nothing."""
    address = _valid_address(to)
    clean_subject = _valid_subject(subject)
    files = [_valid_attachment(attachment) for attachment in attachments]
    if sum(len(file.content) for file in files) > MAX_ATTACHMENT_BYTES:
        raise ValidationFailed(
            f"Attachments may not exceed {MAX_ATTACHMENT_BYTES} bytes in all.",
            code="mail_too_large",
            max_bytes=MAX_ATTACHMENT_BYTES,
        )
    if not kind or len(kind) > 100:
        raise ValueError("kind must be 1 to 100 characters")
    mail_id = new_id()
    mail = OutboundMail(
        id=mail_id,
        tenant_id=tenant_id,
        kind=kind,
        to_address=address,
        subject=clean_subject,
        text_body=text,
        html_body=html,
        message_id=f"<{mail_id.hex}@{MESSAGE_ID_DOMAIN}>",
        status=MailStatus.queued,
        attempts=0,
        created_at=now(session),
    )
    session.add(mail)
    await session.flush()  # the tenant is stamped; the attachments refer to the row
    for position, file in enumerate(files):
        session.add(
            OutboundMailAttachment(
                tenant_id=mail.tenant_id,
                mail_id=mail.id,
                position=position,
                filename=file.filename,
                content_type=file.content_type,
                content=file.content,
            )
        )
    await session.flush()
    await jobs.schedule(
        session,
        SEND_JOB,
        {"mail_id": str(mail.id)},
        tenant_id=mail.tenant_id,
        dedupe_key=f"{SEND_JOB}:{mail.id}",
        max_attempts=MAX_ATTEMPTS,
    )
    return mail


def _valid_address(to: str) -> str:
    try:
        return validate_email(to.strip(), check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValidationFailed(
            "Not a valid e-mail address.", code="invalid_email", field="to"
        ) from error


def _valid_subject(subject: str) -> str:
    clean = subject.strip()
    # A line break would let the subject write headers of its own.
    if not clean or len(clean) > 500 or _CONTROL.search(clean):
        raise ValidationFailed(
            "The subject must be one line of 1 to 500 characters.",
            code="invalid_subject",
            field="subject",
        )
    return clean


def _valid_attachment(attachment: Attachment) -> Attachment:
    # Only the last path segment of the name is kept: receivers save it as a file name.
    filename = PurePosixPath(attachment.filename.replace("\\", "/")).name.strip()
    content_type = attachment.content_type.strip().lower()
    if (
        filename in {"", ".", ".."}
        or len(filename) > 255
        or _CONTROL.search(filename)
        or not _MEDIA_TYPE.match(content_type)
        or content_type.startswith(("multipart/", "message/"))
        or len(content_type) > 100
    ):
        raise ValidationFailed(
            "An attachment needs a file name and a media type such as application/pdf.",
            code="invalid_attachment",
            filename=attachment.filename[:255],
        )
    return Attachment(filename, content_type, attachment.content)


def build_message(
    mail: OutboundMail, attachments: Sequence[OutboundMailAttachment], sender_address: str
) -> EmailMessage:
    """The message as it goes on the wire: plain text, or text and HTML as alternatives, then
    the attachments. Date and Message-ID come from the row, so every attempt is identical."""
    message = EmailMessage()
    message["From"] = sender_address
    message["To"] = mail.to_address
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(mail.created_at)
    message["Message-ID"] = mail.message_id
    # Sent by software, not a person: out-of-office robots should not answer (RFC 3834).
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text_body)
    if mail.html_body is not None:
        message.add_alternative(mail.html_body, subtype="html")
    for attachment in attachments:
        maintype, subtype = attachment.content_type.split("/", 1)
        message.add_attachment(
            attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return message


async def deliver(
    session: AsyncSession,
    mail_id: uuid.UUID,
    sender: MailSender,
    *,
    sender_address: str,
    attempt: int,
    last_attempt: bool,
) -> MailStatus | None:
    """Send a queued mail once; returns its status afterwards (``None`` if it no longer
    exists). A mail that is no longer queued is left alone. A transport failure is raised
    for the job runner to retry, unless it is permanent or this is the last attempt: then
    the mail is marked ``failed`` with the error."""
    mail = await session.get(OutboundMail, mail_id)
    if mail is None:
        log.warning("mail %s no longer exists; nothing to send", mail_id)
        return None
    if mail.status != MailStatus.queued:
        return mail.status
    attachments = (
        await session.scalars(
            select(OutboundMailAttachment)
            .where(OutboundMailAttachment.mail_id == mail.id)
            .order_by(OutboundMailAttachment.position)
        )
    ).all()
    mail.attempts = attempt
    try:
        await sender.send(build_message(mail, attachments, sender_address))
    except MailTransportError as error:
        if not (error.permanent or last_attempt):
            raise
        _mark_failed(mail, str(error))
    except Exception as error:
        if not last_attempt:
            raise
        _mark_failed(mail, f"{type(error).__name__}: {error}")
    else:
        mail.status = MailStatus.sent
        mail.sent_at = now(session)
        mail.last_error = None
    await session.flush()
    return mail.status


def _mark_failed(mail: OutboundMail, error: str) -> None:
    log.warning(
        "mail %s to %s failed after %s attempt(s): %s",
        mail.id,
        mail.to_address,
        mail.attempts,
        error,
    )
    mail.status = MailStatus.failed
    mail.last_error = error[:2000]
