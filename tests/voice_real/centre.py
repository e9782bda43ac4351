"""A contact centre wired to the test Asterisk, for the call-control tests: a tenant with a
voice queue, a number on it, a PBX and call control running (the ``centre`` fixture of
``conftest.py``), and ``eventually`` to wait for what the PBX does."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from fastapi import FastAPI
from sqlalchemy import select

from atiende.conversations.models import Interaction, InteractionEvent, InteractionStatus
from atiende.core.bus import Bus
from atiende.core.config import Settings
from atiende.core.db import Database, Scope
from atiende.identity import service as identity
from atiende.routing import service as routing
from atiende.routing.models import Agent, LicenceType, Queue
from atiende.tenancy.models import Tenant
from atiende.voice import service as voice
from atiende.voice.ari import AriClient, AriError
from atiende.voice.calls import CallControl
from atiende.voice.models import Call, Extension, VoiceNumber
from atiende.voice.pbx import PhoneSecret, render
from factories import make_tenant, make_user
from routing_factories import make_agent, make_queue
from voice_real.harness import ARI_PASSWORD, ARI_URL, ARI_USERNAME, Asterisk, pbx_setup

DID = "5553000"
CUSTOMER = "+525512345678"
T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout: float = 15
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            shown = [vars(v) for v in value] if isinstance(value, list) else value
            raise AssertionError(f"still {shown!r} after {timeout}s")
        await asyncio.sleep(0.1)


@dataclass
class Centre:
    """A tenant with a voice queue, a number on it, a PBX (the test Asterisk) and call
    control running."""

    db: Database
    tenant: Tenant
    queue: Queue
    control: CallControl
    asterisk: Asterisk
    bus: Bus
    settings: Settings
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def start_control(self) -> None:
        """Run call control (a new one: as after a restart of Atiende)."""
        self.control = CallControl(self.db, self.bus, self.settings)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.control.run(self.stop))
        await asyncio.wait_for(self.control.ready.wait(), 10)

    async def stop_control(self) -> None:
        self.stop.set()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, 10)
            self.task = None

    async def interaction(self) -> Interaction:
        async with self.db.session(Scope.tenant(self.tenant.id), read_only=True) as session:
            found = await session.scalar(select(Interaction).order_by(Interaction.created_at))
            assert found is not None
            return found

    async def calls(self) -> list[Call]:
        async with self.db.session(Scope.tenant(self.tenant.id), read_only=True) as session:
            return list((await session.scalars(select(Call))).all())

    async def timeline(self, interaction_id: uuid.UUID) -> list[str]:
        async with self.db.session(Scope.tenant(self.tenant.id), read_only=True) as session:
            rows = await session.scalars(
                select(InteractionEvent.type)
                .where(InteractionEvent.interaction_id == interaction_id)
                .order_by(InteractionEvent.id)
            )
            return list(rows.all())

    async def status(self) -> InteractionStatus | None:
        async with self.db.session(Scope.tenant(self.tenant.id), read_only=True) as session:
            return await session.scalar(select(Interaction.status))

    async def agent(self, user_id: uuid.UUID) -> Agent:
        async with self.db.session(Scope.tenant(self.tenant.id), read_only=True) as session:
            found = await session.get(Agent, user_id)
            assert found is not None
            return found

    async def phone_agent(
        self, extension: str, *queues: Queue, available: bool = True
    ) -> tuple[uuid.UUID, PhoneSecret]:
        user_id = await make_agent(
            self.db, self.tenant, *queues, licence=LicenceType.voice, available=available
        )
        async with self.db.session(Scope.tenant(self.tenant.id)) as session:
            session.add(
                Extension(number=extension, user_id=user_id, created_at=self.db.clock.now())
            )
        return user_id, PhoneSecret(extension, f"secret-{extension}-{uuid.uuid4().hex[:6]}")

    def configure(self, *phones: PhoneSecret) -> None:
        setup = pbx_setup(tenant=self.tenant.slug, dids=(DID,), phones=phones)
        self.asterisk.apply(render(setup))


@contextlib.asynccontextmanager
async def running_centre(
    app: FastAPI, db: Database, settings: Settings, asterisk: Asterisk
) -> AsyncIterator[Centre]:
    tenant = await make_tenant(db, slug=f"v{uuid.uuid4().hex[:8]}")
    queue = await make_queue(
        db, tenant, name="Calls", channels=["voice"], offer_timeout_seconds=6, wrap_up_seconds=30
    )
    admin = await make_user(db, tenant)
    async with db.session(Scope.tenant(tenant.id)) as session:
        await voice.add_pbx(
            session,
            identity.actor_for(admin),
            voice.PbxCreate(
                name="test", ari_url=ARI_URL, ari_username=ARI_USERNAME, ari_password=ARI_PASSWORD
            ),
            settings=settings,
        )
        session.add(VoiceNumber(number=DID, queue_id=queue.id, created_at=db.clock.now()))
    bus = app.state.atiende.bus
    centre = Centre(db, tenant, queue, CallControl(db, bus, settings), asterisk, bus, settings)
    await centre.start_control()
    try:
        yield centre
    finally:
        await centre.stop_control()
        await routing.settle()
        async with AriClient(ARI_URL, ARI_USERNAME, ARI_PASSWORD) as client:  # leave it clean
            for channel in await client.list_channels():
                with contextlib.suppress(AriError):
                    await client.hangup(channel.id)
            for bridge in await client.list_bridges():
                with contextlib.suppress(AriError):
                    await client.destroy_bridge(bridge.id)
