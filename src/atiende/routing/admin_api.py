"""HTTP routes for routing configuration: skills, queues, members, dispositions, agent
profiles, schedules, holidays and break reasons. Roles are checked by ``routing.admin``."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, status
from pydantic import AwareDatetime

from atiende.routing import admin
from atiende.routing.schemas import (
    AgentCreate,
    AgentOut,
    AgentSkills,
    AgentUpdate,
    BreakReasonCreate,
    BreakReasonOut,
    BreakReasonUpdate,
    DispositionCreate,
    DispositionOut,
    DispositionUpdate,
    HolidayCreate,
    HolidayOut,
    HolidayUpdate,
    QueueCreate,
    QueueMembers,
    QueueOut,
    QueueUpdate,
    ScheduleCreate,
    ScheduleOut,
    ScheduleStatus,
    ScheduleUpdate,
    SkillCreate,
    SkillOut,
    SkillUpdate,
)
from atiende.web.deps import CurrentPrincipal, Session

router = APIRouter(prefix="/api/v1", tags=["routing configuration"])
CREATED = status.HTTP_201_CREATED
NO_CONTENT = status.HTTP_204_NO_CONTENT


# skills


@router.get("/skills", response_model=list[SkillOut])
async def list_skills(principal: CurrentPrincipal, session: Session) -> list[SkillOut]:
    return [SkillOut.model_validate(s) for s in await admin.list_skills(session, principal.actor)]


@router.post("/skills", response_model=SkillOut, status_code=CREATED)
async def create_skill(
    principal: CurrentPrincipal, session: Session, body: SkillCreate
) -> SkillOut:
    return SkillOut.model_validate(await admin.create_skill(session, principal.actor, body))


@router.get("/skills/{skill_id}", response_model=SkillOut)
async def get_skill(principal: CurrentPrincipal, session: Session, skill_id: uuid.UUID) -> SkillOut:
    return SkillOut.model_validate(await admin.get_skill(session, principal.actor, skill_id))


@router.patch("/skills/{skill_id}", response_model=SkillOut)
async def update_skill(
    principal: CurrentPrincipal, session: Session, skill_id: uuid.UUID, body: SkillUpdate
) -> SkillOut:
    return SkillOut.model_validate(
        await admin.update_skill(session, principal.actor, skill_id, body)
    )


@router.delete("/skills/{skill_id}", status_code=NO_CONTENT)
async def delete_skill(principal: CurrentPrincipal, session: Session, skill_id: uuid.UUID) -> None:
    await admin.delete_skill(session, principal.actor, skill_id)


# queues


@router.get("/queues", response_model=list[QueueOut])
async def list_queues(principal: CurrentPrincipal, session: Session) -> list[QueueOut]:
    return [QueueOut.model_validate(q) for q in await admin.list_queues(session, principal.actor)]


@router.post("/queues", response_model=QueueOut, status_code=CREATED)
async def create_queue(
    principal: CurrentPrincipal, session: Session, body: QueueCreate
) -> QueueOut:
    return QueueOut.model_validate(await admin.create_queue(session, principal.actor, body))


@router.get("/queues/{queue_id}", response_model=QueueOut)
async def get_queue(principal: CurrentPrincipal, session: Session, queue_id: uuid.UUID) -> QueueOut:
    return QueueOut.model_validate(await admin.get_queue(session, principal.actor, queue_id))


@router.patch("/queues/{queue_id}", response_model=QueueOut)
async def update_queue(
    principal: CurrentPrincipal, session: Session, queue_id: uuid.UUID, body: QueueUpdate
) -> QueueOut:
    return QueueOut.model_validate(
        await admin.update_queue(session, principal.actor, queue_id, body)
    )


@router.delete("/queues/{queue_id}", status_code=NO_CONTENT)
async def delete_queue(principal: CurrentPrincipal, session: Session, queue_id: uuid.UUID) -> None:
    await admin.delete_queue(session, principal.actor, queue_id)


@router.get("/queues/{queue_id}/members", response_model=QueueMembers)
async def queue_members(
    principal: CurrentPrincipal, session: Session, queue_id: uuid.UUID
) -> QueueMembers:
    return await admin.queue_members(session, principal.actor, queue_id)


@router.put("/queues/{queue_id}/members", response_model=QueueMembers)
async def set_queue_members(
    principal: CurrentPrincipal, session: Session, queue_id: uuid.UUID, body: QueueMembers
) -> QueueMembers:
    return await admin.set_queue_members(session, principal.actor, queue_id, body)


@router.get("/queues/{queue_id}/dispositions", response_model=list[DispositionOut])
async def list_dispositions(
    principal: CurrentPrincipal, session: Session, queue_id: uuid.UUID
) -> list[DispositionOut]:
    return [
        DispositionOut.model_validate(d)
        for d in await admin.list_dispositions(session, principal.actor, queue_id)
    ]


@router.post("/queues/{queue_id}/dispositions", response_model=DispositionOut, status_code=CREATED)
async def create_disposition(
    principal: CurrentPrincipal, session: Session, queue_id: uuid.UUID, body: DispositionCreate
) -> DispositionOut:
    return DispositionOut.model_validate(
        await admin.create_disposition(session, principal.actor, queue_id, body)
    )


@router.get("/queues/{queue_id}/dispositions/{disposition_id}", response_model=DispositionOut)
async def get_disposition(
    principal: CurrentPrincipal, session: Session, queue_id: uuid.UUID, disposition_id: uuid.UUID
) -> DispositionOut:
    return DispositionOut.model_validate(
        await admin.get_disposition(session, principal.actor, queue_id, disposition_id)
    )


@router.patch("/queues/{queue_id}/dispositions/{disposition_id}", response_model=DispositionOut)
async def update_disposition(
    principal: CurrentPrincipal,
    session: Session,
    queue_id: uuid.UUID,
    disposition_id: uuid.UUID,
    body: DispositionUpdate,
) -> DispositionOut:
    return DispositionOut.model_validate(
        await admin.update_disposition(session, principal.actor, queue_id, disposition_id, body)
    )


@router.delete("/queues/{queue_id}/dispositions/{disposition_id}", status_code=NO_CONTENT)
async def delete_disposition(
    principal: CurrentPrincipal, session: Session, queue_id: uuid.UUID, disposition_id: uuid.UUID
) -> None:
    await admin.delete_disposition(session, principal.actor, queue_id, disposition_id)


# agents


@router.get("/agents", response_model=list[AgentOut])
async def list_agents(principal: CurrentPrincipal, session: Session) -> list[AgentOut]:
    return await admin.list_agents(session, principal.actor)


@router.post("/agents", response_model=AgentOut, status_code=CREATED)
async def create_agent(
    principal: CurrentPrincipal, session: Session, body: AgentCreate
) -> AgentOut:
    return await admin.create_agent(session, principal.actor, body)


@router.get("/agents/{user_id}", response_model=AgentOut)
async def get_agent(principal: CurrentPrincipal, session: Session, user_id: uuid.UUID) -> AgentOut:
    return await admin.get_agent(session, principal.actor, user_id)


@router.patch("/agents/{user_id}", response_model=AgentOut)
async def update_agent(
    principal: CurrentPrincipal, session: Session, user_id: uuid.UUID, body: AgentUpdate
) -> AgentOut:
    return await admin.update_agent(session, principal.actor, user_id, body)


@router.delete("/agents/{user_id}", status_code=NO_CONTENT)
async def delete_agent(principal: CurrentPrincipal, session: Session, user_id: uuid.UUID) -> None:
    await admin.delete_agent(session, principal.actor, user_id)


@router.put("/agents/{user_id}/skills", response_model=AgentOut)
async def set_agent_skills(
    principal: CurrentPrincipal, session: Session, user_id: uuid.UUID, body: AgentSkills
) -> AgentOut:
    return await admin.set_agent_skills(session, principal.actor, user_id, body)


@router.get("/agents/{user_id}/queues", response_model=list[QueueOut])
async def agent_queues(
    principal: CurrentPrincipal, session: Session, user_id: uuid.UUID
) -> list[QueueOut]:
    return [
        QueueOut.model_validate(q)
        for q in await admin.agent_queues(session, principal.actor, user_id)
    ]


# schedules and holidays


@router.get("/schedules", response_model=list[ScheduleOut])
async def list_schedules(principal: CurrentPrincipal, session: Session) -> list[ScheduleOut]:
    return [
        ScheduleOut.model_validate(s) for s in await admin.list_schedules(session, principal.actor)
    ]


@router.post("/schedules", response_model=ScheduleOut, status_code=CREATED)
async def create_schedule(
    principal: CurrentPrincipal, session: Session, body: ScheduleCreate
) -> ScheduleOut:
    return ScheduleOut.model_validate(await admin.create_schedule(session, principal.actor, body))


@router.get("/schedules/{schedule_id}", response_model=ScheduleOut)
async def get_schedule(
    principal: CurrentPrincipal, session: Session, schedule_id: uuid.UUID
) -> ScheduleOut:
    return ScheduleOut.model_validate(
        await admin.get_schedule(session, principal.actor, schedule_id)
    )


@router.get("/schedules/{schedule_id}/status", response_model=ScheduleStatus)
async def schedule_status(
    principal: CurrentPrincipal,
    session: Session,
    schedule_id: uuid.UUID,
    at: AwareDatetime | None = Query(default=None, description="Default: now."),
) -> ScheduleStatus:
    return await admin.schedule_status(session, principal.actor, schedule_id, at)


@router.patch("/schedules/{schedule_id}", response_model=ScheduleOut)
async def update_schedule(
    principal: CurrentPrincipal, session: Session, schedule_id: uuid.UUID, body: ScheduleUpdate
) -> ScheduleOut:
    return ScheduleOut.model_validate(
        await admin.update_schedule(session, principal.actor, schedule_id, body)
    )


@router.delete("/schedules/{schedule_id}", status_code=NO_CONTENT)
async def delete_schedule(
    principal: CurrentPrincipal, session: Session, schedule_id: uuid.UUID
) -> None:
    await admin.delete_schedule(session, principal.actor, schedule_id)


@router.get("/holidays", response_model=list[HolidayOut])
async def list_holidays(
    principal: CurrentPrincipal,
    session: Session,
    year: int | None = Query(default=None, ge=1900, le=9999),
) -> list[HolidayOut]:
    return [
        HolidayOut.model_validate(h)
        for h in await admin.list_holidays(session, principal.actor, year=year)
    ]


@router.post("/holidays", response_model=HolidayOut, status_code=CREATED)
async def create_holiday(
    principal: CurrentPrincipal, session: Session, body: HolidayCreate
) -> HolidayOut:
    return HolidayOut.model_validate(await admin.create_holiday(session, principal.actor, body))


@router.get("/holidays/{holiday_id}", response_model=HolidayOut)
async def get_holiday(
    principal: CurrentPrincipal, session: Session, holiday_id: uuid.UUID
) -> HolidayOut:
    return HolidayOut.model_validate(await admin.get_holiday(session, principal.actor, holiday_id))


@router.patch("/holidays/{holiday_id}", response_model=HolidayOut)
async def update_holiday(
    principal: CurrentPrincipal, session: Session, holiday_id: uuid.UUID, body: HolidayUpdate
) -> HolidayOut:
    return HolidayOut.model_validate(
        await admin.update_holiday(session, principal.actor, holiday_id, body)
    )


@router.delete("/holidays/{holiday_id}", status_code=NO_CONTENT)
async def delete_holiday(
    principal: CurrentPrincipal, session: Session, holiday_id: uuid.UUID
) -> None:
    await admin.delete_holiday(session, principal.actor, holiday_id)


# break reasons


@router.get("/break-reasons", response_model=list[BreakReasonOut])
async def list_break_reasons(principal: CurrentPrincipal, session: Session) -> list[BreakReasonOut]:
    return [
        BreakReasonOut.model_validate(r)
        for r in await admin.list_break_reasons(session, principal.actor)
    ]


@router.post("/break-reasons", response_model=BreakReasonOut, status_code=CREATED)
async def create_break_reason(
    principal: CurrentPrincipal, session: Session, body: BreakReasonCreate
) -> BreakReasonOut:
    return BreakReasonOut.model_validate(
        await admin.create_break_reason(session, principal.actor, body)
    )


@router.get("/break-reasons/{reason_id}", response_model=BreakReasonOut)
async def get_break_reason(
    principal: CurrentPrincipal, session: Session, reason_id: uuid.UUID
) -> BreakReasonOut:
    return BreakReasonOut.model_validate(
        await admin.get_break_reason(session, principal.actor, reason_id)
    )


@router.patch("/break-reasons/{reason_id}", response_model=BreakReasonOut)
async def update_break_reason(
    principal: CurrentPrincipal, session: Session, reason_id: uuid.UUID, body: BreakReasonUpdate
) -> BreakReasonOut:
    return BreakReasonOut.model_validate(
        await admin.update_break_reason(session, principal.actor, reason_id, body)
    )


@router.delete("/break-reasons/{reason_id}", status_code=NO_CONTENT)
async def delete_break_reason(
    principal: CurrentPrincipal, session: Session, reason_id: uuid.UUID
) -> None:
    await admin.delete_break_reason(session, principal.actor, reason_id)
