"""Routing configuration: skills, queues (with their members and dispositions), agent profiles,
schedules, holidays and break reasons.

The only writer of ``skills``, ``queues``, ``queue_members``, ``dispositions``,
``agent_skills``, ``schedules``, ``holidays`` and ``break_reasons``, and of the configured
columns of ``agents`` (licence, capacities, max no-answer, extension); the runtime columns
(presence, idle and offer times, counters) belong to ``routing.service``.

Every function runs in a tenant-scoped session and takes the acting user: tenant admins write,
supervisors read (agents read break reasons, dispositions and their own profile). Every change
is audited and announced with ``routing.config_changed`` so the engine and open screens can
react. Bad input raises an ``AtiendeError`` before anything is written.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import phonenumbers
from pydantic import BaseModel
from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.audit import service as audit
from atiende.billing import entitlements
from atiende.conversations.models import OPEN_STATUSES, Interaction
from atiende.core import i18n
from atiende.core.db import in_tenant, now, require_tenant
from atiende.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from atiende.core.events import DomainEvent, emit
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.routing.models import (
    Agent,
    AgentSkill,
    AgentStatusLog,
    BreakReason,
    ClosedAction,
    Disposition,
    Holiday,
    LicenceType,
    MaxWaitAction,
    Presence,
    Queue,
    QueueMember,
    Schedule,
    Skill,
    Strategy,
)
from atiende.routing.schedule import Calendar
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
from atiende.tenancy.models import Tenant
from atiende.voice import ivr
from atiende.webchat.models import Widget

AGENT_ROLES = frozenset({Role.agent, Role.supervisor})
DEFAULT_CHAT_CAPACITY = 4
#: National numbers (without a +country code) are read as numbers of this region.
PHONE_REGION = "MX"


def N_(message: str) -> str:
    """Mark text for translation; it is translated later, into the tenant's language."""
    return message


NO_ANSWER_REASON = N_("No answer")


class RoutingConfigChanged(DomainEvent):
    """Something an administrator configures changed: the engine re-reads it, open admin and
    wallboard screens refresh. ``resource`` is skill, queue, queue_members, disposition,
    agent, agent_skills, schedule, holiday or break_reason."""

    event_type = "routing.config_changed"
    resource: str
    resource_id: str
    action: str  # created, updated, deleted
    changes: list[str] = []


# --- shared -----------------------------------------------------------------------------------


def _require_admin(actor: Actor) -> None:
    if actor.via == "system" or actor.has(Role.admin):
        return
    raise PermissionDenied()


def _require_reader(actor: Actor, *also: Role) -> None:
    if actor.via == "system" or actor.has(Role.admin, Role.supervisor, *also):
        return
    raise PermissionDenied()


def _snapshot(out: type[BaseModel], row: object) -> dict[str, Any]:
    return out.model_validate(row).model_dump(mode="json")


async def _announce(
    session: AsyncSession,
    actor: Actor,
    resource: str,
    resource_id: uuid.UUID,
    action: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    changes: Iterable[str] = (),
) -> None:
    """Audit the change and publish ``routing.config_changed`` (after commit)."""
    verb = {"created": "create", "updated": "update", "deleted": "delete"}.get(action, action)
    await audit.record(
        session,
        actor,
        f"{resource}.{verb}",
        resource_type=resource,
        resource_id=resource_id,
        tenant_id=require_tenant(session),
        before=before,
        after=after,
    )
    await emit(
        session,
        RoutingConfigChanged(
            resource=resource,
            resource_id=str(resource_id),
            action=action,
            changes=sorted(changes),
        ),
    )
    # Who may take what may have changed (members, skills, capacity, schedule): route again.
    from atiende.routing.service import request_routing

    request_routing(session)


async def _flush(session: AsyncSession, conflict: Conflict) -> None:
    """Flush, turning a unique-constraint race (a concurrent create since our check) into the
    same 409 the check gives. The request's unit of work then rolls everything back."""
    try:
        await session.flush()
    except IntegrityError as error:
        raise conflict from error


def _concurrent_change() -> Conflict:
    return Conflict(
        "Someone changed this at the same time; read it again and retry.",
        code="concurrent_change",
    )


async def _name_taken(
    session: AsyncSession,
    model: type[Skill] | type[Queue] | type[Schedule] | type[BreakReason],
    name: str,
    *,
    exclude: uuid.UUID | None = None,
) -> bool:
    """Names compare case-insensitively: "Ventas" and "ventas" would confuse everyone."""
    query: Select[uuid.UUID] = select(model.id).where(func.lower(model.name) == name.lower())
    if exclude is not None:
        query = query.where(model.id != exclude)
    return (await session.scalar(query.limit(1))) is not None


def _changes(row: object, values: dict[str, Any]) -> dict[str, Any]:
    return {field: value for field, value in values.items() if getattr(row, field) != value}


async def _tenant(session: AsyncSession) -> Tenant:
    tenant = await session.get(Tenant, require_tenant(session))
    if tenant is None:
        raise NotFound("tenant")
    return tenant


def _translate(locale: str, message: str) -> str:
    return i18n.translations(locale).gettext(message)


# --- skills -----------------------------------------------------------------------------------


def _skill_taken(name: str) -> Conflict:
    return Conflict(f"A skill named {name!r} exists.", code="skill_name_taken", field="name")


async def list_skills(session: AsyncSession, actor: Actor) -> Sequence[Skill]:
    _require_reader(actor)
    return (await session.scalars(select(Skill).order_by(Skill.name))).all()


async def get_skill(session: AsyncSession, actor: Actor, skill_id: uuid.UUID) -> Skill:
    _require_reader(actor)
    skill = await session.get(Skill, skill_id)
    if skill is None:
        raise NotFound("skill")
    return skill


async def create_skill(session: AsyncSession, actor: Actor, data: SkillCreate) -> Skill:
    _require_admin(actor)
    if await _name_taken(session, Skill, data.name):
        raise _skill_taken(data.name)
    skill = Skill(name=data.name, created_at=now(session))
    session.add(skill)
    await _flush(session, _skill_taken(data.name))
    await _announce(session, actor, "skill", skill.id, "created", after=_snapshot(SkillOut, skill))
    return skill


async def update_skill(
    session: AsyncSession, actor: Actor, skill_id: uuid.UUID, data: SkillUpdate
) -> Skill:
    _require_admin(actor)
    skill = await get_skill(session, actor, skill_id)
    changes = _changes(skill, data.model_dump(exclude_unset=True))
    if "name" in changes and await _name_taken(session, Skill, changes["name"], exclude=skill.id):
        raise _skill_taken(changes["name"])
    if changes:
        before = _snapshot(SkillOut, skill)
        for field, value in changes.items():
            setattr(skill, field, value)
        await _flush(session, _skill_taken(skill.name))
        await _announce(
            session,
            actor,
            "skill",
            skill.id,
            "updated",
            before=before,
            after=_snapshot(SkillOut, skill),
            changes=changes,
        )
    return skill


async def delete_skill(session: AsyncSession, actor: Actor, skill_id: uuid.UUID) -> None:
    """Refused while a queue requires the skill; agents' levels in it go with it."""
    _require_admin(actor)
    skill = await get_skill(session, actor, skill_id)
    requiring = sorted(
        str(queue.id)
        for queue in (await session.scalars(select(Queue))).all()
        if str(skill.id) in queue.required_skills
    )
    if requiring:
        raise Conflict(
            "Queues require this skill; remove it from them first.",
            code="skill_in_use",
            queue_ids=requiring,
        )
    before = _snapshot(SkillOut, skill)
    await session.delete(skill)
    await session.flush()
    await _announce(session, actor, "skill", skill_id, "deleted", before=before)


async def _check_skills(session: AsyncSession, skill_ids: Iterable[uuid.UUID], field: str) -> None:
    wanted = set(skill_ids)
    if not wanted:
        return
    found = set((await session.scalars(select(Skill.id).where(Skill.id.in_(wanted)))).all())
    if missing := wanted - found:
        raise ValidationFailed(
            "Unknown skill.",
            code="unknown_skill",
            field=field,
            ids=sorted(str(i) for i in missing),
        )


# --- queues -----------------------------------------------------------------------------------


def _queue_taken(name: str) -> Conflict:
    return Conflict(f"A queue named {name!r} exists.", code="queue_name_taken", field="name")


def _queue_values(data: QueueCreate | QueueUpdate, *, exclude_unset: bool) -> dict[str, Any]:
    """Input fields in the shapes the columns store (channel names, skill ids as text)."""
    values = data.model_dump(exclude_unset=exclude_unset)
    if values.get("channels") is not None:
        values["channels"] = [str(channel) for channel in values["channels"]]
    if values.get("required_skills") is not None:
        values["required_skills"] = {
            str(skill_id): level for skill_id, level in values["required_skills"].items()
        }
    return values


def _forward_number(value: str) -> str:
    """A forward number in E.164, as contacts store phones; anything else is refused."""
    try:
        parsed = phonenumbers.parse(value, PHONE_REGION)
    except phonenumbers.NumberParseException as error:
        raise _invalid_forward_number() from error
    if not phonenumbers.is_valid_number(parsed):
        raise _invalid_forward_number()
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _invalid_forward_number() -> ValidationFailed:
    return ValidationFailed(
        "Not a valid phone number.", code="invalid_forward_number", field="forward_number"
    )


def _media_prompt(value: str, field: str) -> str:
    """Media as IVR prompts have them, stored without the spaces around the commas; refused
    with ``<field>_invalid``."""
    try:
        return ivr.media_text(ivr.parse_media(value, field=field))
    except ivr.IvrInvalid as error:
        raise ValidationFailed(error.message, code=f"{field}_invalid", field=error.field) from error


def _normalise_queue(values: dict[str, Any]) -> dict[str, Any]:
    """The stored forms of the forward number (E.164) and the voicemail and message prompts;
    refuses values that have none."""
    if values.get("forward_number") is not None:
        values["forward_number"] = _forward_number(values["forward_number"])
    for field in ("voicemail_prompt", "message_prompt"):
        if values.get(field) is not None:
            values[field] = _media_prompt(values[field], field)
    return values


async def _check_queue(
    session: AsyncSession, values: dict[str, Any], queue_id: uuid.UUID | None
) -> None:
    """The rules across fields and rows, on the queue as it would be stored."""
    await entitlements.require_channels(session, require_tenant(session), values["channels"])
    if values["strategy"] == Strategy.ring_all and values["channels"] != ["voice"]:
        raise ValidationFailed(
            "Ring-all rings phones: a ring-all queue serves the voice channel only.",
            code="ring_all_voice_only",
            field="strategy",
        )
    await _check_skills(
        session, (uuid.UUID(key) for key in values["required_skills"]), "required_skills"
    )
    if (
        values["schedule_id"] is not None
        and await session.get(Schedule, values["schedule_id"]) is None
    ):
        raise ValidationFailed("Unknown schedule.", code="unknown_schedule", field="schedule_id")
    transfer = values["closed_action"] == ClosedAction.transfer
    if transfer and values["closed_queue_id"] is None:
        raise ValidationFailed(
            "Transferring when closed needs the queue to transfer to.",
            code="closed_queue_required",
            field="closed_queue_id",
        )
    if not transfer and values["closed_queue_id"] is not None:
        raise ValidationFailed(
            "A closed-hours queue is only used with closed_action transfer.",
            code="closed_queue_without_transfer",
            field="closed_queue_id",
        )
    forwards = (
        values["closed_action"] == ClosedAction.forward
        or values["max_wait_action"] == MaxWaitAction.forward
    )
    if forwards and values["forward_number"] is None:
        raise ValidationFailed(
            "Forwarding calls needs the number to forward them to.",
            code="forward_number_required",
            field="forward_number",
        )
    if values["max_wait_action"] == MaxWaitAction.message and values["message_prompt"] is None:
        raise ValidationFailed(
            "Ending calls with a message after the maximum wait needs message_prompt.",
            code="message_prompt_required",
            field="message_prompt",
        )
    for field in ("closed_queue_id", "overflow_queue_id"):
        target = values[field]
        if target is None:
            continue
        if target == queue_id:
            raise ValidationFailed(
                "A queue cannot send interactions to itself.",
                code="queue_self_reference",
                field=field,
            )
        if await session.get(Queue, target) is None:
            raise ValidationFailed("Unknown queue.", code="unknown_queue", field=field)


async def list_queues(session: AsyncSession, actor: Actor) -> Sequence[Queue]:
    _require_reader(actor)
    return (await session.scalars(select(Queue).order_by(Queue.name))).all()


async def get_queue(
    session: AsyncSession, actor: Actor, queue_id: uuid.UUID, *, also: Iterable[Role] = ()
) -> Queue:
    _require_reader(actor, *also)
    queue = await session.get(Queue, queue_id)
    if queue is None:
        raise NotFound("queue")
    return queue


async def create_queue(session: AsyncSession, actor: Actor, data: QueueCreate) -> Queue:
    _require_admin(actor)
    values = _normalise_queue(_queue_values(data, exclude_unset=False))
    if await _name_taken(session, Queue, data.name):
        raise _queue_taken(data.name)
    await _check_queue(session, values, None)
    queue = Queue(**values, created_at=now(session))
    session.add(queue)
    await _flush(session, _queue_taken(data.name))
    await _announce(session, actor, "queue", queue.id, "created", after=_snapshot(QueueOut, queue))
    return queue


async def update_queue(
    session: AsyncSession, actor: Actor, queue_id: uuid.UUID, data: QueueUpdate
) -> Queue:
    """A partial update, checked as the merged queue. Moving ``closed_action`` away from
    ``transfer`` clears ``closed_queue_id`` unless the patch sets it."""
    _require_admin(actor)
    queue = await get_queue(session, actor, queue_id)
    patch = _queue_values(data, exclude_unset=True)
    merged = {field: getattr(queue, field) for field in QueueUpdate.model_fields} | patch
    if merged["closed_action"] != ClosedAction.transfer and "closed_queue_id" not in patch:
        merged["closed_queue_id"] = None
    _normalise_queue(merged)
    changes = _changes(queue, merged)
    if "name" in changes and await _name_taken(session, Queue, changes["name"], exclude=queue.id):
        raise _queue_taken(changes["name"])
    await _check_queue(session, merged, queue.id)
    if changes:
        before = _snapshot(QueueOut, queue)
        for field, value in changes.items():
            setattr(queue, field, value)
        await _flush(session, _queue_taken(queue.name))
        await _announce(
            session,
            actor,
            "queue",
            queue.id,
            "updated",
            before=before,
            after=_snapshot(QueueOut, queue),
            changes=changes,
        )
    return queue


async def delete_queue(session: AsyncSession, actor: Actor, queue_id: uuid.UUID) -> None:
    """Refused while interactions are open in it or something routes to it (another queue's
    overflow or closed-hours transfer, a webchat widget); members and dispositions go with
    it; closed interactions keep their history in the timeline and lose the link."""
    _require_admin(actor)
    queue = await get_queue(session, actor, queue_id)
    open_count = await session.scalar(
        select(func.count())
        .select_from(Interaction)
        .where(Interaction.queue_id == queue.id, Interaction.status.in_(OPEN_STATUSES))
    )
    if open_count:
        raise Conflict(
            "Interactions are open in this queue; close or transfer them first.",
            code="queue_has_open_interactions",
            count=open_count,
        )
    referring = (
        await session.scalars(
            select(Queue.id).where(
                or_(Queue.overflow_queue_id == queue.id, Queue.closed_queue_id == queue.id),
                Queue.id != queue.id,
            )
        )
    ).all()
    widgets = (await session.scalars(select(Widget.id).where(Widget.queue_id == queue.id))).all()
    in_use = Conflict(
        "Other queues or channels route to this queue; change them first.",
        code="queue_in_use",
        queue_ids=sorted(str(i) for i in referring),
        widget_ids=sorted(str(i) for i in widgets),
    )
    if referring or widgets:
        raise in_use
    before = _snapshot(QueueOut, queue)
    await session.delete(queue)
    # Channel tables added later may restrict deletion too: the database has the last word.
    await _flush(session, in_use)
    await _announce(session, actor, "queue", queue_id, "deleted", before=before)


# members


async def queue_members(session: AsyncSession, actor: Actor, queue_id: uuid.UUID) -> QueueMembers:
    await get_queue(session, actor, queue_id)
    return QueueMembers(agent_ids=await _member_ids(session, queue_id))


async def _member_ids(session: AsyncSession, queue_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(QueueMember.agent_id).where(QueueMember.queue_id == queue_id)
    )
    return sorted(rows.all(), key=str)


async def _check_agents(session: AsyncSession, agent_ids: Iterable[uuid.UUID]) -> None:
    wanted = set(agent_ids)
    if not wanted:
        return
    found = set(
        (await session.scalars(select(Agent.user_id).where(Agent.user_id.in_(wanted)))).all()
    )
    if missing := wanted - found:
        raise ValidationFailed(
            "Not an agent of this tenant; create the agent profile first.",
            code="unknown_agent",
            field="agent_ids",
            ids=sorted(str(i) for i in missing),
        )


async def set_queue_members(
    session: AsyncSession, actor: Actor, queue_id: uuid.UUID, data: QueueMembers
) -> QueueMembers:
    """Replace the queue's member list."""
    _require_admin(actor)
    await get_queue(session, actor, queue_id)
    await _check_agents(session, data.agent_ids)
    current = set(await _member_ids(session, queue_id))
    wanted = set(data.agent_ids)
    if current != wanted:
        if removed := current - wanted:
            await session.execute(
                delete(QueueMember).where(
                    QueueMember.queue_id == queue_id, QueueMember.agent_id.in_(removed)
                )
            )
        session.add_all(QueueMember(queue_id=queue_id, agent_id=a) for a in wanted - current)
        await _flush(session, _concurrent_change())
        await _announce(
            session,
            actor,
            "queue_members",
            queue_id,
            "updated",
            before={"agent_ids": sorted(str(a) for a in current)},
            after={"agent_ids": sorted(str(a) for a in wanted)},
            changes=["agent_ids"],
        )
    return QueueMembers(agent_ids=sorted(wanted, key=str))


# dispositions


def _code_taken(code: str) -> Conflict:
    return Conflict(
        f"This queue has a disposition {code!r}.", code="disposition_code_taken", field="code"
    )


async def _code_used(
    session: AsyncSession, queue_id: uuid.UUID, code: str, exclude: uuid.UUID | None = None
) -> bool:
    query = select(Disposition.id).where(Disposition.queue_id == queue_id, Disposition.code == code)
    if exclude is not None:
        query = query.where(Disposition.id != exclude)
    return (await session.scalar(query.limit(1))) is not None


async def list_dispositions(
    session: AsyncSession, actor: Actor, queue_id: uuid.UUID
) -> Sequence[Disposition]:
    await get_queue(session, actor, queue_id, also=[Role.agent])
    return (
        await session.scalars(
            select(Disposition).where(Disposition.queue_id == queue_id).order_by(Disposition.code)
        )
    ).all()


async def get_disposition(
    session: AsyncSession, actor: Actor, queue_id: uuid.UUID, disposition_id: uuid.UUID
) -> Disposition:
    await get_queue(session, actor, queue_id, also=[Role.agent])
    disposition = await session.get(Disposition, disposition_id)
    if disposition is None or disposition.queue_id != queue_id:
        raise NotFound("disposition")
    return disposition


async def create_disposition(
    session: AsyncSession, actor: Actor, queue_id: uuid.UUID, data: DispositionCreate
) -> Disposition:
    _require_admin(actor)
    await get_queue(session, actor, queue_id)
    if await _code_used(session, queue_id, data.code):
        raise _code_taken(data.code)
    disposition = Disposition(queue_id=queue_id, code=data.code, label=data.label)
    session.add(disposition)
    await _flush(session, _code_taken(data.code))
    await _announce(
        session,
        actor,
        "disposition",
        disposition.id,
        "created",
        after=_snapshot(DispositionOut, disposition),
    )
    return disposition


async def update_disposition(
    session: AsyncSession,
    actor: Actor,
    queue_id: uuid.UUID,
    disposition_id: uuid.UUID,
    data: DispositionUpdate,
) -> Disposition:
    _require_admin(actor)
    disposition = await get_disposition(session, actor, queue_id, disposition_id)
    changes = _changes(disposition, data.model_dump(exclude_unset=True))
    if "code" in changes and await _code_used(
        session, queue_id, changes["code"], exclude=disposition.id
    ):
        raise _code_taken(changes["code"])
    if changes:
        before = _snapshot(DispositionOut, disposition)
        for field, value in changes.items():
            setattr(disposition, field, value)
        await _flush(session, _code_taken(disposition.code))
        await _announce(
            session,
            actor,
            "disposition",
            disposition.id,
            "updated",
            before=before,
            after=_snapshot(DispositionOut, disposition),
            changes=changes,
        )
    return disposition


async def delete_disposition(
    session: AsyncSession, actor: Actor, queue_id: uuid.UUID, disposition_id: uuid.UUID
) -> None:
    """Closed interactions keep the code they were closed with (it is stored as text)."""
    _require_admin(actor)
    disposition = await get_disposition(session, actor, queue_id, disposition_id)
    before = _snapshot(DispositionOut, disposition)
    await session.delete(disposition)
    await session.flush()
    await _announce(session, actor, "disposition", disposition_id, "deleted", before=before)


# --- agents -----------------------------------------------------------------------------------


def _extension_taken(extension: str) -> Conflict:
    return Conflict(
        f"Another agent has extension {extension!r}.", code="extension_taken", field="extension"
    )


def _no_chat_for_voice() -> ValidationFailed:
    return ValidationFailed(
        "A voice licence takes calls only: its chat capacity is 0.",
        code="voice_licence_no_chat",
        field="chat_capacity",
    )


async def _extension_used(
    session: AsyncSession, extension: str, exclude: uuid.UUID | None = None
) -> bool:
    query = select(Agent.user_id).where(Agent.extension == extension)
    if exclude is not None:
        query = query.where(Agent.user_id != exclude)
    return (await session.scalar(query.limit(1))) is not None


async def _agents_out(
    session: AsyncSession, agents: Sequence[Agent], *, only_these: bool = True
) -> list[AgentOut]:
    """Agent profiles with their user's name, skills and queues, in three queries."""
    ids = [agent.user_id for agent in agents]
    users_q = select(User)
    skills_q = select(AgentSkill)
    members_q = select(QueueMember)
    if only_these:
        users_q = users_q.where(User.id.in_(ids))
        skills_q = skills_q.where(AgentSkill.agent_id.in_(ids))
        members_q = members_q.where(QueueMember.agent_id.in_(ids))
    users = {user.id: user for user in (await session.scalars(users_q)).all()}
    skills: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    for agent_skill in (await session.scalars(skills_q)).all():
        skills[agent_skill.agent_id][str(agent_skill.skill_id)] = agent_skill.level
    queues: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for member in (await session.scalars(members_q)).all():
        queues[member.agent_id].append(member.queue_id)
    result = []
    for agent in agents:
        user = users[agent.user_id]
        result.append(
            AgentOut(
                id=agent.user_id,
                user_id=agent.user_id,
                name=user.name,
                email=user.email,
                role=user.role.value,
                licence=agent.licence,
                voice_capacity=agent.voice_capacity,
                chat_capacity=agent.chat_capacity,
                max_no_answer=agent.max_no_answer,
                extension=agent.extension,
                presence=agent.presence,
                presence_since=agent.presence_since,
                skills=dict(sorted(skills[agent.user_id].items())),
                queue_ids=sorted(queues[agent.user_id], key=str),
            )
        )
    return result


async def _agent_snapshot(session: AsyncSession, agent: Agent) -> dict[str, Any]:
    return (await _agents_out(session, [agent]))[0].model_dump(mode="json")


async def list_agents(session: AsyncSession, actor: Actor) -> list[AgentOut]:
    _require_reader(actor)
    agents = (
        await session.scalars(
            select(Agent).join(User, User.id == Agent.user_id).order_by(User.name, User.email)
        )
    ).all()
    return await _agents_out(session, agents, only_these=False)


async def _get_agent(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> Agent:
    """Supervisors and admins see every profile; an agent sees only their own."""
    if actor.user_id != user_id:
        _require_reader(actor)
    agent = await session.get(Agent, user_id)
    if agent is None:
        raise NotFound("agent")
    return agent


async def get_agent(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> AgentOut:
    return (await _agents_out(session, [await _get_agent(session, actor, user_id)]))[0]


async def create_agent(session: AsyncSession, actor: Actor, data: AgentCreate) -> AgentOut:
    """Give a user of the tenant (an agent or a supervisor) an agent profile; it starts
    offline. A voice licence gets chat capacity 0 (and refuses anything else)."""
    _require_admin(actor)
    user = await session.get(User, data.user_id)
    if user is None:
        raise ValidationFailed("Unknown user.", code="unknown_user", field="user_id")
    if user.role not in AGENT_ROLES:
        raise ValidationFailed(
            "Only agents and supervisors take interactions.",
            code="agent_role_required",
            field="user_id",
        )
    if await session.get(Agent, user.id) is not None:
        raise Conflict("This user already has an agent profile.", code="agent_exists")
    if data.licence is LicenceType.omnichannel:
        await entitlements.require_omnichannel(session, require_tenant(session))
    chat_capacity = data.chat_capacity
    if data.licence is LicenceType.voice:
        if chat_capacity:
            raise _no_chat_for_voice()
        chat_capacity = 0
    elif chat_capacity is None:
        chat_capacity = DEFAULT_CHAT_CAPACITY
    if data.extension is not None and await _extension_used(session, data.extension):
        raise _extension_taken(data.extension)
    instant = now(session)
    agent = Agent(
        user_id=user.id,
        licence=data.licence,
        voice_capacity=data.voice_capacity,
        chat_capacity=chat_capacity,
        max_no_answer=data.max_no_answer,
        extension=data.extension,
        presence=Presence.offline,
        presence_since=instant,
        idle_since=instant,
        no_answer_count=0,
    )
    session.add(agent)
    await _flush(session, Conflict("This user already has an agent profile.", code="agent_exists"))
    out = (await _agents_out(session, [agent]))[0]
    await _announce(
        session, actor, "agent", agent.user_id, "created", after=out.model_dump(mode="json")
    )
    return out


async def update_agent(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, data: AgentUpdate
) -> AgentOut:
    """Changing to a voice licence sets chat capacity to 0."""
    _require_admin(actor)
    agent = await _get_agent(session, actor, user_id)
    patch = data.model_dump(exclude_unset=True)
    if patch.get("licence") is LicenceType.omnichannel:
        await entitlements.require_omnichannel(session, require_tenant(session))
    if patch.get("licence", agent.licence) is LicenceType.voice:
        if patch.get("chat_capacity"):
            raise _no_chat_for_voice()
        patch["chat_capacity"] = 0
    changes = _changes(agent, patch)
    if changes.get("extension") is not None and await _extension_used(
        session, changes["extension"], exclude=agent.user_id
    ):
        raise _extension_taken(changes["extension"])
    if changes:
        before = await _agent_snapshot(session, agent)
        for field, value in changes.items():
            setattr(agent, field, value)
        await session.flush()
        after = await _agent_snapshot(session, agent)
        await _announce(
            session,
            actor,
            "agent",
            agent.user_id,
            "updated",
            before=before,
            after=after,
            changes=changes,
        )
    return (await _agents_out(session, [agent]))[0]


async def delete_agent(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> None:
    """Remove a user's agent profile (the user stays). Refused while the agent is signed in
    for work or holds open interactions; their skills, memberships and presence history go
    with the profile."""
    _require_admin(actor)
    agent = await _get_agent(session, actor, user_id)
    if agent.presence is not Presence.offline:
        raise Conflict(
            "The agent is at work; they (or a supervisor) must go offline first.",
            code="agent_not_offline",
        )
    holding = await session.scalar(
        select(func.count())
        .select_from(Interaction)
        .where(Interaction.agent_id == user_id, Interaction.status.in_(OPEN_STATUSES))
    )
    if holding:
        raise Conflict(
            "The agent holds open interactions; transfer or close them first.",
            code="agent_has_open_interactions",
            count=holding,
        )
    before = await _agent_snapshot(session, agent)
    await session.delete(agent)
    await session.flush()
    await _announce(session, actor, "agent", user_id, "deleted", before=before)


async def set_agent_skills(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, data: AgentSkills
) -> AgentOut:
    """Replace the agent's skills and levels."""
    _require_admin(actor)
    agent = await _get_agent(session, actor, user_id)
    await _check_skills(session, data.skills, "skills")
    rows = {
        row.skill_id: row
        for row in (
            await session.scalars(select(AgentSkill).where(AgentSkill.agent_id == user_id))
        ).all()
    }
    before = {str(skill_id): row.level for skill_id, row in rows.items()}
    after = {str(skill_id): level for skill_id, level in data.skills.items()}
    if before != after:
        for skill_id, row in rows.items():
            if skill_id not in data.skills:
                await session.delete(row)
        for skill_id, level in data.skills.items():
            if skill_id in rows:
                rows[skill_id].level = level
            else:
                session.add(AgentSkill(agent_id=user_id, skill_id=skill_id, level=level))
        await _flush(session, _concurrent_change())
        await _announce(
            session,
            actor,
            "agent_skills",
            user_id,
            "updated",
            before={"skills": dict(sorted(before.items()))},
            after={"skills": dict(sorted(after.items()))},
            changes=["skills"],
        )
    return (await _agents_out(session, [agent]))[0]


async def agent_queues(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> Sequence[Queue]:
    await _get_agent(session, actor, user_id)
    return (
        await session.scalars(
            select(Queue)
            .join(QueueMember, QueueMember.queue_id == Queue.id)
            .where(QueueMember.agent_id == user_id)
            .order_by(Queue.name)
        )
    ).all()


# --- schedules and holidays -------------------------------------------------------------------


def _schedule_taken(name: str) -> Conflict:
    return Conflict(f"A schedule named {name!r} exists.", code="schedule_name_taken", field="name")


async def list_schedules(session: AsyncSession, actor: Actor) -> Sequence[Schedule]:
    _require_reader(actor)
    return (await session.scalars(select(Schedule).order_by(Schedule.name))).all()


async def get_schedule(session: AsyncSession, actor: Actor, schedule_id: uuid.UUID) -> Schedule:
    _require_reader(actor)
    schedule = await session.get(Schedule, schedule_id)
    if schedule is None:
        raise NotFound("schedule")
    return schedule


async def create_schedule(session: AsyncSession, actor: Actor, data: ScheduleCreate) -> Schedule:
    """Names are unique per tenant (checked here; the table has no constraint for it)."""
    _require_admin(actor)
    if await _name_taken(session, Schedule, data.name):
        raise _schedule_taken(data.name)
    time_zone = data.time_zone or (await _tenant(session)).time_zone
    schedule = Schedule(
        name=data.name, time_zone=time_zone, weekly=data.weekly, created_at=now(session)
    )
    session.add(schedule)
    await session.flush()
    await _announce(
        session, actor, "schedule", schedule.id, "created", after=_snapshot(ScheduleOut, schedule)
    )
    return schedule


async def update_schedule(
    session: AsyncSession, actor: Actor, schedule_id: uuid.UUID, data: ScheduleUpdate
) -> Schedule:
    _require_admin(actor)
    schedule = await get_schedule(session, actor, schedule_id)
    changes = _changes(schedule, data.model_dump(exclude_unset=True))
    if "name" in changes and await _name_taken(
        session, Schedule, changes["name"], exclude=schedule.id
    ):
        raise _schedule_taken(changes["name"])
    if changes:
        before = _snapshot(ScheduleOut, schedule)
        for field, value in changes.items():
            setattr(schedule, field, value)
        await session.flush()
        await _announce(
            session,
            actor,
            "schedule",
            schedule.id,
            "updated",
            before=before,
            after=_snapshot(ScheduleOut, schedule),
            changes=changes,
        )
    return schedule


async def delete_schedule(session: AsyncSession, actor: Actor, schedule_id: uuid.UUID) -> None:
    """Refused while queues use it: losing it would silently open them around the clock."""
    _require_admin(actor)
    schedule = await get_schedule(session, actor, schedule_id)
    users = (await session.scalars(select(Queue.id).where(Queue.schedule_id == schedule.id))).all()
    if users:
        raise Conflict(
            "Queues use this schedule; give them another one first.",
            code="schedule_in_use",
            queue_ids=sorted(str(i) for i in users),
        )
    before = _snapshot(ScheduleOut, schedule)
    await session.delete(schedule)
    await session.flush()
    await _announce(session, actor, "schedule", schedule_id, "deleted", before=before)


async def schedule_calendar(session: AsyncSession, schedule: Schedule) -> Calendar:
    """The schedule with the tenant's holidays, ready for ``is_open`` / ``next_opening``."""
    holidays = (await session.scalars(select(Holiday.day))).all()
    return Calendar(schedule.weekly, schedule.time_zone, holidays)


async def schedule_status(
    session: AsyncSession, actor: Actor, schedule_id: uuid.UUID, at: datetime | None = None
) -> ScheduleStatus:
    """Whether the schedule is open at ``at`` (default now) and when it opens next."""
    schedule = await get_schedule(session, actor, schedule_id)
    instant = at or now(session)
    calendar = await schedule_calendar(session, schedule)
    return ScheduleStatus(
        at=instant,
        open=calendar.is_open(instant),
        next_opening=calendar.next_opening(instant),
    )


def _holiday_taken(day: date) -> Conflict:
    return Conflict(f"{day.isoformat()} is a holiday already.", code="holiday_exists", field="day")


async def _day_used(session: AsyncSession, day: date, exclude: uuid.UUID | None = None) -> bool:
    query = select(Holiday.id).where(Holiday.day == day)
    if exclude is not None:
        query = query.where(Holiday.id != exclude)
    return (await session.scalar(query.limit(1))) is not None


async def list_holidays(
    session: AsyncSession, actor: Actor, *, year: int | None = None
) -> Sequence[Holiday]:
    _require_reader(actor)
    query = select(Holiday).order_by(Holiday.day)
    if year is not None:
        query = query.where(Holiday.day >= date(year, 1, 1), Holiday.day <= date(year, 12, 31))
    return (await session.scalars(query)).all()


async def get_holiday(session: AsyncSession, actor: Actor, holiday_id: uuid.UUID) -> Holiday:
    _require_reader(actor)
    holiday = await session.get(Holiday, holiday_id)
    if holiday is None:
        raise NotFound("holiday")
    return holiday


async def create_holiday(session: AsyncSession, actor: Actor, data: HolidayCreate) -> Holiday:
    _require_admin(actor)
    if await _day_used(session, data.day):
        raise _holiday_taken(data.day)
    holiday = Holiday(day=data.day, name=data.name)
    session.add(holiday)
    await _flush(session, _holiday_taken(data.day))
    await _announce(
        session, actor, "holiday", holiday.id, "created", after=_snapshot(HolidayOut, holiday)
    )
    return holiday


async def update_holiday(
    session: AsyncSession, actor: Actor, holiday_id: uuid.UUID, data: HolidayUpdate
) -> Holiday:
    _require_admin(actor)
    holiday = await get_holiday(session, actor, holiday_id)
    changes = _changes(holiday, data.model_dump(exclude_unset=True))
    if "day" in changes and await _day_used(session, changes["day"], exclude=holiday.id):
        raise _holiday_taken(changes["day"])
    if changes:
        before = _snapshot(HolidayOut, holiday)
        for field, value in changes.items():
            setattr(holiday, field, value)
        await _flush(session, _holiday_taken(holiday.day))
        await _announce(
            session,
            actor,
            "holiday",
            holiday.id,
            "updated",
            before=before,
            after=_snapshot(HolidayOut, holiday),
            changes=changes,
        )
    return holiday


async def delete_holiday(session: AsyncSession, actor: Actor, holiday_id: uuid.UUID) -> None:
    _require_admin(actor)
    holiday = await get_holiday(session, actor, holiday_id)
    before = _snapshot(HolidayOut, holiday)
    await session.delete(holiday)
    await session.flush()
    await _announce(session, actor, "holiday", holiday_id, "deleted", before=before)


# --- break reasons ----------------------------------------------------------------------------


def _reason_taken(name: str) -> Conflict:
    return Conflict(
        f"A break reason named {name!r} exists.", code="break_reason_name_taken", field="name"
    )


def _protected() -> Conflict:
    return Conflict(
        "The no-answer reason is used by the engine; it can be renamed only.",
        code="no_answer_reason_protected",
    )


async def list_break_reasons(session: AsyncSession, actor: Actor) -> Sequence[BreakReason]:
    _require_reader(actor, Role.agent)
    return (await session.scalars(select(BreakReason).order_by(BreakReason.name))).all()


async def get_break_reason(
    session: AsyncSession, actor: Actor, reason_id: uuid.UUID
) -> BreakReason:
    _require_reader(actor, Role.agent)
    reason = await session.get(BreakReason, reason_id)
    if reason is None:
        raise NotFound("break_reason")
    return reason


async def create_break_reason(
    session: AsyncSession, actor: Actor, data: BreakReasonCreate
) -> BreakReason:
    """The tenant's first break reason brings the no-answer reason with it (unless it is
    that one: a reason named like it becomes it)."""
    _require_admin(actor)
    if await _name_taken(session, BreakReason, data.name):
        raise _reason_taken(data.name)
    reason = BreakReason(name=data.name, is_active=data.is_active, is_no_answer=False)
    session.add(reason)
    await _flush(session, _reason_taken(data.name))
    await _announce(
        session,
        actor,
        "break_reason",
        reason.id,
        "created",
        after=_snapshot(BreakReasonOut, reason),
    )
    await _ensure_no_answer_reason(session, actor)
    return reason


async def update_break_reason(
    session: AsyncSession, actor: Actor, reason_id: uuid.UUID, data: BreakReasonUpdate
) -> BreakReason:
    _require_admin(actor)
    reason = await get_break_reason(session, actor, reason_id)
    changes = _changes(reason, data.model_dump(exclude_unset=True))
    if reason.is_no_answer and changes.get("is_active") is False:
        raise _protected()
    if "name" in changes and await _name_taken(
        session, BreakReason, changes["name"], exclude=reason.id
    ):
        raise _reason_taken(changes["name"])
    if changes:
        before = _snapshot(BreakReasonOut, reason)
        for field, value in changes.items():
            setattr(reason, field, value)
        await _flush(session, _reason_taken(reason.name))
        await _announce(
            session,
            actor,
            "break_reason",
            reason.id,
            "updated",
            before=before,
            after=_snapshot(BreakReasonOut, reason),
            changes=changes,
        )
    return reason


async def delete_break_reason(session: AsyncSession, actor: Actor, reason_id: uuid.UUID) -> None:
    """Refused for the no-answer reason and for a reason ever used (presence history and
    break reports name it): deactivate those instead."""
    _require_admin(actor)
    reason = await get_break_reason(session, actor, reason_id)
    if reason.is_no_answer:
        raise _protected()
    used = await session.scalar(
        select(AgentStatusLog.id).where(AgentStatusLog.break_reason_id == reason.id).limit(1)
    ) or await session.scalar(
        select(Agent.user_id).where(Agent.break_reason_id == reason.id).limit(1)
    )
    if used is not None:
        raise Conflict(
            "Agents have taken breaks for this reason; deactivate it instead.",
            code="break_reason_in_use",
        )
    before = _snapshot(BreakReasonOut, reason)
    await session.delete(reason)
    await session.flush()
    await _announce(session, actor, "break_reason", reason_id, "deleted", before=before)


async def no_answer_reason(session: AsyncSession) -> BreakReason:
    """The tenant's no-answer break reason (the engine puts an agent on it after
    ``max_no_answer`` unanswered offers), created if missing."""
    return await _ensure_no_answer_reason(session, None)


async def _ensure_no_answer_reason(session: AsyncSession, actor: Actor | None) -> BreakReason:
    reason = await session.scalar(
        select(BreakReason).where(BreakReason.is_no_answer.is_(True)).order_by(BreakReason.name)
    )
    if reason is not None:
        return reason
    name = _translate((await _tenant(session)).locale, NO_ANSWER_REASON)
    reason = await session.scalar(
        select(BreakReason).where(func.lower(BreakReason.name) == name.lower())
    )
    created = reason is None
    if reason is None:
        reason = BreakReason(name=name, is_active=True, is_no_answer=True)
        try:
            async with session.begin_nested():
                session.add(reason)
        except IntegrityError:  # created concurrently since the look-up: use that one
            found = await session.scalar(select(BreakReason).where(BreakReason.name == name))
            if found is None:
                raise
            reason, created = found, False
    before = None if created else _snapshot(BreakReasonOut, reason)
    reason.is_no_answer = True
    reason.is_active = True
    await session.flush()
    await _announce(
        session,
        actor or Actor.system(),
        "break_reason",
        reason.id,
        "created" if created else "updated",
        before=before,
        after=_snapshot(BreakReasonOut, reason),
        changes=[] if created else ["is_no_answer"],
    )
    return reason


# --- the demo tenant --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoRouting:
    general_queue_id: uuid.UUID
    sales_queue_id: uuid.UUID
    schedule_id: uuid.UUID | None  # None only if an admin took Ventas off its schedule
    skill_ids: dict[str, uuid.UUID]


DEMO_WEEKLY = {
    **{day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    "sat": [["10:00", "14:00"]],
}
DEMO_DIGITAL = ["webchat", "whatsapp", "telegram", "sms", "api"]
DEMO_CALLS_QUEUE = "Llamadas"
DEMO_DISPOSITIONS = (
    ("resuelto", N_("Resolved")),
    ("seguimiento", N_("Follow-up")),
    ("no_resuelto", N_("Not resolved")),
)
DEMO_SCHEDULE = N_("Business hours")
DEMO_CLOSED_MESSAGE = N_(
    "Sales is open Monday to Friday from 9:00 to 18:00 and Saturday from 10:00 to 14:00. "
    "We will answer as soon as we open."
)


async def seed_demo(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    agent_user_ids: Sequence[uuid.UUID],
    supervisor_user_id: uuid.UUID,
) -> DemoRouting:
    """Routing for a demo tenant, idempotent (what exists is left as it is):

    skills ``ventas`` and ``soporte``; a Mon-Fri 09:00-18:00 + Sat 10:00-14:00 schedule in the
    tenant's zone; queue ``General`` (every digital channel, longest idle, no schedule so it
    is open at any hour) with dispositions resuelto / seguimiento / no_resuelto; queue
    ``Ventas`` on that schedule requiring ``ventas``; omnichannel agent profiles for the
    agents and the supervisor, all members of General; the agents also serve Ventas with
    both skills at level 5; queue ``Llamadas`` (voice) served by the agents, for the numbers of
    a PBX once one is connected.
    """
    actor = Actor.system()
    async with in_tenant(session, tenant_id):
        tenant = await _tenant(session)
        skill_ids = {}
        for name in ("ventas", "soporte"):
            skill = await session.scalar(select(Skill).where(Skill.name == name))
            if skill is None:
                skill = await create_skill(session, actor, SkillCreate(name=name))
            skill_ids[name] = skill.id

        general = await session.scalar(select(Queue).where(Queue.name == "General"))
        if general is None:
            general = await create_queue(
                session,
                actor,
                QueueCreate.model_validate({"name": "General", "channels": DEMO_DIGITAL}),
            )
            for code, label in DEMO_DISPOSITIONS:
                await create_disposition(
                    session,
                    actor,
                    general.id,
                    DispositionCreate(code=code, label=_translate(tenant.locale, label)),
                )

        sales = await session.scalar(select(Queue).where(Queue.name == "Ventas"))
        if sales is None:
            schedule_name = _translate(tenant.locale, DEMO_SCHEDULE)
            schedule = await session.scalar(select(Schedule).where(Schedule.name == schedule_name))
            if schedule is None:
                schedule = await create_schedule(
                    session,
                    actor,
                    ScheduleCreate.model_validate({"name": schedule_name, "weekly": DEMO_WEEKLY}),
                )
            sales = await create_queue(
                session,
                actor,
                QueueCreate.model_validate(
                    {
                        "name": "Ventas",
                        "channels": DEMO_DIGITAL,
                        "required_skills": {str(skill_ids["ventas"]): 1},
                        "schedule_id": str(schedule.id),
                        "closed_action": "auto_reply",
                        "closed_message": _translate(tenant.locale, DEMO_CLOSED_MESSAGE),
                    }
                ),
            )
        calls = await session.scalar(select(Queue).where(Queue.name == DEMO_CALLS_QUEUE))
        if calls is None:  # for the phone numbers of a PBX, once one is connected
            calls = await create_queue(
                session,
                actor,
                QueueCreate.model_validate({"name": DEMO_CALLS_QUEUE, "channels": ["voice"]}),
            )
        for user_id in [*agent_user_ids, supervisor_user_id]:
            if await session.get(Agent, user_id) is None:
                await create_agent(session, actor, AgentCreate(user_id=user_id))
        await _add_members(session, actor, general.id, [*agent_user_ids, supervisor_user_id])
        await _add_members(session, actor, sales.id, agent_user_ids)
        await _add_members(session, actor, calls.id, agent_user_ids)
        for user_id in agent_user_ids:
            has_skills = await session.scalar(
                select(AgentSkill.skill_id).where(AgentSkill.agent_id == user_id).limit(1)
            )
            if has_skills is None:
                await set_agent_skills(
                    session,
                    actor,
                    user_id,
                    AgentSkills(skills=dict.fromkeys(skill_ids.values(), 5)),
                )
        return DemoRouting(
            general_queue_id=general.id,
            sales_queue_id=sales.id,
            schedule_id=sales.schedule_id,
            skill_ids=skill_ids,
        )


async def _add_members(
    session: AsyncSession, actor: Actor, queue_id: uuid.UUID, agent_ids: Iterable[uuid.UUID]
) -> None:
    current = await _member_ids(session, queue_id)
    wanted = set(current) | set(agent_ids)
    if wanted != set(current):
        await set_queue_members(session, actor, queue_id, QueueMembers(agent_ids=list(wanted)))
