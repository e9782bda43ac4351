"""PBXs of a tenant, and the Asterisk configuration each one needs.

The only writer of ``pbxs``. The ARI password is sealed with the installation's key
(``core/sealing.py``) and is never returned or printed unless asked for explicitly.
Administrators add, change, check (``check_pbx``: one short ARI conversation) and remove
PBXs; every change is audited without the password.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.audit import service as audit
from atiende.core.config import Settings
from atiende.core.db import database_of, now, require_tenant, session_scope
from atiende.core.errors import (
    AtiendeError,
    Conflict,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from atiende.core.sealing import SecretBox
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.tenancy.models import Tenant
from atiende.voice import numbers
from atiende.voice import pbx as pbx_files
from atiende.voice.access import require_admin
from atiende.voice.ari import AriAuthFailed, AriClient, AriRequestFailed, AriUnavailable
from atiende.voice.ari_events import AriEventMalformed
from atiende.voice.models import DEFAULT_APP_NAME, Call, Extension, Pbx

PASSWORD_KEY: Final = "ari_password"  # noqa: S105 - the key it is sealed under
DEFAULT_ARI_URL: Final = "http://127.0.0.1:8088/ari"
DEFAULT_ARI_USERNAME: Final = "atiende"
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: A check of a PBX waits this long for each answer (the request holds its unit of work).
CHECK_TIMEOUT_SECONDS: Final = 5.0


def box(settings: Settings) -> SecretBox:
    return SecretBox(settings.resolved_secret_key, purpose=b"atiende pbx secrets")


OUTBOUND_DIAL: Final = (
    "Outbound calls: the dial string, with {number} for the customer's number (E.164 without "
    "the +), e.g. PJSIP/{number}@trunk or Local/{number}@from-internal."
)
#: Fields of a PBX a change may set to null.
NULLABLE: Final = frozenset({"outbound_dial", "outbound_caller_id"})
_DIAL = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/[^\s,;|]*\{number\}[^\s,;|]*$")
_CALLER_ID = re.compile(r'^[^\x00-\x1f"<>]{0,60}( ?<\+?[0-9]{2,20}>)?$')


def _checked_dial(value: str) -> str:
    if not _DIAL.fullmatch(value):
        raise ValueError(
            "a dial string like PJSIP/{number}@trunk: a technology, a slash, and {number}, "
            "without spaces, commas, semicolons or |"
        )
    return value


def _checked_caller_id(value: str) -> str:
    if not value or not _CALLER_ID.fullmatch(value):
        raise ValueError("a caller id like Acme <5551234567> or 5551234567")
    return value


class PbxCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100)
    ari_url: str = Field(max_length=500, description="e.g. http://10.0.0.5:8088/ari")
    ari_username: str = Field(max_length=100)
    ari_password: str = Field(description="Write-only: stored sealed, never returned.")
    app_name: str = Field(default=DEFAULT_APP_NAME, max_length=100)
    outbound_dial: str | None = Field(default=None, max_length=200, description=OUTBOUND_DIAL)
    outbound_caller_id: str | None = Field(default=None, max_length=80)

    @field_validator("ari_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _checked_url(value)

    @field_validator("outbound_dial")
    @classmethod
    def _dial(cls, value: str | None) -> str | None:
        return None if value is None else _checked_dial(value)

    @field_validator("outbound_caller_id")
    @classmethod
    def _caller_id(cls, value: str | None) -> str | None:
        return None if value is None else _checked_caller_id(value)

    @field_validator("name", "ari_username", "app_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _checked_name(value)

    @field_validator("ari_password")
    @classmethod
    def _password(cls, value: str) -> str:
        return _checked_password(value)


def _checked_url(value: str) -> str:
    try:
        pbx_files.ari_address(value)
    except pbx_files.PbxConfigInvalid as error:
        raise ValueError(error.message) from error
    return value.rstrip("/")


def _checked_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("use letters, digits, '.', '_' and '-' (up to 64)")
    return value


def _checked_password(value: str) -> str:
    try:
        return pbx_files.check_secret(value, "ari_password")
    except pbx_files.PbxConfigInvalid as error:
        raise ValueError(error.message) from error


class PbxUpdate(BaseModel):
    """A partial change: fields left out stay as they are; none may be null. A new
    ``ari_password`` is sealed like the first one."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=100)
    ari_url: str | None = Field(default=None, max_length=500)
    ari_username: str | None = Field(default=None, max_length=100)
    ari_password: str | None = Field(default=None, description="Write-only.")
    app_name: str | None = Field(default=None, max_length=100)
    outbound_dial: str | None = Field(
        default=None, max_length=200, description=OUTBOUND_DIAL + " Null removes it."
    )
    outbound_caller_id: str | None = Field(default=None, max_length=80)

    @field_validator("outbound_dial")
    @classmethod
    def _dial(cls, value: str | None) -> str | None:
        return None if value is None else _checked_dial(value)

    @field_validator("outbound_caller_id")
    @classmethod
    def _caller_id(cls, value: str | None) -> str | None:
        return None if value is None else _checked_caller_id(value)

    @field_validator("ari_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _checked_url(value)

    @field_validator("name", "ari_username", "app_name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _checked_name(value)

    @field_validator("ari_password")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        return None if value is None else _checked_password(value)

    @model_validator(mode="after")
    def _no_nulls(self) -> PbxUpdate:
        for field in self.model_fields_set - NULLABLE:
            if getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


def _require_admin(actor: Actor) -> None:
    require_admin(actor)


def _name_taken() -> Conflict:
    return Conflict("A PBX with this name exists.", code="pbx_name_taken", field="name")


def _snapshot(pbx: Pbx) -> dict[str, Any]:
    """What the audit keeps of a PBX: everything but the password."""
    return {
        "name": pbx.name,
        "ari_url": pbx.ari_url,
        "ari_username": pbx.ari_username,
        "app_name": pbx.app_name,
        "outbound_dial": pbx.outbound_dial,
        "outbound_caller_id": pbx.outbound_caller_id,
    }


async def add_pbx(
    session: AsyncSession, actor: Actor, data: PbxCreate, *, settings: Settings
) -> Pbx:
    _require_admin(actor)
    tenant_id = require_tenant(session)
    pbx = Pbx(
        name=data.name,
        ari_url=data.ari_url,
        ari_username=data.ari_username,
        sealed_ari_password=box(settings).seal({PASSWORD_KEY: data.ari_password}),
        app_name=data.app_name,
        outbound_dial=data.outbound_dial,
        outbound_caller_id=data.outbound_caller_id,
        created_at=now(session),
    )
    session.add(pbx)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as error:
        raise _name_taken() from error
    await audit.record(
        session,
        actor,
        "pbx.create",
        resource_type="pbx",
        resource_id=pbx.id,
        tenant_id=tenant_id,
        after=_snapshot(pbx),
    )
    return pbx


async def get_pbx(session: AsyncSession, actor: Actor, pbx_id: uuid.UUID) -> Pbx:
    """One PBX of the session's tenant (administrators and supervisors read them)."""
    if not actor.has(Role.admin, Role.supervisor, Role.vendor_admin):
        raise PermissionDenied()
    pbx = await session.get(Pbx, pbx_id)
    if pbx is None:
        raise NotFound("pbx", "PBX not found.")
    return pbx


async def update_pbx(
    session: AsyncSession, actor: Actor, pbx_id: uuid.UUID, data: PbxUpdate, *, settings: Settings
) -> Pbx:
    """Rename a PBX or point it elsewhere. Call control reads the PBXs again every half
    minute and connects with what it finds."""
    _require_admin(actor)
    pbx = await get_pbx(session, actor, pbx_id)
    before = _snapshot(pbx)
    changes = {
        field: value
        for field, value in data.model_dump(exclude_unset=True, exclude={"ari_password"}).items()
        if getattr(pbx, field) != value
    }
    new_password = data.ari_password is not None
    if not changes and not new_password:
        return pbx
    if "name" in changes:
        taken = await session.scalar(
            select(Pbx.id).where(Pbx.name == changes["name"], Pbx.id != pbx.id)
        )
        if taken is not None:
            raise _name_taken()
    for field, value in changes.items():
        setattr(pbx, field, value)
    if data.ari_password is not None:
        pbx.sealed_ari_password = box(settings).seal({PASSWORD_KEY: data.ari_password})
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as error:
        raise _name_taken() from error
    await audit.record(
        session,
        actor,
        "pbx.update",
        resource_type="pbx",
        resource_id=pbx.id,
        tenant_id=require_tenant(session),
        before=before,
        after={**_snapshot(pbx), "ari_password_changed": new_password},
    )
    return pbx


async def delete_pbx(session: AsyncSession, actor: Actor, pbx_id: uuid.UUID) -> None:
    """Forget a PBX. One that has carried calls stays (``pbx_in_use``): the calls, their
    recordings and the retention of those recordings need it; point it elsewhere instead."""
    _require_admin(actor)
    pbx = await get_pbx(session, actor, pbx_id)
    calls = int(
        await session.scalar(select(func.count()).select_from(Call).where(Call.pbx_id == pbx.id))
        or 0
    )
    if calls:
        raise Conflict(
            f"The PBX {pbx.name!r} has carried calls; change its address instead of deleting it.",
            code="pbx_in_use",
            calls=calls,
        )
    before = _snapshot(pbx)
    await session.delete(pbx)
    await session.flush()
    await audit.record(
        session,
        actor,
        "pbx.delete",
        resource_type="pbx",
        resource_id=pbx_id,
        tenant_id=require_tenant(session),
        before=before,
    )


# --- checking a PBX ---------------------------------------------------------------------------


class PbxUnreachable(AtiendeError):
    status_code = 502
    code = "pbx_unreachable"
    default_message = "The PBX did not answer at its ARI address."


class PbxAuthFailed(AtiendeError):
    status_code = 502
    code = "pbx_auth_failed"
    default_message = "The PBX refused the ARI user or password."


@dataclass(frozen=True, slots=True)
class PbxCheck:
    """What a check of a PBX found. ``failure`` is set when the PBX could not be asked at
    all; the check is audited either way, so the edge turns a failure into its error."""

    pbx: Pbx
    version: str = ""
    app_active: bool = False  # a client (call control) holds the application now
    websocket_ok: bool = False  # the events WebSocket is held, or could be opened
    websocket_error: str | None = None
    failure: AtiendeError | None = None


def ari_client(
    settings: Settings, pbx: Pbx, *, timeout: float = CHECK_TIMEOUT_SECONDS
) -> AriClient:
    """A short-lived client for one PBX (close it: ``async with``)."""
    return AriClient(
        pbx.ari_url,
        pbx.ari_username,
        ari_password(settings, pbx),
        app=pbx.app_name,
        timeout=timeout,
    )


def _failure(error: Exception) -> AtiendeError:
    if isinstance(error, AriAuthFailed):
        return PbxAuthFailed()
    if isinstance(error, AriRequestFailed):
        return PbxUnreachable(
            f"The PBX answered {error}; is the address its ARI (…:8088/ari)?",
            pbx_status=error.status,
            pbx_message=error.message,
        )
    if isinstance(error, AriEventMalformed):
        return PbxUnreachable(f"The address does not answer as Asterisk's ARI: {error.message}")
    return PbxUnreachable()


async def _ask(client: AriClient, pbx: Pbx) -> PbxCheck:
    try:
        info = await client.asterisk_info()
        active = await client.application_registered()
    except (AriRequestFailed, AriUnavailable, AriEventMalformed) as error:
        return PbxCheck(pbx, failure=_failure(error))
    if active:
        return PbxCheck(pbx, info.version, app_active=True, websocket_ok=True)
    try:
        await client.probe_events()
    except AriAuthFailed:
        return PbxCheck(pbx, info.version, websocket_error="the PBX refused the login")
    except (AriRequestFailed, AriUnavailable) as error:
        return PbxCheck(pbx, info.version, websocket_error=str(error))
    return PbxCheck(pbx, info.version, websocket_ok=True)


async def check_pbx(
    session: AsyncSession, actor: Actor, pbx_id: uuid.UUID, *, settings: Settings
) -> PbxCheck:
    """Ask the PBX its version (``GET /asterisk/info``) and whether its Stasis application
    is held by call control; when it is not, open the events WebSocket once to prove it can
    be. Audited as ``pbx.check`` with the outcome."""
    _require_admin(actor)
    pbx = await get_pbx(session, actor, pbx_id)
    async with ari_client(settings, pbx) as client:
        result = await _ask(client, pbx)
    await audit.record(
        session,
        actor,
        "pbx.check",
        resource_type="pbx",
        resource_id=pbx.id,
        tenant_id=require_tenant(session),
        after={
            "outcome": result.failure.error_code if result.failure else "ok",
            "version": result.version or None,
            "app_active": result.app_active,
            "websocket_ok": result.websocket_ok,
        },
    )
    return result


async def list_pbxs(session: AsyncSession) -> Sequence[Pbx]:
    return (await session.scalars(select(Pbx).order_by(Pbx.name))).all()


async def choose_pbx(session: AsyncSession, name: str | None) -> Pbx | None:
    """The PBX called ``name``; without a name, the tenant's only PBX (None if it has none)."""
    if name is not None:
        found = await session.scalar(select(Pbx).where(Pbx.name == name))
        if found is None:
            raise NotFound("pbx", f"The tenant has no PBX called {name!r}.")
        return found
    pbxs = await list_pbxs(session)
    if len(pbxs) > 1:
        names = ", ".join(p.name for p in pbxs)
        raise ValidationFailed(
            f"The tenant has several PBXs ({names}); say which.", code="pbx_choice_needed"
        )
    return pbxs[0] if pbxs else None


def ari_password(settings: Settings, pbx: Pbx) -> str:
    return box(settings).open(pbx.sealed_ari_password)[PASSWORD_KEY]


async def config_of(
    session: AsyncSession, actor: Actor, pbx_id: uuid.UUID, *, settings: Settings
) -> PbxConfig:
    """``atiende pbx config`` for one PBX, secrets as placeholders, for administrators. Each
    reading is audited (``pbx.config``) in a unit of work of its own: reading is safe."""
    _require_admin(actor)
    pbx = await get_pbx(session, actor, pbx_id)
    tenant_id = require_tenant(session)
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant")
    config = await pbx_config(session, tenant, settings=settings, pbx_name=pbx.name)
    async with database_of(session).session(session_scope(session)) as writer:
        await audit.record(
            writer,
            actor,
            "pbx.config",
            resource_type="pbx",
            resource_id=pbx.id,
            tenant_id=tenant_id,
            after={"name": pbx.name, "files": sorted(config.files)},
        )
    return config


@dataclass(frozen=True, slots=True)
class PbxConfig:
    tenant_slug: str
    pbx_name: str | None  # None: the tenant has no PBX yet; defaults were used
    files: dict[str, str]
    secrets_shown: bool


async def pbx_config(
    session: AsyncSession,
    tenant: Tenant,
    *,
    settings: Settings,
    pbx_name: str | None = None,
    dids: Sequence[str] = (),
    show_secrets: bool = False,
    generate_secrets: bool = False,
) -> PbxConfig:
    """The configuration files for one of the tenant's PBXs (in a tenant-scoped session).

    Stored secrets appear only with ``show_secrets``; otherwise they are placeholders. The
    extensions' SIP secrets are not stored by Atiende: they are placeholders, or fresh
    random ones with ``generate_secrets`` (to be set on the phones as printed). Without
    ``dids``, the tenant's numbers (``voice_numbers``) are the DIDs.
    """
    pbx = await choose_pbx(session, pbx_name)
    if not dids:
        dids = await numbers.dids(session)
    extensions = (await session.scalars(select(Extension).order_by(Extension.number))).all()
    phones = tuple(
        pbx_files.PhoneSecret(
            number=extension.number,
            secret=secrets.token_urlsafe(18)
            if generate_secrets
            else pbx_files.placeholder(f"secret-{extension.number}"),
        )
        for extension in extensions
    )
    password = pbx_files.placeholder("ari-password")
    if pbx is not None and show_secrets:
        password = ari_password(settings, pbx)
    setup = pbx_files.PbxSetup(
        tenant_slug=tenant.slug,
        pbx_name=pbx.name if pbx is not None else "(none registered)",
        ari_url=pbx.ari_url if pbx is not None else DEFAULT_ARI_URL,
        ari_username=pbx.ari_username if pbx is not None else DEFAULT_ARI_USERNAME,
        ari_password=password,
        app_name=pbx.app_name if pbx is not None else DEFAULT_APP_NAME,
        dids=tuple(dids),
        phones=phones,
    )
    return PbxConfig(
        tenant_slug=tenant.slug,
        pbx_name=None if pbx is None else pbx.name,
        files=pbx_files.render(setup),
        secrets_shown=show_secrets and pbx is not None,
    )
