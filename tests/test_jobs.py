"""Durable jobs: run when due, retried with backoff, survive restarts, never run twice."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.audit.models import AuditEntry
from atiende.core.clock import TestClock
from atiende.core.config import Settings
from atiende.core.db import Database, Scope, now
from atiende.jobs import service as jobs
from atiende.jobs.models import Job, JobStatus
from atiende.jobs.registry import JobContext, JobRegistry
from atiende.tasks import HOUSEKEEPING, build_registry, schedule_housekeeping
from factories import make_tenant


def _registry(failures: dict[str, int] | None = None) -> JobRegistry:
    """``test.touch`` writes one audit row per run (its visible effect); ``test.flaky`` fails
    the first N attempts."""
    registry = JobRegistry()
    remaining = dict(failures or {})

    async def touch(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
        await asyncio.sleep(0)  # let concurrent workers interleave
        session.add(
            AuditEntry(
                tenant_id=uuid.UUID(payload["tenant_id"]),
                action="test.touch",
                resource_type="job",
                resource_id=str(ctx.job_id),
                occurred_at=now(session),
            )
        )

    async def flaky(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
        key = payload["key"]
        if remaining.get(key, 0) > 0:
            remaining[key] -= 1
            raise RuntimeError("provider unavailable")
        await touch(session, payload, ctx)

    registry.register("test.touch", touch)
    registry.register("test.flaky", flaky)
    return registry


async def _schedule(db: Database, kind: str, tenant_id: uuid.UUID, **kwargs: Any) -> uuid.UUID:
    async with db.session(Scope.system()) as session:
        job = await jobs.schedule(
            session, kind, {"tenant_id": str(tenant_id), "key": "k"}, tenant_id=tenant_id, **kwargs
        )
    return job.id


async def _runs(db: Database, job_id: uuid.UUID | None = None) -> int:
    async with db.session(Scope.system()) as session:
        query = (
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "test.touch")
        )
        if job_id is not None:
            query = query.where(AuditEntry.resource_id == str(job_id))
        return int(await session.scalar(query) or 0)


async def _job(db: Database, job_id: uuid.UUID) -> Job:
    async with db.session(Scope.system()) as session:
        return await jobs.get_job(session, job_id)


async def test_a_job_runs_when_due_and_not_before(
    db: Database, settings: Settings, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    job_id = await _schedule(db, "test.touch", tenant.id, delay_seconds=30)
    runner = jobs.JobRunner(db, _registry(), settings)
    assert await runner.run_due() == 0
    clock.advance(30)
    assert await runner.run_due() == 1
    assert await _runs(db, job_id) == 1
    job = await _job(db, job_id)
    assert job.status == JobStatus.done
    assert job.finished_at == clock.now()
    assert await runner.run_due() == 0


async def test_a_failing_job_is_retried_with_backoff_then_succeeds(
    db: Database, settings: Settings, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    job_id = await _schedule(db, "test.flaky", tenant.id)
    runner = jobs.JobRunner(db, _registry({"k": 2}), settings)
    await runner.run_due()
    job = await _job(db, job_id)
    assert (job.status, job.attempts) == (JobStatus.pending, 1)
    assert job.last_error == "RuntimeError: provider unavailable"
    assert job.run_at == clock.now() + jobs.timedelta(seconds=jobs.backoff_seconds(1))
    clock.advance(jobs.backoff_seconds(1))
    await runner.run_due()
    clock.advance(jobs.backoff_seconds(2))
    await runner.run_due()
    assert (await _job(db, job_id)).status == JobStatus.done
    assert await _runs(db, job_id) == 1


async def test_a_job_that_keeps_failing_ends_failed(
    db: Database, settings: Settings, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    job_id = await _schedule(db, "test.flaky", tenant.id, max_attempts=3)
    runner = jobs.JobRunner(db, _registry({"k": 99}), settings)
    for _ in range(5):
        await runner.run_due()
        clock.advance(jobs.MAX_BACKOFF_SECONDS)
    job = await _job(db, job_id)
    assert (job.status, job.attempts) == (JobStatus.failed, 3)
    assert await _runs(db, job_id) == 0


async def test_scheduling_with_a_dedupe_key_is_idempotent(db: Database) -> None:
    tenant = await make_tenant(db)
    first = await _schedule(db, "test.touch", tenant.id, dedupe_key="offer:42:timeout")
    second = await _schedule(db, "test.touch", tenant.id, dedupe_key="offer:42:timeout")
    assert first == second


async def test_a_cancelled_job_never_runs(db: Database, settings: Settings) -> None:
    tenant = await make_tenant(db)
    job_id = await _schedule(db, "test.touch", tenant.id)
    async with db.session(Scope.system()) as session:
        assert await jobs.cancel(session, job_id)
    assert await jobs.JobRunner(db, _registry(), settings).run_due() == 0
    assert await _runs(db) == 0


async def test_a_job_survives_a_restart(
    database_url: str, settings: Settings, clock: TestClock
) -> None:
    before = Database(database_url, clock=clock)
    tenant = await make_tenant(before)
    job_id = await _schedule(before, "test.touch", tenant.id, delay_seconds=60)
    await before.dispose()  # the process goes away

    clock.advance(61)
    after = Database(database_url, clock=clock)
    try:
        assert await jobs.JobRunner(after, _registry(), settings).run_due() == 1
        assert await _runs(after, job_id) == 1
    finally:
        await after.dispose()


async def test_a_job_claimed_by_a_worker_that_died_runs_once_after_its_lease(
    db: Database, settings: Settings, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    job_id = await _schedule(db, "test.touch", tenant.id)
    dead = jobs.JobRunner(db, _registry(), settings, worker_id="dead")
    assert await dead.claim() == [job_id]  # ...and the worker crashes before running it

    survivor = jobs.JobRunner(db, _registry(), settings, worker_id="survivor")
    assert await survivor.run_due() == 0, "the lease still holds"
    clock.advance(settings.job_lease_seconds + 1)
    assert await survivor.run_due() == 1
    await dead.run_one(job_id)  # a zombie coming back finds the job is no longer its own
    assert await _runs(db, job_id) == 1


async def test_a_crash_inside_the_handler_rolls_its_effects_back(
    db: Database, settings: Settings, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    job_id = await _schedule(db, "test.half", tenant.id)
    registry = _registry()

    async def half(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
        await registry.get("test.touch")(session, payload, ctx)  # type: ignore[misc]
        raise RuntimeError("died mid-way")

    registry.register("test.half", half)
    await jobs.JobRunner(db, registry, settings).run_due()
    assert await _runs(db, job_id) == 0
    assert (await _job(db, job_id)).status == JobStatus.pending


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.postgres
async def test_two_workers_racing_on_postgresql_run_each_job_exactly_once(
    database_url: str, settings: Settings, clock: TestClock
) -> None:
    setup = Database(database_url, clock=clock)
    tenant = await make_tenant(setup)
    job_ids = [await _schedule(setup, "test.touch", tenant.id) for _ in range(120)]
    first, second = Database(database_url, clock=clock), Database(database_url, clock=clock)
    try:
        ran = await asyncio.gather(
            jobs.JobRunner(first, _registry(), settings, worker_id="a", batch_size=5).run_due(),
            jobs.JobRunner(second, _registry(), settings, worker_id="b", batch_size=5).run_due(),
        )
        assert sum(ran) == len(job_ids)
        assert min(ran) > 0, "both workers should have taken part"
        async with setup.session(Scope.system()) as session:
            per_job = (
                await session.execute(
                    select(AuditEntry.resource_id, func.count())
                    .where(AuditEntry.action == "test.touch")
                    .group_by(AuditEntry.resource_id)
                )
            ).all()
        assert sorted(r for r, _ in per_job) == sorted(str(j) for j in job_ids)
        assert {count for _, count in per_job} == {1}
    finally:
        for database in (setup, first, second):
            await database.dispose()


async def test_housekeeping_reschedules_itself_once_per_hour(
    db: Database, settings: Settings, clock: TestClock
) -> None:
    async with db.session(Scope.system()) as session:
        await schedule_housekeeping(session)
        await schedule_housekeeping(session)  # a second node starting: no duplicate
    runner = jobs.JobRunner(db, build_registry(), settings)
    clock.advance(3600)
    assert await runner.run_due() == 1
    async with db.session(Scope.system()) as session:
        pending = (
            await session.scalars(
                select(Job).where(Job.kind == HOUSEKEEPING, Job.status == JobStatus.pending)
            )
        ).all()
    assert len(pending) == 1
    assert pending[0].run_at > clock.now()


async def test_a_done_job_stays_done_when_publishing_its_events_fails(
    database_url: str, settings: Settings, clock: TestClock
) -> None:
    from atiende.core.bus import InProcessBus
    from atiende.core.events import emit
    from atiende.identity.events import UserCreated

    class BrokenBus(InProcessBus):
        async def publish(self, envelope: Any) -> None:
            raise ConnectionError("redis is down")

    db = Database(database_url, clock=clock, publisher=BrokenBus())
    registry = _registry()

    async def emitting(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
        await registry.get("test.touch")(session, payload, ctx)  # type: ignore[misc]
        await emit(session, UserCreated(user_id=uuid.uuid4(), role="agent"))

    registry.register("test.emitting", emitting)
    try:
        tenant = await make_tenant(db)
        job_id = await _schedule(db, "test.emitting", tenant.id)
        runner = jobs.JobRunner(db, registry, settings)
        assert await runner.run_due() == 1
        clock.advance(jobs.MAX_BACKOFF_SECONDS)
        assert await runner.run_due() == 0
        assert (await _job(db, job_id)).status == JobStatus.done
        assert await _runs(db, job_id) == 1
    finally:
        await db.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.postgres
async def test_two_nodes_scheduling_one_key_at_once_make_one_job(
    database_url: str, settings: Settings, clock: TestClock
) -> None:
    nodes = [Database(database_url, clock=clock) for _ in range(4)]
    try:

        async def schedule_on(db: Database) -> uuid.UUID:
            async with db.session(Scope.system()) as session:
                job = await jobs.schedule(session, "test.touch", dedupe_key="renewal:2026-12")
                await asyncio.sleep(0.05)  # hold the transaction open so the others overlap
                return job.id

        ids = await asyncio.gather(*(schedule_on(db) for db in nodes))
        assert len(set(ids)) == 1
    finally:
        for db in nodes:
            await db.dispose()
