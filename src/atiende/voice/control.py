"""Call controls for the people working a call: hold, mute, keypad, hang up, recording, and
playing a recording back.

Any node can serve these: the ``calls`` row says which PBX, channels and bridge a call has,
and each action is one short ARI conversation with that PBX (a client built from the
``pbxs`` row, closed when the action ends) followed by the row's change, a timeline entry
and ``calls.publish`` (the one emitter of ``call.updated``; the call-control runtime follows
hold and resume from it). The PBX acts first: when it refuses, nothing is written.

Who may act: the agent the interaction is assigned to, and supervisors and admins (the same
rule as the conversations API: an interaction the caller may not see is 404, one they see
but do not work is 403). Recording actions and every playback are audited.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.audit import service as audit
from atiende.contacts import service as contacts
from atiende.contacts.models import IdentityKind
from atiende.conversations import service as conversations
from atiende.conversations.models import Channel, Interaction
from atiende.core.config import Settings
from atiende.core.db import database_of, require_tenant, session_scope
from atiende.core.errors import (
    AtiendeError,
    Conflict,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.routing import service as routing
from atiende.routing.models import Agent, Offer, OfferStatus, Queue, Recording
from atiende.voice import calls
from atiende.voice import service as voice_service
from atiende.voice.ari import AriAuthFailed, AriClient, AriRequestFailed, AriUnavailable
from atiende.voice.legs import LegState
from atiende.voice.models import Call, Extension, Pbx
from atiende.voice.service import ari_password

#: A control action waits this long for the PBX (the request holds its unit of work).
ARI_TIMEOUT_SECONDS: Final = 5.0
RECORDING_FORMAT: Final = "wav"
RECORDING_MEDIA_TYPE: Final = "audio/wav"
SUPERVISING: Final = frozenset({Role.supervisor, Role.admin})
NOT_FOUND_STATUS: Final = 404
DTMF_PATTERN: Final = r"^[0-9*#A-Da-d]{1,20}$"


class PbxUnavailable(AtiendeError):
    status_code = 503
    code = "pbx_unavailable"
    default_message = "The PBX could not be reached; try again."


# --- what the API shows --------------------------------------------------------------------


class ConsultOut(BaseModel):
    agent_id: uuid.UUID | None = Field(description="The agent consulted, or null.")
    number: str | None = Field(description="The outside number consulted, or null.")
    state: str = Field(description="ringing, or talking once they answered.")


class CallOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    interaction_id: uuid.UUID
    direction: str
    state: str = Field(description="The caller's leg: queued, offering, bridged, on_hold, ended…")
    caller_number: str | None
    number: str | None = Field(description="The number (DID) the caller dialled.")
    agent_id: uuid.UUID | None
    on_hold: bool
    muted: bool
    recording: str | None = Field(
        description="recording, paused or done; null when the call is not recorded."
    )
    recording_policy: Recording = Field(description="The queue's: never, always or on_demand.")
    can_start_recording: bool
    started_at: datetime
    answered_at: datetime | None
    connected_at: datetime | None
    ended_at: datetime | None
    end_cause: str | None
    forwarded_to: str | None = Field(
        default=None,
        description="The outside number the call is being (state transferring) or was sent to.",
    )
    consult: ConsultOut | None = Field(
        default=None, description="An attended transfer under way (the caller is on hold)."
    )


class LiveCallOut(BaseModel):
    """A call the PBX still carries, for the wallboard."""

    id: uuid.UUID
    interaction_id: uuid.UUID
    queue_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    ringing_agent_ids: list[uuid.UUID]
    state: str
    on_hold: bool
    muted: bool
    recording: str | None
    caller_number: str | None
    number: str | None
    started_at: datetime
    connected_at: datetime | None
    consult_state: str | None = Field(
        default=None,
        description="An attended transfer under way: ringing, or talking once the consulted "
        "party answered; null otherwise. The caller is on hold meanwhile.",
    )
    consult_agent_id: uuid.UUID | None = Field(
        default=None, description="The agent being consulted, or null."
    )
    consult_number: str | None = Field(
        default=None, description="The outside number being consulted, or null."
    )
    forwarded_to: str | None = Field(
        default=None,
        description="The outside number the call is being (state transferring) or was sent to.",
    )


class ForwardRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(
        min_length=3,
        max_length=40,
        description="The outside number: E.164, or national (Mexico by default).",
        examples=["+525512345678"],
    )


class ConsultRequest(BaseModel):
    """Exactly one of ``agent_id`` (their extension rings) and ``number`` (dialled through
    the PBX's outbound route)."""

    model_config = ConfigDict(extra="forbid")

    agent_id: uuid.UUID | None = None
    number: str | None = Field(default=None, min_length=3, max_length=40)


class DtmfRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    digits: str = Field(pattern=DTMF_PATTERN, description="0-9, *, #, A-D; 1 to 20 of them.")


RecordingAction = Literal["start", "pause", "resume"]


class RecordingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: RecordingAction


# --- finding the call ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Working:
    interaction: Interaction
    call: Call
    queue: Queue | None


async def _latest_call(
    session: AsyncSession, interaction_id: uuid.UUID, *, for_update: bool = False
) -> Call | None:
    query = (
        select(Call)
        .where(Call.interaction_id == interaction_id)
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(1)
    )
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


def _require_worker(actor: Actor, interaction: Interaction) -> None:
    if actor.role not in SUPERVISING and interaction.agent_id != actor.user_id:
        raise PermissionDenied("Only the agent on the call or a supervisor can do this.")


async def _working(
    session: AsyncSession, actor: Actor, interaction_id: uuid.UUID, *, for_update: bool = True
) -> Working:
    """The interaction's call, for someone who may act on it, while the PBX carries it."""
    interaction = await conversations.visible_interaction(session, actor, interaction_id)
    _require_worker(actor, interaction)
    call = await _latest_call(session, interaction_id, for_update=for_update)
    if call is None:
        raise NotFound("call", "This interaction has no phone call.")
    if call.ended_at is not None or call.state == LegState.ended.value:
        raise Conflict("The call has ended.", code="call_ended")
    queue = await session.get(Queue, interaction.queue_id) if interaction.queue_id else None
    return Working(interaction, call, queue)


def _connected(call: Call, what: str) -> tuple[str, str]:
    """The agent's channel and the bridge; only a call an agent has answered has them."""
    if call.agent_channel_id is None or call.bridge_id is None:
        raise Conflict(
            f"The caller is not talking to an agent yet: nothing to {what}.",
            code="call_not_connected",
        )
    return call.agent_channel_id, call.bridge_id


def _policy(queue: Queue | None) -> Recording:
    return queue.recording if queue is not None else Recording.never


def _can_start_recording(call: Call, queue: Queue | None) -> bool:
    return (
        _policy(queue) is not Recording.never
        and call.recording_state is None
        and call.bridge_id is not None
        and call.ended_at is None
    )


def describe(call: Call, queue: Queue | None) -> CallOut:
    return CallOut(
        id=call.id,
        interaction_id=call.interaction_id,
        direction=call.direction,
        state=call.state,
        caller_number=call.caller_number,
        number=call.number,
        agent_id=call.agent_id,
        on_hold=call.on_hold,
        muted=call.muted,
        recording=call.recording_state,
        recording_policy=_policy(queue),
        can_start_recording=_can_start_recording(call, queue),
        started_at=call.started_at,
        answered_at=call.answered_at,
        connected_at=call.connected_at,
        ended_at=call.ended_at,
        end_cause=call.end_cause,
        forwarded_to=call.forwarded_to,
        consult=None
        if call.consult_state is None
        else ConsultOut(
            agent_id=call.consult_agent_id, number=call.consult_number, state=call.consult_state
        ),
    )


async def get_call(session: AsyncSession, actor: Actor, interaction_id: uuid.UUID) -> CallOut:
    """The interaction's (latest) call, ended or not, for whoever may see the interaction."""
    interaction = await conversations.visible_interaction(session, actor, interaction_id)
    call = await _latest_call(session, interaction_id)
    if call is None:
        raise NotFound("call", "This interaction has no phone call.")
    queue = await session.get(Queue, interaction.queue_id) if interaction.queue_id else None
    return describe(call, queue)


async def live_calls(session: AsyncSession, actor: Actor) -> list[LiveCallOut]:
    """Every call the PBXs still carry, with the agents whose phones ring for it."""
    if actor.role not in SUPERVISING:
        raise PermissionDenied()
    rows = (
        await session.execute(
            select(Call, Interaction.queue_id)
            .join(Interaction, Interaction.id == Call.interaction_id)
            .where(Call.ended_at.is_(None), Interaction.channel == Channel.voice)
            .order_by(Call.started_at)
        )
    ).all()
    ringing: dict[uuid.UUID, list[uuid.UUID]] = {}
    if rows:
        offers = await session.execute(
            select(Offer.interaction_id, Offer.agent_id).where(
                Offer.status == OfferStatus.pending,
                Offer.interaction_id.in_([call.interaction_id for call, _ in rows]),
            )
        )
        for interaction_id, agent_id in offers:
            ringing.setdefault(interaction_id, []).append(agent_id)
    return [
        LiveCallOut(
            id=call.id,
            interaction_id=call.interaction_id,
            queue_id=queue_id,
            agent_id=call.agent_id,
            ringing_agent_ids=sorted(ringing.get(call.interaction_id, []), key=str),
            state=call.state,
            on_hold=call.on_hold,
            muted=call.muted,
            recording=call.recording_state,
            caller_number=call.caller_number,
            number=call.number,
            started_at=call.started_at,
            connected_at=call.connected_at,
            consult_state=call.consult_state,
            consult_agent_id=call.consult_agent_id,
            consult_number=call.consult_number,
            forwarded_to=call.forwarded_to,
        )
        for call, queue_id in rows
    ]


# --- talking to the call's PBX ---------------------------------------------------------------


@asynccontextmanager
async def _pbx(session: AsyncSession, call: Call, settings: Settings) -> AsyncIterator[AriClient]:
    """A client for the call's PBX; the PBX's failures become the API's errors.

    One client per action: an action is a few requests, and a client kept between requests
    would outlive the event loop and the credentials it was made with.
    """
    pbx = await session.get(Pbx, call.pbx_id)
    if pbx is None:
        raise PbxUnavailable("The call's PBX is no longer configured.")
    client = AriClient(
        pbx.ari_url,
        pbx.ari_username,
        ari_password(settings, pbx),
        app=pbx.app_name,
        timeout=ARI_TIMEOUT_SECONDS,
    )
    try:
        yield client
    except AriAuthFailed as error:
        raise PbxUnavailable("The PBX refused Atiende's ARI user or password.") from error
    except AriRequestFailed as error:
        raise Conflict(
            f"The PBX refused: {error.message}",
            code="call_action_failed",
            pbx_status=error.status,
            pbx_message=error.message,
        ) from error
    except AriUnavailable as error:
        raise PbxUnavailable() from error
    finally:
        await client.aclose()


Step = tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]] | None]


async def _in_steps(*steps: Step) -> None:
    """Run ARI requests in order; when one fails, undo those done (best effort) so the call
    is not left half held, and let the failure through."""
    done: list[Callable[[], Awaitable[None]] | None] = []
    try:
        for action, undo in steps:
            await action()
            done.append(undo)
    except (AriRequestFailed, AriUnavailable):
        for undo in reversed(done):
            if undo is not None:
                try:
                    await undo()
                except (AriRequestFailed, AriUnavailable):
                    continue
        raise


async def _timeline(
    session: AsyncSession, working: Working, actor: Actor, kind: str, **data: Any
) -> None:
    await conversations.record(
        session,
        working.interaction,
        f"call.{kind}",
        actor_id=actor.user_id,
        role="customer",
        channel_id=working.call.customer_channel_id,
        **data,
    )


# --- the controls ----------------------------------------------------------------------------


async def hold(
    session: AsyncSession, actor: Actor, interaction_id: uuid.UUID, *, settings: Settings
) -> CallOut:
    """The caller hears music and is not heard: ARI hold and ``mute in`` on the caller's
    channel, and music on hold. Holding a held call changes nothing."""
    working = await _working(session, actor, interaction_id)
    call = working.call
    if call.on_hold:
        return describe(call, working.queue)
    _connected(call, "hold")
    customer = call.customer_channel_id
    async with _pbx(session, call, settings) as ari:
        await _in_steps(
            (lambda: ari.hold(customer), lambda: ari.unhold(customer)),
            (lambda: ari.mute(customer, "in"), lambda: ari.unmute(customer, "in")),
            (lambda: ari.start_moh(customer), None),
        )
    call.on_hold = True
    if call.state == LegState.bridged.value:
        call.state = LegState.on_hold.value
    await _timeline(session, working, actor, "held")
    await calls.publish(session, call, "held")
    return describe(call, working.queue)


async def resume(
    session: AsyncSession, actor: Actor, interaction_id: uuid.UUID, *, settings: Settings
) -> CallOut:
    """Back from hold: the music stops, the caller is heard again."""
    working = await _working(session, actor, interaction_id)
    call = working.call
    if not call.on_hold:
        return describe(call, working.queue)
    customer = call.customer_channel_id
    async with _pbx(session, call, settings) as ari:
        await _in_steps(
            (lambda: ari.stop_moh(customer), lambda: ari.start_moh(customer)),
            (lambda: ari.unmute(customer, "in"), lambda: ari.mute(customer, "in")),
            (lambda: ari.unhold(customer), None),
        )
    call.on_hold = False
    if call.state == LegState.on_hold.value:
        call.state = LegState.bridged.value
    await _timeline(session, working, actor, "resumed")
    await calls.publish(session, call, "resumed")
    return describe(call, working.queue)


async def mute(
    session: AsyncSession,
    actor: Actor,
    interaction_id: uuid.UUID,
    *,
    settings: Settings,
    muted: bool = True,
) -> CallOut:
    """The caller stops (or starts again) hearing the agent: the agent's channel, ``in``."""
    working = await _working(session, actor, interaction_id)
    call = working.call
    if call.muted == muted:
        return describe(call, working.queue)
    agent_channel, _ = _connected(call, "mute")
    async with _pbx(session, call, settings) as ari:
        if muted:
            await ari.mute(agent_channel, "in")
        else:
            await ari.unmute(agent_channel, "in")
    call.muted = muted
    await calls.publish(session, call, "muted" if muted else "unmuted")
    return describe(call, working.queue)


async def hang_up(
    session: AsyncSession, actor: Actor, interaction_id: uuid.UUID, *, settings: Settings
) -> CallOut:
    """Hang up the caller; the call-control runtime ends the call and starts the wrap-up
    when the PBX reports it."""
    working = await _working(session, actor, interaction_id)
    call = working.call
    # while the agent's own phone still rings for a call they place, that is what hangs up
    target = (
        calls.dial_channel_id(call.id)
        if call.state == "dialing" and call.agent_channel_id is None
        else call.customer_channel_id
    )
    async with _pbx(session, call, settings) as ari:
        try:
            await ari.hangup(target)
        except AriRequestFailed as error:
            if error.status != NOT_FOUND_STATUS:  # already gone: the runtime will see it
                raise
    await _timeline(session, working, actor, "hangup_requested")
    return describe(call, working.queue)


class PlaceCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(min_length=3, max_length=40, description="The customer's number.")
    contact_id: uuid.UUID | None = Field(
        default=None, description="The contact called (else found or created by number)."
    )


async def place_call(
    session: AsyncSession, actor: Actor, data: PlaceCall, *, settings: Settings
) -> tuple[uuid.UUID, CallOut]:
    """Click-to-call: ring the agent's own phone; once they answer, call control dials the
    customer through the PBX's outbound route (``pbxs.outbound_dial``) with its caller id.
    The call is a new voice interaction, the agent's at once. Returns it and the call."""
    if actor.user_id is None:
        raise PermissionDenied("Only people place calls.")
    number = contacts.normalise_identity(IdentityKind.phone, data.number)
    extension = await session.scalar(
        select(Extension.number).where(Extension.user_id == actor.user_id)
    )
    if extension is None:
        raise Conflict("You have no extension (phone) to call from.", code="agent_without_phone")
    pbx = await voice_service.choose_pbx(session, None)
    if pbx is None:
        raise Conflict("No PBX is configured.", code="pbx_not_configured")
    if not pbx.outbound_dial:
        raise Conflict(
            "The PBX has no outbound route (outbound_dial).", code="outbound_not_configured"
        )
    if data.contact_id is not None:
        contact = await contacts.get_contact(session, actor, data.contact_id)
    else:
        contact = await contacts.find_or_create_by_identity(
            session, IdentityKind.phone, number, phone=number
        )
    interaction = await conversations.open_interaction(
        session, channel=Channel.voice, contact_id=contact.id, subject=number
    )
    await routing.take_outbound(session, interaction, actor.user_id)
    instant = interaction.created_at
    call = Call(
        id=uuid.uuid4(),
        interaction_id=interaction.id,
        pbx_id=pbx.id,
        direction="outbound",
        customer_channel_id=f"atiende-out-{uuid.uuid4().hex}",
        agent_channel_id=None,
        agent_id=actor.user_id,
        caller_number=number,
        state="dialing",
        on_hold=False,
        muted=False,
        started_at=instant,
    )
    session.add(call)
    await session.flush()
    async with _pbx(session, call, settings) as ari:
        await ari.originate(
            f"PJSIP/{extension}",
            app_args=(calls.OUTBOUND_ARG, str(call.id), call.customer_channel_id),
            caller_id=f"{contact.name or number} <{number}>",
            ring_seconds=30,
            channel_id=calls.dial_channel_id(call.id),
        )
    await conversations.record(
        session,
        interaction,
        "call.dialing",
        actor_id=actor.user_id,
        role="agent",
        number=number,
        extension=extension,
    )
    await calls.publish(session, call, "dialing")
    return interaction.id, describe(call, None)


# --- transfers: carried out by call control (``calls.CallCommand``) -------------------------


def _talking(call: Call, what: str) -> None:
    """A call its agent talks on, with no consultation or transfer under way."""
    _connected(call, what)
    if call.consult_state is not None:
        raise Conflict("A consultation is under way.", code="consult_in_progress")
    if call.state == LegState.transferring.value:
        raise Conflict("The call is being transferred.", code="call_transferring")


async def _outbound_route(session: AsyncSession, call: Call) -> None:
    pbx = await session.get(Pbx, call.pbx_id)
    if pbx is None:
        raise PbxUnavailable("The call's PBX is no longer configured.")
    if not pbx.outbound_dial:
        raise Conflict(
            "The PBX has no outbound route (outbound_dial).", code="outbound_not_configured"
        )


async def _command(
    session: AsyncSession, working: Working, actor: Actor, command: str, **data: Any
) -> CallOut:
    call = working.call
    await calls.command(session, call, command, actor_id=actor.user_id, **data)
    await calls.publish(session, call, command)
    return describe(call, working.queue)


async def forward(
    session: AsyncSession, actor: Actor, interaction_id: uuid.UUID, data: ForwardRequest
) -> CallOut:
    """Blind transfer to an outside number: the agent's phone is released at once and the
    caller hears music while the number rings. Once it answers, the two talk and the agent's
    wrap-up starts; if it does not (30 s, busy, unreachable), the caller goes back to the head
    of the queue."""
    working = await _working(session, actor, interaction_id)
    call = working.call
    _talking(call, "transfer")
    await _outbound_route(session, call)
    number = contacts.normalise_identity(IdentityKind.phone, data.number)
    call.forwarded_to = number
    call.state = LegState.transferring.value
    await _timeline(session, working, actor, "transfer_requested", number=number, mode="blind")
    return await _command(session, working, actor, "forward", number=number)


async def consult(
    session: AsyncSession, actor: Actor, interaction_id: uuid.UUID, data: ConsultRequest
) -> CallOut:
    """Attended transfer, first step: the caller is put on hold and the agent's phone is
    joined to a call to the one consulted (another agent's extension, or an outside number).
    Then ``complete_consult`` hands the caller over, or ``cancel_consult`` goes back."""
    if (data.agent_id is None) == (data.number is None):
        raise ValidationFailed("Give exactly one of agent_id and number.", code="consult_target")
    working = await _working(session, actor, interaction_id)
    call = working.call
    _talking(call, "consult on")
    number = extension = None
    if data.agent_id is not None:
        if data.agent_id == call.agent_id:
            raise ValidationFailed("An agent cannot consult themselves.", code="consult_self")
        if await session.get(Agent, data.agent_id) is None:
            raise NotFound("agent")
        extension = await session.scalar(
            select(Extension.number).where(Extension.user_id == data.agent_id)
        )
        if extension is None:
            raise Conflict("That agent has no extension (phone).", code="agent_without_phone")
    else:
        await _outbound_route(session, call)
        number = contacts.normalise_identity(IdentityKind.phone, data.number or "")
    call.consult_agent_id, call.consult_number = data.agent_id, number
    call.consult_state = "ringing"
    target = {"to_agent_id": str(data.agent_id)} if data.agent_id else {"number": number}
    await _timeline(session, working, actor, "consult_requested", **target)
    return await _command(
        session,
        working,
        actor,
        "consult",
        agent_id=data.agent_id,
        number=number,
        extension=extension,
    )


async def complete_consult(
    session: AsyncSession, actor: Actor, interaction_id: uuid.UUID
) -> CallOut:
    """Attended transfer, done: the one consulted talks to the caller and the agent's phone
    hangs up. An agent consulted takes the interaction (they need room for a call); an
    outside number keeps the caller while the agent's wrap-up starts."""
    working = await _working(session, actor, interaction_id)
    call = working.call
    if call.consult_state is None:
        raise Conflict("No consultation is under way.", code="no_consult")
    if call.consult_state != "talking":
        raise Conflict("The one consulted has not answered yet.", code="consult_not_answered")
    if call.consult_agent_id is not None:
        agent = await session.get(Agent, call.consult_agent_id)
        if agent is None:
            raise NotFound("agent")
        if agent.voice_load >= agent.voice_capacity:
            raise Conflict("That agent has no room for another call.", code="agent_at_capacity")
    await _timeline(session, working, actor, "consult_finish_requested")
    return await _command(session, working, actor, "consult_complete")


async def cancel_consult(session: AsyncSession, actor: Actor, interaction_id: uuid.UUID) -> CallOut:
    """Attended transfer, abandoned: the one consulted is hung up and the agent is back with
    the caller, who leaves hold."""
    working = await _working(session, actor, interaction_id)
    if working.call.consult_state is None:
        raise Conflict("No consultation is under way.", code="no_consult")
    await _timeline(session, working, actor, "consult_cancel_requested")
    return await _command(session, working, actor, "consult_cancel")


SUPERVISE_MODES: Final = ("listen", "whisper", "barge")
SupervisionMode = Literal["listen", "whisper", "barge"]


async def supervise(
    session: AsyncSession,
    actor: Actor,
    interaction_id: uuid.UUID,
    mode: SupervisionMode,
    *,
    settings: Settings,
) -> CallOut:
    """Ring the supervisor's own phone; once answered, call control joins it to the call:
    ``listen`` hears both parties, ``whisper`` also speaks to the agent only, ``barge`` joins
    the conversation. Supervisors and admins only; audited."""
    if actor.role not in SUPERVISING:
        raise PermissionDenied("Only supervisors and admins can listen to calls.")
    working = await _working(session, actor, interaction_id)
    call = working.call
    _connected(call, "listen to")
    extension = await session.scalar(
        select(Extension.number).where(Extension.user_id == actor.user_id)
    )
    if extension is None:
        raise Conflict(
            "You have no extension (phone) to listen with.", code="supervisor_without_phone"
        )
    channel_id = calls.supervisor_channel_id()
    async with _pbx(session, call, settings) as ari:
        await ari.originate(
            f"PJSIP/{extension}",
            app_args=(calls.SUPERVISE_ARG, str(call.id), mode, str(actor.user_id)),
            caller_id=f"{mode} <{call.caller_number or ''}>",
            ring_seconds=30,
            channel_id=channel_id,
        )
    await _timeline(session, working, actor, "supervised", mode=mode, extension=extension)
    await audit.record(
        session,
        actor,
        "call.supervise",
        resource_type="interaction",
        resource_id=working.interaction.id,
        tenant_id=require_tenant(session),
        after={"mode": mode, "extension": extension, "call_id": str(call.id)},
    )
    return describe(call, working.queue)


async def send_dtmf(
    session: AsyncSession,
    actor: Actor,
    interaction_id: uuid.UUID,
    digits: str,
    *,
    settings: Settings,
) -> CallOut:
    """Keypad tones to the caller's side (an IVR the agent called, an extension). The digits
    are not written anywhere: they may be a card number or a PIN."""
    working = await _working(session, actor, interaction_id, for_update=False)
    call = working.call
    async with _pbx(session, call, settings) as ari:
        await ari.send_dtmf(call.customer_channel_id, digits.upper())
    return describe(call, working.queue)


async def recording(
    session: AsyncSession,
    actor: Actor,
    interaction_id: uuid.UUID,
    action: RecordingAction,
    *,
    settings: Settings,
) -> CallOut:
    """Start recording the conversation (queues recorded ``on_demand``, or ``always`` when it
    has not started), or pause and resume it (while a card number is read out)."""
    working = await _working(session, actor, interaction_id)
    call = working.call
    name = call.recording_name or calls.recording_name_of(call.id)
    if action == "start":
        if _policy(working.queue) is Recording.never:
            raise Conflict("This queue's calls are not recorded.", code="recording_not_allowed")
        if call.recording_state is not None:
            raise Conflict("The call is being recorded already.", code="recording_started")
        _, bridge_id = _connected(call, "record")
        async with _pbx(session, call, settings) as ari:
            await ari.record_bridge(bridge_id, name, format=RECORDING_FORMAT)
        call.recording_name, state, kind = name, "recording", "recording_started"
    elif action == "pause":
        if call.recording_state != "recording":
            raise Conflict("The call is not being recorded.", code="recording_not_active")
        async with _pbx(session, call, settings) as ari:
            await ari.pause_recording(name)
        state, kind = "paused", "recording_paused"
    else:
        if call.recording_state != "paused":
            raise Conflict("The recording is not paused.", code="recording_not_paused")
        async with _pbx(session, call, settings) as ari:
            await ari.resume_recording(name)
        state, kind = "recording", "recording_resumed"
    before = call.recording_state
    call.recording_state = state
    await audit.record(
        session,
        actor,
        f"call.{kind}",
        resource_type="call",
        resource_id=call.id,
        tenant_id=require_tenant(session),
        before={"recording": before},
        after={"recording": state, "interaction_id": str(call.interaction_id), "name": name},
    )
    await _timeline(session, working, actor, kind, recording=name)
    await calls.publish(session, call, kind)
    return describe(call, working.queue)


# --- playing a recording back ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordingFile:
    name: str
    media_type: str
    content: bytes


async def recording_file(
    session: AsyncSession, actor: Actor, interaction_id: uuid.UUID, *, settings: Settings
) -> RecordingFile:
    """The finished recording of the interaction's call, as the PBX stored it, for the agent
    who took it and for supervisors and admins. Every playback is audited
    (``recording.play``), in a unit of work of its own: reading is a safe request."""
    interaction = await conversations.visible_interaction(session, actor, interaction_id)
    _require_worker(actor, interaction)
    call = await session.scalar(
        select(Call)
        .where(Call.interaction_id == interaction_id, Call.recording_name.is_not(None))
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(1)
    )
    if call is None or call.recording_name is None:
        raise NotFound("recording", "This interaction has no recording.")
    if call.recording_state == "deleted":  # by the tenant's retention (voice.retention)
        raise NotFound("recording", "The recording was deleted after its retention period.")
    if call.recording_state != "done":
        raise Conflict(
            "The call is still being recorded; the file is ready when it ends.",
            code="recording_in_progress",
        )
    name = call.recording_name
    async with _pbx(session, call, settings) as ari:
        try:
            content = await ari.stored_recording(name)
        except AriRequestFailed as error:
            if error.status == NOT_FOUND_STATUS:
                raise NotFound("recording", "The PBX no longer has this recording.") from error
            raise
    scope = session_scope(session)
    async with database_of(session).session(scope) as writer:
        await audit.record(
            writer,
            actor,
            "recording.play",
            resource_type="call",
            resource_id=call.id,
            tenant_id=require_tenant(session),
            after={"interaction_id": str(interaction_id), "name": name},
        )
    return RecordingFile(name=name, media_type=RECORDING_MEDIA_TYPE, content=content)
