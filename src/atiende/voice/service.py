"""PBXs of a tenant, and the Asterisk configuration each one needs.

The only writer of ``pbxs``. The ARI password is sealed with the installation's key
(``core/sealing.py``) and is never returned or printed unless asked for explicitly.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.audit import service as audit
from atiende.core.config import Settings
from atiende.core.db import now, require_tenant
from atiende.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from atiende.core.sealing import SecretBox
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.tenancy.models import Tenant
from atiende.voice import pbx as pbx_files
from atiende.voice.models import DEFAULT_APP_NAME, Extension, Pbx

PASSWORD_KEY: Final = "ari_password"  # noqa: S105 - the key it is sealed under
DEFAULT_ARI_URL: Final = "http://127.0.0.1:8088/ari"
DEFAULT_ARI_USERNAME: Final = "atiende"
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def box(settings: Settings) -> SecretBox:
    return SecretBox(settings.resolved_secret_key, purpose=b"atiende pbx secrets")


class PbxCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100)
    ari_url: str = Field(max_length=500, description="e.g. http://10.0.0.5:8088/ari")
    ari_username: str = Field(max_length=100)
    ari_password: str = Field(description="Write-only: stored sealed, never returned.")
    app_name: str = Field(default=DEFAULT_APP_NAME, max_length=100)

    @field_validator("ari_url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            pbx_files.ari_address(value)
        except pbx_files.PbxConfigInvalid as error:
            raise ValueError(error.message) from error
        return value.rstrip("/")

    @field_validator("name", "ari_username", "app_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use letters, digits, '.', '_' and '-' (up to 64)")
        return value

    @field_validator("ari_password")
    @classmethod
    def _password(cls, value: str) -> str:
        try:
            return pbx_files.check_secret(value, "ari_password")
        except pbx_files.PbxConfigInvalid as error:
            raise ValueError(error.message) from error


def _require_admin(actor: Actor) -> None:
    if not actor.has(Role.admin, Role.vendor_admin):
        raise PermissionDenied("Only administrators configure PBXs.")


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
        created_at=now(session),
    )
    session.add(pbx)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as error:
        raise Conflict("A PBX with this name exists.", code="pbx_name_taken") from error
    await audit.record(
        session,
        actor,
        "pbx.create",
        resource_type="pbx",
        resource_id=pbx.id,
        tenant_id=tenant_id,
        after={
            "name": pbx.name,
            "ari_url": pbx.ari_url,
            "ari_username": pbx.ari_username,
            "app_name": pbx.app_name,
        },
    )
    return pbx


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
    random ones with ``generate_secrets`` (to be set on the phones as printed).
    """
    pbx = await choose_pbx(session, pbx_name)
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
