"""HTTP routes of the routing runtime: the agent's presence, offers and work; the wallboard."""

from __future__ import annotations

import dataclasses
import uuid

from fastapi import APIRouter, status

from atiende.core.db import now
from atiende.identity.models import Role
from atiende.routing import service
from atiende.routing.runtime_schemas import (
    AgentBoardOut,
    AgentStateOut,
    CloseRequest,
    InteractionBrief,
    OfferOut,
    PresenceChange,
    QueueStatsOut,
    ReassignRequest,
    TransferRequest,
    WallboardOut,
)
from atiende.web.deps import CurrentPrincipal, Principal, Session, require_roles

router = APIRouter(prefix="/api/v1", tags=["routing"])
Supervisor = require_roles(Role.supervisor, Role.admin)


@router.get("/me/agent", response_model=AgentStateOut)
async def my_agent(principal: CurrentPrincipal, session: Session) -> AgentStateOut:
    return AgentStateOut.model_validate(await service.get_agent(session, principal.user_id))


@router.put("/me/presence", response_model=AgentStateOut)
async def my_presence(
    principal: CurrentPrincipal, session: Session, body: PresenceChange
) -> AgentStateOut:
    agent = await service.set_presence(
        session, principal.actor, principal.user_id, body.presence, body.break_reason_id
    )
    return AgentStateOut.model_validate(agent)


@router.put("/agents/{agent_id}/presence", response_model=AgentStateOut)
async def force_presence(
    session: Session,
    agent_id: uuid.UUID,
    body: PresenceChange,
    principal: Principal = Supervisor,
) -> AgentStateOut:
    """A supervisor forces an agent's state (available, break with a reason, offline)."""
    agent = await service.set_presence(
        session, principal.actor, agent_id, body.presence, body.break_reason_id
    )
    return AgentStateOut.model_validate(agent)


@router.get("/me/offers", response_model=list[OfferOut])
async def my_offers(principal: CurrentPrincipal, session: Session) -> list[OfferOut]:
    return [OfferOut.model_validate(o) for o in await service.my_offers(session, principal.actor)]


@router.get("/me/interactions", response_model=list[InteractionBrief])
async def my_interactions(principal: CurrentPrincipal, session: Session) -> list[InteractionBrief]:
    items = await service.my_interactions(session, principal.actor)
    return [InteractionBrief.model_validate(i) for i in items]


@router.post("/offers/{offer_id}/accept", response_model=InteractionBrief)
async def accept_offer(
    principal: CurrentPrincipal, session: Session, offer_id: uuid.UUID
) -> InteractionBrief:
    interaction = await service.accept_offer(session, principal.actor, offer_id)
    return InteractionBrief.model_validate(interaction)


@router.post("/offers/{offer_id}/reject", status_code=status.HTTP_204_NO_CONTENT)
async def reject_offer(principal: CurrentPrincipal, session: Session, offer_id: uuid.UUID) -> None:
    await service.reject_offer(session, principal.actor, offer_id)


@router.post("/interactions/{interaction_id}/transfer", response_model=InteractionBrief)
async def transfer(
    principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID, body: TransferRequest
) -> InteractionBrief:
    interaction = await service.transfer(
        session,
        principal.actor,
        interaction_id,
        agent_id=body.agent_id,
        queue_id=body.queue_id,
        note=body.note,
    )
    return InteractionBrief.model_validate(interaction)


@router.post("/interactions/{interaction_id}/reassign", response_model=InteractionBrief)
async def reassign(
    session: Session,
    interaction_id: uuid.UUID,
    body: ReassignRequest,
    principal: Principal = Supervisor,
) -> InteractionBrief:
    interaction = await service.reassign(session, principal.actor, interaction_id, body.agent_id)
    return InteractionBrief.model_validate(interaction)


@router.post("/interactions/{interaction_id}/wrap-up", response_model=InteractionBrief)
async def wrap_up(
    principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID
) -> InteractionBrief:
    interaction = await service.wrap_up(session, principal.actor, interaction_id)
    return InteractionBrief.model_validate(interaction)


@router.post("/interactions/{interaction_id}/close", response_model=InteractionBrief)
async def close(
    principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID, body: CloseRequest
) -> InteractionBrief:
    interaction = await service.close(
        session, principal.actor, interaction_id, body.disposition_code
    )
    return InteractionBrief.model_validate(interaction)


@router.get("/wallboard", response_model=WallboardOut)
async def wallboard(session: Session, principal: Principal = Supervisor) -> WallboardOut:
    queues = await service.queue_stats(session)
    agents = await service.agent_board(session)
    return WallboardOut(
        queues=[QueueStatsOut(**dataclasses.asdict(q)) for q in queues],
        agents=[AgentBoardOut(**dataclasses.asdict(a)) for a in agents],
        generated_at=now(session),
    )


@router.get("/directory")
async def directory(principal: CurrentPrincipal, session: Session) -> dict[str, object]:
    """Names every user of the tenant may need at work: queues and agents (transfer targets)
    and the active break reasons."""
    return await service.directory(session)
