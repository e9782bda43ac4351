"""Recording retention: the daily job deletes, through ARI, the recordings of calls that
ended longer ago than the tenant keeps them, marks them ``deleted``, writes the timeline and
the audit; a file the PBX no longer has counts as deleted; a PBX that is away keeps its rows
for the next run; 0 days keeps recordings for ever; and administrators set the days."""

from __future__ import annotations

import itertools
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from atiende.audit.models import AuditEntry
from atiende.contacts.models import IdentityKind
from atiende.conversations import service as conversations
from atiende.conversations.models import Channel
from atiende.core.clock import TestClock, as_utc
from atiende.core.db import Database, Scope, now
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.jobs import service as jobs
from atiende.jobs.models import Job, JobStatus
from atiende.jobs.service import JobRunner
from atiende.tasks import build_registry, ensure_recurring
from atiende.tenancy.models import Tenant
from atiende.voice import retention, service
from atiende.voice.calls import recording_name_of
from atiende.voice.models import Call
from atiende.voice.tasks import RETENTION, next_daily_run
from conversation_factories import open_chat
from factories import caller, make_tenant
from fakes.ari import PASSWORD, USERNAME, wav_bytes
from fakes.ari_pbx import FakePbx, fake_pbx


@pytest.fixture
async def ari() -> AsyncIterator[FakePbx]:
    async with fake_pbx() as fake:
        yield fake


def closed_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/ari"


_callers = itertools.count(1)


@dataclass
class Recorded:
    tenant: Tenant
    pbx_id: uuid.UUID
    interaction_id: uuid.UUID
    call_id: uuid.UUID
    name: str


async def _pbx(app: FastAPI, db: Database, tenant: Tenant, url: str) -> uuid.UUID:
    data = service.PbxCreate(name="main", ari_url=url, ari_username=USERNAME, ari_password=PASSWORD)
    async with db.session(Scope.tenant(tenant.id)) as session:
        pbx = await service.add_pbx(
            session, Actor.system(), data, settings=app.state.atiende.settings
        )
    return pbx.id


async def _recorded_call(
    db: Database,
    ari: FakePbx | None,
    tenant: Tenant,
    pbx_id: uuid.UUID,
    *,
    ended_days_ago: float,
    state: str = "done",
    stored: bool = True,
) -> Recorded:
    """A call that ended ``ended_days_ago`` with its recording stored on the PBX."""
    interaction_id, _ = await open_chat(
        db,
        tenant,
        channel=Channel.voice,
        kind=IdentityKind.phone,
        who=f"+52551234{next(_callers):04d}",
        inbound=(),
    )
    call_id = uuid.uuid4()
    name = recording_name_of(call_id)
    async with db.session(Scope.tenant(tenant.id)) as session:
        ended = now(session) - timedelta(days=ended_days_ago)
        session.add(
            Call(
                id=call_id,
                interaction_id=interaction_id,
                pbx_id=pbx_id,
                direction="inbound",
                customer_channel_id=f"chan-{call_id.hex}",
                state="ended",
                recording_name=name,
                recording_state=state,
                started_at=ended - timedelta(minutes=3),
                ended_at=ended,
            )
        )
    if ari is not None and stored:
        ari.stored[name] = wav_bytes()
    return Recorded(tenant, pbx_id, interaction_id, call_id, name)


async def _set_retention(db: Database, tenant: Tenant, days: int) -> None:
    async with db.session(Scope.system()) as session:
        row = await session.get(Tenant, tenant.id)
        assert row is not None
        row.recording_retention_days = days


async def _state(db: Database, recorded: Recorded) -> str | None:
    async with db.session(Scope.tenant(recorded.tenant.id), read_only=True) as session:
        call = await session.get(Call, recorded.call_id)
        assert call is not None
        return call.recording_state


async def _timeline(db: Database, recorded: Recorded) -> list[tuple[str, dict[str, Any]]]:
    async with db.session(Scope.tenant(recorded.tenant.id), read_only=True) as session:
        entries = await conversations.timeline(session, recorded.interaction_id)
        return [(e.type, e.data) for e in entries if e.type.startswith("recording.")]


async def _audit(db: Database, tenant: Tenant) -> list[AuditEntry]:
    async with db.session(Scope.system(), read_only=True) as session:
        rows = await session.scalars(
            select(AuditEntry).where(
                AuditEntry.tenant_id == tenant.id, AuditEntry.action == "recording.delete"
            )
        )
        return list(rows)


async def _run_job(app: FastAPI, db: Database) -> None:
    """Schedule the retention pass now and let a worker run what is due."""
    async with db.session(Scope.system()) as session:
        instant = now(session)
        await jobs.schedule(
            session, RETENTION, run_at=instant, dedupe_key=f"test:{uuid.uuid4().hex}"
        )
    runner = JobRunner(db, build_registry(), app.state.atiende.settings)
    while await runner.run_due():
        pass


def _deletes(ari: FakePbx) -> list[str]:
    return [path for method, path, _ in ari.made() if method == "DELETE"]


# --- the pass ------------------------------------------------------------------------------------


async def test_recordings_older_than_the_retention_are_deleted_from_the_pbx(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant = await make_tenant(db)
    await _set_retention(db, tenant, 30)
    pbx_id = await _pbx(app, db, tenant, ari.url)
    old = await _recorded_call(db, ari, tenant, pbx_id, ended_days_ago=31)
    recent = await _recorded_call(db, ari, tenant, pbx_id, ended_days_ago=29)
    await _run_job(app, db)

    assert _deletes(ari) == [f"/recordings/stored/{old.name}"]
    assert old.name not in ari.stored
    assert recent.name in ari.stored
    assert await _state(db, old) == "deleted"
    assert await _state(db, recent) == "done"
    assert await _timeline(db, old) == [
        (
            "recording.deleted",
            {
                "call_id": str(old.call_id),
                "recording": old.name,
                "reason": "retention",
                "retention_days": 30,
            },
        )
    ]
    assert await _timeline(db, recent) == []
    (entry,) = await _audit(db, tenant)
    assert entry.resource_id == str(old.call_id)
    assert entry.actor_email == "<system>"
    assert entry.before == {"recording": "done"}
    assert (entry.after or {})["already_gone"] is False
    assert (entry.after or {})["name"] == old.name

    # The next run has nothing left to do.
    ari.requests.clear()
    await _run_job(app, db)
    assert _deletes(ari) == []
    assert len(await _audit(db, tenant)) == 1


async def test_the_default_keeps_recordings_ninety_days(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant = await make_tenant(db)
    assert tenant.recording_retention_days == 90
    pbx_id = await _pbx(app, db, tenant, ari.url)
    kept = await _recorded_call(db, ari, tenant, pbx_id, ended_days_ago=89)
    gone = await _recorded_call(db, ari, tenant, pbx_id, ended_days_ago=91)
    await _run_job(app, db)
    assert (await _state(db, kept), await _state(db, gone)) == ("done", "deleted")


async def test_zero_days_keeps_recordings_for_ever(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant = await make_tenant(db)
    await _set_retention(db, tenant, 0)
    pbx_id = await _pbx(app, db, tenant, ari.url)
    ancient = await _recorded_call(db, ari, tenant, pbx_id, ended_days_ago=3000)
    await _run_job(app, db)
    assert ari.requests == []
    assert await _state(db, ancient) == "done"


async def test_only_finished_recordings_are_deleted(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant = await make_tenant(db)
    await _set_retention(db, tenant, 1)
    pbx_id = await _pbx(app, db, tenant, ari.url)
    # A row whose call ended without call control marking the recording done (it never
    # happens, but nothing unfinished is ever deleted).
    odd = await _recorded_call(db, ari, tenant, pbx_id, ended_days_ago=5, state="recording")
    await _run_job(app, db)
    assert ari.requests == []
    assert await _state(db, odd) == "recording"


async def test_a_recording_the_pbx_no_longer_has_counts_as_deleted(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant = await make_tenant(db)
    await _set_retention(db, tenant, 7)
    pbx_id = await _pbx(app, db, tenant, ari.url)
    gone = await _recorded_call(db, ari, tenant, pbx_id, ended_days_ago=8, stored=False)
    await _run_job(app, db)
    assert _deletes(ari) == [f"/recordings/stored/{gone.name}"]  # 404 Recording not found
    assert await _state(db, gone) == "deleted"
    (entry,) = await _audit(db, tenant)
    assert (entry.after or {})["already_gone"] is True
    assert [kind for kind, _ in await _timeline(db, gone)] == ["recording.deleted"]


async def test_an_unreachable_pbx_keeps_its_recordings_for_the_next_run(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant = await make_tenant(db)
    await _set_retention(db, tenant, 7)
    pbx_id = await _pbx(app, db, tenant, closed_url())
    waiting = await _recorded_call(db, ari, tenant, pbx_id, ended_days_ago=8)
    await _run_job(app, db)
    assert await _state(db, waiting) == "done"
    assert await _timeline(db, waiting) == []
    assert await _audit(db, tenant) == []

    # The PBX is back (here: at another address); the next run deletes the recording.
    async with db.session(Scope.tenant(tenant.id)) as session:
        await service.update_pbx(
            session,
            Actor.system(),
            pbx_id,
            service.PbxUpdate(ari_url=ari.url),
            settings=app.state.atiende.settings,
        )
    await _run_job(app, db)
    assert await _state(db, waiting) == "deleted"
    assert waiting.name not in ari.stored


async def test_a_pbx_refusing_the_login_keeps_its_recordings(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant = await make_tenant(db)
    await _set_retention(db, tenant, 7)
    pbx_id = await _pbx(app, db, tenant, ari.url)
    waiting = await _recorded_call(db, ari, tenant, pbx_id, ended_days_ago=8)
    ari.password = "rotated-elsewhere"
    await _run_job(app, db)
    assert await _state(db, waiting) == "done"
    assert waiting.name in ari.stored


async def test_a_recording_the_pbx_refuses_to_delete_is_left_and_the_others_go(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant = await make_tenant(db)
    await _set_retention(db, tenant, 7)
    pbx_id = await _pbx(app, db, tenant, ari.url)
    stuck = await _recorded_call(db, ari, tenant, pbx_id, ended_days_ago=10)
    fine = await _recorded_call(db, ari, tenant, pbx_id, ended_days_ago=9)
    ari.refuse_next("DELETE", f"/recordings/stored/{stuck.name}", 500, "Internal Server Error")
    await _run_job(app, db)
    assert (await _state(db, stuck), await _state(db, fine)) == ("done", "deleted")
    await _run_job(app, db)  # tried again the next time
    assert await _state(db, stuck) == "deleted"


async def test_each_tenant_keeps_recordings_as_long_as_it_says(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    short, forever = await make_tenant(db), await make_tenant(db)
    await _set_retention(db, short, 7)
    await _set_retention(db, forever, 0)
    short_call = await _recorded_call(
        db, ari, short, await _pbx(app, db, short, ari.url), ended_days_ago=8
    )
    kept_call = await _recorded_call(
        db, ari, forever, await _pbx(app, db, forever, ari.url), ended_days_ago=800
    )
    await _run_job(app, db)
    assert await _state(db, short_call) == "deleted"
    assert await _state(db, kept_call) == "done"
    assert await _audit(db, forever) == []


async def test_a_pass_stops_after_a_batch_and_says_more_is_due(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant = await make_tenant(db)
    await _set_retention(db, tenant, 7)
    pbx_id = await _pbx(app, db, tenant, ari.url)
    calls = [await _recorded_call(db, ari, tenant, pbx_id, ended_days_ago=d) for d in (30, 20, 10)]
    settings = app.state.atiende.settings
    async with db.session(Scope.system()) as session:
        first = await retention.delete_expired_recordings(session, settings=settings, batch=2)
    assert (first.deleted, first.more) == (2, True)
    assert [await _state(db, c) for c in calls] == ["deleted", "deleted", "done"]  # oldest first
    async with db.session(Scope.system()) as session:
        second = await retention.delete_expired_recordings(session, settings=settings, batch=2)
    assert (second.deleted, second.more) == (1, False)


async def test_a_pbx_that_is_away_does_not_make_the_pass_run_again_at_once(
    app: FastAPI, db: Database
) -> None:
    tenant = await make_tenant(db)
    await _set_retention(db, tenant, 7)
    pbx_id = await _pbx(app, db, tenant, closed_url())
    for days in (10, 9):
        await _recorded_call(db, None, tenant, pbx_id, ended_days_ago=days)
    async with db.session(Scope.system()) as session:
        run = await retention.delete_expired_recordings(
            session, settings=app.state.atiende.settings, batch=2
        )
    assert (run.deleted, run.left, run.more) == (0, 2, False)


# --- the schedule --------------------------------------------------------------------------------


def test_the_daily_pass_runs_at_eight_utc() -> None:
    assert next_daily_run(datetime(2026, 1, 5, 15, 0, tzinfo=UTC)) == datetime(
        2026, 1, 6, 8, 0, tzinfo=UTC
    )
    assert next_daily_run(datetime(2026, 1, 5, 7, 59, tzinfo=UTC)) == datetime(
        2026, 1, 5, 8, 0, tzinfo=UTC
    )
    assert next_daily_run(datetime(2026, 1, 5, 8, 0, tzinfo=UTC)) == datetime(
        2026, 1, 6, 8, 0, tzinfo=UTC
    )


async def _pending(db: Database) -> list[Job]:
    async with db.session(Scope.system(), read_only=True) as session:
        rows = await session.scalars(
            select(Job)
            .where(Job.kind == RETENTION, Job.status == JobStatus.pending)
            .order_by(Job.run_at)
        )
        return list(rows)


async def test_the_daily_job_exists_once_and_schedules_the_next_day(
    app: FastAPI, db: Database, clock: TestClock, ari: FakePbx
) -> None:
    tenant = await make_tenant(db)
    await _set_retention(db, tenant, 7)
    pbx_id = await _pbx(app, db, tenant, ari.url)
    old = await _recorded_call(db, ari, tenant, pbx_id, ended_days_ago=8)
    await ensure_recurring(db)
    await ensure_recurring(db)  # a second worker starting
    (job,) = await _pending(db)
    due = as_utc(job.run_at)
    assert due == next_daily_run(clock.now())

    clock.set(due)
    runner = JobRunner(db, build_registry(), app.state.atiende.settings)
    while await runner.run_due():
        pass
    assert await _state(db, old) == "deleted"
    (following,) = await _pending(db)
    assert as_utc(following.run_at) == due + timedelta(days=1)


# --- what people see ----------------------------------------------------------------------------


async def test_a_deleted_recording_no_longer_plays(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant = await make_tenant(db)
    await _set_retention(db, tenant, 7)
    supervisor = await caller(app, tenant, Role.supervisor)
    pbx_id = await _pbx(app, db, tenant, ari.url)
    old = await _recorded_call(db, ari, tenant, pbx_id, ended_days_ago=8)
    path = f"/api/v1/interactions/{old.interaction_id}/recording"
    assert (await supervisor.client.get(path)).status_code == 200
    await _run_job(app, db)
    response = await supervisor.client.get(path)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "recording_not_found"
    call = await supervisor.client.get(f"/api/v1/interactions/{old.interaction_id}/call")
    assert call.json()["recording"] == "deleted"


async def test_an_administrator_sets_how_long_recordings_are_kept(
    app: FastAPI, db: Database
) -> None:
    tenant = await make_tenant(db)
    admin = await caller(app, tenant)
    supervisor = await caller(app, tenant, Role.supervisor)
    assert (await admin.client.get("/api/v1/tenant")).json()["recording_retention_days"] == 90
    changed = await admin.client.patch("/api/v1/tenant", json={"recording_retention_days": 365})
    assert changed.status_code == 200, changed.text
    assert changed.json()["recording_retention_days"] == 365
    for bad in (-1, 3651, None, "many"):
        refused = await admin.client.patch("/api/v1/tenant", json={"recording_retention_days": bad})
        assert refused.status_code == 422, (bad, refused.text)
    denied = await supervisor.client.patch("/api/v1/tenant", json={"recording_retention_days": 1})
    assert denied.status_code == 403
    assert (await supervisor.client.get("/api/v1/tenant")).json()["recording_retention_days"] == 365
    async with db.session(Scope.system(), read_only=True) as session:
        entry = await session.scalar(
            select(AuditEntry).where(
                AuditEntry.tenant_id == tenant.id, AuditEntry.action == "tenant.update"
            )
        )
    assert entry is not None
    assert (entry.before or {})["recording_retention_days"] == 90
    assert (entry.after or {})["recording_retention_days"] == 365
