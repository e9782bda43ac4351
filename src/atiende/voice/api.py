"""HTTP routes of voice: the tenant's numbers, IVR menus and PBXs (``/api/v1/voice/...``),
and the controls of an interaction's phone call (``/api/v1/interactions/{id}/call/...``) with
the playback of its recording. Roles are checked by ``voice.numbers``, ``voice.ivr_store``
and ``voice.control``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from atiende.core.errors import PermissionDenied
from atiende.identity.models import Role
from atiende.voice import control, ivr_store, numbers, phones
from atiende.voice import service as pbxs
from atiende.voice.control import (
    CallOut,
    ConsultRequest,
    DtmfRequest,
    ForwardRequest,
    LiveCallOut,
    RecordingRequest,
)
from atiende.voice.ivr_store import MenuCreate, MenuOut, MenuUpdate
from atiende.voice.numbers import NumberCreate, NumberOut, NumberUpdate
from atiende.voice.phones import ExtensionOut, ExtensionSettings
from atiende.voice.service import PbxCreate, PbxUpdate
from atiende.web.deps import CurrentPrincipal, Session, app_state

router = APIRouter(prefix="/api/v1", tags=["voice"])
CREATED = status.HTTP_201_CREATED
NO_CONTENT = status.HTTP_204_NO_CONTENT
CALL_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "`interaction_not_found`, `call_not_found`"},
    403: {"description": "`permission_denied`: not the agent on the call, nor a supervisor"},
    409: {
        "description": "`call_ended`, `call_not_connected`, `call_action_failed` "
        "(the PBX refused; `details.pbx_message` has its words)"
    },
    503: {"description": "`pbx_unavailable`: the PBX could not be reached"},
}
MENU_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "`ivr_menu_name_taken`"},
    422: {
        "description": "`ivr_prompt_invalid`, `ivr_option_invalid`, `unknown_queue`, "
        "`queue_channel_mismatch`, `unknown_ivr_menu` (`details.field` names the part)"
    },
}


class PbxOut(BaseModel):
    """A PBX as the admin page lists it; the ARI password is never returned."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    ari_url: str
    ari_username: str
    app_name: str
    outbound_dial: str | None
    outbound_caller_id: str | None
    created_at: datetime


# --- numbers and PBXs --------------------------------------------------------------------------


@router.get("/voice/pbxs", response_model=list[PbxOut])
async def list_pbxs(principal: CurrentPrincipal, session: Session) -> list[PbxOut]:
    if not principal.actor.has(Role.admin, Role.supervisor):
        raise PermissionDenied()
    return [PbxOut.model_validate(p) for p in await pbxs.list_pbxs(session)]


# --- PBX administration ------------------------------------------------------------------------


class PbxCheckOut(BaseModel):
    """What asking the PBX found."""

    id: uuid.UUID
    name: str
    version: str = Field(description="Asterisk's version (GET /asterisk/info).")
    app_name: str
    app_active: bool = Field(description="Call control holds the Stasis application now.")
    websocket_ok: bool = Field(
        description="The events WebSocket is held by call control, or could be opened."
    )
    websocket_error: str | None


class PbxConfigOut(BaseModel):
    """`atiende pbx config --json` for the PBX: secrets are placeholders."""

    tenant: str
    pbx: str | None
    secrets_shown: bool
    files: dict[str, str]


PBX_CHECK_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "`pbx_not_found`"},
    502: {
        "description": "`pbx_unreachable` (no answer, or not Asterisk's ARI: "
        "`details.pbx_status`), `pbx_auth_failed` (the PBX refused the user or password)"
    },
}


@router.post(
    "/voice/pbxs",
    response_model=PbxOut,
    status_code=CREATED,
    responses={409: {"description": "`pbx_name_taken`"}},
)
async def create_pbx(
    request: Request, principal: CurrentPrincipal, session: Session, body: PbxCreate
) -> PbxOut:
    """Register a PBX (administrators). The ARI password is write-only: stored sealed,
    never returned."""
    settings = app_state(request).settings
    return PbxOut.model_validate(
        await pbxs.add_pbx(session, principal.actor, body, settings=settings)
    )


@router.get("/voice/pbxs/{pbx_id}", response_model=PbxOut)
async def get_pbx(principal: CurrentPrincipal, session: Session, pbx_id: uuid.UUID) -> PbxOut:
    return PbxOut.model_validate(await pbxs.get_pbx(session, principal.actor, pbx_id))


@router.patch(
    "/voice/pbxs/{pbx_id}",
    response_model=PbxOut,
    responses={409: {"description": "`pbx_name_taken`"}},
)
async def update_pbx(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    pbx_id: uuid.UUID,
    body: PbxUpdate,
) -> PbxOut:
    """Change any of name, ari_url, ari_username, app_name; a given ari_password replaces
    the stored one."""
    settings = app_state(request).settings
    return PbxOut.model_validate(
        await pbxs.update_pbx(session, principal.actor, pbx_id, body, settings=settings)
    )


@router.delete(
    "/voice/pbxs/{pbx_id}",
    status_code=NO_CONTENT,
    responses={409: {"description": "`pbx_in_use`: the PBX has carried calls"}},
)
async def delete_pbx(principal: CurrentPrincipal, session: Session, pbx_id: uuid.UUID) -> None:
    await pbxs.delete_pbx(session, principal.actor, pbx_id)


@router.post(
    "/voice/pbxs/{pbx_id}/test",
    response_model=PbxCheckOut,
    responses=PBX_CHECK_ERRORS,
)
async def check_pbx(
    request: Request, principal: CurrentPrincipal, session: Session, pbx_id: uuid.UUID
) -> Any:
    """Connect to the PBX as Atiende would: its version, whether call control holds the
    Stasis application, and whether the events WebSocket opens. Audited (`pbx.check`),
    failures too."""
    settings = app_state(request).settings
    found = await pbxs.check_pbx(session, principal.actor, pbx_id, settings=settings)
    if found.failure is not None:
        # Answered, not raised: the unit of work still commits the check's audit entry.
        error = found.failure
        return JSONResponse(error.to_body(), status_code=error.status_code)
    return PbxCheckOut(
        id=found.pbx.id,
        name=found.pbx.name,
        version=found.version,
        app_name=found.pbx.app_name,
        app_active=found.app_active,
        websocket_ok=found.websocket_ok,
        websocket_error=found.websocket_error,
    )


@router.get("/voice/pbxs/{pbx_id}/config", response_model=PbxConfigOut)
async def pbx_config(
    request: Request, principal: CurrentPrincipal, session: Session, pbx_id: uuid.UUID
) -> PbxConfigOut:
    """The Asterisk files the PBX needs (ari, http, pjsip and extensions.conf), as
    `atiende pbx config --json` prints them; passwords are placeholders."""
    settings = app_state(request).settings
    config = await pbxs.config_of(session, principal.actor, pbx_id, settings=settings)
    return PbxConfigOut(
        tenant=config.tenant_slug,
        pbx=config.pbx_name,
        secrets_shown=config.secrets_shown,
        files=config.files,
    )


@router.get("/voice/extensions", response_model=list[ExtensionOut])
async def list_extensions(
    request: Request, principal: CurrentPrincipal, session: Session
) -> list[ExtensionOut]:
    """The tenant's extensions, who holds each, and whether its phone is registered
    (`online`, `offline`, or `unknown` when no PBX answered). Supervisors and admins."""
    settings = app_state(request).settings
    return await phones.list_extensions(session, principal.actor, settings=settings)


@router.get(
    "/voice/extensions/mine",
    response_model=ExtensionOut,
    responses={404: {"description": "`extension_not_found`: the user has no extension"}},
)
async def my_extension(
    request: Request, principal: CurrentPrincipal, session: Session
) -> ExtensionOut:
    """The caller's own extension and whether their phone is registered."""
    settings = app_state(request).settings
    return await phones.my_extension(session, principal.actor, settings=settings)


@router.put(
    "/voice/extensions/mine",
    response_model=ExtensionOut,
    responses={404: {"description": "`extension_not_found`: the user has no extension"}},
)
async def set_my_extension(
    request: Request, principal: CurrentPrincipal, session: Session, body: ExtensionSettings
) -> ExtensionOut:
    """The caller's phone settings: `auto_answer` asks the phone to pick up offered calls by
    itself where it allows that. Audited."""
    settings = app_state(request).settings
    return await phones.set_my_extension(session, principal.actor, body, settings=settings)


@router.get("/voice/numbers", response_model=list[NumberOut])
async def list_numbers(principal: CurrentPrincipal, session: Session) -> list[NumberOut]:
    rows = await numbers.list_numbers(session, principal.actor)
    return [NumberOut.model_validate(n) for n in rows]


@router.post("/voice/numbers", response_model=NumberOut, status_code=CREATED)
async def create_number(
    principal: CurrentPrincipal, session: Session, body: NumberCreate
) -> NumberOut:
    """Calls to the number wait in the queue (which must serve voice). The number is
    stored as the dialplan matches it: digits, optionally after a `+`."""
    return NumberOut.model_validate(await numbers.create_number(session, principal.actor, body))


@router.get("/voice/numbers/{number_id}", response_model=NumberOut)
async def get_number(
    principal: CurrentPrincipal, session: Session, number_id: uuid.UUID
) -> NumberOut:
    return NumberOut.model_validate(await numbers.get_number(session, principal.actor, number_id))


@router.patch("/voice/numbers/{number_id}", response_model=NumberOut)
async def update_number(
    principal: CurrentPrincipal, session: Session, number_id: uuid.UUID, body: NumberUpdate
) -> NumberOut:
    return NumberOut.model_validate(
        await numbers.update_number(session, principal.actor, number_id, body)
    )


@router.delete("/voice/numbers/{number_id}", status_code=NO_CONTENT)
async def delete_number(
    principal: CurrentPrincipal, session: Session, number_id: uuid.UUID
) -> None:
    await numbers.delete_number(session, principal.actor, number_id)


@router.get("/voice/ivr-menus", response_model=list[MenuOut])
async def list_menus(principal: CurrentPrincipal, session: Session) -> list[MenuOut]:
    rows = await ivr_store.list_menus(session, principal.actor)
    return [MenuOut.model_validate(m) for m in rows]


@router.post("/voice/ivr-menus", response_model=MenuOut, status_code=CREATED, responses=MENU_ERRORS)
async def create_menu(principal: CurrentPrincipal, session: Session, body: MenuCreate) -> MenuOut:
    """A menu callers hear before queueing: its prompt (Asterisk media URIs), and what each
    key does. Numbers play it once their `ivr_menu_id` names it."""
    return MenuOut.model_validate(await ivr_store.create_menu(session, principal.actor, body))


@router.get("/voice/ivr-menus/{menu_id}", response_model=MenuOut)
async def get_menu(principal: CurrentPrincipal, session: Session, menu_id: uuid.UUID) -> MenuOut:
    return MenuOut.model_validate(await ivr_store.get_menu(session, principal.actor, menu_id))


@router.patch("/voice/ivr-menus/{menu_id}", response_model=MenuOut, responses=MENU_ERRORS)
async def update_menu(
    principal: CurrentPrincipal, session: Session, menu_id: uuid.UUID, body: MenuUpdate
) -> MenuOut:
    return MenuOut.model_validate(
        await ivr_store.update_menu(session, principal.actor, menu_id, body)
    )


@router.delete(
    "/voice/ivr-menus/{menu_id}",
    status_code=NO_CONTENT,
    responses={409: {"description": "`ivr_menu_in_use`: a number or another menu uses it"}},
)
async def delete_menu(principal: CurrentPrincipal, session: Session, menu_id: uuid.UUID) -> None:
    await ivr_store.delete_menu(session, principal.actor, menu_id)


@router.get("/voice/calls", response_model=list[LiveCallOut])
async def live_calls(principal: CurrentPrincipal, session: Session) -> list[LiveCallOut]:
    """Calls the PBXs carry now (supervisors and admins): the wallboard's call states."""
    return await control.live_calls(session, principal.actor)


# --- an interaction's call -----------------------------------------------------------------------


@router.get(
    "/interactions/{interaction_id}/call",
    response_model=CallOut,
    responses={404: CALL_ERRORS[404]},
)
async def get_call(
    principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID
) -> CallOut:
    return await control.get_call(session, principal.actor, interaction_id)


@router.post(
    "/interactions/{interaction_id}/call/hold", response_model=CallOut, responses=CALL_ERRORS
)
async def hold(
    request: Request, principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID
) -> CallOut:
    """The caller hears music on hold and is not heard."""
    settings = app_state(request).settings
    return await control.hold(session, principal.actor, interaction_id, settings=settings)


@router.post(
    "/interactions/{interaction_id}/call/resume", response_model=CallOut, responses=CALL_ERRORS
)
async def resume(
    request: Request, principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID
) -> CallOut:
    settings = app_state(request).settings
    return await control.resume(session, principal.actor, interaction_id, settings=settings)


@router.post(
    "/interactions/{interaction_id}/call/mute", response_model=CallOut, responses=CALL_ERRORS
)
async def mute(
    request: Request, principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID
) -> CallOut:
    """The caller stops hearing the agent."""
    settings = app_state(request).settings
    return await control.mute(session, principal.actor, interaction_id, settings=settings)


@router.post(
    "/interactions/{interaction_id}/call/unmute", response_model=CallOut, responses=CALL_ERRORS
)
async def unmute(
    request: Request, principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID
) -> CallOut:
    settings = app_state(request).settings
    return await control.mute(
        session, principal.actor, interaction_id, settings=settings, muted=False
    )


@router.post(
    "/interactions/{interaction_id}/call/hangup",
    response_model=CallOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=CALL_ERRORS,
)
async def hang_up(
    request: Request, principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID
) -> CallOut:
    """Hangs up the caller; the call ends (and the wrap-up starts) when the PBX reports it."""
    settings = app_state(request).settings
    return await control.hang_up(session, principal.actor, interaction_id, settings=settings)


class PlacedCall(BaseModel):
    interaction_id: uuid.UUID
    call: CallOut


@router.post(
    "/calls", response_model=PlacedCall, status_code=status.HTTP_202_ACCEPTED, responses=CALL_ERRORS
)
async def place_call(
    request: Request, principal: CurrentPrincipal, session: Session, body: control.PlaceCall
) -> PlacedCall:
    """Click-to-call: rings your phone; when you answer, the customer's number is dialled
    through the PBX's outbound route. The call is a new voice interaction, yours."""
    settings = app_state(request).settings
    interaction_id, call = await control.place_call(
        session, principal.actor, body, settings=settings
    )
    return PlacedCall(interaction_id=interaction_id, call=call)


class SuperviseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: control.SupervisionMode = Field(
        description="listen: hear both; whisper: also speak to the agent only; barge: join."
    )


@router.post(
    "/interactions/{interaction_id}/call/supervise",
    response_model=CallOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=CALL_ERRORS,
)
async def supervise(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    interaction_id: uuid.UUID,
    body: SuperviseRequest,
) -> CallOut:
    """Rings the supervisor's phone; answering it joins the call to listen, whisper to the
    agent, or barge in. Supervisors and admins; audited."""
    settings = app_state(request).settings
    return await control.supervise(
        session, principal.actor, interaction_id, body.mode, settings=settings
    )


TRANSFER_ERRORS: dict[int | str, dict[str, Any]] = {
    **CALL_ERRORS,
    404: {"description": "`interaction_not_found`, `call_not_found`, `agent_not_found`"},
    409: {
        "description": "`call_ended`, `call_not_connected`, `consult_in_progress`, "
        "`call_transferring`, `outbound_not_configured`, `agent_without_phone`, `no_consult`, "
        "`consult_not_answered`, `agent_at_capacity`"
    },
    422: {"description": "`invalid_phone`, `consult_target`, `consult_self`"},
}


@router.post(
    "/interactions/{interaction_id}/call/forward",
    response_model=CallOut,
    responses=TRANSFER_ERRORS,
)
async def forward(
    principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID, body: ForwardRequest
) -> CallOut:
    """Blind transfer to an outside number through the PBX's outbound route. The agent's
    phone is released at once; the caller goes back to the head of the queue if the number
    does not answer. The call panel follows `call.updated` events."""
    return await control.forward(session, principal.actor, interaction_id, body)


@router.post(
    "/interactions/{interaction_id}/call/consult",
    response_model=CallOut,
    responses=TRANSFER_ERRORS,
)
async def consult(
    principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID, body: ConsultRequest
) -> CallOut:
    """Attended transfer: hold the caller and call another agent (`agent_id`) or an outside
    number (`number`); then complete or cancel."""
    return await control.consult(session, principal.actor, interaction_id, body)


@router.post(
    "/interactions/{interaction_id}/call/consult/complete",
    response_model=CallOut,
    responses=TRANSFER_ERRORS,
)
async def complete_consult(
    principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID
) -> CallOut:
    """Hand the caller to the one consulted; the agent's phone hangs up."""
    return await control.complete_consult(session, principal.actor, interaction_id)


@router.post(
    "/interactions/{interaction_id}/call/consult/cancel",
    response_model=CallOut,
    responses=TRANSFER_ERRORS,
)
async def cancel_consult(
    principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID
) -> CallOut:
    """Hang up the one consulted and go back to the caller."""
    return await control.cancel_consult(session, principal.actor, interaction_id)


@router.post(
    "/interactions/{interaction_id}/call/dtmf", response_model=CallOut, responses=CALL_ERRORS
)
async def send_dtmf(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    interaction_id: uuid.UUID,
    body: DtmfRequest,
) -> CallOut:
    """Keypad tones towards the caller's side; the digits are not stored."""
    settings = app_state(request).settings
    return await control.send_dtmf(
        session, principal.actor, interaction_id, body.digits, settings=settings
    )


@router.post(
    "/interactions/{interaction_id}/call/recording",
    response_model=CallOut,
    responses={
        **CALL_ERRORS,
        409: {
            "description": "`call_ended`, `call_not_connected`, `call_action_failed`, "
            "`recording_not_allowed` (the queue records never), `recording_started`, "
            "`recording_not_active`, `recording_not_paused`"
        },
    },
)
async def recording(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    interaction_id: uuid.UUID,
    body: RecordingRequest,
) -> CallOut:
    """`start` (queues recorded on demand, or always when it has not started), `pause` and
    `resume` (while a card number is given). Audited."""
    settings = app_state(request).settings
    return await control.recording(
        session, principal.actor, interaction_id, body.action, settings=settings
    )


@router.get(
    "/interactions/{interaction_id}/recording",
    response_class=Response,
    responses={
        200: {"content": {control.RECORDING_MEDIA_TYPE: {}}},
        404: {"description": "`interaction_not_found`, `recording_not_found`"},
        409: {"description": "`recording_in_progress`"},
        503: {"description": "`pbx_unavailable`"},
    },
)
async def play_recording(
    request: Request, principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID
) -> Response:
    """The call's recording as the PBX stored it (the agent who took the call, supervisors
    and admins). Every playback is audited as `recording.play`."""
    settings = app_state(request).settings
    found = await control.recording_file(
        session, principal.actor, interaction_id, settings=settings
    )
    return Response(
        content=found.content,
        media_type=found.media_type,
        headers={
            "Content-Disposition": f'inline; filename="{found.name}.{control.RECORDING_FORMAT}"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
