"""Messaging channels: accounts (configuration with sealed secrets), webhook intake (verify,
store, acknowledge, then process in a job) and inbound processing into contacts,
interactions and messages routed by the account's queue. Outbound delivery is
``outbox.py``.

Intake order, for every provider: the account is found by the random ``webhook_key`` in
the URL; the adapter verifies the signature (a bad one is a 401 and nothing is stored);
the raw request is stored with the provider's event id (unique per account, so a
redelivery is acknowledged and changes nothing); a job parses and applies it, one job for
the events one transaction stored (``channels/tasks.py``). A payload that cannot be
understood is kept (``rejected``) and answered with a 400.

Intake is the one use case here that owns its transactions: webhooks that arrive together
are stored in one (``Inbox``), and each is acknowledged only once it has committed.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import secrets
import sqlite3
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

import httpx
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Table, bindparam, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as SyncSession
from sqlalchemy.sql.dml import ReturningInsert

from atiende.attachments import service as attachments
from atiende.attachments.storage import AttachmentStore
from atiende.audit import service as audit
from atiende.billing import entitlements
from atiende.channels.adapters import adapter_for
from atiende.channels.base import (
    AccountConfig,
    ChannelKind,
    InboundMessage,
    PayloadMalformed,
    RawRequest,
    RetryLater,
    SignatureInvalid,
    StatusUpdate,
)
from atiende.channels.models import ChannelAccount, InboundEvent, InboundStatus
from atiende.contacts import service as contacts
from atiende.contacts.models import IdentityKind
from atiende.conversations import service as conversations
from atiende.conversations.models import (
    Channel,
    Interaction,
    Message,
    MessageDirection,
    MessageStatus,
)
from atiende.core.config import Settings
from atiende.core.db import Database, DriverStatement, Scope, now, require_tenant
from atiende.core.errors import AtiendeError, Conflict, NotFound, PermissionDenied, ValidationFailed
from atiende.core.ids import new_id
from atiende.core.sealing import SecretBox, SecretsUnreadable, secret_box
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.jobs import service as jobs
from atiende.routing import service as routing
from atiende.routing.models import Queue

log = logging.getLogger(__name__)

PROCESS = "channels.process_inbound"
EVENTS_PER_JOB = 20  # a processing job applies the events one intake transaction stored
MAX_MEDIA_BYTES = 16 * 1024 * 1024
MEDIA_TYPES = frozenset(attachments.DEFAULT_ALLOWED_TYPES) | {
    "audio/aac",
    "audio/amr",
    "audio/mp4",
    "video/3gpp",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "text/vcard",
}
IDENTITY = {
    ChannelKind.whatsapp: IdentityKind.whatsapp,
    ChannelKind.telegram: IdentityKind.telegram,
    ChannelKind.sms: IdentityKind.phone,
    ChannelKind.api: IdentityKind.api,
}
STATUS = {
    "sent": MessageStatus.sent,
    "delivered": MessageStatus.delivered,
    "read": MessageStatus.read,
    "failed": MessageStatus.failed,
}


class StatusTooEarly(Exception):
    """A status for a message whose send has not been recorded yet: retried later."""


class IntakeUnavailable(AtiendeError):
    """Storing the webhook failed (the database is down, say): nothing is acknowledged, so
    the provider delivers it again."""

    status_code = 503
    code = "webhook_not_stored"
    default_message = "The webhook could not be stored; please deliver it again."


# --- configuration ------------------------------------------------------------------------


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: ChannelKind
    name: str = Field(min_length=1, max_length=100)
    queue_id: uuid.UUID
    settings: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(
        default_factory=dict, description="Write-only: never returned after saving."
    )


class AccountUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=100)
    queue_id: uuid.UUID | None = None
    is_active: bool | None = None
    settings: dict[str, Any] | None = Field(
        default=None, description="Merged into the current settings; null values remove one."
    )
    secrets: dict[str, str] | None = Field(
        default=None, description="Given secrets replace the stored ones; others are kept."
    )


class AccountOut(BaseModel):
    id: uuid.UUID
    kind: ChannelKind
    name: str
    queue_id: uuid.UUID | None
    is_active: bool
    settings: dict[str, Any]
    secrets_set: list[str] = Field(description="Names of the secrets stored (values never shown).")
    webhook_url: str


def box(settings: Settings) -> SecretBox:
    return secret_box(settings.resolved_secret_key, b"atiende channel secrets")


def webhook_url(settings: Settings, account: ChannelAccount) -> str:
    return f"{settings.public_url.rstrip('/')}/webhooks/{account.kind.value}/{account.webhook_key}"


def config_of(account: ChannelAccount, settings: Settings) -> AccountConfig:
    return AccountConfig(
        account_id=str(account.id),
        settings=dict(account.settings),
        secrets=box(settings).open(account.sealed_secrets),
        webhook_url=webhook_url(settings, account),
    )


def account_out(account: ChannelAccount, settings: Settings) -> AccountOut:
    return AccountOut(
        id=account.id,
        kind=account.kind,
        name=account.name,
        queue_id=account.queue_id,
        is_active=account.is_active,
        settings=dict(account.settings),
        secrets_set=sorted(box(settings).open(account.sealed_secrets)),
        webhook_url=webhook_url(settings, account),
    )


def _require_admin(actor: Actor) -> None:
    if actor.role is not Role.admin:
        raise PermissionDenied("Only administrators configure channels.")


def _check_fields(kind: ChannelKind, values: Mapping[str, object], secret: bool) -> None:
    adapter = adapter_for(kind)
    allowed = set(adapter.secret_fields if secret else adapter.setting_fields)
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValidationFailed(
            f"Unknown {'secrets' if secret else 'settings'} for {kind.value}: "
            f"{', '.join(unknown)}; expected {', '.join(sorted(allowed))}.",
            code="unknown_channel_field",
            field="secrets" if secret else "settings",
        )


async def _check_queue(session: AsyncSession, kind: ChannelKind, queue_id: uuid.UUID) -> None:
    queue = await session.get(Queue, queue_id)
    if queue is None:
        raise ValidationFailed("Unknown queue.", code="unknown_queue", field="queue_id")
    if kind.value not in queue.channels:
        raise ValidationFailed(
            f"Queue {queue.name!r} does not serve {kind.value}.",
            code="queue_channel_mismatch",
            field="queue_id",
        )


async def create_account(
    session: AsyncSession, actor: Actor, data: AccountCreate, *, settings: Settings
) -> ChannelAccount:
    """Digital channels need the omnichannel licence (``license_type_voice_only``)."""
    _require_admin(actor)
    tenant_id = require_tenant(session)
    await entitlements.require_omnichannel(session, tenant_id)
    _check_fields(data.kind, data.settings, secret=False)
    _check_fields(data.kind, data.secrets, secret=True)
    await _check_queue(session, data.kind, data.queue_id)
    values = {k: v for k, v in data.secrets.items() if v}
    if data.kind is ChannelKind.telegram:
        values.setdefault("webhook_secret", secrets.token_urlsafe(32))
    instant = now(session)
    account = ChannelAccount(
        kind=data.kind,
        name=data.name,
        queue_id=data.queue_id,
        is_active=True,
        settings=dict(data.settings),
        sealed_secrets=box(settings).seal(values),
        webhook_key=secrets.token_urlsafe(24),
        created_at=instant,
        updated_at=instant,
    )
    session.add(account)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as error:
        raise Conflict("A channel with this name exists.", code="channel_name_taken") from error
    await audit.record(
        session,
        actor,
        "channel.create",
        resource_type="channel",
        resource_id=account.id,
        tenant_id=tenant_id,
        after={
            "kind": data.kind.value,
            "name": data.name,
            "settings": data.settings,
            "secrets_set": sorted(values),
        },
    )
    return account


async def list_accounts(session: AsyncSession, actor: Actor) -> Sequence[ChannelAccount]:
    if actor.role not in (Role.admin, Role.supervisor):
        raise PermissionDenied()
    return (await session.scalars(select(ChannelAccount).order_by(ChannelAccount.name))).all()


async def get_account(session: AsyncSession, actor: Actor, account_id: uuid.UUID) -> ChannelAccount:
    if actor.role not in (Role.admin, Role.supervisor):
        raise PermissionDenied()
    account = await session.get(ChannelAccount, account_id)
    if account is None:
        raise NotFound("channel")
    return account


async def update_account(
    session: AsyncSession,
    actor: Actor,
    account_id: uuid.UUID,
    data: AccountUpdate,
    *,
    settings: Settings,
) -> ChannelAccount:
    _require_admin(actor)
    account = await get_account(session, actor, account_id)
    given = data.model_dump(exclude_unset=True)
    if given.get("settings") is not None:
        _check_fields(account.kind, given["settings"], secret=False)
        merged = {**account.settings, **given["settings"]}
        account.settings = {k: v for k, v in merged.items() if v is not None}
    if given.get("secrets") is not None:
        _check_fields(account.kind, given["secrets"], secret=True)
        current = box(settings).open(account.sealed_secrets)
        current.update({k: v for k, v in given["secrets"].items() if v})
        account.sealed_secrets = box(settings).seal(current)
    if given.get("queue_id") is not None:
        await _check_queue(session, account.kind, given["queue_id"])
        account.queue_id = given["queue_id"]
    if given.get("name") is not None:
        account.name = given["name"]
    if given.get("is_active") is not None:
        if given["is_active"]:
            await entitlements.require_omnichannel(session, require_tenant(session))
        account.is_active = given["is_active"]
    account.updated_at = now(session)
    await session.flush()
    await audit.record(
        session,
        actor,
        "channel.update",
        resource_type="channel",
        resource_id=account.id,
        tenant_id=account.tenant_id,
        after={
            "changed": sorted(k for k in given if k != "secrets"),
            "secrets_changed": sorted((given.get("secrets") or {}).keys()),
        },
    )
    return account


async def delete_account(session: AsyncSession, actor: Actor, account_id: uuid.UUID) -> None:
    _require_admin(actor)
    account = await get_account(session, actor, account_id)
    await session.delete(account)
    await session.flush()
    await audit.record(
        session,
        actor,
        "channel.delete",
        resource_type="channel",
        resource_id=account_id,
        tenant_id=account.tenant_id,
    )


async def list_events(
    session: AsyncSession, actor: Actor, account_id: uuid.UUID, *, status: InboundStatus | None
) -> Sequence[InboundEvent]:
    """Received webhooks, newest first: rejected ones are kept here for inspection."""
    await get_account(session, actor, account_id)
    query = select(InboundEvent).where(InboundEvent.account_id == account_id)
    if status is not None:
        query = query.where(InboundEvent.status == status)
    return (await session.scalars(query.order_by(InboundEvent.received_at.desc()).limit(200))).all()


# --- intake -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Intake:
    outcome: str  # stored | duplicate | rejected
    error: AtiendeError | None = None


async def account_by_key(
    session: AsyncSession, kind: ChannelKind, webhook_key: str
) -> ChannelAccount:
    """In the system scope: the webhook key says which tenant the request is for."""
    account = await session.scalar(
        select(ChannelAccount).where(ChannelAccount.webhook_key == webhook_key)
    )
    if account is None or account.kind is not kind or not account.is_active:
        raise NotFound("channel")
    return account


async def handshake(
    session: AsyncSession,
    kind: ChannelKind,
    webhook_key: str,
    request: RawRequest,
    *,
    settings: Settings,
) -> str | None:
    account = await account_by_key(session, kind, webhook_key)
    return adapter_for(kind).handshake(request, config_of(account, settings))


def _body_text(body: bytes) -> str:
    return body.decode("latin-1")  # byte-exact round trip


def raw_of(event: InboundEvent) -> RawRequest:
    from urllib.parse import parse_qsl, urlsplit

    body = event.body.encode("latin-1")
    form: dict[str, str] = {}
    if "application/x-www-form-urlencoded" in event.headers.get("content-type", ""):
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return RawRequest(
        method=event.method,
        url=event.url,
        headers=event.headers,
        query=dict(parse_qsl(urlsplit(event.url).query, keep_blank_values=True)),
        body=body,
        form=form,
    )


@dataclass(frozen=True, slots=True)
class _Known:
    """What intake needs of an account, as last read; every write checks it still holds."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    kind: ChannelKind
    sealed_secrets: str
    config: AccountConfig
    webhook_key: str


@dataclass(frozen=True, slots=True)
class _Arrival:
    account: _Known
    request: RawRequest
    event_id: str
    error: PayloadMalformed | None
    received_at: datetime
    outcome: asyncio.Future[Intake]


class Inbox:
    """Webhook intake of one database: verify, then store and queue processing.

    Most of what a transaction costs is fixed, not per row, so the webhooks that arrive
    while one transaction is being written, or while the writer lets a batch fill
    (``_gather``), are written together in the next (group commit), each answered
    only once the transaction holding it has committed. The transaction is one synchronous
    unit of work (``Database.run_sync``): on SQLite it runs through the driver itself.
    Accounts are remembered by webhook key, so a request with a good signature costs no
    read; each write re-reads its accounts (one statement) and honours what changed since:
    a disabled or deleted account refuses the webhook, new secrets verify it again. The
    events a transaction stores get one processing job per tenant, not one each.

    One transaction is written at a time, on PostgreSQL too: there, several in flight made
    smaller batches and cost more than the commits they overlapped.
    """

    MAX_BATCH = 200
    GATHER_TURNS = 2
    GATHER_WAIT = 0.002

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._known: dict[str, _Known] = {}
        self._waiting: list[_Arrival] = []
        self._expected = 0  # see _gather
        self._enough: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None

    async def receive(
        self, db: Database, kind: ChannelKind, webhook_key: str, request: RawRequest
    ) -> Intake:
        adapter = adapter_for(kind)
        account = self._known.get(webhook_key)
        if account is None or account.kind is not kind or not _verifies(request, account):
            # Unknown here, or the secrets may have changed since: ask the database.
            async with db.session(Scope.system(), read_only=True) as session:
                account = self._remember(await account_by_key(session, kind, webhook_key))
            adapter.verify(request, account.config)  # SignatureInvalid: nothing stored
        error: PayloadMalformed | None = None
        try:
            event_id = adapter.event_id(request)
            adapter.parse(request)  # pure and cheap: a payload we can't read is a 400 now
        except PayloadMalformed as malformed:
            error = malformed
            event_id = "rejected:" + hashlib.sha256(request.body).hexdigest()
        arrival = _Arrival(
            account=account,
            request=request,
            event_id=event_id[:200],
            error=error,
            received_at=db.clock.now(),
            outcome=asyncio.get_running_loop().create_future(),
        )
        self._join(arrival)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_waiting(db), name="channel-intake")
        return await arrival.outcome

    def _remember(self, account: ChannelAccount) -> _Known:
        known = self._known[account.webhook_key] = self._known_of(account)
        return known

    def _known_of(self, account: ChannelAccount) -> _Known:
        return _Known(
            id=account.id,
            tenant_id=account.tenant_id,
            kind=account.kind,
            sealed_secrets=account.sealed_secrets,
            config=config_of(account, self.settings),
            webhook_key=account.webhook_key,
        )

    async def _write_waiting(self, db: Database) -> None:
        batch: list[_Arrival] = []
        try:
            while self._waiting:
                await self._gather()
                batch = self._waiting[: self.MAX_BATCH]
                del self._waiting[: self.MAX_BATCH]
                results = await self._store(db, batch)
                self._expected = min(self.MAX_BATCH, len(batch) + len(self._waiting))
                for arrival, result in zip(batch, results, strict=True):
                    if arrival.outcome.done():  # the client went away; the event is kept
                        continue
                    if isinstance(result, Exception):
                        arrival.outcome.set_exception(result)
                    else:
                        arrival.outcome.set_result(result)
                batch = []
        except BaseException:  # cancelled with the server: nobody waits for ever
            for arrival in batch + self._waiting:
                arrival.outcome.cancel()
            self._waiting.clear()
            raise
        finally:
            # Here, not in a done callback: an arrival in between would find no writer.
            self._writer = None

    async def _gather(self) -> None:
        """Let a batch fill before it is written.

        Requests already read are a loop turn or two from arriving here: the loop turns
        while more keep joining (``GATHER_TURNS``; alone, a webhook waits one turn). Then,
        if fewer are waiting than the last batch and those that came during its write,
        the senders just answered are probably about to send again: wait for them, at most
        ``GATHER_WAIT`` seconds (a wait that runs out lowers the expectation to what came).
        Without it, 16 senders settle into two alternating batches of 8: on PostgreSQL,
        where a write waits for the network, that was twice the transactions.
        """
        for _ in range(self.GATHER_TURNS):
            seen = len(self._waiting)
            await asyncio.sleep(0)
            if len(self._waiting) == seen:
                break
        if len(self._waiting) >= self._expected:
            return
        self._enough = asyncio.Event()
        try:
            await asyncio.wait_for(self._enough.wait(), self.GATHER_WAIT)
        except TimeoutError:
            self._expected = len(self._waiting)
        finally:
            self._enough = None

    def _join(self, arrival: _Arrival) -> None:
        self._waiting.append(arrival)
        if self._enough is not None and len(self._waiting) >= self._expected:
            self._enough.set()

    async def _store(self, db: Database, batch: list[_Arrival]) -> list[Intake | Exception]:
        try:
            results, changed = await db.run_sync(
                Scope.system(), functools.partial(self._write, batch)
            )
        except Exception:
            log.exception("storing %d webhooks failed; none is acknowledged", len(batch))
            return [IntakeUnavailable() for _ in batch]
        for account_id, known in changed.items():
            self._forget(account_id)
            if known is not None:
                self._known[known.webhook_key] = known
        return results

    def _write(
        self, batch: list[_Arrival], session: SyncSession
    ) -> tuple[list[Intake | Exception], dict[uuid.UUID, _Known | None]]:
        """Store a batch in one synchronous unit of work (``Database.run_sync``: on SQLite
        it runs in the event loop, through the driver itself). Answers each arrival's
        outcome, and the accounts found changed (None: gone) for the loop to remember."""
        results: dict[int, Intake | Exception] = {}
        changed: dict[uuid.UUID, _Known | None] = {}
        # Core statements, or on SQLite the driver itself: SQLAlchemy's layers cost more
        # than the statements (about 1 ms a transaction, half a webhook's whole cost).
        driver = DriverStatement.connection(session)
        accounts = _accounts_to_write_for(session, {a.account.id for a in batch}, driver)
        rows: list[dict[str, Any]] = []
        firsts: dict[tuple[uuid.UUID, str], int] = {}
        for index, arrival in enumerate(batch):
            found = accounts.get(arrival.account.id)
            if found is None or not found.is_active or found.kind is not arrival.account.kind:
                changed[arrival.account.id] = None
                results[index] = NotFound("channel")
                continue
            if found.sealed_secrets != arrival.account.sealed_secrets:
                try:
                    known = changed.get(found.id) or self._known_of(
                        session.get_one(ChannelAccount, found.id)
                    )
                    changed[found.id] = known
                    adapter_for(found.kind).verify(arrival.request, known.config)
                except SignatureInvalid as refused:
                    results[index] = refused
                    continue
                except SecretsUnreadable:  # sealed with another key: this account only
                    log.exception("channel %s: secrets unreadable", found.id)
                    results[index] = IntakeUnavailable()
                    continue
            key = (found.id, arrival.event_id)
            if key in firsts:
                results[index] = Intake("duplicate", arrival.error)  # twice in one batch
                continue
            firsts[key] = index
            rows.append(_event_row(arrival))
        # The same order in every transaction: two nodes given the same redeliveries
        # wait for each other's rows instead of deadlocking (PostgreSQL).
        rows.sort(key=lambda row: (row["account_id"], row["provider_event_id"]))
        inserted = _insert_new_events(session, rows, driver) if rows else set()
        new_events: dict[int, dict[str, Any]] = {}
        for row in rows:
            index = firsts[(row["account_id"], row["provider_event_id"])]
            error = batch[index].error
            if row["id"] not in inserted:
                results[index] = Intake("duplicate", error)
            elif error is not None:
                results[index] = Intake("rejected", error)
            else:
                results[index] = Intake("stored")
                new_events[index] = row
        to_process: dict[uuid.UUID, list[str]] = {}  # tenant → its new events as they came
        for index in sorted(new_events):
            row = new_events[index]
            to_process.setdefault(row["tenant_id"], []).append(str(row["id"]))
        # A job row costs about what an event row does: one job per tenant and up to
        # EVENTS_PER_JOB events, named after its first event (channels/tasks.py).
        jobs.schedule_new_sync(
            session,
            driver,
            PROCESS,
            [
                (tenant_id, {"event_ids": chunk}, f"{PROCESS}:{chunk[0]}")
                for tenant_id, event_ids in to_process.items()
                for chunk in _chunks(event_ids, EVENTS_PER_JOB)
            ],
        )
        return [results[index] for index in range(len(batch))], changed

    def _forget(self, account_id: uuid.UUID) -> None:
        for key, known in list(self._known.items()):
            if known.id == account_id:
                del self._known[key]


def _verifies(request: RawRequest, account: _Known) -> bool:
    try:
        adapter_for(account.kind).verify(request, account.config)
    except SignatureInvalid:
        return False
    return True


def _event_row(arrival: _Arrival) -> dict[str, Any]:
    request = arrival.request
    return {
        "id": new_id(),
        "tenant_id": arrival.account.tenant_id,
        "account_id": arrival.account.id,
        "provider_event_id": arrival.event_id,
        "method": request.method,
        "url": request.url,
        "headers": dict(request.headers),
        "body": _body_text(request.body),
        "status": InboundStatus.rejected if arrival.error else InboundStatus.received,
        "error": arrival.error.message if arrival.error else None,
        "received_at": arrival.received_at,
        "processed_at": None,
    }


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


class _AccountState(NamedTuple):
    id: uuid.UUID
    kind: ChannelKind
    is_active: bool
    sealed_secrets: str


def _accounts_to_write_for(
    session: SyncSession, ids: set[uuid.UUID], driver: sqlite3.Connection | None
) -> dict[uuid.UUID, _AccountState]:
    """The accounts of a batch, re-read as it is written. On PostgreSQL key-share locks
    keep them from being deleted before the events are in; SQLite's writer holds the
    database."""
    if driver is not None:
        found = [
            row
            for rows in _ACCOUNT_STATE_BY_ID.rows(driver, [{"id": one} for one in ids])
            for row in rows
        ]
    else:
        found = list(session.connection().execute(_ACCOUNTS_TO_WRITE_FOR, {"ids": list(ids)}))
    return {row[0]: _AccountState(*row) for row in found}


def _insert_new_events(
    session: SyncSession, rows: list[dict[str, Any]], driver: sqlite3.Connection | None
) -> set[uuid.UUID]:
    """Insert a batch's events; a redelivery (same account and provider event id) is
    skipped. Answers the ids of the rows inserted."""
    if driver is not None:
        return {row[0] for answer in _INSERT_NEW_EVENT_SQLITE.rows(driver, rows) for row in answer}
    statement = _insert_new_events_statement(session.get_bind().dialect.name)
    return set(session.connection().execute(statement, rows).scalars().all())


_ACCOUNT_TABLE = cast(Table, ChannelAccount.__table__)
_ACCOUNT_STATE = select(
    _ACCOUNT_TABLE.c.id,
    _ACCOUNT_TABLE.c.kind,
    _ACCOUNT_TABLE.c.is_active,
    _ACCOUNT_TABLE.c.sealed_secrets,
)
# Built once: building a statement cost a tenth of a small transaction.
_ACCOUNTS_TO_WRITE_FOR = _ACCOUNT_STATE.where(
    _ACCOUNT_TABLE.c.id.in_(bindparam("ids", expanding=True))
).with_for_update(read=True, key_share=True)
_ACCOUNT_STATE_BY_ID = DriverStatement(_ACCOUNT_STATE.where(_ACCOUNT_TABLE.c.id == bindparam("id")))


@functools.cache
def _insert_new_events_statement(dialect: str) -> ReturningInsert[uuid.UUID]:
    """One INSERT for a batch of rows (the statement built once per dialect, its SQL compiled
    once): a redelivery (same account and provider event id) is skipped, and only the ids
    of the rows inserted come back. On the table, not the mapped class: the rows are
    complete, and the ORM's bulk path cost ~15 % of the write for nothing."""
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    table = cast(Table, InboundEvent.__table__)
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=["account_id", "provider_event_id"])
        .returning(table.c.id)
    )


_INSERT_NEW_EVENT_SQLITE = DriverStatement(_insert_new_events_statement("sqlite"))


_inboxes: weakref.WeakKeyDictionary[Database, Inbox] = weakref.WeakKeyDictionary()


async def receive(
    db: Database,
    kind: ChannelKind,
    webhook_key: str,
    request: RawRequest,
    *,
    settings: Settings,
) -> Intake:
    """Verify, then store once and queue processing, in a unit of work of its own (see
    ``Inbox``). Answers ``stored`` or ``duplicate`` (a 200 for the provider) or ``rejected``
    with the error's 4xx (the payload is kept too); raises ``NotFound`` or
    ``SignatureInvalid`` having stored nothing."""
    inbox = _inboxes.get(db)
    if inbox is None or inbox.settings is not settings:
        inbox = _inboxes[db] = Inbox(settings)
    return await inbox.receive(db, kind, webhook_key, request)


# --- processing ---------------------------------------------------------------------------


async def process(
    session: AsyncSession,
    event_id: uuid.UUID,
    *,
    settings: Settings,
    blobs: AttachmentStore,
    http: httpx.AsyncClient,
) -> None:
    """Apply a stored webhook (in its tenant's scope). Malformed → ``rejected``; a status
    that arrives before its message's send was recorded raises ``StatusTooEarly`` so the job
    runs again later."""
    event = await session.get(InboundEvent, event_id)
    if event is None or event.status is not InboundStatus.received:
        return
    account = await session.get(ChannelAccount, event.account_id)
    if account is None:
        return
    adapter = adapter_for(account.kind)
    try:
        items = adapter.parse(raw_of(event))
    except PayloadMalformed as error:
        event.status = InboundStatus.rejected
        event.error = error.message
        event.processed_at = now(session)
        return
    config = config_of(account, settings)
    for item in items:
        if isinstance(item, InboundMessage):
            await _inbound_message(session, account, config, item, blobs=blobs, http=http)
        elif isinstance(item, StatusUpdate):
            await _status(session, account, item)
    event.status = InboundStatus.processed
    event.processed_at = now(session)
    await session.flush()


async def _inbound_message(
    session: AsyncSession,
    account: ChannelAccount,
    config: AccountConfig,
    item: InboundMessage,
    *,
    blobs: AttachmentStore,
    http: httpx.AsyncClient,
) -> None:
    channel = Channel(account.kind.value)
    seen = await session.scalar(
        select(Message.id)
        .join(Interaction, Interaction.id == Message.interaction_id)
        .where(
            Message.provider_id == item.provider_message_id,
            Message.direction == MessageDirection.inbound,
            Interaction.source_id == account.id,
        )
        .limit(1)
    )
    if seen is not None:
        return  # the same message in another delivery of the provider
    kind, sender = IDENTITY[account.kind], item.sender_id
    try:
        contacts.normalise_identity(kind, sender)
    except AtiendeError:
        # e.g. an SMS from a short code, which is no E.164 number: keep it as it came
        kind, sender = IdentityKind.api, f"{account.kind.value}:{sender}"
    contact = await contacts.find_or_create_by_identity(
        session, kind, sender, name=item.sender_name
    )
    files = []
    for media in item.media:
        files.append(await _store_media(session, account, config, media, blobs=blobs, http=http))
    interaction = await conversations.open_interaction_for(
        session, channel=channel, contact_id=contact.id, source_id=account.id
    )
    opened = interaction is None
    if interaction is None:
        interaction = await conversations.open_interaction(
            session, channel=channel, contact_id=contact.id, source_id=account.id
        )
    await conversations.add_message(
        session,
        interaction,
        direction=MessageDirection.inbound,
        author_kind="contact",
        body=item.text,
        attachments=[f for f in files if f is not None],
        client_id=item.provider_message_id[:100],
        provider_id=item.provider_message_id,
    )
    callback = item.data.get("callback_query_id") if item.data else None
    answer = getattr(adapter_for(account.kind), "answer_callback", None)
    if callback and answer is not None:
        try:
            await answer(http, config, str(callback))
        except Exception:  # the button's spinner only; never lose the message for it
            log.warning("answering a callback query failed", exc_info=True)
    if opened:
        if account.queue_id is None:
            raise ValidationFailed("The channel has no queue.", code="channel_without_queue")
        await routing.enqueue(session, interaction, account.queue_id)


async def _store_media(
    session: AsyncSession,
    account: ChannelAccount,
    config: AccountConfig,
    media: Any,
    *,
    blobs: AttachmentStore,
    http: httpx.AsyncClient,
) -> dict[str, object] | None:
    """Download and keep one media item; a file we can't fetch or may not keep leaves a
    note in the message instead of losing the message."""
    try:
        file = await adapter_for(account.kind).fetch_media(
            http, config, media, max_bytes=MAX_MEDIA_BYTES
        )
        stored = await attachments.store(
            session,
            file.content,
            file.filename or media.filename,
            file.content_type or media.content_type,
            blobs=blobs,
            max_bytes=MAX_MEDIA_BYTES,
            allowed_types=MEDIA_TYPES,
            uploader_kind="contact",
        )
    except (AtiendeError, RetryLater, httpx.HTTPError) as error:
        # Kept without its file rather than held back: the text and the note reach the agent.
        log.warning("media %s of channel %s not kept: %s", media.provider_ref, account.id, error)
        return {"name": media.filename or media.kind, "error": str(error)[:200]}
    return stored.reference()


async def _status(session: AsyncSession, account: ChannelAccount, item: StatusUpdate) -> None:
    message = await session.scalar(
        select(Message)
        .join(Interaction, Interaction.id == Message.interaction_id)
        .where(
            Message.provider_id == item.provider_message_id,
            Message.direction == MessageDirection.outbound,
            Interaction.source_id == account.id,
        )
        .limit(1)
    )
    if message is None:
        from atiende.channels.models import Delivery

        pending = await session.scalar(
            select(Delivery.id)
            .where(Delivery.account_id == account.id, Delivery.provider_message_id.is_(None))
            .limit(1)
        )
        if pending is not None:
            raise StatusTooEarly(item.provider_message_id)
        return  # a message sent outside Atiende: nothing to update
    status = STATUS.get(item.status)
    if status is None:
        return
    error = None
    if status is MessageStatus.failed:
        error = " ".join(x for x in (item.error_code, item.error_message) if x) or "failed"
    await conversations.set_message_status(session, message, status, error=error)


# --- provider actions and templates -------------------------------------------------------


async def run_action(
    session: AsyncSession,
    actor: Actor,
    account_id: uuid.UUID,
    action: str,
    *,
    settings: Settings,
    http: httpx.AsyncClient,
) -> dict[str, Any]:
    """``set_webhook`` (Telegram: register this account's webhook URL with its secret
    token) and ``sync_templates`` (WhatsApp: fetch the approved message templates)."""
    _require_admin(actor)
    account = await get_account(session, actor, account_id)
    adapter = adapter_for(account.kind)
    config = config_of(account, settings)
    known = {"set_webhook": "set_webhook", "sync_templates": "sync_templates"}
    method = getattr(adapter, known.get(action, ""), None)
    if method is None:
        raise ValidationFailed(
            f"{account.kind.value} has no action {action!r}.", code="unknown_channel_action"
        )
    try:
        result = await method(http, config)
    except Exception as error:  # the provider's answer, shown to the admin
        raise Conflict(f"The provider refused: {error}", code="provider_error") from error
    if action == "set_webhook" and hasattr(adapter, "get_me"):
        me = await adapter.get_me(http, config)
        if isinstance(me, dict) and me.get("username"):
            account.settings = {**account.settings, "bot_username": str(me["username"])}
            account.updated_at = now(session)
            await session.flush()
    if action == "sync_templates":
        templates = list(result or [])
        account.settings = {**account.settings, "templates": templates}
        account.updated_at = now(session)
        await session.flush()
        return {"templates": templates}
    return {"ok": True}


class TemplateSend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=2, max_length=15)
    parameters: list[str] = Field(default_factory=list, max_length=20)
    client_id: str | None = Field(default=None, max_length=100)


def render_template(template: Mapping[str, Any], parameters: Sequence[str]) -> str:
    """The body text with ``{{1}}``, ``{{2}}``… filled in, as the customer will read it."""
    body = str(template.get("body") or template.get("text") or template.get("name"))
    for index, value in enumerate(parameters, start=1):
        body = body.replace("{{" + str(index) + "}}", value)
    return body


async def send_template(
    session: AsyncSession, actor: Actor, interaction_id: uuid.UUID, data: TemplateSend
) -> tuple[Message, bool]:
    """An approved WhatsApp template: the only message allowed outside the 24-hour window."""
    interaction = await session.get(Interaction, interaction_id)
    if interaction is None or interaction.source_id is None:
        raise NotFound("interaction")
    account = await session.get(ChannelAccount, interaction.source_id)
    if account is None or account.kind is not ChannelKind.whatsapp:
        raise ValidationFailed("Templates are a WhatsApp feature.", code="templates_whatsapp_only")
    found = next(
        (
            t
            for t in account.settings.get("templates", [])
            if t.get("name") == data.name and t.get("language") == data.language
        ),
        None,
    )
    if found is None or str(found.get("status", "")).upper() != "APPROVED":
        raise ValidationFailed(
            "Unknown or unapproved template; sync the channel's templates.",
            code="template_not_approved",
            field="name",
        )
    return await conversations.reply(
        session,
        actor,
        interaction_id,
        body=render_template(found, data.parameters),
        client_id=data.client_id,
        template={"name": data.name, "language": data.language, "parameters": data.parameters},
    )


class TemplateOut(BaseModel):
    name: str
    language: str
    body: str
    parameter_count: int = Field(description="How many `{{n}}` values the body takes.")


_POSITIONAL = re.compile(r"\{\{\s*(\d+)\s*\}\}")


async def approved_templates(
    session: AsyncSession, actor: Actor, interaction_id: uuid.UUID
) -> list[TemplateOut]:
    """The approved templates of the interaction's WhatsApp account, for whoever may see
    the interaction: what the desktop offers once the 24-hour window has closed. Templates
    with named placeholders are left out (``send_template`` fills ``{{1}}``, ``{{2}}``…)."""
    interaction = await conversations.visible_interaction(session, actor, interaction_id)
    account = (
        await session.get(ChannelAccount, interaction.source_id)
        if interaction.source_id is not None
        else None
    )
    if account is None or account.kind is not ChannelKind.whatsapp:
        raise ValidationFailed("Templates are a WhatsApp feature.", code="templates_whatsapp_only")
    found = []
    for template in account.settings.get("templates", []):
        if not isinstance(template, dict) or str(template.get("status", "")).upper() != "APPROVED":
            continue
        if str(template.get("parameter_format") or "POSITIONAL").upper() != "POSITIONAL":
            continue
        body = render_template(template, ())
        numbers = [int(n) for n in _POSITIONAL.findall(body)]
        found.append(
            TemplateOut(
                name=str(template.get("name")),
                language=str(template.get("language")),
                body=body,
                parameter_count=max(numbers, default=0),
            )
        )
    return sorted(found, key=lambda t: (t.name, t.language))
