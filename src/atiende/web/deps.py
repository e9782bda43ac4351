"""Request dependencies: who is calling, CSRF, and the unit of work in the caller's scope.

An API request costs one transaction: the unit of work starts in the system scope, resolves
the caller (bearer token or session cookie) inside it, checks CSRF, then narrows itself to the
caller's tenant before the endpoint runs. Safe methods (GET, HEAD) run read-only.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.core.db import SCOPE_KEY, Scope
from atiende.core.errors import CsrfFailed, NotAuthenticated, PermissionDenied
from atiende.core.security import secrets_equal
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User, WebSession
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
        if self.actor.is_vendor or self.tenant_id is None:
            return Scope.system()
        return Scope.tenant(self.tenant_id)


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.atiende
    return state


def _principal(user: User, via: str, web_session: WebSession | None = None) -> Principal:
    return Principal(
        actor=identity.actor_for(user, via),
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        tenant_id=user.tenant_id,
        locale=user.locale,
        web_session_id=web_session.id if web_session else None,
        csrf_token=web_session.csrf_token if web_session else None,
    )


async def principal_in(
    session: AsyncSession, bearer: str | None, cookie: str | None
) -> tuple[Principal | None, uuid.UUID | None]:
    """Resolve the caller inside a system-scoped session. Bearer tokens first (integrations),
    then the session cookie (browsers). Also returns a token whose use should be recorded."""
    if bearer:
        found = await identity.resolve_api_token(session, bearer)
        if found is None:
            return None, None
        user, api_token = found
        stale = identity.token_use_is_stale(session, api_token)
        return _principal(user, "token"), api_token.id if stale else None
    if cookie:
        resolved = await identity.resolve_web_session(session, cookie)
        if resolved is not None:
            return _principal(resolved[0], "session", resolved[1]), None
    return None, None


async def resolve_principal(
    state: AppState, bearer: str | None, cookie: str | None
) -> Principal | None:
    """Resolve the caller in a short transaction of its own (pages, websockets)."""
    async with state.db.session(Scope.system(), read_only=True) as session:
        principal, used_token = await principal_in(session, bearer, cookie)
    if used_token is not None:
        await _record_token_use(state, used_token)
    return principal


async def _record_token_use(state: AppState, token_id: uuid.UUID) -> None:
    async with state.db.session(Scope.system()) as session:
        await identity.mark_token_used(session, token_id)


def bearer_of(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return None


def _credentials(request: Request) -> tuple[str | None, str | None]:
    return bearer_of(request.headers.get("authorization")), request.cookies.get(SESSION_COOKIE)


async def optional_principal(request: Request) -> Principal | None:
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    principal = await resolve_principal(app_state(request), *_credentials(request))
    request.state.principal = principal
    return principal


async def _check_csrf(request: Request, principal: Principal) -> None:
    """Browser sessions send the token back on every unsafe request (header or form field)."""
    if principal.actor.via != "session" or request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not sent or not principal.csrf_token or not secrets_equal(sent, principal.csrf_token):
        raise CsrfFailed()


async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request in the caller's tenant scope, committed before the
    response is sent (``scope="function"`` below), so a 2xx means the change is durable."""
    state = app_state(request)
    read_only = request.method in SAFE_METHODS
    async with state.db.session(Scope.system(), read_only=read_only) as session:
        principal, used_token = await principal_in(session, *_credentials(request))
        if principal is None:
            raise NotAuthenticated()
        await _check_csrf(request, principal)
        request.state.principal = principal
        if used_token is not None and not read_only:
            await identity.mark_token_used(session, used_token)
            used_token = None
        session.info[SCOPE_KEY] = principal.scope
        yield session
    if used_token is not None:
        await _record_token_use(state, used_token)


async def public_unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction for a public route (sign-up, pre-sale form, price quotes): no
    principal, the vendor's system scope, committed before the response is sent."""
    state = app_state(request)
    async with state.db.session(
        Scope.system(), read_only=request.method in SAFE_METHODS
    ) as session:
        yield session


async def current_principal(
    request: Request, session: Annotated[AsyncSession, Depends(unit_of_work, scope="function")]
) -> Principal:
    principal: Principal = request.state.principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Session = Annotated[AsyncSession, Depends(unit_of_work, scope="function")]
PublicSession = Annotated[AsyncSession, Depends(public_unit_of_work, scope="function")]


def require_roles(*roles: Role) -> Any:
    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise PermissionDenied()
        return principal

    return Depends(check)
