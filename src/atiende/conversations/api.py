"""HTTP routes for working conversations: lists, the thread, replies, notes, labels."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response, status

from atiende.conversations import service
from atiende.conversations.models import Channel, Interaction, InteractionStatus
from atiende.conversations.schemas import (
    InteractionOut,
    LabelsUpdate,
    MessageOut,
    NoteCreate,
    ReplyCreate,
    TimelineEntryOut,
)
from atiende.web.deps import CurrentPrincipal, Session

router = APIRouter(prefix="/api/v1/interactions", tags=["conversations"])


async def _one(session: Session, interaction: Interaction) -> InteractionOut:
    return (await service.describe(session, [interaction]))[0]


@router.get("", response_model=list[InteractionOut])
async def list_interactions(
    principal: CurrentPrincipal,
    session: Session,
    *,
    status_: list[InteractionStatus] = Query(
        default=[],
        alias="status",
        description="Repeat for several. Default: agents their inbox (assigned, wrap_up), "
        "supervisors and admins every open interaction.",
    ),
    queue_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
    channel: Channel | None = None,
    contact_id: uuid.UUID | None = None,
    limit: int = Query(default=50, ge=1, le=200),
    offset: int = Query(default=0, ge=0),
) -> list[InteractionOut]:
    interactions = await service.list_interactions(
        session,
        principal.actor,
        statuses=status_,
        queue_id=queue_id,
        agent_id=agent_id,
        channel=channel,
        contact_id=contact_id,
        limit=limit,
        offset=offset,
    )
    return await service.describe(session, interactions)


@router.get("/{interaction_id}", response_model=InteractionOut)
async def get_interaction(
    principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID
) -> InteractionOut:
    return await _one(
        session, await service.visible_interaction(session, principal.actor, interaction_id)
    )


@router.get("/{interaction_id}/messages", response_model=list[MessageOut])
async def list_messages(
    principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID
) -> list[MessageOut]:
    messages = await service.messages_of(session, principal.actor, interaction_id)
    return [MessageOut.model_validate(m) for m in messages]


@router.get("/{interaction_id}/messages/{message_id}", response_model=MessageOut)
async def get_message(
    principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID, message_id: uuid.UUID
) -> MessageOut:
    return MessageOut.model_validate(
        await service.message_of(session, principal.actor, interaction_id, message_id)
    )


@router.post(
    "/{interaction_id}/messages",
    response_model=MessageOut,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": MessageOut, "description": "A re-send of a known client_id."}},
)
async def post_reply(
    principal: CurrentPrincipal,
    session: Session,
    interaction_id: uuid.UUID,
    body: ReplyCreate,
    response: Response,
) -> MessageOut:
    message, created = await service.reply(
        session,
        principal.actor,
        interaction_id,
        body=body.body,
        attachment_ids=body.attachment_ids,
        client_id=body.client_id,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return MessageOut.model_validate(message)


@router.post(
    "/{interaction_id}/notes",
    response_model=MessageOut,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": MessageOut, "description": "A re-send of a known client_id."}},
)
async def post_note(
    principal: CurrentPrincipal,
    session: Session,
    interaction_id: uuid.UUID,
    body: NoteCreate,
    response: Response,
) -> MessageOut:
    message, created = await service.add_note(
        session, principal.actor, interaction_id, body=body.body, client_id=body.client_id
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return MessageOut.model_validate(message)


@router.put("/{interaction_id}/labels", response_model=InteractionOut)
async def set_labels(
    principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID, body: LabelsUpdate
) -> InteractionOut:
    return await _one(
        session, await service.set_labels(session, principal.actor, interaction_id, body.labels)
    )


@router.post("/{interaction_id}/read", response_model=InteractionOut)
async def mark_read(
    principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID
) -> InteractionOut:
    return await _one(session, await service.mark_read(session, principal.actor, interaction_id))


@router.post("/{interaction_id}/typing", status_code=status.HTTP_202_ACCEPTED)
async def typing(
    principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID
) -> dict[str, bool]:
    """The agent is typing: the customer's webchat widget shows it. Send it every few seconds
    while typing; pulses closer than 3 s are dropped (`sent: false`)."""
    return {"sent": await service.agent_typing(session, principal.actor, interaction_id)}


@router.get("/{interaction_id}/timeline", response_model=list[TimelineEntryOut])
async def get_timeline(
    principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID
) -> list[TimelineEntryOut]:
    events = await service.timeline_of(session, principal.actor, interaction_id)
    return [TimelineEntryOut.model_validate(e) for e in events]
