"""Synchronous units of work (``Database.run_sync``) and driver statements on SQLite."""

from __future__ import annotations

import asyncio
import re
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from atiende.core import db as db_module
from atiende.core.clock import TestClock
from atiende.core.db import Database, DriverStatement, Scope, after_commit, session_scope
from atiende.jobs import service as jobs
from atiende.jobs.models import Job, JobStatus
from factories import make_tenant


async def job_rows(db: Database) -> list[Job]:
    async with db.session(Scope.system(), read_only=True) as session:
        return list(await session.scalars(select(Job).order_by(Job.dedupe_key)))


async def test_a_unit_commits_in_its_scope_with_the_database_clock(database_url: str) -> None:
    clock = TestClock()
    db = Database(database_url, clock=clock)
    try:
        tenant = await make_tenant(db)
        seen: dict[str, Any] = {}
        committed: list[int] = []

        def work(session: Session) -> str:
            seen["scope"] = session_scope(session)
            jobs.schedule_new_sync(
                session,
                DriverStatement.connection(session),
                "test.kind",
                [(tenant.id, {"n": 1}, "test.kind:1")],
            )
            after_commit(session, lambda: committed.append(1))  # type: ignore[arg-type]
            return "done"

        assert await db.run_sync(Scope.tenant(tenant.id), work) == "done"

        assert seen["scope"] == Scope.tenant(tenant.id)
        assert committed == [1]
        [job] = await job_rows(db)
        assert (job.kind, job.payload, job.status) == ("test.kind", {"n": 1}, JobStatus.pending)
        assert job.run_at == job.created_at == clock.now()
    finally:
        await db.dispose()


async def test_a_unit_that_fails_leaves_nothing_and_runs_no_follower(database_url: str) -> None:
    db = Database(database_url)
    try:
        tenant = await make_tenant(db)
        committed: list[int] = []

        def work(session: Session) -> None:
            jobs.schedule_new_sync(
                session,
                DriverStatement.connection(session),
                "test.kind",
                [(tenant.id, {}, "test.kind:1")],
            )
            after_commit(session, lambda: committed.append(1))  # type: ignore[arg-type]
            raise RuntimeError("refused")

        with pytest.raises(RuntimeError, match="refused"):
            await db.run_sync(Scope.system(), work)
        assert await job_rows(db) == []
        assert committed == []
        # The unit's connection is usable again.
        await db.run_sync(
            Scope.system(),
            lambda session: jobs.schedule_new_sync(
                session,
                DriverStatement.connection(session),
                "test.kind",
                [(tenant.id, {}, "test.kind:2")],
            ),
        )
        assert [job.dedupe_key for job in await job_rows(db)] == ["test.kind:2"]
    finally:
        await db.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated SQLite file of this test's own (for what only SQLite has)."""
    path = tmp_path / "atiende.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


def sqlite_path(url: str) -> Path:
    return Path(url.split("///", 1)[1])


def schedule(tenant_id: uuid.UUID, key: str, payload: dict[str, Any] | None = None) -> Any:
    """A unit of work adding one job named ``key``."""

    def work(session: Session) -> None:
        jobs.schedule_new_sync(
            session,
            DriverStatement.connection(session),
            "test.kind",
            [(tenant_id, payload or {}, key)],
        )

    return work


async def test_driver_statements_store_rows_exactly_as_sqlalchemy_does(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        tenant = await make_tenant(db)
        payload = {"text": "¿Qué tal? ✓", "ids": [1, 2], "nested": {"ok": True}}
        async with db.session(Scope.system()) as session:  # SQLAlchemy all the way
            await jobs.schedule_new(session, "test.kind", [(tenant.id, payload, "a")])

        def through_the_driver(session: Session) -> None:
            driver = DriverStatement.connection(session)
            assert driver is not None  # a SQLite file: the driver path is taken
            jobs.schedule_new_sync(session, driver, "test.kind", [(tenant.id, payload, "b")])

        await db.run_sync(Scope.system(), through_the_driver)

        columns = ("id", "tenant_id", "kind", "payload", "status", "run_at", "created_at")
        raw = sqlite3.connect(sqlite_path(sqlite_url))
        try:
            rows = raw.execute(
                f"SELECT {', '.join(columns)} FROM jobs ORDER BY dedupe_key"  # noqa: S608
            ).fetchall()
        finally:
            raw.close()
        by_orm, by_driver = (dict(zip(columns, row, strict=True)) for row in rows)
        for column in ("tenant_id", "kind", "payload", "status"):
            assert by_driver[column] == by_orm[column], column
        for column in ("id", "tenant_id"):
            assert re.fullmatch(r"[0-9a-f]{32}", by_driver[column]), column
        for column in ("run_at", "created_at"):
            shape = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}"
            assert re.fullmatch(shape, by_orm[column]), by_orm[column]
            assert re.fullmatch(shape, by_driver[column]), by_driver[column]

        orm, driver = await job_rows(db)
        assert (driver.payload, driver.tenant_id, driver.status, driver.kind) == (
            orm.payload,
            orm.tenant_id,
            orm.status,
            orm.kind,
        )
        assert isinstance(driver.id, uuid.UUID)
        assert driver.run_at.tzinfo is not None
    finally:
        await db.dispose()


async def test_a_unit_waits_off_the_loop_while_another_process_writes(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    other = sqlite3.connect(sqlite_path(sqlite_url), isolation_level=None)
    try:
        tenant = await make_tenant(db)
        other.execute("BEGIN IMMEDIATE")  # another process is writing
        unit = asyncio.create_task(db.run_sync(Scope.system(), schedule(tenant.id, "k:1")))
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(20):  # the loop goes on meanwhile (the lock waits up to 10 s)
            await asyncio.sleep(0.01)
        assert loop.time() - started < 5
        assert not unit.done()
        other.execute("COMMIT")
        await asyncio.wait_for(unit, 10)
        await db.run_sync(Scope.system(), schedule(tenant.id, "k:2"))  # the loop's again
        assert [job.dedupe_key for job in await job_rows(db)] == ["k:1", "k:2"]
    finally:
        other.close()
        await db.dispose()


async def test_the_write_ahead_log_is_checkpointed_as_units_commit(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The units' connection does not checkpoint as it commits; every few units one is
    run beside it, so a database only they write to keeps a write-ahead log of a few
    units, not of all of them."""
    monkeypatch.setattr(db_module._SqliteDirect, "CHECKPOINT_EVERY", 5)
    db = Database(sqlite_url)
    try:
        tenant = await make_tenant(db)
        big = {"blob": "x" * 40_000}
        for n in range(100):  # ~4 MB written
            await db.run_sync(Scope.system(), schedule(tenant.id, f"k:{n}", big))
        wal = sqlite_path(sqlite_url).with_name("atiende.db-wal")
        assert wal.stat().st_size < 1_000_000
        assert len(await job_rows(db)) == 100
    finally:
        await db.dispose()
