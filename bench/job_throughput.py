"""Durable job throughput: jobs claimed, run (one read each) and marked done per
second by one worker on SQLite, and by two racing workers on PostgreSQL when
``ATIENDE_BENCH_POSTGRES_URL`` points at an empty, migrated database."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from atiende.core.config import Settings
from atiende.core.db import Database, Scope
from atiende.identity.actor import Actor
from atiende.jobs import service as jobs
from atiende.jobs.registry import JobContext, JobRegistry
from atiende.tenancy import service as tenancy
from atiende.tenancy.schemas import TenantCreate
from bench.common import POSTGRES_URL, Result, sqlite_settings

JOBS = 2000
SQLITE_CEILING = 150.0
POSTGRES_CEILING = 150.0


def _registry() -> JobRegistry:
    registry = JobRegistry()

    async def noop(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
        await tenancy.get_tenant_by_slug(session, "bench")

    registry.register("bench.noop", noop)
    return registry


async def _measure(url: str, settings: Settings, workers: int) -> float:
    db = Database(url)
    try:
        async with db.session(Scope.system()) as session:
            if await tenancy.get_tenant_by_slug(session, "bench") is None:
                await tenancy.create_tenant(
                    session, Actor.system(), TenantCreate(slug="bench", name="B")
                )
            for _ in range(JOBS):
                await jobs.schedule(session, "bench.noop")
        runners = [
            jobs.JobRunner(Database(url), _registry(), settings, worker_id=f"w{i}", batch_size=50)
            for i in range(workers)
        ]
        started = time.perf_counter()
        done = await asyncio.gather(*(runner.run_due() for runner in runners))
        elapsed = time.perf_counter() - started
        for runner in runners:
            await runner.db.dispose()
        assert sum(done) == JOBS, done
        return JOBS / elapsed
    finally:
        await db.dispose()


async def run(tmp: Path) -> list[Result]:
    settings = await sqlite_settings(tmp)
    results = [
        Result(
            "jobs/s, 1 worker, SQLite",
            await _measure(settings.resolved_database_url, settings, 1),
            "jobs/s",
            SQLITE_CEILING,
            True,
        )
    ]
    if POSTGRES_URL:
        results.append(
            Result(
                "jobs/s, 2 workers, PostgreSQL",
                await _measure(POSTGRES_URL, settings, 2),
                "jobs/s",
                POSTGRES_CEILING,
                True,
            )
        )
    return results
