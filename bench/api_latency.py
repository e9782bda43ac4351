"""Latency of an authenticated API read (bearer token → tenant-scoped query → JSON), in process
through the ASGI stack, on SQLite: what one request costs the server, without network."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from atiende.core.db import Scope
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.identity.schemas import UserCreate
from atiende.tenancy import service as tenancy
from atiende.tenancy.schemas import TenantCreate
from atiende.web.app import create_app
from bench.common import Result, median, percentile, sqlite_settings

REQUESTS = 1000
P95_CEILING_MS = 15.0
MEDIAN_CEILING_MS = 8.0


async def run(tmp: Path) -> list[Result]:
    app = create_app(await sqlite_settings(tmp), run_worker=False)
    db = app.state.atiende.db
    async with app.router.lifespan_context(app):
        async with db.session(Scope.system()) as session:
            tenant = await tenancy.create_tenant(
                session, Actor.system(), TenantCreate(slug="bench", name="Bench")
            )
            users = [
                await identity.create_user(
                    session,
                    Actor.system(),
                    UserCreate(
                        email=f"u{i}@bench.example.com",
                        name=f"User {i}",
                        role=Role.admin if i == 0 else Role.agent,
                        password="bench password",
                        tenant_id=tenant.id,
                    ),
                )
                for i in range(50)
            ]
        async with db.session(Scope.tenant(tenant.id)) as session:
            token, _ = await identity.create_api_token(
                session, identity.actor_for(users[0]), "bench"
            )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://bench",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            for _ in range(50):  # warm-up
                await client.get("/api/v1/users")
            samples = []
            for _ in range(REQUESTS):
                started = time.perf_counter()
                response = await client.get("/api/v1/users")
                samples.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
    return [
        Result("api GET /users (50 rows) median", median(samples), "ms", MEDIAN_CEILING_MS, False),
        Result(
            "api GET /users (50 rows) p95", percentile(samples, 0.95), "ms", P95_CEILING_MS, False
        ),
    ]
