"""Users, logins, sessions and tokens. The only writer of the identity tables.

Lookups that establish *who* is calling (login by e-mail, cookie, bearer token) run in the
system scope because the tenant is not known yet; everything after runs in the caller's scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.audit import service as audit
from atiende.billing import entitlements
from atiende.core.db import now, session_scope
from atiende.core.errors import (
    AtiendeError,
    Conflict,
    InvalidCredentials,
    NotFound,
    PermissionDenied,
    RateLimited,
    ValidationFailed,
)
from atiende.core.events import emit
from atiende.core.ids import new_token, token_digest
from atiende.core.security import hash_password, needs_rehash, verify_password
from atiende.identity.actor import Actor
from atiende.identity.events import UserCreated, UserDeleted, UserUpdated
from atiende.identity.models import (
    TENANT_ROLES,
    VENDOR_ROLES,
    ApiToken,
    LoginAttempt,
    Role,
    User,
    WebSession,
)
from atiende.identity.schemas import (
    PasswordChange,
    UserCreate,
    UserOut,
    UserUpdate,
    check_password_strength,
)
from atiende.tenancy.models import Tenant

SESSION_TOKEN_PREFIX = "ses"  # noqa: S105 - a prefix, not a secret
API_TOKEN_PREFIX = "atd"  # noqa: S105 - a prefix, not a secret
USER_MANAGERS = frozenset({Role.admin, Role.vendor_admin})


def _snapshot(user: User) -> dict[str, object]:
    return UserOut.model_validate(user).model_dump(mode="json")


def actor_for(user: User, via: str = "session") -> Actor:
    return Actor(
        user_id=user.id,
        email=user.email,
        role=user.role,
        tenant_id=user.tenant_id,
        via=via,  # type: ignore[arg-type]
    )


# --- users --------------------------------------------------------------------------------


def _require_manager(actor: Actor) -> None:
    if actor.role not in USER_MANAGERS:
        raise PermissionDenied()


async def create_user(session: AsyncSession, actor: Actor, data: UserCreate) -> User:
    _require_manager(actor)
    tenant_id = data.tenant_id if actor.is_vendor else actor.tenant_id
    if data.tenant_id is not None and not actor.is_vendor and data.tenant_id != actor.tenant_id:
        raise NotFound("tenant")
    if data.role in VENDOR_ROLES:
        if not actor.has(Role.vendor_admin):
            raise PermissionDenied("Only vendor admins create vendor staff.")
        if tenant_id is not None:
            raise ValidationFailed("Vendor staff belong to no tenant.", field="tenant_id")
    elif tenant_id is None:
        raise ValidationFailed("Tenant users need a tenant.", field="tenant_id")
    if tenant_id is not None and await session.get(Tenant, tenant_id) is None:
        raise NotFound("tenant")
    email = data.email.lower()
    if await _email_taken(session, email):
        raise Conflict("A user with this e-mail exists.", code="user_email_taken", field="email")
    if tenant_id is not None and data.role is Role.agent:
        await entitlements.require_seat(session, tenant_id)
    instant = now(session)
    user = User(
        tenant_id=tenant_id,
        email=email,
        name=data.name,
        role=data.role,
        locale=data.locale,
        password_hash=hash_password(data.password),
        is_active=True,
        created_at=instant,
        password_changed_at=instant,
    )
    try:
        async with session.begin_nested():
            session.add(user)
    except IntegrityError as error:  # created concurrently since the check above
        raise Conflict(
            "A user with this e-mail exists.", code="user_email_taken", field="email"
        ) from error
    await audit.record(
        session,
        actor,
        "user.create",
        resource_type="user",
        resource_id=user.id,
        tenant_id=tenant_id,
        after=_snapshot(user),
    )
    await emit(session, UserCreated(user_id=user.id, role=user.role.value), tenant_id=tenant_id)
    return user


async def _email_taken(session: AsyncSession, email: str) -> bool:
    # E-mails are unique across the installation; this check must see every tenant, so it
    # reads the bare column (not a tenant-scoped entity) on purpose.
    count = await session.scalar(
        select(func.count()).select_from(User.__table__).where(User.__table__.c.email == email)
    )
    return bool(count)


async def list_users(session: AsyncSession, actor: Actor) -> Sequence[User]:
    if actor.role not in {Role.admin, Role.supervisor, Role.vendor_admin}:
        raise PermissionDenied()
    return (await session.scalars(select(User).order_by(User.name, User.email))).all()


async def get_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user")
    if actor.user_id != user.id and actor.role not in {
        Role.admin,
        Role.supervisor,
        Role.vendor_admin,
    }:
        raise NotFound("user")
    return user


async def update_user(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, data: UserUpdate
) -> User:
    _require_manager(actor)
    user = await get_user(session, actor, user_id)
    changes = {
        field: value
        for field, value in data.model_dump(exclude_unset=True).items()
        if getattr(user, field) != value
    }
    if "role" in changes:
        allowed = VENDOR_ROLES if user.tenant_id is None else TENANT_ROLES
        if changes["role"] not in allowed:
            raise ValidationFailed(
                "That role does not fit this user.", code="role_not_allowed", field="role"
            )
    if user.id == actor.user_id and (
        changes.get("is_active") is False or changes.get("role", user.role) != user.role
    ):
        raise Conflict("You cannot demote or deactivate yourself.", code="cannot_change_self")
    becomes_agent = (
        changes.get("role", user.role) is Role.agent
        and changes.get("is_active", user.is_active)
        and ("role" in changes or "is_active" in changes)
    )
    if becomes_agent and user.tenant_id is not None:
        await entitlements.require_seat(session, user.tenant_id)
    before = _snapshot(user)
    for field, value in changes.items():
        setattr(user, field, value)
    await session.flush()
    if changes.get("is_active") is False:
        await _end_sessions(session, user.id)
    if changes:
        await audit.record(
            session,
            actor,
            "user.update",
            resource_type="user",
            resource_id=user.id,
            tenant_id=user.tenant_id,
            before=before,
            after=_snapshot(user),
        )
        await emit(
            session, UserUpdated(user_id=user.id, changes=sorted(changes)), tenant_id=user.tenant_id
        )
    return user


async def delete_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> None:
    _require_manager(actor)
    user = await get_user(session, actor, user_id)
    if user.id == actor.user_id:
        raise Conflict("You cannot delete yourself.", code="cannot_change_self")
    before = _snapshot(user)
    tenant_id = user.tenant_id
    await session.delete(user)
    await session.flush()
    await audit.record(
        session,
        actor,
        "user.delete",
        resource_type="user",
        resource_id=user_id,
        tenant_id=tenant_id,
        before=before,
    )
    await emit(session, UserDeleted(user_id=user_id), tenant_id=tenant_id)


async def set_locale(session: AsyncSession, actor: Actor, locale: str) -> User:
    user = await get_user(session, actor, _self_id(actor))
    user.locale = locale
    await session.flush()
    return user


def _self_id(actor: Actor) -> uuid.UUID:
    if actor.user_id is None:
        raise PermissionDenied("This needs a user.")
    return actor.user_id


# --- login and sessions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    user: User | None
    rate_limited: bool = False
    refusal: AtiendeError | None = None


async def authenticate(
    session: AsyncSession,
    email: str,
    password: str,
    *,
    client_ip: str,
    max_failures: int,
    window_seconds: int,
    licence_grace_days: int = entitlements.DEFAULT_LICENCE_GRACE_DAYS,
) -> LoginOutcome:
    """Check a password login. Failures are recorded (and must be committed by the caller even
    though the login is refused), so the caller turns the outcome into an error afterwards."""
    _require_system_scope(session)
    email = email.strip().lower()
    instant = now(session)
    since = instant - timedelta(seconds=window_seconds)
    by_email = await session.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.email == email, LoginAttempt.attempted_at >= since)
    )
    by_ip = await session.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.client_ip == client_ip, LoginAttempt.attempted_at >= since)
    )
    if (by_email or 0) >= max_failures or (by_ip or 0) >= max_failures * 4:
        return LoginOutcome(user=None, rate_limited=True)
    user = await session.scalar(select(User).where(User.email == email))
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active:
        session.add(LoginAttempt(email=email, client_ip=client_ip, attempted_at=instant))
        await session.flush()
        return LoginOutcome(user=None)
    refusal = await entitlements.login_refusal(session, user, grace_days=licence_grace_days)
    if refusal is not None:  # the password was right: not a failed attempt
        return LoginOutcome(user=None, refusal=refusal)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    await session.execute(delete(LoginAttempt).where(LoginAttempt.email == email))
    return LoginOutcome(user=user)


def raise_for(outcome: LoginOutcome, *, window_seconds: int) -> User:
    if outcome.rate_limited:
        raise RateLimited(
            "Too many failed logins; wait a few minutes and try again.",
            retry_after=window_seconds,
        )
    if outcome.refusal is not None:
        raise outcome.refusal
    if outcome.user is None:
        raise InvalidCredentials()
    return outcome.user


def _require_system_scope(session: AsyncSession) -> None:
    scope = session_scope(session)
    if scope is None or not scope.all_tenants:
        raise RuntimeError("identity lookups run in the system scope")


async def start_web_session(
    session: AsyncSession, user: User, *, days: int
) -> tuple[str, WebSession]:
    """Returns the cookie value (only its digest is stored) and the session row."""
    token = new_token(SESSION_TOKEN_PREFIX)
    instant = now(session)
    web_session = WebSession(
        token_digest=token_digest(token),
        csrf_token=new_token("csrf", 24),
        user_id=user.id,
        created_at=instant,
        expires_at=instant + timedelta(days=days),
    )
    session.add(web_session)
    await session.flush()
    return token, web_session


async def resolve_web_session(session: AsyncSession, token: str) -> tuple[User, WebSession] | None:
    _require_system_scope(session)
    web_session = await session.scalar(
        select(WebSession).where(WebSession.token_digest == token_digest(token))
    )
    if web_session is None or web_session.expires_at <= now(session):
        return None
    user = await session.get(User, web_session.user_id)
    if user is None or not user.is_active:
        return None
    return user, web_session


async def end_web_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(WebSession).where(WebSession.token_digest == token_digest(token)))


async def _end_sessions(
    session: AsyncSession, user_id: uuid.UUID, *, keep: uuid.UUID | None = None
) -> None:
    query = delete(WebSession).where(WebSession.user_id == user_id)
    if keep is not None:
        query = query.where(WebSession.id != keep)
    await session.execute(query)


async def end_tenant_sessions(
    session: AsyncSession, tenant_id: uuid.UUID, roles: frozenset[Role]
) -> None:
    """Sign out every browser of a tenant's users with these roles (service suspended)."""
    users = select(User.__table__.c.id).where(
        User.__table__.c.tenant_id == tenant_id,
        User.__table__.c.role.in_([role.value for role in roles]),
    )
    await session.execute(delete(WebSession).where(WebSession.user_id.in_(users)))


async def change_password(
    session: AsyncSession,
    actor: Actor,
    data: PasswordChange,
    *,
    current_session_id: uuid.UUID | None,
) -> None:
    """Changing a password ends every other browser session of the user."""
    user = await get_user(session, actor, _self_id(actor))
    if not verify_password(user.password_hash, data.current_password):
        raise InvalidCredentials("The current password is wrong.")
    user.password_hash = hash_password(data.new_password)
    user.password_changed_at = now(session)
    await _end_sessions(session, user.id, keep=current_session_id)
    await audit.record(
        session,
        actor,
        "user.password_change",
        resource_type="user",
        resource_id=user.id,
        tenant_id=user.tenant_id,
    )


async def set_password(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, new_password: str
) -> User:
    """An administrator sets someone's password (a reset): all their sessions end."""
    _require_manager(actor)
    user = await get_user(session, actor, user_id)
    try:
        check_password_strength(new_password)
    except ValueError as error:
        raise ValidationFailed(str(error).capitalize() + ".", field="password") from error
    user.password_hash = hash_password(new_password)
    user.password_changed_at = now(session)
    await _end_sessions(session, user.id)
    await audit.record(
        session,
        actor,
        "user.password_reset",
        resource_type="user",
        resource_id=user.id,
        tenant_id=user.tenant_id,
    )
    return user


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.strip().lower()))


async def purge_expired(session: AsyncSession, *, login_window_seconds: int) -> int:
    """Housekeeping: drop expired sessions and stale login attempts."""
    instant = now(session)
    sessions = await session.execute(delete(WebSession).where(WebSession.expires_at <= instant))
    attempts = await session.execute(
        delete(LoginAttempt).where(
            LoginAttempt.attempted_at < instant - timedelta(seconds=login_window_seconds)
        )
    )
    return int(sessions.rowcount or 0) + int(attempts.rowcount or 0)  # type: ignore[attr-defined]


# --- API tokens ---------------------------------------------------------------------------


async def create_api_token(session: AsyncSession, actor: Actor, name: str) -> tuple[str, ApiToken]:
    user = await get_user(session, actor, _self_id(actor))
    token = new_token(API_TOKEN_PREFIX)
    api_token = ApiToken(
        tenant_id=user.tenant_id,
        user_id=user.id,
        name=name,
        token_digest=token_digest(token),
        prefix=token[:10],
        created_at=now(session),
    )
    session.add(api_token)
    await session.flush()
    await audit.record(
        session,
        actor,
        "api_token.create",
        resource_type="api_token",
        resource_id=api_token.id,
        tenant_id=user.tenant_id,
        after={"name": name, "prefix": api_token.prefix},
    )
    return token, api_token


async def list_api_tokens(session: AsyncSession, actor: Actor) -> Sequence[ApiToken]:
    return (
        await session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == _self_id(actor))
            .order_by(ApiToken.created_at.desc())
        )
    ).all()


async def get_api_token(session: AsyncSession, actor: Actor, token_id: uuid.UUID) -> ApiToken:
    api_token = await session.get(ApiToken, token_id)
    if api_token is None or api_token.user_id != actor.user_id:
        raise NotFound("api_token")
    return api_token


async def revoke_api_token(session: AsyncSession, actor: Actor, token_id: uuid.UUID) -> ApiToken:
    api_token = await get_api_token(session, actor, token_id)
    if api_token.revoked_at is None:
        api_token.revoked_at = now(session)
        await audit.record(
            session,
            actor,
            "api_token.revoke",
            resource_type="api_token",
            resource_id=api_token.id,
            tenant_id=api_token.tenant_id,
        )
    return api_token


TOKEN_USE_RESOLUTION = timedelta(minutes=1)


async def resolve_api_token(session: AsyncSession, token: str) -> tuple[User, ApiToken] | None:
    """The active user behind a bearer token. Reads only; see ``mark_token_used``."""
    _require_system_scope(session)
    api_token = await session.scalar(
        select(ApiToken).where(ApiToken.token_digest == token_digest(token))
    )
    if api_token is None or api_token.revoked_at is not None:
        return None
    user = await session.get(User, api_token.user_id)
    if user is None or not user.is_active:
        return None
    return user, api_token


def token_use_is_stale(session: AsyncSession, api_token: ApiToken) -> bool:
    """``last_used_at`` is kept to the minute, so most requests need not write it."""
    last = api_token.last_used_at
    return last is None or now(session) - last >= TOKEN_USE_RESOLUTION


async def mark_token_used(session: AsyncSession, token_id: uuid.UUID) -> None:
    await session.execute(
        update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now(session))
    )
