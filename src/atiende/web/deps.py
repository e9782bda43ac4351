"""Request dependencies: who is calling, CSRF, and the unit of work in the caller's scope."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.core.db import Scope
from atiende.core.errors import CsrfFailed, NotAuthenticated, PermissionDenied
from atiende.core.security import secrets_equal
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.web.state import AppState

SESSION_COOKIE = "atiende_session"
LANG_COOKIE = "atiende_lang"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Principal:
    actor: Actor
    user_id: uuid.UUID
    email: str
    name: str
    role: Role
    tenant_id: uuid.UUID | None
    locale: str | None
    web_session_id: uuid.UUID | None = None
    csrf_token: str | None = None

    @property
    def scope(self) -> Scope:
        return Scope.system() if self.actor.is_vendor else Scope.tenant(self.tenant_id)  # type: ignore[arg-type]


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.atiende
    return state


def _principal(user: User, via: str, web_session: object | None = None) -> Principal:
    return Principal(
        actor=identity.actor_for(user, via),
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        tenant_id=user.tenant_id,
        locale=user.locale,
        web_session_id=getattr(web_session, "id", None),
        csrf_token=getattr(web_session, "csrf_token", None),
    )


async def resolve_principal(
    state: AppState, bearer: str | None, cookie: str | None
) -> Principal | None:
    """Bearer token first (integrations), then the session cookie (browsers)."""
    async with state.db.session(Scope.system()) as session:
        if bearer:
            user = await identity.resolve_api_token(session, bearer)
            return None if user is None else _principal(user, "token")
        if cookie:
            found = await identity.resolve_web_session(session, cookie)
            if found is not None:
                return _principal(found[0], "session", found[1])
    return None


def bearer_of(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return None


async def optional_principal(request: Request) -> Principal | None:
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    principal = await resolve_principal(
        app_state(request),
        bearer_of(request.headers.get("authorization")),
        request.cookies.get(SESSION_COOKIE),
    )
    request.state.principal = principal
    return principal


async def current_principal(
    request: Request, principal: Annotated[Principal | None, Depends(optional_principal)]
) -> Principal:
    if principal is None:
        raise NotAuthenticated()
    if principal.actor.via == "session" and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            form = await request.form()
            value = form.get("csrf_token")
            sent = value if isinstance(value, str) else None
        if not sent or not principal.csrf_token or not secrets_equal(sent, principal.csrf_token):
            raise CsrfFailed()
    return principal


async def unit_of_work(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> AsyncIterator[AsyncSession]:
    """One transaction per request in the caller's tenant scope, committed before the
    response is sent (``scope="function"`` below), so a 2xx means the change is durable."""
    async with app_state(request).db.session(principal.scope) as session:
        yield session


async def system_unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    async with app_state(request).db.session(Scope.system()) as session:
        yield session


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Session = Annotated[AsyncSession, Depends(unit_of_work, scope="function")]
SystemSession = Annotated[AsyncSession, Depends(system_unit_of_work, scope="function")]


def require_roles(*roles: Role) -> Any:
    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise PermissionDenied()
        return principal

    return Depends(check)
