"""A customer's endpoint for the generic API channel, and a little network around it.

``FakeCustomer`` receives Atiende's outbound messages at ``POST /hook`` (answering ``200
{"id": ...}`` unless a test queued other answers) and serves attachment files, with
redirects, recording every request. ``TlsLiveServer`` serves it over HTTPS with a
self-signed certificate for ``localhost``. ``LoopbackInternet`` is an httpx transport that
routes connections to chosen public addresses to this machine, and refuses every other
destination, so tests can act out "a public host" without leaving the machine.
"""

from __future__ import annotations

import datetime as dt
import itertools
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from factories import LiveServer


@dataclass
class Answer:
    status: int
    body: Any = None  # JSON; a bytes body is sent as it is
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StoredFile:
    content_type: str
    content: bytes
    declare_length: bool = True


@dataclass
class FakeCustomer:
    requests: list[Recorded] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    files: dict[str, StoredFile] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def build_app(self) -> FastAPI:
        app = FastAPI()

        async def record(request: Request) -> None:
            self.requests.append(
                Recorded(
                    request.method, request.url.path, dict(request.headers), await request.body()
                )
            )

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            await record(request)
            if not self.answers:
                return JSONResponse({"id": f"cust-{next(self._ids)}", "accepted": True})
            answer = self.answers.pop(0)
            if isinstance(answer.body, bytes):
                return Response(answer.body, status_code=answer.status, headers=answer.headers)
            if answer.body is None:
                return Response(status_code=answer.status, headers=answer.headers)
            return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)

        @app.get("/files/{name}")
        async def file(name: str, request: Request) -> Response:
            await record(request)
            if name not in self.files:
                return JSONResponse({"error": "not found"}, status_code=404)
            stored = self.files[name]
            if stored.declare_length:
                return Response(stored.content, media_type=stored.content_type)

            async def chunks() -> AsyncIterator[bytes]:
                for start in range(0, len(stored.content), 4096):
                    yield stored.content[start : start + 4096]

            return StreamingResponse(chunks(), media_type=stored.content_type)

        @app.get("/busy")
        async def busy(request: Request) -> Response:
            await record(request)
            return JSONResponse({"error": "busy"}, status_code=503, headers={"Retry-After": "12"})

        @app.get("/redirect")
        async def redirect(to: str, request: Request) -> Response:
            await record(request)
            return RedirectResponse(to, status_code=302)

        return app


class TlsLiveServer(LiveServer):
    """``LiveServer`` over HTTPS with the given certificate."""

    def __init__(self, app: FastAPI, certfile: Path, keyfile: Path) -> None:
        super().__init__(app)
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=0,
                log_level="warning",
                lifespan="on",
                ssl_certfile=str(certfile),
                ssl_keyfile=str(keyfile),
            )
        )

    @property
    def https(self) -> str:
        return f"https://localhost:{self.port}"


def localhost_certificate(directory: Path) -> tuple[Path, Path, ssl.SSLContext]:
    """A self-signed certificate for ``localhost``: its files, and a client context that
    trusts only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(cafile=str(certfile))
    return certfile, keyfile, context


class LoopbackInternet(httpx.AsyncBaseTransport):
    """Connections to the public addresses in ``routes`` reach 127.0.0.1 instead; any other
    destination is refused, so nothing leaves the machine."""

    def __init__(self, routes: set[str]) -> None:
        self.routes = routes
        self.connected_to: list[str] = []
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.connected_to.append(host)
        if host in self.routes:
            request.url = request.url.copy_with(host="127.0.0.1")
        elif host != "127.0.0.1":
            raise httpx.ConnectError(f"no route to {host}", request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
