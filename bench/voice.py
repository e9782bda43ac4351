"""Voice benchmark: real SIP calls through a real Asterisk into Atiende's call control.

    python bench/voice.py [--calls 50] [--talk-ms 4000] [--rate 50] [--database-url URL]
                          [--json]

Needs root and the project's Asterisk (``scripts/asterisk.sh setup`` builds it; this script
starts it when it is not running). On a fresh database it creates a tenant with one voice
queue, ``--calls`` agents (voice licence, one extension each, all available) and a number.
Asterisk gets the configuration ``atiende pbx config`` would print for them, plus a test
trunk. One sipp process registers every extension from one address and then answers as all
the agents' phones (ringing 200 ms, then holding the call until the PBX hangs up); another
places ``--calls`` calls at ``--rate`` calls per second, each hanging up ``--talk-ms`` after
it is answered. Call control (``atiende.voice.calls``) and the routing engine run in this
process, so its CPU time is Atiende's.

Printed: ``calls``, ``completed`` (the caller talked to an agent and the call ended
normally), ``lost`` (placed, but never reached an agent or never ended), ``ari_events_per_s``
(events call control handled per second of the run), ``offer_latency_p50_ms`` /
``offer_latency_p99_ms`` (the caller's enqueue committed → the agent's phone reported
ringing by Asterisk) and ``cpu_s_per_call`` (this process's CPU seconds per call).
Target: 0 lost and offer p99 ≤ 150 ms at 50 concurrent calls.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("ATIENDE_PASSWORD_HASHING", "cheapest")  # set-up users, not measured

from sqlalchemy import select

from atiende.core.bus import InProcessBus
from atiende.core.config import Settings
from atiende.core.db import Database, Scope
from atiende.core.migrate import upgrade_async
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.identity.schemas import UserCreate
from atiende.routing import service as routing
from atiende.routing.models import LicenceType, Presence, Queue, QueueMember
from atiende.tenancy import service as tenancy
from atiende.tenancy.schemas import TenantCreate
from atiende.voice import service as voice
from atiende.voice.ari import AriClient, AriError
from atiende.voice.calls import CallControl
from atiende.voice.models import Call, Extension, VoiceNumber
from atiende.voice.pbx import PbxSetup, PhoneSecret, render

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "tests" / "voice_real" / "sipp"
sys.path.insert(0, str(ROOT / "tests"))
from voice_real.harness import (  # noqa: E402 - the test harness installs the configuration
    ARI_PASSWORD,
    ARI_URL,
    ARI_USERNAME,
    HOST,
    SIP_PORT,
    Asterisk,
    session_lock,
    with_trunk,
)

OFFER_P99_CEILING_MS = 150.0
DID = "5557000"
CALLER = "+525511112222"
AGENT_PORT = 16010
AGENT_MEDIA_PORT = 19920
CALLER_PORT = 16020
CALLER_MEDIA_PORT = 19960
FIRST_EXTENSION = 3001


def _percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _seed(db: Database, settings: Settings, agents: int) -> tuple[str, list[PhoneSecret]]:
    def user(email: str, role: Role, tenant_id: uuid.UUID) -> UserCreate:
        return UserCreate(
            email=email, name=email, role=role, password="bench-password", tenant_id=tenant_id
        )

    async with db.session(Scope.system()) as session:
        tenant = await tenancy.create_tenant(
            session,
            Actor.system(),
            TenantCreate(slug=f"bench-{uuid.uuid4().hex[:6]}", name="Voice bench"),
        )
        await session.flush()
        admin = await identity.create_user(
            session, Actor.system(), user("admin@bench.example.com", Role.admin, tenant.id)
        )
        people = [
            await identity.create_user(
                session,
                Actor.system(),
                user(f"agent{index}@bench.example.com", Role.agent, tenant.id),
            )
            for index in range(agents)
        ]
    phones: list[PhoneSecret] = []
    async with db.session(Scope.tenant(tenant.id)) as session:
        queue = Queue(
            name="Calls",
            channels=["voice"],
            offer_timeout_seconds=15,
            wrap_up_seconds=0,
            created_at=db.clock.now(),
        )
        session.add(queue)
        await session.flush()
        await voice.add_pbx(
            session,
            identity.actor_for(admin),
            voice.PbxCreate(
                name="bench", ari_url=ARI_URL, ari_username=ARI_USERNAME, ari_password=ARI_PASSWORD
            ),
            settings=settings,
        )
        session.add(VoiceNumber(number=DID, queue_id=queue.id, created_at=db.clock.now()))
        for index, person in enumerate(people):
            number = str(FIRST_EXTENSION + index)
            await routing.ensure_agent(session, person.id, licence=LicenceType.voice)
            session.add(QueueMember(queue_id=queue.id, agent_id=person.id))
            session.add(Extension(number=number, user_id=person.id, created_at=db.clock.now()))
            await routing.set_presence(
                session, identity.actor_for(person), person.id, Presence.available
            )
            phones.append(PhoneSecret(number, f"bench-{number}"))
    await routing.settle()
    return tenant.slug, phones


def _sipp(scenario: str, port: int, workdir: Path, name: str, *options: str) -> list[str]:
    return [
        "sipp",
        "-sf",
        str(SCENARIOS / scenario),
        "-i",
        HOST,
        "-p",
        str(port),
        "-nostdin",
        "-trace_err",
        "-error_file",
        str(workdir / f"{name}.errors"),
        *options,
    ]


async def _register(phones: list[PhoneSecret], workdir: Path) -> None:
    """Every extension registers its contact at the one address the answering sipp uses."""
    for phone in phones:
        command = _sipp(
            "register.xml",
            AGENT_PORT,
            workdir,
            f"register-{phone.number}",
            "-m",
            "1",
            "-s",
            phone.number,
            "-au",
            phone.number,
            "-ap",
            phone.secret,
            "-set",
            "expires",
            "600",
            "-timeout",
            "10s",
            f"{HOST}:{SIP_PORT}",
        )
        process = await asyncio.create_subprocess_exec(
            *command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if await process.wait() != 0:
            raise SystemExit(f"extension {phone.number} could not register")


async def _clean_pbx() -> None:
    """Hang up and remove whatever the run left on the PBX (calls still ending)."""
    async with AriClient(ARI_URL, ARI_USERNAME, ARI_PASSWORD) as client:
        for channel in await client.list_channels():
            with contextlib.suppress(AriError):
                await client.hangup(channel.id)
        for bridge in await client.list_bridges():
            with contextlib.suppress(AriError):
                await client.destroy_bridge(bridge.id)


async def _wait_ended(db: Database, slug_calls: int, seconds: float) -> list[Call]:
    deadline = time.monotonic() + seconds
    while True:
        async with db.session(Scope.system(), read_only=True) as session:
            rows = list((await session.scalars(select(Call))).all())
        if len(rows) >= slug_calls and all(r.ended_at is not None for r in rows):
            return rows
        if time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("sipp") is None:
        raise SystemExit("sipp is missing: scripts/asterisk.sh setup installs it")
    pbx = Asterisk.launch()
    workdir = Path(tempfile.mkdtemp(prefix="atiende-voice-bench-"))
    url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    settings = Settings(
        data_dir=workdir / "data",
        database_url=url,
        secret_key="voice-bench",
        embedded_worker=False,
        auto_migrate=False,
    )
    await upgrade_async(url)
    bus = InProcessBus()
    db = Database(url, publisher=bus)
    slug, phones = await _seed(db, settings, args.calls)
    setup = PbxSetup(
        tenant_slug=slug,
        pbx_name="bench",
        ari_url=ARI_URL,
        ari_username=ARI_USERNAME,
        ari_password=ARI_PASSWORD,
        dids=(DID,),
        phones=tuple(phones),
        sip_bind=f"{HOST}:{SIP_PORT}",
    )
    pbx.apply(with_trunk(render(setup)))
    control = CallControl(db, bus, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(control.run(stop))
    agents: asyncio.subprocess.Process | None = None
    callers: asyncio.subprocess.Process | None = None
    try:
        await asyncio.wait_for(control.ready.wait(), 10)
        await _register(phones, workdir)
        agents = await asyncio.create_subprocess_exec(
            *_sipp(
                "agent_answer.xml",
                AGENT_PORT,
                workdir,
                "agents",
                "-mp",
                str(AGENT_MEDIA_PORT),
                "-set",
                "answer_ms",
                "200",
                "-set",
                "hangup_ms",
                "0",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await asyncio.sleep(0.5)  # the answering sipp binds its port
        cpu_before, started = time.process_time(), time.monotonic()
        events_before = control.stats.ari_events
        callers = await asyncio.create_subprocess_exec(
            *_sipp(
                "caller.xml",
                CALLER_PORT,
                workdir,
                "callers",
                "-mp",
                str(CALLER_MEDIA_PORT),
                "-s",
                DID,
                "-set",
                "caller",
                CALLER,
                "-set",
                "hangup_ms",
                str(args.talk_ms),
                "-set",
                "dtmf",
                "",
                "-set",
                "dtmf_delay_ms",
                "0",
                "-set",
                "dtmf_gap_ms",
                "250",
                "-m",
                str(args.calls),
                "-l",
                str(args.calls),
                "-r",
                str(args.rate),
                "-timeout",
                f"{int(args.talk_ms / 1000) + 60}s",
                f"{HOST}:{SIP_PORT}",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        caller_exit = await callers.wait()
        rows = await _wait_ended(db, args.calls, 30)
        wall = time.monotonic() - started
        cpu = time.process_time() - cpu_before
        events = control.stats.ari_events - events_before
    finally:
        for process in (callers, agents):
            if process is not None and process.returncode is None:
                process.terminate()
                with contextlib.suppress(Exception):
                    await process.wait()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 10)
        await _clean_pbx()
        await routing.settle()
        await db.dispose()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    completed = sum(
        1 for r in rows if r.connected_at is not None and r.end_cause in ("hangup", "hung_up_by_us")
    )
    latencies = [s * 1000 for s in control.stats.offer_latencies]
    p99 = _percentile(latencies, 0.99)
    return {
        "calls": args.calls,
        "completed": completed,
        "lost": args.calls - completed,
        "caller_sipp_exit": caller_exit,
        "ari_events": events,
        "ari_events_per_s": round(events / wall, 1),
        "offer_latency_p50_ms": round(_percentile(latencies, 0.5), 1),
        "offer_latency_p90_ms": round(_percentile(latencies, 0.9), 1),
        "offer_latency_p99_ms": round(p99, 1),
        "offer_latency_slowest_ms": [round(v, 1) for v in sorted(latencies)[-5:]],
        "offer_latency_ceiling_ms": OFFER_P99_CEILING_MS,
        "offers_rung": len(latencies),
        "cpu_s_per_call": round(cpu / args.calls, 4),
        "wall_s": round(wall, 2),
        "inbox_wait_p99_ms": round(_percentile([w * 1000 for w in control.stats.waited], 0.99), 1),
        "busy_s": {
            k: round(v, 3) for k, v in sorted(control.stats.busy.items(), key=lambda kv: -kv[1])[:8]
        },
        "database": "postgresql" if url.startswith("postgresql") else "sqlite",
        "within_target": completed == args.calls and p99 <= OFFER_P99_CEILING_MS,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50, help="concurrent calls (and agents)")
    parser.add_argument(
        "--talk-ms", type=int, default=4000, help="each call's length once answered"
    )
    parser.add_argument("--rate", type=float, default=10, help="new calls per second")
    parser.add_argument("--database-url", default=os.environ.get("ATIENDE_BENCH_DATABASE_URL"))
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with session_lock(timeout=600):  # the PBX's ports and configuration are the run's own
        result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>26}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
