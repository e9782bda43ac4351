"""Scheduling, claiming and running durable jobs. The only writer of ``jobs``.

Lifecycle: ``pending`` → (claimed under a lease) ``running`` → ``done`` | back to ``pending``
with backoff | ``failed`` after ``max_attempts``. The handler's writes and the ``done`` mark
commit in one transaction that also holds the job's row lock (PostgreSQL) or the database
write lock (SQLite), so a job whose lease expired cannot be run by a second worker while the
first still runs, and a crash rolls its effects back before anyone runs it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from atiende.core.config import Settings
from atiende.core.db import SCOPE_KEY, Database, DriverStatement, Scope, now
from atiende.core.errors import NotFound
from atiende.core.ids import new_id
from atiende.core.metrics import JOBS_RUN
from atiende.jobs.models import Job, JobStatus
from atiende.jobs.registry import JobContext, JobRegistry

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 3600


async def schedule(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    run_at: datetime | None = None,
    delay_seconds: float | None = None,
    tenant_id: uuid.UUID | None = None,
    dedupe_key: str | None = None,
    max_attempts: int = 5,
) -> Job:
    """Add a job to this unit of work; it exists only if the unit commits.

    With a ``dedupe_key`` scheduling is idempotent: the job that has (or had) that key is
    returned instead of a second one, also when two nodes schedule it at the same moment.
    """
    if dedupe_key is not None:
        existing = await _by_key(session, dedupe_key)
        if existing is not None:
            return existing
    instant = now(session)
    if run_at is None:
        run_at = instant + timedelta(seconds=delay_seconds or 0)
    job = Job(
        tenant_id=tenant_id,
        kind=kind,
        payload=payload or {},
        dedupe_key=dedupe_key,
        status=JobStatus.pending,
        run_at=run_at,
        attempts=0,
        max_attempts=max_attempts,
        created_at=instant,
    )
    if dedupe_key is None:
        session.add(job)
        await session.flush()
        return job
    try:
        async with session.begin_nested():
            session.add(job)
    except IntegrityError:
        # Another unit of work inserted the same key between our check and our insert.
        winner = await _by_key(session, dedupe_key)
        if winner is None:
            raise
        return winner
    return job


NewJob = tuple[uuid.UUID | None, dict[str, Any], str]  # tenant, payload, dedupe key


async def schedule_new(
    session: AsyncSession, kind: str, new: Sequence[NewJob], *, max_attempts: int = 5
) -> None:
    """Add jobs due now, in one statement, for rows this unit of work has just created.

    Each dedupe key names such a row (``"<kind>:<row id>"``), so no job can have it yet:
    unlike ``schedule`` nothing is looked up first (a key in use fails the unit of work).
    """
    if new:
        await session.execute(insert(Job), new_job_rows(now(session), kind, new, max_attempts))


def schedule_new_sync(
    session: Session,
    driver: sqlite3.Connection | None,
    kind: str,
    new: Sequence[NewJob],
    *,
    max_attempts: int = 5,
) -> None:
    """``schedule_new`` in a synchronous unit of work (``Database.run_sync``), as one Core
    statement on its connection, or on ``driver`` (``DriverStatement.connection``): the
    ORM's bulk path cost more than the rows."""
    if not new:
        return
    rows = new_job_rows(now(session), kind, new, max_attempts)
    if driver is not None:
        _INSERT_JOB_SQLITE.run_many(driver, rows)
    else:
        session.connection().execute(_JOBS.insert(), rows)


_JOBS = cast(Table, Job.__table__)
_NEW_JOB_COLUMNS = (
    "id", "tenant_id", "kind", "payload", "dedupe_key", "status", "run_at", "attempts",
    "max_attempts", "created_at",
)  # fmt: skip
_INSERT_JOB_SQLITE = DriverStatement(_JOBS.insert(), _NEW_JOB_COLUMNS)


def new_job_rows(
    instant: datetime, kind: str, new: Sequence[NewJob], max_attempts: int
) -> list[dict[str, Any]]:
    return [
        {
            "id": new_id(),
            "tenant_id": tenant_id,
            "kind": kind,
            "payload": payload,
            "dedupe_key": dedupe_key,
            "status": JobStatus.pending,
            "run_at": instant,
            "attempts": 0,
            "max_attempts": max_attempts,
            "created_at": instant,
        }
        for tenant_id, payload, dedupe_key in new
    ]


async def _by_key(session: AsyncSession, dedupe_key: str) -> Job | None:
    return await session.scalar(select(Job).where(Job.dedupe_key == dedupe_key))


async def prune_finished(session: AsyncSession, older_than: timedelta) -> int:
    """Housekeeping: forget finished jobs (their dedupe keys become free again)."""
    result = await session.execute(
        delete(Job).where(
            Job.status.in_([JobStatus.done, JobStatus.cancelled, JobStatus.failed]),
            Job.finished_at < now(session) - older_than,
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def cancel(session: AsyncSession, job_id: uuid.UUID) -> bool:
    """Cancel a job that has not started; True when it was pending."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.pending)
        .values(status=JobStatus.cancelled, finished_at=now(session))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def get_job(session: AsyncSession, job_id: uuid.UUID) -> Job:
    job = await session.get(Job, job_id)
    if job is None:
        raise NotFound("job")
    return job


def backoff_seconds(attempt: int) -> float:
    return float(min(MAX_BACKOFF_SECONDS, 2 ** max(0, attempt - 1) * 5))


class JobRunner:
    """Claims due jobs and runs them. Several runners (processes or nodes) may share a
    database; each job still runs to completion exactly once."""

    def __init__(
        self,
        db: Database,
        registry: JobRegistry,
        settings: Settings,
        *,
        worker_id: str | None = None,
        batch_size: int = 20,
    ) -> None:
        self.db = db
        self.registry = registry
        self.settings = settings
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        self.batch_size = batch_size

    async def claim(self) -> list[uuid.UUID]:
        async with self.db.session(Scope.system()) as session:
            instant = now(session)
            due = or_(
                and_(Job.status == JobStatus.pending, Job.run_at <= instant),
                # A lease that ran out belongs to a worker that died mid-run.
                and_(Job.status == JobStatus.running, Job.locked_until < instant),
            )
            ids = list(
                (
                    await session.scalars(
                        select(Job.id)
                        .where(due)
                        .order_by(Job.run_at)
                        .limit(self.batch_size)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
            )
            if ids:
                await session.execute(
                    update(Job)
                    .where(Job.id.in_(ids))
                    .values(
                        status=JobStatus.running,
                        locked_by=self.worker_id,
                        locked_until=instant + timedelta(seconds=self.settings.job_lease_seconds),
                        attempts=Job.attempts + 1,
                    )
                )
        return ids

    async def run_due(self) -> int:
        """Claim and run everything due now; returns how many jobs ran (done or failed)."""
        total = 0
        while ids := await self.claim():
            for job_id in ids:
                await self.run_one(job_id)
                total += 1
        return total

    async def run_one(self, job_id: uuid.UUID) -> None:
        try:
            async with self.db.session(Scope.system()) as session:
                job = await session.scalar(
                    select(Job)
                    .where(
                        Job.id == job_id,
                        Job.status == JobStatus.running,
                        Job.locked_by == self.worker_id,
                    )
                    .with_for_update()
                )
                if job is None:
                    return  # another worker reclaimed it after our lease ran out
                handler = self.registry.get(job.kind)
                if handler is None:
                    raise LookupError(f"no handler for job kind {job.kind!r}")
                context = JobContext(
                    job_id=job.id, kind=job.kind, attempt=job.attempts, settings=self.settings
                )
                session.info[SCOPE_KEY] = (
                    Scope.tenant(job.tenant_id) if job.tenant_id else Scope.system()
                )
                try:
                    await handler(session, dict(job.payload), context)
                finally:
                    session.info[SCOPE_KEY] = Scope.system()
                job.status = JobStatus.done
                job.finished_at = now(session)
                job.locked_until = None
                job.last_error = None
            JOBS_RUN.labels(kind=context.kind, outcome="done").inc()
        except Exception as error:
            log.exception("job %s failed", job_id)
            await self._record_failure(job_id, error)

    async def _record_failure(self, job_id: uuid.UUID, error: Exception) -> None:
        async with self.db.session(Scope.system()) as session:
            job = await session.get(Job, job_id, with_for_update=True)
            if job is None or job.locked_by != self.worker_id or job.status != JobStatus.running:
                return
            job.last_error = f"{type(error).__name__}: {error}"[:2000]
            job.locked_until = None
            if job.attempts >= job.max_attempts:
                job.status = JobStatus.failed
                job.finished_at = now(session)
                outcome = "failed"
            else:
                job.status = JobStatus.pending
                job.run_at = now(session) + timedelta(seconds=backoff_seconds(job.attempts))
                outcome = "retry"
        JOBS_RUN.labels(kind=job.kind, outcome=outcome).inc()

    async def run_forever(self, stop: asyncio.Event) -> None:
        log.info("job runner %s started", self.worker_id)
        while not stop.is_set():
            try:
                await self.run_due()
            except Exception:
                log.exception("job runner loop error; continuing")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.worker_poll_seconds)
        log.info("job runner %s stopped", self.worker_id)
