"""Transports for outbound mail: an SMTP relay, .eml files for development, or the log.

A sender takes a finished ``EmailMessage`` and either delivers it or raises
``MailTransportError``; retrying is the job runner's business, not the sender's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import tempfile
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Protocol

import aiosmtplib

from atiende.core.config import Settings

log = logging.getLogger(__name__)


class MailTransportError(Exception):
    """The message was not delivered. ``permanent`` when sending it again cannot help (the
    server refused the recipient or the content with a 5xx reply)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class MailSender(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` to the addresses in its To header, or raise
        ``MailTransportError``."""
        ...


class SmtpSender:
    """Hands each message to an SMTP relay over a fresh connection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        settings = self.settings
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=settings.smtp_password,
                use_tls=settings.smtp_tls,
                # False rather than None: no STARTTLS attempt unless it is asked for, so an
                # internal relay with a self-signed certificate does not fail unexpectedly.
                start_tls=settings.smtp_starttls,
                timeout=settings.smtp_timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [refused.code for refused in error.recipients]
            detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in error.recipients)
            raise MailTransportError(
                f"recipients refused: {detail}", permanent=all(code >= 500 for code in codes)
            ) from error
        except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPDataError) as error:
            raise MailTransportError(
                f"{type(error).__name__}: {error.code} {error.message}",
                permanent=error.code >= 500,
            ) from error
        except (aiosmtplib.SMTPException, OSError) as error:
            # Connection refused or lost, time-outs, a failed login: worth another try later.
            raise MailTransportError(f"{type(error).__name__}: {error}") from error


class FileSender:
    """Writes each message to ``<directory>/<date>-<message id>.eml``, where a developer can
    open it. Sending the same message again overwrites its file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, message: EmailMessage) -> Path:
        message_id = str(message["Message-ID"] or "").strip("<>").split("@")[0]
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", message_id) or "message"
        date = message["Date"]
        if date:
            stem = f"{parsedate_to_datetime(str(date)):%Y%m%d-%H%M%S}-{stem}"
        return self.directory / f"{stem}.eml"

    async def send(self, message: EmailMessage) -> None:
        path = self.path_for(message)
        try:
            await asyncio.to_thread(self._write, message.as_bytes(), path)
        except OSError as error:
            raise MailTransportError(f"{type(error).__name__}: {error}") from error
        log.info("mail %s to %s written to %s", message["Message-ID"], message["To"], path)

    def _write(self, data: bytes, path: Path) -> None:
        # Write then rename, so a reader never sees half a message.
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        temporary = Path(name)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            temporary.replace(path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


class LogSender:
    """Only logs that a message would have been sent (recipient, subject, Message-ID)."""

    async def send(self, message: EmailMessage) -> None:
        log.info(
            "mail %s to %s not sent (log backend): %s",
            message["Message-ID"],
            message["To"],
            message["Subject"],
        )


def sender_for(settings: Settings) -> MailSender:
    """The transport ``ATIENDE_MAIL_BACKEND`` names."""
    if settings.mail_backend == "smtp":
        return SmtpSender(settings)
    if settings.mail_backend == "log":
        return LogSender()
    return FileSender(settings.data_dir / "mail")
