"""Contacts and their channel identities. The only writer of ``contacts`` and
``contact_identities``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import phonenumbers
from sqlalchemy import ColumnElement, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.audit import service as audit
from atiende.contacts.events import ContactCreated, ContactsMerged, ContactUpdated
from atiende.contacts.models import Contact, ContactIdentity, IdentityKind
from atiende.contacts.schemas import (
    ContactCreate,
    ContactDetail,
    ContactOut,
    ContactUpdate,
    HistoryEntry,
    IdentityIn,
    IdentityOut,
)
from atiende.conversations import service as conversations
from atiende.conversations.models import Interaction
from atiende.core.db import now
from atiende.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from atiende.core.events import emit
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.routing.models import Queue


def normalise_identity(kind: IdentityKind, value: str, *, region: str | None = "MX") -> str:
    """The stored form of an identity: E.164 phones, digits-only WhatsApp ids, lower-case
    e-mails, trimmed everything else. Invalid phones are refused."""
    value = value.strip()
    if kind is IdentityKind.phone:
        try:
            parsed = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException as error:
            raise ValidationFailed("Not a phone number.", code="invalid_phone") from error
        if not phonenumbers.is_valid_number(parsed):
            raise ValidationFailed("Not a valid phone number.", code="invalid_phone")
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if kind is IdentityKind.whatsapp:
        return "".join(ch for ch in value if ch.isdigit())
    if kind is IdentityKind.email:
        return value.lower()
    return value


async def resolve(session: AsyncSession, contact_id: uuid.UUID) -> Contact:
    """The contact, following merges to the surviving profile."""
    contact = await session.get(Contact, contact_id)
    seen: set[uuid.UUID] = set()
    while contact is not None and contact.merged_into_id is not None:
        if contact.id in seen:
            break
        seen.add(contact.id)
        contact = await session.get(Contact, contact.merged_into_id)
    if contact is None:
        raise NotFound("contact")
    return contact


async def find_by_identity(session: AsyncSession, kind: IdentityKind, value: str) -> Contact | None:
    identity = await session.scalar(
        select(ContactIdentity).where(
            ContactIdentity.kind == kind, ContactIdentity.value == normalise_identity(kind, value)
        )
    )
    return None if identity is None else await resolve(session, identity.contact_id)


async def find_or_create_by_identity(
    session: AsyncSession,
    kind: IdentityKind,
    value: str,
    *,
    name: str | None = None,
    email: str | None = None,
    phone: str | None = None,
) -> Contact:
    """The customer behind a channel identity, created on first contact."""
    normalised = normalise_identity(kind, value)
    found = await find_by_identity(session, kind, normalised)
    if found is not None:
        return found
    instant = now(session)
    contact = Contact(name=name, email=email, phone=phone, created_at=instant, updated_at=instant)
    try:
        async with session.begin_nested():
            session.add(contact)
            await session.flush()
            session.add(
                ContactIdentity(
                    contact_id=contact.id, kind=kind, value=normalised, created_at=instant
                )
            )
    except IntegrityError:
        # The same identity arrived twice at once: the other unit of work's contact wins.
        found = await find_by_identity(session, kind, normalised)
        if found is None:
            raise
        return found
    return contact


# --- the contacts API: search, read with history, edit, merge --------------------------------
#
# Who may do what (the edge only parses; these functions authorise):
#   read / search      agents: contacts of interactions they can see; supervisors, admins: all
#   create             supervisors, admins (contacts otherwise come from the channels)
#   update, +identity  whoever may read the contact (an agent fixes a name mid-conversation)
#   -identity, merge   supervisors, admins (they change who future messages are matched to)
# Every change is audited and announced with a ``contact.*`` event.

SUPERVISING = frozenset({Role.supervisor, Role.admin})
_PHONE_CHARS = frozenset("0123456789 +-().")


def _snapshot(contact: Contact) -> dict[str, object]:
    return ContactOut.model_validate(contact).model_dump(mode="json")


def _require_supervising(actor: Actor) -> None:
    conversations.require_staff(actor)
    if actor.role not in SUPERVISING:
        raise PermissionDenied()


async def merged_ids(session: AsyncSession, contact_id: uuid.UUID) -> set[uuid.UUID]:
    """The contact and every contact merged into it, directly or through a chain."""
    ids = {contact_id}
    frontier = {contact_id}
    while frontier:
        found = set(
            await session.scalars(select(Contact.id).where(Contact.merged_into_id.in_(frontier)))
        )
        frontier = found - ids
        ids |= frontier
    return ids


def _readable_by(actor: Actor) -> ColumnElement[bool]:
    if actor.role in SUPERVISING:
        return true()
    return Contact.id.in_(select(Interaction.contact_id).where(conversations.visible_to(actor)))


async def can_read_contact(session: AsyncSession, actor: Actor, contact: Contact) -> bool:
    if actor.role in SUPERVISING:
        return True
    ids = await merged_ids(session, contact.id)
    seen = await session.scalar(
        select(func.count())
        .select_from(Interaction)
        .where(Interaction.contact_id.in_(ids), conversations.visible_to(actor))
    )
    return bool(seen)


async def get_contact(session: AsyncSession, actor: Actor, contact_id: uuid.UUID) -> Contact:
    """The contact if ``actor`` may read it; 404 ``contact_not_found`` otherwise."""
    conversations.require_staff(actor)
    contact = await session.get(Contact, contact_id)
    if contact is None or not await can_read_contact(session, actor, contact):
        raise NotFound("contact")
    return contact


def _search_condition(q: str) -> ColumnElement[bool]:
    needle = q.lower()
    identity_match = select(ContactIdentity.contact_id).where(
        func.lower(ContactIdentity.value).contains(needle, autoescape=True)
    )
    conditions: list[ColumnElement[bool]] = [
        func.lower(Contact.name).contains(needle, autoescape=True),
        func.lower(Contact.email).contains(needle, autoescape=True),
        Contact.id.in_(identity_match),
    ]
    digits = "".join(ch for ch in q if ch.isdigit())
    if len(digits) >= 4 and set(q) <= _PHONE_CHARS:
        # "55 1234-5678" finds "+525512345678": compare digits with the stored forms.
        conditions.append(Contact.phone.contains(digits, autoescape=True))
        conditions.append(
            Contact.id.in_(
                select(ContactIdentity.contact_id).where(
                    ContactIdentity.value.contains(digits, autoescape=True)
                )
            )
        )
    return or_(*conditions)


async def list_contacts(
    session: AsyncSession,
    actor: Actor,
    *,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Sequence[Contact]:
    """Contacts the actor may read, most recently updated first; merged-away contacts are
    left out. ``q`` matches name, e-mail, phone and identity values (case-insensitive)."""
    conversations.require_staff(actor)
    query = select(Contact).where(Contact.merged_into_id.is_(None), _readable_by(actor))
    q = (q or "").strip()
    if q:
        query = query.where(_search_condition(q))
    query = query.order_by(Contact.updated_at.desc(), Contact.id).limit(limit).offset(offset)
    return (await session.scalars(query)).all()


async def identities_of(session: AsyncSession, contact_id: uuid.UUID) -> Sequence[ContactIdentity]:
    return (
        await session.scalars(
            select(ContactIdentity)
            .where(ContactIdentity.contact_id == contact_id)
            .order_by(ContactIdentity.created_at, ContactIdentity.id)
        )
    ).all()


async def history(session: AsyncSession, contact_id: uuid.UUID) -> list[HistoryEntry]:
    """Every interaction of the contact and of contacts merged into it, newest first."""
    ids = await merged_ids(session, contact_id)
    interactions = (
        await session.scalars(
            select(Interaction)
            .where(Interaction.contact_id.in_(ids))
            .order_by(Interaction.created_at.desc(), Interaction.id)
        )
    ).all()
    queue_ids = {i.queue_id for i in interactions if i.queue_id}
    agent_ids = {i.agent_id for i in interactions if i.agent_id}
    queues = (
        {q.id: q.name for q in await session.scalars(select(Queue).where(Queue.id.in_(queue_ids)))}
        if queue_ids
        else {}
    )
    agents = (
        {u.id: u.name for u in await session.scalars(select(User).where(User.id.in_(agent_ids)))}
        if agent_ids
        else {}
    )
    return [
        HistoryEntry(
            id=i.id,
            channel=i.channel.value,
            status=i.status.value,
            subject=i.subject,
            queue_id=i.queue_id,
            queue_name=queues.get(i.queue_id) if i.queue_id else None,
            agent_id=i.agent_id,
            agent_name=agents.get(i.agent_id) if i.agent_id else None,
            disposition_code=i.disposition_code,
            labels=list(i.labels or []),
            created_at=i.created_at,
            assigned_at=i.assigned_at,
            closed_at=i.closed_at,
            last_message_at=i.last_message_at,
        )
        for i in interactions
    ]


async def contact_detail(
    session: AsyncSession, actor: Actor, contact_id: uuid.UUID
) -> ContactDetail:
    contact = await get_contact(session, actor, contact_id)
    return ContactDetail(
        **ContactOut.model_validate(contact).model_dump(),
        identities=[
            IdentityOut.model_validate(i) for i in await identities_of(session, contact.id)
        ],
        history=await history(session, contact.id),
    )


def _contact_fields(data: ContactCreate | ContactUpdate) -> dict[str, str | None]:
    fields: dict[str, str | None] = data.model_dump(
        exclude_unset=True, include={"name", "email", "phone"}
    )
    if fields.get("phone"):
        fields["phone"] = normalise_identity(IdentityKind.phone, str(fields["phone"]))
    if fields.get("email"):
        fields["email"] = str(fields["email"]).lower()
    if fields.get("name"):
        fields["name"] = str(fields["name"]).strip() or None
    return fields


async def _attach_identity(
    session: AsyncSession, contact: Contact, kind: IdentityKind, value: str
) -> ContactIdentity:
    normalised = normalise_identity(kind, value)
    if not normalised:
        raise ValidationFailed(
            "The identity value is empty.", code="invalid_identity", field="value"
        )
    taken = Conflict(
        "This identity belongs to another contact; merge the contacts instead.",
        code="identity_taken",
        field="value",
    )
    existing = await session.scalar(
        select(ContactIdentity).where(
            ContactIdentity.kind == kind, ContactIdentity.value == normalised
        )
    )
    if existing is not None:
        if existing.contact_id != contact.id:
            raise taken
        return existing
    identity = ContactIdentity(
        contact_id=contact.id, kind=kind, value=normalised, created_at=now(session)
    )
    try:
        async with session.begin_nested():
            session.add(identity)
    except IntegrityError as error:  # the same identity arrived at the same time elsewhere
        raise taken from error
    return identity


def _not_merged(contact: Contact) -> None:
    if contact.merged_into_id is not None:
        raise Conflict(
            "This contact was merged into another; change the surviving contact.",
            code="contact_merged",
            merged_into_id=str(contact.merged_into_id),
        )


async def create_contact(session: AsyncSession, actor: Actor, data: ContactCreate) -> Contact:
    _require_supervising(actor)
    fields = _contact_fields(data)
    instant = now(session)
    contact = Contact(**fields, created_at=instant, updated_at=instant)
    session.add(contact)
    await session.flush()
    for identity in data.identities:
        await _attach_identity(session, contact, identity.kind, identity.value)
    await audit.record(
        session,
        actor,
        "contact.create",
        resource_type="contact",
        resource_id=contact.id,
        tenant_id=contact.tenant_id,
        after={
            **_snapshot(contact),
            "identities": [
                {"kind": i.kind.value, "value": i.value}
                for i in await identities_of(session, contact.id)
            ],
        },
    )
    await emit(session, ContactCreated(contact_id=contact.id))
    return contact


async def update_contact(
    session: AsyncSession, actor: Actor, contact_id: uuid.UUID, data: ContactUpdate
) -> Contact:
    contact = await get_contact(session, actor, contact_id)
    _not_merged(contact)
    before = _snapshot(contact)
    changes = {
        field: value
        for field, value in _contact_fields(data).items()
        if getattr(contact, field) != value
    }
    if not changes:
        return contact
    for field, value in changes.items():
        setattr(contact, field, value)
    contact.updated_at = now(session)
    await session.flush()
    await audit.record(
        session,
        actor,
        "contact.update",
        resource_type="contact",
        resource_id=contact.id,
        tenant_id=contact.tenant_id,
        before=before,
        after=_snapshot(contact),
    )
    await emit(session, ContactUpdated(contact_id=contact.id, changes=sorted(changes)))
    return contact


async def add_identity(
    session: AsyncSession, actor: Actor, contact_id: uuid.UUID, data: IdentityIn
) -> ContactIdentity:
    """Link one more channel identity to the contact (idempotent for its own identities)."""
    contact = await get_contact(session, actor, contact_id)
    _not_merged(contact)
    known = {(i.kind, i.value) for i in await identities_of(session, contact.id)}
    identity = await _attach_identity(session, contact, data.kind, data.value)
    if (identity.kind, identity.value) in known:
        return identity
    contact.updated_at = now(session)
    await session.flush()
    await audit.record(
        session,
        actor,
        "contact.identity_add",
        resource_type="contact",
        resource_id=contact.id,
        tenant_id=contact.tenant_id,
        after={"kind": identity.kind.value, "value": identity.value},
    )
    await emit(session, ContactUpdated(contact_id=contact.id, changes=["identities"]))
    return identity


async def remove_identity(
    session: AsyncSession, actor: Actor, contact_id: uuid.UUID, identity_id: uuid.UUID
) -> None:
    _require_supervising(actor)
    contact = await get_contact(session, actor, contact_id)
    identity = await session.get(ContactIdentity, identity_id)
    if identity is None or identity.contact_id != contact.id:
        raise NotFound("contact_identity")
    before = {"kind": identity.kind.value, "value": identity.value}
    await session.delete(identity)
    contact.updated_at = now(session)
    await session.flush()
    await audit.record(
        session,
        actor,
        "contact.identity_remove",
        resource_type="contact",
        resource_id=contact.id,
        tenant_id=contact.tenant_id,
        before=before,
    )
    await emit(session, ContactUpdated(contact_id=contact.id, changes=["identities"]))


async def merge(
    session: AsyncSession, actor: Actor, survivor_id: uuid.UUID, other_id: uuid.UUID
) -> Contact:
    """Fold ``other`` into ``survivor``: its identities and interactions move over, empty
    fields of the survivor are filled from it, and it keeps ``merged_into_id`` so old
    references still resolve. Both rows are locked in id order (no deadlock between two
    merges of the same pair)."""
    _require_supervising(actor)
    if survivor_id == other_id:
        raise ValidationFailed(
            "A contact cannot be merged into itself.", code="cannot_merge_self", field="other_id"
        )
    locked = {
        c.id: c
        for c in await session.scalars(
            select(Contact)
            .where(Contact.id.in_([survivor_id, other_id]))
            .order_by(Contact.id)
            .with_for_update()
        )
    }
    survivor, other = locked.get(survivor_id), locked.get(other_id)
    if survivor is None or other is None:
        raise NotFound("contact")
    _not_merged(survivor)
    _not_merged(other)
    before = {"survivor": _snapshot(survivor), "other": _snapshot(other)}
    moved_identities = await session.execute(
        update(ContactIdentity)
        .where(ContactIdentity.contact_id == other.id)
        .values(contact_id=survivor.id)
    )
    moved_interactions = await conversations.move_contact(session, other.id, survivor.id)
    # Contacts merged into ``other`` earlier now point straight at the survivor.
    await session.execute(
        update(Contact).where(Contact.merged_into_id == other.id).values(merged_into_id=survivor.id)
    )
    filled = []
    for field in ("name", "email", "phone"):
        if getattr(survivor, field) is None and getattr(other, field) is not None:
            setattr(survivor, field, getattr(other, field))
            filled.append(field)
    instant = now(session)
    other.merged_into_id = survivor.id
    other.updated_at = instant
    survivor.updated_at = instant
    await session.flush()
    await audit.record(
        session,
        actor,
        "contact.merge",
        resource_type="contact",
        resource_id=survivor.id,
        tenant_id=survivor.tenant_id,
        before=before,
        after={
            "survivor": _snapshot(survivor),
            "merged_id": str(other.id),
            "filled": filled,
            "moved_identities": int(getattr(moved_identities, "rowcount", 0) or 0),
            "moved_interactions": moved_interactions,
        },
    )
    await emit(session, ContactsMerged(contact_id=survivor.id, merged_id=other.id))
    return survivor
