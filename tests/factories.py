"""Factories: build what a test needs through the real services, and API clients for it."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from atiende.core.db import Database, Scope
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.identity.schemas import UserCreate
from atiende.tenancy import service as tenancy
from atiende.tenancy.models import Tenant
from atiende.tenancy.schemas import TenantCreate

PASSWORD = "correct horse battery"
_counter = itertools.count(1)


async def make_tenant(db: Database, slug: str | None = None, **fields: Any) -> Tenant:
    data = TenantCreate(
        slug=slug or f"tenant-{next(_counter)}", name=fields.pop("name", "Acme"), **fields
    )
    async with db.session(Scope.system()) as session:
        return await tenancy.create_tenant(session, Actor.system(), data)


async def make_user(
    db: Database,
    tenant: Tenant | None,
    role: Role = Role.admin,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    locale: str | None = None,
) -> User:
    data = UserCreate(
        email=email or f"user{next(_counter)}@example.com",
        name=f"{role.value.title()} {next(_counter)}",
        role=role,
        password=password,
        tenant_id=tenant.id if tenant else None,
        locale=locale,  # type: ignore[arg-type]
    )
    async with db.session(Scope.system()) as session:
        return await identity.create_user(session, Actor.system(), data)


async def make_token(db: Database, user: User) -> str:
    scope = Scope.tenant(user.tenant_id) if user.tenant_id else Scope.system()
    async with db.session(scope) as session:
        token, _ = await identity.create_api_token(session, identity.actor_for(user), "tests")
    return token


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Run the app's lifespan (bus, migrations if enabled) around a block."""
    async with app.router.lifespan_context(app):
        yield app


def api_client(app: FastAPI, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers
    )


@dataclass
class Caller:
    """A user and an API client acting as them."""

    user: User
    client: httpx.AsyncClient

    @property
    def id(self) -> uuid.UUID:
        return self.user.id


async def caller(app: FastAPI, tenant: Tenant | None, role: Role = Role.admin) -> Caller:
    db: Database = app.state.atiende.db
    user = await make_user(db, tenant, role)
    return Caller(user=user, client=api_client(app, await make_token(db, user)))


async def browser_login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Log in like the web UI does; returns the CSRF token for later writes."""
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    return token


class LiveServer:
    """A real uvicorn server for the app, in this event loop, on a free port."""

    def __init__(self, app: FastAPI) -> None:
        import uvicorn

        self.app = app
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveServer:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task

    @property
    def port(self) -> int:
        sockets = self.server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"
