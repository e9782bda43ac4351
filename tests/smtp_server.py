"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, in a thread of this process, keeping
every message it accepts.

    with SmtpServer() as server:
        settings = settings.model_copy(update=server.settings())
        ...                                   # send through ATIENDE_MAIL_BACKEND=smtp
        [received] = server.messages
        assert received.message["Subject"] == "Hola"

``SmtpServer(port)`` reserves nothing: create it, use ``server.port`` while it is down, and
``start()`` it later to test a relay that comes back. ``refuse`` lists recipients it answers
with ``550``.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        # SMTP carries CRLF line ends; parsed with LF, bodies compare equal to what was sent.
        parsed = BytesParser(policy=policy.default).parsebytes(self.raw.replace(b"\r\n", b"\n"))
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.server.refuse:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.server.lock:
            self.server.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
        return "250 Message accepted"


class SmtpServer:
    def __init__(self, port: int | None = None, *, refuse: frozenset[str] = frozenset()) -> None:
        self.port = port or free_port()
        self.refuse = refuse
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    def settings(self) -> dict[str, Any]:
        """Settings overrides that send through this server."""
        return {"mail_backend": "smtp", "smtp_host": "127.0.0.1", "smtp_port": self.port}

    def start(self) -> SmtpServer:
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
