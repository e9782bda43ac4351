"""Webhook ingest benchmark: signed WhatsApp webhooks posted at a running Atiende server.

    python bench/ingest.py [--count 3000] [--concurrency 16] [--redeliver 0.1]
                           [--max-seconds 60] [--database-url URL] [--json]

A real ``atiende serve`` process (loopback only, embedded worker off so only intake is
measured) is started on a fresh database with one tenant, one queue and one WhatsApp
channel. The client posts ``--count`` distinct webhooks, each one inbound text message
signed with ``X-Hub-Signature-256`` like Meta signs them, from ``--concurrency`` connections,
and re-posts a share of them (``--redeliver``) as a provider redelivery would. Measured:
acknowledgement latency (request sent → 200), messages acknowledged per second, the
server process's CPU time per request (Linux), and, from the database afterwards, how many
were stored, lost (acknowledged but not stored) or stored twice. The ceiling is the same
client against a bare endpoint (``GET /healthz``) of the same server in the same run.

The client is deliberately lean (HTTP/1.1 on asyncio streams over kept-alive connections,
every request's bytes built before the clock starts), so that on a small machine it is the
server that is measured, not the client: a full HTTP client in this process capped both
figures at a few hundred requests a second.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from atiende.channels.base import ChannelKind
from atiende.channels.models import InboundEvent
from atiende.channels.service import AccountCreate, create_account
from atiende.core.config import Settings
from atiende.core.db import Database, Scope
from atiende.core.migrate import upgrade_async
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.routing import admin as routing_admin
from atiende.routing.schemas import QueueCreate
from atiende.tenancy import service as tenancy
from atiende.tenancy.schemas import TenantCreate

APP_SECRET = "bench-app-secret"  # noqa: S105 - a throw-away test value
SECRET_KEY = "bench-secret-key-" + "x" * 32
TARGET_MSGS_PER_S = 1500.0
TARGET_ACK_P99_MS = 100.0
TARGET_RATIO = 0.4
WARM_UP = 200  # requests of each kind before their phase is measured


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _setup(url: str, data_dir: Path, public_url: str) -> str:
    await upgrade_async(url)
    settings = Settings(
        data_dir=data_dir, database_url=url, secret_key=SECRET_KEY, public_url=public_url
    )
    db = Database(url)
    try:
        async with db.session(Scope.system()) as session:
            tenant = await tenancy.create_tenant(
                session,
                Actor.system(),
                TenantCreate(slug=f"bench-{uuid.uuid4().hex[:6]}", name="Bench"),
            )
        admin = Actor(user_id=None, email=None, role=Role.admin, tenant_id=tenant.id)
        async with db.session(Scope.tenant(tenant.id)) as session:
            queue = await routing_admin.create_queue(
                session,
                Actor.system(),
                QueueCreate.model_validate({"name": "WhatsApp", "channels": ["whatsapp"]}),
            )
            account = await create_account(
                session,
                admin,
                AccountCreate(
                    kind=ChannelKind.whatsapp,
                    name="Bench number",
                    queue_id=queue.id,
                    settings={"phone_number_id": "106540352242922", "waba_id": "102290129340398"},
                    secrets={"access_token": "t", "app_secret": APP_SECRET, "verify_token": "v"},
                ),
                settings=settings,
            )
            return account.webhook_key
    finally:
        await db.dispose()


def _webhook(n: int) -> bytes:
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": "106540352242922",
                            },
                            "contacts": [
                                {"profile": {"name": f"Cliente {n}"}, "wa_id": f"52155{n:08d}"}
                            ],
                            "messages": [
                                {
                                    "from": f"52155{n:08d}",
                                    "id": f"wamid.bench{n:012d}{uuid.uuid4().hex[:8]}",
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": f"Hola, mensaje {n}"},
                                }
                            ],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-hub-signature-256": f"sha256={digest}"}


Request = tuple[bytes, int]  # the request's bytes as sent, and the key of its message


def _request(method: str, path: str, port: int, body: bytes | None = None) -> bytes:
    """One HTTP/1.1 request, built before the clock starts so the client costs little."""
    lines = [f"{method} {path} HTTP/1.1", f"host: 127.0.0.1:{port}"]
    if body is not None:
        lines += [f"{k}: {v}" for k, v in _signed(body).items()]
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> tuple[int, bool]:
    """Send one request on a kept-alive connection and read the whole answer; returns the
    status and whether the server keeps the connection open."""
    writer.write(data)
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].split(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length, chunked, keep = 0, False, True
    for line in header_lines:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            keep = value != b"close"
    if not chunked:
        await reader.readexactly(length)
        return status, keep
    while size := int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16):
        await reader.readexactly(size + 2)
    await reader.readuntil(b"\r\n")  # no trailers
    return status, keep


async def _drive(
    port: int, requests: list[Request], concurrency: int, max_seconds: float
) -> tuple[list[float], list[int], float, set[int]]:
    """Send everything from ``concurrency`` kept-alive connections (raw HTTP/1.1 on asyncio
    streams: a full HTTP client in this process would be the bottleneck, not the server);
    returns latencies, statuses, the elapsed time and the keys of the requests answered 200."""
    latencies: list[float] = []
    statuses: list[int] = []
    acked: set[int] = set()
    pending = iter(requests)
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for data, key in pending:
                if time.perf_counter() >= deadline:
                    return
                started = time.perf_counter()
                try:
                    status, keep = await _exchange(reader, writer, data)
                except (ConnectionError, asyncio.IncompleteReadError):
                    status, keep = 0, False  # no answer: counted as an error, not acked
                else:
                    latencies.append((time.perf_counter() - started) * 1000)
                statuses.append(status)
                if status == 200:
                    acked.add(key)
                if not keep:
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    started = time.perf_counter()
    # A server that stops answering fails the run instead of hanging it.
    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(concurrency))), max_seconds + 30
    )
    elapsed = time.perf_counter() - started
    return latencies, statuses, elapsed, acked


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux): what the server spent, whatever
    else the machine was doing meanwhile."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _per_request_ms(before: float | None, after: float | None, requests: int) -> float | None:
    if before is None or after is None or not requests:
        return None
    return round((after - before) / requests * 1000, 3)


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else 0.0


async def _count(url: str) -> tuple[int, int]:
    db = Database(url)
    try:
        async with db.session(Scope.system(), read_only=True) as session:
            rows = int(await session.scalar(select(func.count(InboundEvent.id))) or 0)
            distinct = int(
                await session.scalar(
                    select(func.count(func.distinct(InboundEvent.provider_event_id)))
                )
                or 0
            )
        return rows, distinct
    finally:
        await db.dispose()


def _wait_ready(base: str, process: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        try:
            if httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    key = await _setup(url, tmp, base)
    atiende = shutil.which("atiende", path=str(Path(sys.executable).parent)) or "atiende"
    env = {
        **os.environ,
        "ATIENDE_DATA_DIR": str(tmp),
        "ATIENDE_DATABASE_URL": url,
        "ATIENDE_SECRET_KEY": SECRET_KEY,
        "ATIENDE_PUBLIC_URL": base,
        "ATIENDE_EMBEDDED_WORKER": "false",
        "ATIENDE_LOG_LEVEL": "warning",
        "ATIENDE_HOST": "127.0.0.1",
        "ATIENDE_PORT": str(port),
    }
    env.pop("ATIENDE_REDIS_URL", None)
    server = subprocess.Popen(  # noqa: S603, ASYNC220 - our own command, started once
        [atiende, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_ready(base, server)
        path = f"/webhooks/whatsapp/{key}"
        bodies = [_webhook(n) for n in range(args.count)]
        # Both phases are warmed up alike, with requests of their own kind: the first
        # webhooks compile statements and open the intake's connections. The warm-up
        # webhooks are stored too (and counted in the checks below), not in the rates.
        warm_up = [
            (_request("POST", path, port, _webhook(args.count + n)), args.count + n)
            for n in range(WARM_UP)
        ]
        again = random.Random(7).sample(range(args.count), int(args.count * args.redeliver))
        healthz = _request("GET", "/healthz", port)
        bare: list[Request] = [(healthz, n) for n in range(args.count)]
        await _drive(port, bare[:WARM_UP], args.concurrency, 30)
        cpu_start = _cpu_seconds(server.pid)
        ceiling_lat, ceiling_status, ceiling_elapsed, _ = await _drive(
            port, bare, args.concurrency, args.max_seconds
        )
        cpu_between = _cpu_seconds(server.pid)
        _, _, _, warm_acked = await _drive(port, warm_up, args.concurrency, 30)
        cpu_webhooks = _cpu_seconds(server.pid)
        posts: list[Request] = [(_request("POST", path, port, b), n) for n, b in enumerate(bodies)]
        posts += [(_request("POST", path, port, bodies[n]), n) for n in again]
        latencies, statuses, elapsed, acked_keys = await _drive(
            port, posts, args.concurrency, args.max_seconds
        )
        cpu_end = _cpu_seconds(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    rows, distinct = await _count(url)
    acked = sum(1 for s in statuses if s == 200)
    unique_sent = min(len(statuses), args.count)
    # Every acknowledged message must be stored once: distinct stored ids cover them all.
    msgs_per_s = acked / elapsed if elapsed else 0.0
    ceiling = (
        sum(1 for s in ceiling_status if s == 200) / ceiling_elapsed if ceiling_elapsed else 0.0
    )
    result: dict[str, Any] = {
        "backend": "postgresql" if url.startswith("postgresql") else "sqlite",
        "sent": len(statuses),
        "unique_sent": unique_sent,
        "redelivered": len(statuses) - unique_sent,
        "acked": acked,
        "errors": len(statuses) - acked,
        "warm_up": WARM_UP,
        "stored": rows,
        "duplicates": rows - distinct,
        "lost": max(0, len(acked_keys | warm_acked) - distinct),
        "msgs_per_s": round(msgs_per_s, 1),
        "ack_p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "ack_p99_ms": round(_percentile(latencies, 0.99), 2),
        "ceiling_msgs_per_s": round(ceiling, 1),
        "ceiling_p50_ms": round(statistics.median(ceiling_lat), 2) if ceiling_lat else None,
        "server_cpu_ms_per_msg": _per_request_ms(cpu_webhooks, cpu_end, len(statuses)),
        "ceiling_server_cpu_ms_per_req": _per_request_ms(
            cpu_start, cpu_between, len(ceiling_status)
        ),
        "ratio": round(msgs_per_s / ceiling, 3) if ceiling else None,
        "concurrency": args.concurrency,
        "targets": {
            "msgs_per_s_min": TARGET_MSGS_PER_S,
            "ack_p99_ms_max": TARGET_ACK_P99_MS,
            "ratio_min": TARGET_RATIO,
            "lost": 0,
            "duplicates": 0,
        },
    }
    result["meets_targets"] = (
        msgs_per_s >= TARGET_MSGS_PER_S
        and result["ack_p99_ms"] <= TARGET_ACK_P99_MS
        and (result["ratio"] or 0) >= TARGET_RATIO
        and result["lost"] == 0
        and result["duplicates"] == 0
    )
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--redeliver", type=float, default=0.1)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--database-url", default=None, help="postgresql+asyncpg://… (empty DB)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 1 if result["lost"] or result["duplicates"] else 0


if __name__ == "__main__":
    sys.exit(main())
