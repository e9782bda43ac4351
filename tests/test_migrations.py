"""The migrations are the schema: they build every table the models declare, and unwind."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from atiende.core import migrate
from atiende.core.db import create_engine
from atiende.models import Base


async def test_models_and_migrations_agree(database_url: str) -> None:
    engine = create_engine(database_url, pool=False)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await engine.dispose()
    assert diff == []


async def test_migrations_downgrade_to_nothing_and_back(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'roundtrip.db'}"
    await migrate.upgrade_async(url)
    await migrate.upgrade_async(url, "head")
    await asyncio.to_thread(command.downgrade, migrate.alembic_config(url), "base")
    engine = create_engine(url, pool=False)
    try:
        assert await migrate.current_revision(engine) is None
        await migrate.upgrade_async(url)
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()
