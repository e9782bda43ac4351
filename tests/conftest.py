"""Test set-up: every database test runs on SQLite and, when reachable, on PostgreSQL.

The schema is built by running the real migrations once per backend. SQLite tests each get a
copy of the migrated file; PostgreSQL tests share one throw-away database emptied after each
test. With ``ATIENDE_CI=1`` (set by ``.ci/run``) PostgreSQL and Redis are required: a test
that needs one that is down fails instead of being skipped.
"""

from __future__ import annotations

import asyncio
import os

# Before anything imports atiende: cheap password hashing for the whole suite.
os.environ.setdefault("ATIENDE_PASSWORD_HASHING", "cheapest")
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from atiende.core import migrate
from atiende.core.clock import TestClock
from atiende.core.config import Settings
from atiende.core.db import Database, create_engine
from atiende.models import Base
from atiende.web.app import create_app
from factories import running

PG_ADMIN_URL = os.environ.get(
    "ATIENDE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("ATIENDE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("ATIENDE_CI") == "1"
T = TypeVar("T")


def in_thread(func: Callable[..., T], *args: Any) -> T:
    """Run blocking set-up (which may call ``asyncio.run``) off the test's event loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(func, *args).result()


def _postgres_reachable() -> bool:
    async def probe() -> bool:
        engine = create_engine(PG_ADMIN_URL, pool=False)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return True
        except Exception:
            return False
        finally:
            await engine.dispose()

    return asyncio.run(probe())


def _redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:
        return False


POSTGRES_UP = _postgres_reachable()
REDIS_UP = _redis_reachable()


def require(available: bool, what: str) -> None:
    """Skip when a service is missing on a developer machine; fail in CI."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not reachable")
    pytest.skip(f"{what} not reachable")


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "atiende.db"
    in_thread(migrate.upgrade, f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    require(POSTGRES_UP, "PostgreSQL")
    name = f"atiende_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        engine = create_engine(PG_ADMIN_URL, pool=False)
        try:
            async with engine.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.execute(text(sql))
        finally:
            await engine.dispose()

    in_thread(asyncio.run, admin(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    in_thread(migrate.upgrade, url)
    yield url
    in_thread(asyncio.run, admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _empty_postgres(url: str) -> None:
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    engine = create_engine(url, pool=False)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "atiende.db"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url: str = request.getfixturevalue("postgres_database")
    await _empty_postgres(url)
    yield url
    await _empty_postgres(url)


@pytest.fixture
def redis_url() -> str:
    require(REDIS_UP, "Redis")
    return REDIS_URL


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret",
        environment="test",
        auto_migrate=False,
        embedded_worker=False,
        websocket_heartbeat_seconds=0.5,
    )


@pytest.fixture
async def app(settings: Settings, clock: TestClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock, run_worker=False)
    async with running(application):
        yield application


@pytest.fixture
def db(app: FastAPI) -> Database:
    database: Database = app.state.atiende.db
    return database


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI nothing may be skipped: a skip there would hide an untested backend."""
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        if reporter:
            reporter.write_line(
                f"CI: {len(skipped)} test(s) were skipped; failing the run", red=True
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
