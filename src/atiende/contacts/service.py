"""Contacts and their channel identities. The only writer of ``contacts`` and
``contact_identities``."""

from __future__ import annotations

import uuid

import phonenumbers
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.contacts.models import Contact, ContactIdentity, IdentityKind
from atiende.core.db import now
from atiende.core.errors import NotFound, ValidationFailed


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
