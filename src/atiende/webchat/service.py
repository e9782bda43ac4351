"""Webchat: widgets (administration) and their visitors (the public side). The only writer of
``webchat_widgets`` and ``webchat_visitors``.

A visitor is a browser holding a secret token for one widget; behind it stands a contact with a
``webchat`` identity (the visitor id). Messages and interactions are written through
``atiende.conversations.service``; queueing and abandoning go through
``atiende.routing.service``. A visitor who ends the chat, or whose widget is gone for longer
than the grace period while the conversation still waits, leaves it (see ``end_conversation``
and ``check_visitor_left``).
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.attachments import service as attachments
from atiende.attachments.storage import AttachmentStore
from atiende.audit import service as audit
from atiende.billing import entitlements
from atiende.contacts import service as contacts
from atiende.contacts.models import IdentityKind
from atiende.conversations import service as conversations
from atiende.conversations.events import Typing
from atiende.conversations.models import (
    OPEN_STATUSES,
    Channel,
    Interaction,
    InteractionEvent,
    InteractionStatus,
    Message,
    MessageDirection,
    MessageStatus,
)
from atiende.core import i18n
from atiende.core.config import Settings
from atiende.core.db import advisory_lock, now, require_tenant
from atiende.core.errors import (
    AtiendeError,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    RateLimited,
    ValidationFailed,
)
from atiende.core.events import emit
from atiende.core.ids import new_id, new_token, token_digest
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.jobs import service as jobs
from atiende.realtime import service as realtime
from atiende.routing import service as routing
from atiende.routing.models import Queue
from atiende.tenancy import service as tenancy
from atiende.tenancy.models import Tenant
from atiende.webchat.models import Visitor, Widget
from atiende.webchat.schemas import (
    AttachmentLimits,
    AttachmentOut,
    MessageHistory,
    PrechatConfig,
    PublicConfig,
    SessionCreate,
    VisitorMessageIn,
    VisitorMessageOut,
    VisitorOut,
    WidgetCreate,
    WidgetOut,
    WidgetUpdate,
)

WIDGET_KEY_PREFIX = "wc"
VISITOR_TOKEN_PREFIX = "wcv"  # noqa: S105 - a prefix, not a secret
AUTHOR_CONTACT = "contact"
DEMO_TENANT_SLUG = "demo"

MESSAGES_PER_MINUTE = 30
SESSIONS_PER_ADDRESS_PER_MINUTE = 10
UPLOADS_PER_TEN_MINUTES = 20
TYPING_INTERVAL_SECONDS = 2.0
HISTORY_LIMIT = 500
UNREAD = (MessageStatus.pending, MessageStatus.sent, MessageStatus.delivered)

# Leaving: the job that checks on a visitor whose widget went away, the timeline entry when
# the visitor ends a conversation an agent already has, the reasons on ``abandoned`` entries,
# and the status the visitor then sees for the conversation the agent is still finishing.
VISITOR_LEFT_JOB = "webchat.visitor_left"
VISITOR_ENDED = "visitor_ended"
REASON_ENDED = "visitor_ended"
REASON_LEFT = "visitor_left"
STATUS_ENDED = "ended"
WAITING = (InteractionStatus.queued, InteractionStatus.offered)
WORKED = (InteractionStatus.assigned, InteractionStatus.wrap_up)
VISITOR_ENDED_NOTE = "The visitor ended the chat. Close the conversation when you are done."

READERS = frozenset({Role.admin, Role.supervisor})
WRITERS = frozenset({Role.admin})

# The widget's interface texts, translated through the catalogs into the visitor's language.
WIDGET_TEXTS: dict[str, str] = {
    "launcher": "Chat with us",
    "title": "Chat with us",
    "close": "Close chat",
    "start": "Start chat",
    "name": "Name",
    "email": "E-mail",
    "phone": "Phone",
    "optional": "(optional)",
    "required": "Please fill in this field.",
    "placeholder": "Type a message…",
    "send": "Send",
    "attach": "Attach a file",
    "attach_limits": "Allowed: {types}; up to {size}.",
    "too_large": "This file is too large (up to {size}).",
    "bad_type": "This type of file cannot be sent here.",
    "sending": "Sending…",
    "sent": "Sent",
    "read": "Read",
    "retrying": "Not sent yet; retrying…",
    "typing": "The agent is typing…",
    "joined": "An agent joined the conversation.",
    "ended": "The conversation has ended. Write again whenever you need us.",
    "reconnecting": "Reconnecting…",
    "offline_title": "We are offline",
    "you": "You",
    "agent": "Agent",
    "invalid_email": "Enter a valid e-mail address.",
    "invalid_phone": "Enter a valid phone number.",
    "rate_limited": "You are sending messages too fast; wait a moment.",
    "unavailable": "The chat is not available right now.",
    "attachment": "Attachment",
    "end": "End chat",
    "end_confirm": "End this conversation?",
    "cancel": "Cancel",
    "ended_by_you": "You ended the conversation.",
    "new_chat": "Start a new conversation",
}
DEFAULT_GREETING = "Hello! How can we help you?"
DEFAULT_OFFLINE_MESSAGE = (
    "We are offline right now. Leave us a message and we will answer as soon as we are back."
)


class OriginNotAllowed(AtiendeError):
    status_code = 403
    code = "origin_not_allowed"
    default_message = "This page may not use this chat widget."


class VisitorNotAuthenticated(NotAuthenticated):
    code = "visitor_not_authenticated"
    default_message = "The chat session is unknown or has ended; start a new one."


# --- widgets: administration ----------------------------------------------------------------


def _require(actor: Actor, roles: frozenset[Role]) -> None:
    if actor.role not in roles or actor.tenant_id is None:
        raise PermissionDenied()


def _snapshot(widget: Widget) -> dict[str, Any]:
    return WidgetOut.model_validate(widget).model_dump(mode="json")


async def _check_queue(session: AsyncSession, queue_id: uuid.UUID) -> None:
    queue = await session.get(Queue, queue_id)
    if queue is None:
        raise ValidationFailed(
            "The queue does not exist.", code="queue_not_found", field="queue_id"
        )
    if Channel.webchat.value not in (queue.channels or []):
        raise ValidationFailed(
            "The queue does not take webchat conversations.",
            code="queue_not_for_webchat",
            field="queue_id",
        )


async def list_widgets(session: AsyncSession, actor: Actor) -> Sequence[Widget]:
    _require(actor, READERS)
    return (await session.scalars(select(Widget).order_by(Widget.name, Widget.id))).all()


async def get_widget(session: AsyncSession, actor: Actor, widget_id: uuid.UUID) -> Widget:
    _require(actor, READERS)
    widget = await session.get(Widget, widget_id)
    if widget is None:
        raise NotFound("widget")
    return widget


async def create_widget(session: AsyncSession, actor: Actor, data: WidgetCreate) -> Widget:
    _require(actor, WRITERS)
    await _check_queue(session, data.queue_id)
    await entitlements.require_omnichannel(session, require_tenant(session))
    fields = data.model_dump()
    widget = Widget(**fields, key=new_token(WIDGET_KEY_PREFIX, 18), created_at=now(session))
    session.add(widget)
    await session.flush()
    await audit.record(
        session,
        actor,
        "webchat_widget.create",
        resource_type="webchat_widget",
        resource_id=widget.id,
        tenant_id=widget.tenant_id,
        after=_snapshot(widget),
    )
    return widget


async def update_widget(
    session: AsyncSession, actor: Actor, widget_id: uuid.UUID, data: WidgetUpdate
) -> Widget:
    widget = await get_widget(session, actor, widget_id)
    _require(actor, WRITERS)
    values = data.model_dump(exclude_unset=True)
    if "queue_id" in values and values["queue_id"] != widget.queue_id:
        await _check_queue(session, values["queue_id"])
    before = _snapshot(widget)
    changes = {field: value for field, value in values.items() if getattr(widget, field) != value}
    for field, value in changes.items():
        setattr(widget, field, value)
    await session.flush()
    if changes:
        await audit.record(
            session,
            actor,
            "webchat_widget.update",
            resource_type="webchat_widget",
            resource_id=widget.id,
            tenant_id=widget.tenant_id,
            before=before,
            after=_snapshot(widget),
        )
    return widget


async def rotate_key(session: AsyncSession, actor: Actor, widget_id: uuid.UUID) -> Widget:
    """A new public key: pages embedding the old one stop working (their visitors too)."""
    widget = await get_widget(session, actor, widget_id)
    _require(actor, WRITERS)
    before = _snapshot(widget)
    widget.key = new_token(WIDGET_KEY_PREFIX, 18)
    await session.flush()
    await audit.record(
        session,
        actor,
        "webchat_widget.rotate_key",
        resource_type="webchat_widget",
        resource_id=widget.id,
        tenant_id=widget.tenant_id,
        before=before,
        after=_snapshot(widget),
    )
    return widget


async def delete_widget(session: AsyncSession, actor: Actor, widget_id: uuid.UUID) -> None:
    """Removes the widget and its visitors' tokens; contacts and conversations stay."""
    widget = await get_widget(session, actor, widget_id)
    _require(actor, WRITERS)
    before, tenant_id = _snapshot(widget), widget.tenant_id
    await session.delete(widget)
    await session.flush()
    await audit.record(
        session,
        actor,
        "webchat_widget.delete",
        resource_type="webchat_widget",
        resource_id=widget_id,
        tenant_id=tenant_id,
        before=before,
    )


# --- the public side: widgets by key, origins, configuration ---------------------------------


async def widget_by_key(session: AsyncSession, key: str) -> Widget:
    """The active widget behind a public key, in any tenant (the caller narrows its scope to
    the widget's tenant right after)."""
    widget = await session.scalar(select(Widget).where(Widget.key == key))
    if widget is None or not widget.is_active:
        raise NotFound("widget")
    return widget


async def demo_widget_key(session: AsyncSession) -> str | None:
    """The key of the demo tenant's first active widget (``atiende demo``), if any."""
    tenant = await tenancy.get_tenant_by_slug(session, DEMO_TENANT_SLUG)
    if tenant is None:
        return None
    return await session.scalar(
        select(Widget.key)
        .where(Widget.tenant_id == tenant.id, Widget.is_active.is_(True))
        .order_by(Widget.created_at, Widget.id)
        .limit(1)
    )


def origin_allowed(widget: Widget, origin: str | None) -> bool:
    """An empty list lets any page embed the widget; otherwise the page's origin must be
    listed. ``origin`` is already normalised (``schemas.normalise_origin``); None means the
    caller sent no usable origin."""
    if not widget.allowed_origins:
        return True
    return origin is not None and origin in widget.allowed_origins


def widget_texts(locale: str) -> dict[str, str]:
    catalog = i18n.translations(locale)
    return {name: catalog.gettext(text) for name, text in WIDGET_TEXTS.items()}


def _pick_locale(widget: Widget, requested: str | None) -> str:
    return i18n.normalise(requested) or i18n.normalise(widget.default_locale) or "es"


async def queue_is_open(session: AsyncSession, queue_id: uuid.UUID) -> bool:
    """Whether the widget's queue is within its opening hours now (no schedule: always)."""
    queue = await session.get(Queue, queue_id)
    return queue is None or await routing.queue_is_open(session, queue)


async def public_config(session: AsyncSession, widget: Widget, locale: str | None) -> PublicConfig:
    chosen = _pick_locale(widget, locale)
    catalog = i18n.translations(chosen)
    return PublicConfig(
        theme_color=widget.theme_color,
        greeting=widget.greeting or catalog.gettext(DEFAULT_GREETING),
        offline_message=widget.offline_message or catalog.gettext(DEFAULT_OFFLINE_MESSAGE),
        prechat=PrechatConfig.model_validate(widget.prechat or {}),
        locale=chosen,
        default_locale=widget.default_locale,
        open=await queue_is_open(session, widget.queue_id),
        attachments=AttachmentLimits(
            max_bytes=widget.max_attachment_bytes, types=list(widget.allowed_attachment_types)
        ),
        texts=widget_texts(chosen),
    )


# --- visitors: sessions -----------------------------------------------------------------------


def _clean_prechat(widget: Widget, data: SessionCreate) -> dict[str, str | None]:
    """The pre-chat answers the widget asks for, validated and normalised."""
    config = PrechatConfig.model_validate(widget.prechat or {})
    answers: dict[str, str | None] = {}
    for field in ("name", "email", "phone"):
        mode = getattr(config, field)
        value = (getattr(data, field) or "").strip() or None
        if mode == "off":
            answers[field] = None  # not asked for: whatever came is ignored
            continue
        if value is None and mode == "required":
            raise ValidationFailed(
                f"The {field} is required.", code="prechat_field_required", field=field
            )
        answers[field] = value
    if answers["email"] is not None:
        try:
            validate_email(answers["email"], check_deliverability=False)
        except EmailNotValidError as error:
            raise ValidationFailed(
                "Not a valid e-mail address.", code="invalid_email", field="email"
            ) from error
        answers["email"] = contacts.normalise_identity(IdentityKind.email, answers["email"])
    if answers["phone"] is not None:
        try:
            answers["phone"] = contacts.normalise_identity(IdentityKind.phone, answers["phone"])
        except ValidationFailed as error:
            error.details["field"] = "phone"
            raise
    return answers


async def _check_session_rate(session: AsyncSession, widget: Widget, address: str | None) -> None:
    if not address:
        return
    since = now(session) - timedelta(minutes=1)
    recent = await session.scalars(
        select(Visitor.meta)
        .where(Visitor.widget_id == widget.id, Visitor.created_at >= since)
        .limit(2000)
    )
    if sum(1 for meta in recent if (meta or {}).get("ip") == address) >= (
        SESSIONS_PER_ADDRESS_PER_MINUTE
    ):
        raise RateLimited("Too many chat sessions started; try again later.", retry_after=60)


async def start_session(
    session: AsyncSession,
    widget: Widget,
    data: SessionCreate,
    *,
    address: str | None = None,
    user_agent: str | None = None,
) -> tuple[str, Visitor]:
    """A new visitor and the contact behind it. Returns the secret token (shown once)."""
    await entitlements.require_omnichannel(session, widget.tenant_id)
    answers = _clean_prechat(widget, data)
    await _check_session_rate(session, widget, address)
    visitor_id = new_id()
    contact = await contacts.find_or_create_by_identity(
        session,
        IdentityKind.webchat,
        str(visitor_id),
        name=answers["name"],
        email=answers["email"],
        phone=answers["phone"],
    )
    token = new_token(VISITOR_TOKEN_PREFIX)
    instant = now(session)
    meta: dict[str, Any] = {}
    if address:
        meta["ip"] = address
    if user_agent:
        meta["user_agent"] = user_agent[:300]
    if data.page_url:
        meta["page_url"] = data.page_url
    visitor = Visitor(
        id=visitor_id,
        widget_id=widget.id,
        token_digest=token_digest(token),
        contact_id=contact.id,
        locale=data.locale or _pick_locale(widget, None),
        meta=meta,
        created_at=instant,
        last_seen_at=instant,
    )
    session.add(visitor)
    await session.flush()
    return token, visitor


async def visitor_by_token(session: AsyncSession, widget: Widget, token: str | None) -> Visitor:
    if not token:
        raise VisitorNotAuthenticated()
    visitor = await session.scalar(
        select(Visitor).where(
            Visitor.token_digest == token_digest(token), Visitor.widget_id == widget.id
        )
    )
    if visitor is None:
        raise VisitorNotAuthenticated()
    return visitor


def touch(session: AsyncSession, visitor: Visitor) -> None:
    """The visitor is here now (connected, or sent something)."""
    visitor.last_seen_at = now(session)


async def visitor_profile(session: AsyncSession, widget: Widget, visitor: Visitor) -> VisitorOut:
    contact = await contacts.resolve(session, visitor.contact_id)
    return VisitorOut(
        visitor_id=visitor.id,
        name=contact.name,
        email=contact.email,
        phone=contact.phone,
        locale=visitor.locale,
        open=await queue_is_open(session, widget.queue_id),
    )


# --- visitors: conversation -------------------------------------------------------------------


async def contact_ids(session: AsyncSession, visitor: Visitor) -> list[uuid.UUID]:
    """The visitor's contact, and the profile it was merged into (new chats go there)."""
    survivor = await contacts.resolve(session, visitor.contact_id)
    return list(dict.fromkeys([visitor.contact_id, survivor.id]))


async def _interactions_of(
    session: AsyncSession, widget: Widget, visitor: Visitor
) -> Sequence[Interaction]:
    return (
        await session.scalars(
            select(Interaction)
            .where(
                Interaction.source_id == widget.id,
                Interaction.channel == Channel.webchat,
                Interaction.contact_id.in_(await contact_ids(session, visitor)),
            )
            .order_by(Interaction.created_at, Interaction.id)
        )
    ).all()


async def owns_interaction(
    session: AsyncSession, widget: Widget, visitor: Visitor, interaction_id: uuid.UUID
) -> bool:
    """Whether an interaction is one of this visitor's conversations through this widget."""
    found = await session.scalar(
        select(Interaction.id).where(
            Interaction.id == interaction_id,
            Interaction.source_id == widget.id,
            Interaction.channel == Channel.webchat,
            Interaction.contact_id.in_(await contact_ids(session, visitor)),
        )
    )
    return found is not None


async def interaction_owner(
    session: AsyncSession, interaction_id: uuid.UUID
) -> tuple[uuid.UUID | None, uuid.UUID] | None:
    """Widget (source) and contact of a webchat interaction; None for any other channel."""
    row = (
        await session.execute(
            select(Interaction.source_id, Interaction.contact_id).where(
                Interaction.id == interaction_id, Interaction.channel == Channel.webchat
            )
        )
    ).first()
    return None if row is None else (row[0], row[1])


def message_out(message: Message) -> VisitorMessageOut:
    return VisitorMessageOut(
        id=message.id,
        interaction_id=message.interaction_id,
        direction=message.direction.value,
        author_kind=message.author_kind,
        body=message.body,
        attachments=[_public_attachment(item) for item in message.attachments or []],
        client_id=message.client_id if message.direction is MessageDirection.inbound else None,
        status=message.status.value,
        created_at=message.created_at,
    )


def _public_attachment(item: dict[str, Any]) -> dict[str, Any]:
    allowed = ("id", "name", "content_type", "size", "url")
    return {key: item[key] for key in allowed if key in item}


async def visible_message(
    session: AsyncSession, widget: Widget, visitor: Visitor, message_id: uuid.UUID
) -> Message | None:
    """The message if the visitor may see it: theirs, never an internal note."""
    message = await session.get(Message, message_id)
    if message is None or message.direction is MessageDirection.internal:
        return None
    if not await owns_interaction(session, widget, visitor, message.interaction_id):
        return None
    return message


async def history(session: AsyncSession, widget: Widget, visitor: Visitor) -> MessageHistory:
    """Every message of the visitor's conversations through this widget, oldest first (the
    newest ``HISTORY_LIMIT``), and the event id to resume the websocket from."""
    # Read the resume point first: an event newer than it is replayed rather than lost.
    last_event_id = await realtime.latest_event_id(session, tenant_id=widget.tenant_id)
    interactions = await _interactions_of(session, widget, visitor)
    messages: list[Message] = []
    if interactions:
        rows = await session.scalars(
            select(Message)
            .where(
                Message.interaction_id.in_([i.id for i in interactions]),
                Message.direction != MessageDirection.internal,
            )
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(HISTORY_LIMIT)
        )
        messages = list(reversed(rows.all()))
    return MessageHistory(
        messages=[message_out(m) for m in messages],
        last_event_id=last_event_id,
        status=await _status_for_visitor(session, interactions[-1]) if interactions else None,
    )


async def _message_by_client_id(
    session: AsyncSession, widget: Widget, visitor: Visitor, client_id: str
) -> Message | None:
    return await session.scalar(
        select(Message)
        .join(Interaction, Interaction.id == Message.interaction_id)
        .where(
            Message.client_id == client_id,
            Message.direction == MessageDirection.inbound,
            Interaction.source_id == widget.id,
            Interaction.contact_id.in_(await contact_ids(session, visitor)),
        )
        .limit(1)
    )


async def _check_message_rate(session: AsyncSession, widget: Widget, visitor: Visitor) -> None:
    since = now(session) - timedelta(minutes=1)
    count = await session.scalar(
        select(func.count(Message.id))
        .join(Interaction, Interaction.id == Message.interaction_id)
        .where(
            Message.direction == MessageDirection.inbound,
            Message.created_at >= since,
            Interaction.source_id == widget.id,
            Interaction.contact_id.in_(await contact_ids(session, visitor)),
        )
    )
    if (count or 0) >= MESSAGES_PER_MINUTE:
        raise RateLimited("You are sending messages too fast; wait a moment.", retry_after=60)


async def post_message(
    session: AsyncSession, widget: Widget, visitor: Visitor, data: VisitorMessageIn
) -> tuple[Message, bool]:
    """Store the visitor's message (opening and queueing a conversation when none is open);
    a re-sent ``client_id`` returns the stored message and changes nothing."""
    # One writer per visitor at a time: two first messages must not open two conversations.
    await advisory_lock(session, f"webchat-visitor:{visitor.id}")
    existing = await _message_by_client_id(session, widget, visitor, data.client_id)
    if existing is not None:
        return existing, False
    await _check_message_rate(session, widget, visitor)
    files = await _attachments_for(visitor, session, data.attachment_ids)
    contact = await contacts.resolve(session, visitor.contact_id)
    interaction = await _current_interaction(session, widget, contact.id)
    opened = interaction is None
    if interaction is None:
        interaction = await conversations.open_interaction(
            session, channel=Channel.webchat, contact_id=contact.id, source_id=widget.id
        )
    message, created = await conversations.add_message(
        session,
        interaction,
        direction=MessageDirection.inbound,
        author_kind=AUTHOR_CONTACT,
        body=data.body.strip(),
        attachments=files,
        client_id=data.client_id,
    )
    touch(session, visitor)
    if opened:
        # Routing applies the queue's closed hours (auto-reply) and length limits.
        await routing.enqueue(session, interaction, widget.queue_id)
    return message, created


async def typing(session: AsyncSession, widget: Widget, visitor: Visitor) -> bool:
    """Tell the agent the visitor is typing. Pulses closer than ``TYPING_INTERVAL_SECONDS``
    are dropped (the widget repeats them while typing); returns whether one was sent."""
    contact = await contacts.resolve(session, visitor.contact_id)
    interaction = await _current_interaction(session, widget, contact.id)
    if interaction is None or not _typing_throttle.allow(visitor.id):
        return False
    await emit(
        session,
        Typing(interaction_id=interaction.id, author_kind=AUTHOR_CONTACT),
        tenant_id=interaction.tenant_id,
        audience=conversations.content_audience(interaction),
    )
    return True


async def mark_read(
    session: AsyncSession, widget: Widget, visitor: Visitor, up_to: uuid.UUID | None
) -> int:
    """The visitor has seen the messages sent to them (all, or those up to ``up_to``)."""
    interactions = await _interactions_of(session, widget, visitor)
    if not interactions:
        return 0
    query = select(Message).where(
        Message.interaction_id.in_([i.id for i in interactions]),
        Message.direction == MessageDirection.outbound,
        Message.status.in_(UNREAD),
    )
    if up_to is not None:
        anchor = await visible_message(session, widget, visitor, up_to)
        if anchor is None:
            raise NotFound("message")
        query = query.where(Message.created_at <= anchor.created_at)
    unread = (await session.scalars(query.order_by(Message.created_at, Message.id))).all()
    for message in unread:
        await _set_status(session, message, MessageStatus.read)
    return len(unread)


async def mark_delivered(
    session: AsyncSession, widget: Widget, visitor: Visitor, message_id: uuid.UUID
) -> bool:
    """A message to the visitor reached their open widget (the websocket pushed it)."""
    message = await visible_message(session, widget, visitor, message_id)
    if message is None or message.direction is not MessageDirection.outbound:
        return False
    if message.status not in {MessageStatus.pending, MessageStatus.sent}:
        return False
    await _set_status(session, message, MessageStatus.delivered)
    return True


async def _set_status(session: AsyncSession, message: Message, status: MessageStatus) -> None:
    # The webchat channel is the delivery path of its messages, so it reports their status,
    # like a provider's status callback does for the other channels.
    await conversations.set_message_status(session, message, status)


# --- visitors: ending and leaving -------------------------------------------------------------


def _not_ended_by_visitor() -> ColumnElement[bool]:
    ended = select(InteractionEvent.id).where(
        InteractionEvent.interaction_id == Interaction.id,
        InteractionEvent.type == VISITOR_ENDED,
    )
    return ~ended.exists()


def _current_filter(widget: Widget, contact_id: uuid.UUID) -> list[ColumnElement[bool]]:
    return [
        Interaction.contact_id == contact_id,
        Interaction.channel == Channel.webchat,
        Interaction.source_id == widget.id,
        Interaction.status.in_(OPEN_STATUSES),
        _not_ended_by_visitor(),
    ]


async def _current_interaction(
    session: AsyncSession, widget: Widget, contact_id: uuid.UUID
) -> Interaction | None:
    """The contact's open conversation through this widget that the visitor has not ended:
    where their messages and typing go. One they ended stays with its agent until closed, and
    the next message opens a new one."""
    return await session.scalar(
        select(Interaction)
        .where(*_current_filter(widget, contact_id))
        .order_by(Interaction.created_at.desc(), Interaction.id.desc())
        .limit(1)
    )


async def ended_by_visitor(session: AsyncSession, interaction_id: uuid.UUID) -> bool:
    """Whether the visitor ended this conversation while an agent had it."""
    found = await session.scalar(
        select(InteractionEvent.id)
        .where(
            InteractionEvent.interaction_id == interaction_id,
            InteractionEvent.type == VISITOR_ENDED,
        )
        .limit(1)
    )
    return found is not None


async def _status_for_visitor(session: AsyncSession, interaction: Interaction) -> str:
    if interaction.status.is_open and await ended_by_visitor(session, interaction.id):
        return STATUS_ENDED
    return interaction.status.value


async def conversation_status(
    session: AsyncSession, widget: Widget, visitor: Visitor
) -> str | None:
    """The status of the visitor's newest conversation as they see it (null: none yet)."""
    interactions = await _interactions_of(session, widget, visitor)
    return await _status_for_visitor(session, interactions[-1]) if interactions else None


async def end_conversation(session: AsyncSession, widget: Widget, visitor: Visitor) -> str | None:
    """The visitor ends their conversation from the widget.

    Still waiting for an agent: it is abandoned (reason ``visitor_ended``; pending offers are
    cancelled). An agent has it: the agent is told (timeline ``visitor_ended`` and a system
    note) and wraps up and closes it as usual, while the visitor's next message opens a new
    conversation. Nothing open, or already ended: nothing changes, so a repeated request is
    harmless. Returns the conversation's status as the visitor now sees it.
    """
    await advisory_lock(session, f"webchat-visitor:{visitor.id}")
    contact = await contacts.resolve(session, visitor.contact_id)
    # Only the id: routing reads the row under its own lock (an agent may be taking it now).
    interaction_id = await session.scalar(
        select(Interaction.id)
        .where(*_current_filter(widget, contact.id))
        .order_by(Interaction.created_at.desc(), Interaction.id.desc())
        .limit(1)
    )
    if interaction_id is None:
        return await conversation_status(session, widget, visitor)
    if await routing.abandon(session, interaction_id, reason=REASON_ENDED):
        return InteractionStatus.abandoned.value
    interaction = await conversations.get_interaction(session, interaction_id)
    if interaction.status not in WORKED:
        return interaction.status.value
    await conversations.record(session, interaction, VISITOR_ENDED)
    tenant = await session.get(Tenant, interaction.tenant_id)
    locale = i18n.normalise(tenant.locale if tenant else None) or i18n.DEFAULT_LOCALE
    await conversations.add_message(
        session,
        interaction,
        direction=MessageDirection.internal,
        author_kind="system",
        body=i18n.translations(locale).gettext(VISITOR_ENDED_NOTE),
        client_id=f"visitor-ended:{interaction.id}",
    )
    return STATUS_ENDED


def leave_grace(settings: Settings) -> timedelta:
    """How long a visitor may be gone before a conversation still waiting for an agent counts
    as abandoned: ``webchat_leave_grace_seconds``, but never under two heartbeats, since an
    open socket marks its visitor seen once per heartbeat (a tab still open on another node
    must have had time to say so)."""
    seconds = max(settings.webchat_leave_grace_seconds, 2 * settings.websocket_heartbeat_seconds)
    return timedelta(seconds=seconds)


async def _waiting(session: AsyncSession, visitor: Visitor) -> list[uuid.UUID]:
    """The visitor's conversations through their widget that no agent has taken yet."""
    rows = await session.scalars(
        select(Interaction.id).where(
            Interaction.source_id == visitor.widget_id,
            Interaction.channel == Channel.webchat,
            Interaction.contact_id.in_(await contact_ids(session, visitor)),
            Interaction.status.in_(WAITING),
        )
    )
    return list(rows.all())


async def _check_back(session: AsyncSession, visitor: Visitor, grace: timedelta) -> None:
    run_at = visitor.last_seen_at + grace
    await jobs.schedule(
        session,
        VISITOR_LEFT_JOB,
        {"visitor_id": str(visitor.id)},
        run_at=run_at,
        tenant_id=visitor.tenant_id,
        dedupe_key=f"webchat-left:{visitor.id}:{run_at.isoformat()}",
    )


async def visitor_disconnected(
    session: AsyncSession, visitor_id: uuid.UUID, *, grace: timedelta
) -> bool:
    """A socket of the visitor closed: they were here until now. If a conversation of theirs
    still waits for an agent, check back once ``grace`` has passed; returns whether a check
    was scheduled."""
    visitor = await session.get(Visitor, visitor_id)
    if visitor is None:
        return False
    touch(session, visitor)
    if not await _waiting(session, visitor):
        return False
    await _check_back(session, visitor, grace)
    return True


async def check_visitor_left(
    session: AsyncSession, visitor_id: uuid.UUID, *, grace: timedelta
) -> int:
    """The visitor-left job. A visitor not seen (no socket, no heartbeat, no message) for
    ``grace`` whose conversation still waits for an agent has left: it is abandoned with reason
    ``visitor_left``. A visitor seen since (a reload, a network blip, another tab) is still
    here: nothing changes, and while the conversation waits the check comes back ``grace``
    after the latest sign of life (which also covers a socket lost with its node). Returns how
    many conversations were abandoned."""
    # Serialised with the visitor's messages: one sent now keeps the conversation alive.
    await advisory_lock(session, f"webchat-visitor:{visitor_id}")
    visitor = await session.get(Visitor, visitor_id)
    if visitor is None:
        return 0
    waiting = await _waiting(session, visitor)
    if not waiting:
        return 0
    if visitor.last_seen_at + grace > now(session):
        await _check_back(session, visitor, grace)
        return 0
    abandoned = 0
    for interaction_id in waiting:
        abandoned += await routing.abandon(session, interaction_id, reason=REASON_LEFT)
    return abandoned


# --- attachments ------------------------------------------------------------------------------

UPLOADER_KIND = "webchat_visitor"


async def store_attachment(
    session: AsyncSession,
    widget: Widget,
    visitor: Visitor,
    *,
    filename: str | None,
    content_type: str | None,
    data: bytes,
    blobs: AttachmentStore,
) -> AttachmentOut:
    """Keep a file the visitor will attach to a message, within the widget's limits (type,
    size; the content must match the declared type)."""
    if not widget.allowed_attachment_types:
        raise ValidationFailed("This chat does not take attachments.", code="attachments_disabled")
    if not _upload_window.allow(visitor.id):
        raise RateLimited("Too many files; try again in a few minutes.", retry_after=60)
    stored = await attachments.store(
        session,
        data,
        filename,
        content_type,
        blobs=blobs,
        max_bytes=widget.max_attachment_bytes,
        allowed_types=widget.allowed_attachment_types,
        uploader_kind=UPLOADER_KIND,
        uploader_id=visitor.id,
    )
    return AttachmentOut(
        id=stored.id, name=stored.name, content_type=stored.content_type, size=stored.size
    )


async def _attachments_for(
    visitor: Visitor, session: AsyncSession, ids: Sequence[uuid.UUID]
) -> list[dict[str, Any]]:
    """The message's attachment references: only files this visitor uploaded."""
    files = await attachments.get_many(session, ids)
    foreign = [
        str(f.id) for f in files if f.uploader_kind != UPLOADER_KIND or f.uploader_id != visitor.id
    ]
    if foreign:
        raise ValidationFailed(
            "Unknown attachment.",
            code="attachment_not_found",
            field="attachment_ids",
            missing=foreign,
        )
    return [f.reference() for f in files]


async def open_attachment(
    session: AsyncSession,
    widget: Widget,
    visitor: Visitor,
    attachment_id: uuid.UUID,
    *,
    blobs: AttachmentStore,
) -> tuple[AttachmentOut, bytes]:
    """A file the visitor may download: one they uploaded, or one in a message they can see
    (an agent's). Anything else does not exist for them."""
    meta = await attachments.get(session, attachment_id)
    uploaded = meta.uploader_kind == UPLOADER_KIND and meta.uploader_id == visitor.id
    if not uploaded and not await _attachment_in_history(session, widget, visitor, attachment_id):
        raise NotFound("attachment")
    stored, data = await attachments.open(session, attachment_id, blobs=blobs)
    return (
        AttachmentOut(
            id=stored.id, name=stored.name, content_type=stored.content_type, size=stored.size
        ),
        data,
    )


async def _attachment_in_history(
    session: AsyncSession, widget: Widget, visitor: Visitor, attachment_id: uuid.UUID
) -> bool:
    interactions = await _interactions_of(session, widget, visitor)
    if not interactions:
        return False
    rows = await session.scalars(
        select(Message.attachments).where(
            Message.interaction_id.in_([i.id for i in interactions]),
            Message.direction != MessageDirection.internal,
        )
    )
    wanted = str(attachment_id)
    return any(item.get("id") == wanted for items in rows for item in items or [])


# --- helpers ----------------------------------------------------------------------------------


@dataclass
class _SlidingWindow:
    """A per-process limiter for cheap, transient actions (typing pulses, uploads). Durable
    limits (messages, sessions) are counted in the database instead, so every node agrees."""

    limit: int
    seconds: float
    hits: dict[uuid.UUID, deque[float]]

    def allow(self, key: uuid.UUID) -> bool:
        moment = time.monotonic()
        if len(self.hits) > 10_000:
            self._forget_idle(moment)
        recent = self.hits.setdefault(key, deque())
        while recent and moment - recent[0] >= self.seconds:
            recent.popleft()
        if len(recent) >= self.limit:
            return False
        recent.append(moment)
        return True

    def _forget_idle(self, moment: float) -> None:
        for key in [k for k, v in self.hits.items() if not v or moment - v[-1] >= self.seconds]:
            del self.hits[key]


_typing_throttle = _SlidingWindow(limit=1, seconds=TYPING_INTERVAL_SECONDS, hits={})
_upload_window = _SlidingWindow(limit=UPLOADS_PER_TEN_MINUTES, seconds=600, hits={})
