"""Transfers of a call through the API: a blind forward to an outside number, and an attended
transfer (consult another agent or a number, then complete or cancel). The web side asks the
PBX nothing: it checks the request, changes the call's row, writes the timeline and emits a
``call.command`` for call control (no browser receives it) and ``call.updated``. Every
refusal is a clear error that changes nothing and commands nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from atiende.contacts.models import IdentityKind
from atiende.conversations import service as conversations
from atiende.conversations.models import Channel
from atiende.core.db import Database, Scope, now
from atiende.core.events import EventRecord
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.routing import service as routing
from atiende.routing.models import Agent, Offer, OfferStatus
from atiende.tenancy.models import Tenant
from atiende.voice import service
from atiende.voice.calls import bridge_id_of
from atiende.voice.models import Call, Extension
from conversation_factories import open_chat
from factories import Caller, caller, make_tenant
from fakes.ari import PASSWORD, USERNAME, FakeAri, fake_ari
from routing_factories import make_queue

CUSTOMER = "1795632527.2"
CALLER = "+525512345678"
DIAL = "PJSIP/{number}@trunk"
COLLEAGUE_EXTENSION = "1002"


@pytest.fixture
async def ari() -> AsyncIterator[FakeAri]:
    async with fake_ari() as fake:
        yield fake


@dataclass
class Desk:
    tenant: Tenant
    agent: Caller
    colleague: Caller  # another agent, with an extension and room for a call
    interaction_id: uuid.UUID
    call_id: uuid.UUID

    @property
    def base(self) -> str:
        return f"/api/v1/interactions/{self.interaction_id}/call"


async def _agent_profile(db: Database, tenant: Tenant, user_id: uuid.UUID) -> None:
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.ensure_agent(session, user_id)


async def _extension(db: Database, tenant: Tenant, user_id: uuid.UUID, number: str) -> None:
    async with db.session(Scope.tenant(tenant.id)) as session:
        session.add(Extension(number=number, user_id=user_id, created_at=now(session)))


async def _desk(
    app: FastAPI,
    db: Database,
    ari: FakeAri,
    *,
    outbound_dial: str | None = DIAL,
    connected: bool = True,
) -> Desk:
    """An agent talking on the phone with a caller (the call's row as call control leaves it
    once bridged), and a colleague who could take the call."""
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, name="Ventas", channels=["voice"])
    agent = await caller(app, tenant, Role.agent)
    colleague = await caller(app, tenant, Role.agent)
    for person, extension in ((agent, "1001"), (colleague, COLLEAGUE_EXTENSION)):
        await _agent_profile(db, tenant, person.id)
        await _extension(db, tenant, person.id, extension)
    data = service.PbxCreate(
        name="main",
        ari_url=ari.url,
        ari_username=USERNAME,
        ari_password=PASSWORD,
        outbound_dial=outbound_dial,
    )
    async with db.session(Scope.tenant(tenant.id)) as session:
        pbx = await service.add_pbx(
            session, Actor.system(), data, settings=app.state.atiende.settings
        )
    interaction_id, _ = await open_chat(
        db,
        tenant,
        agent_id=agent.id,
        channel=Channel.voice,
        kind=IdentityKind.phone,
        who=CALLER,
        inbound=(),
        queue_id=queue.id,
    )
    call_id = uuid.uuid4()
    agent_channel = f"atiende-offer-{uuid.uuid4().hex}"
    async with db.session(Scope.tenant(tenant.id)) as session:
        instant = now(session)
        session.add(
            Call(
                id=call_id,
                interaction_id=interaction_id,
                pbx_id=pbx.id,
                direction="inbound",
                customer_channel_id=CUSTOMER,
                agent_channel_id=agent_channel if connected else None,
                agent_id=agent.id if connected else None,
                bridge_id=bridge_id_of(call_id) if connected else None,
                caller_number=CALLER,
                number="5551000",
                state="bridged" if connected else "queued",
                started_at=instant - timedelta(seconds=30),
                answered_at=instant - timedelta(seconds=30),
                connected_at=instant if connected else None,
            )
        )
    ari.add_call(CUSTOMER, agent_channel, bridge_id=bridge_id_of(call_id))
    return Desk(tenant, agent, colleague, interaction_id, call_id)


async def _row(db: Database, desk: Desk) -> Call:
    async with db.session(Scope.tenant(desk.tenant.id), read_only=True) as session:
        row = await session.get(Call, desk.call_id)
        assert row is not None
        return row


async def _set_row(db: Database, desk: Desk, **fields: Any) -> None:
    """What call control writes as the transfer goes on."""
    async with db.session(Scope.tenant(desk.tenant.id)) as session:
        row = await session.get(Call, desk.call_id)
        assert row is not None
        for field, value in fields.items():
            setattr(row, field, value)


async def _timeline(db: Database, desk: Desk) -> list[tuple[str, dict[str, Any], Any]]:
    async with db.session(Scope.tenant(desk.tenant.id), read_only=True) as session:
        entries = await conversations.timeline(session, desk.interaction_id)
        return [(e.type, e.data, e.actor_id) for e in entries if e.type.startswith("call.")]


async def _timeline_agents(db: Database, desk: Desk) -> list[uuid.UUID | None]:
    """The agent column of the call's timeline entries."""
    async with db.session(Scope.tenant(desk.tenant.id), read_only=True) as session:
        entries = await conversations.timeline(session, desk.interaction_id)
        return [e.agent_id for e in entries if e.type.startswith("call.")]


async def _events(db: Database, desk: Desk, kind: str) -> list[EventRecord]:
    async with db.session(Scope.system(), read_only=True) as session:
        rows = await session.scalars(
            select(EventRecord)
            .where(EventRecord.type == kind, EventRecord.tenant_id == desk.tenant.id)
            .order_by(EventRecord.id)
        )
        return list(rows)


async def _commands(db: Database, desk: Desk) -> list[dict[str, Any]]:
    return [row.data for row in await _events(db, desk, "call.command")]


async def _nothing_happened(db: Database, desk: Desk, ari: FakeAri) -> None:
    row = await _row(db, desk)
    assert (row.state, row.forwarded_to) == ("bridged", None)
    assert (row.consult_state, row.consult_agent_id, row.consult_number) == (None, None, None)
    assert await _timeline(db, desk) == []
    assert await _commands(db, desk) == []
    assert await _events(db, desk, "call.updated") == []
    assert ari.requests == []


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def _command(desk: Desk, command: str, **fields: Any) -> dict[str, Any]:
    """A ``call.command`` event's data as logged."""
    return {
        "call_id": str(desk.call_id),
        "interaction_id": str(desk.interaction_id),
        "command": command,
        "number": None,
        "agent_id": None,
        "extension": None,
        "actor_id": str(desk.agent.id),
        **fields,
    }


async def _consulting(db: Database, desk: Desk, *, answered: bool) -> None:
    """The agent consults the colleague; with ``answered`` the colleague picked up."""
    _ok(
        await desk.agent.client.post(
            f"{desk.base}/consult", json={"agent_id": str(desk.colleague.id)}
        )
    )
    if answered:
        await _set_row(db, desk, consult_state="talking")


# --- forward (blind transfer) --------------------------------------------------------------


async def test_forward_sends_the_caller_to_an_outside_number(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    body = _ok(
        await desk.agent.client.post(f"{desk.base}/forward", json={"number": "55 8765 4321"})
    )
    assert (body["state"], body["forwarded_to"], body["consult"]) == (
        "transferring",
        "+525587654321",
        None,
    )

    row = await _row(db, desk)
    assert (row.state, row.forwarded_to) == ("transferring", "+525587654321")
    assert await _commands(db, desk) == [_command(desk, "forward", number="+525587654321")]
    (command,) = await _events(db, desk, "call.command")
    assert command.audience == []  # for call control only, not for browsers
    ((kind, data, actor),) = await _timeline(db, desk)
    assert (kind, actor) == ("call.transfer_requested", desk.agent.id)
    assert (data["number"], data["mode"], data["role"], data["channel_id"]) == (
        "+525587654321",
        "blind",
        "customer",
        CUSTOMER,
    )
    (updated,) = [row.data for row in await _events(db, desk, "call.updated")]
    assert (updated["change"], updated["state"], updated["forwarded_to"]) == (
        "forward",
        "transferring",
        "+525587654321",
    )
    assert ari.requests == []  # call control dials, not the web request

    shown = _ok(await desk.agent.client.get(desk.base))
    assert (shown["state"], shown["forwarded_to"]) == ("transferring", "+525587654321")
    # A call already being transferred is not transferred again.
    again = await desk.agent.client.post(f"{desk.base}/forward", json={"number": CALLER})
    _error(again, 409, "call_transferring")
    assert len(await _commands(db, desk)) == 1


@pytest.mark.parametrize("number", ["12345", "not a phone", "+52 55", "+999 1234 5678"])
async def test_forward_to_an_invalid_number_is_refused(
    app: FastAPI, db: Database, ari: FakeAri, number: str
) -> None:
    desk = await _desk(app, db, ari)
    response = await desk.agent.client.post(f"{desk.base}/forward", json={"number": number})
    _error(response, 422, "invalid_phone")
    await _nothing_happened(db, desk, ari)


async def test_forward_without_an_outbound_route_is_refused(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari, outbound_dial=None)
    response = await desk.agent.client.post(f"{desk.base}/forward", json={"number": CALLER})
    _error(response, 409, "outbound_not_configured")
    await _nothing_happened(db, desk, ari)


async def test_a_call_not_yet_connected_cannot_be_forwarded_or_consulted_on(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari, connected=False)
    forward = await desk.agent.client.post(f"{desk.base}/forward", json={"number": CALLER})
    _error(forward, 409, "call_not_connected")
    consult = await desk.agent.client.post(
        f"{desk.base}/consult", json={"agent_id": str(desk.colleague.id)}
    )
    _error(consult, 409, "call_not_connected")
    row = await _row(db, desk)
    assert (row.state, row.forwarded_to, row.consult_state) == ("queued", None, None)
    assert await _commands(db, desk) == []
    assert await _timeline(db, desk) == []


async def test_only_the_agent_on_the_call_or_a_supervisor_transfers_it(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    # An agent the call is offered to sees it, but does not work it.
    offered = await caller(app, desk.tenant, Role.agent)
    async with db.session(Scope.tenant(desk.tenant.id)) as session:
        await routing.ensure_agent(session, offered.id)
        instant = now(session)
        session.add(
            Offer(
                interaction_id=desk.interaction_id,
                agent_id=offered.id,
                status=OfferStatus.pending,
                created_at=instant,
                expires_at=instant + timedelta(seconds=30),
            )
        )
    requests: list[tuple[str, dict[str, Any] | None]] = [
        ("forward", {"number": CALLER}),
        ("consult", {"agent_id": str(desk.colleague.id)}),
        ("consult/complete", None),
        ("consult/cancel", None),
    ]
    for path, body in requests:
        response = await offered.client.post(f"{desk.base}/{path}", json=body)
        _error(response, 403, "permission_denied")
    # Someone it is not offered to does not see it at all.
    stranger = await caller(app, desk.tenant, Role.agent)
    for path, body in requests:
        response = await stranger.client.post(f"{desk.base}/{path}", json=body)
        _error(response, 404, "interaction_not_found")
    await _nothing_happened(db, desk, ari)

    supervisor = await caller(app, desk.tenant, Role.supervisor)
    _ok(await supervisor.client.post(f"{desk.base}/forward", json={"number": CALLER}))
    (command,) = await _commands(db, desk)
    assert (command["command"], command["actor_id"]) == ("forward", str(supervisor.id))


# --- consult (attended transfer) -----------------------------------------------------------


@pytest.mark.parametrize("both", [True, False])
async def test_a_consultation_names_exactly_one_of_an_agent_and_a_number(
    app: FastAPI, db: Database, ari: FakeAri, both: bool
) -> None:
    desk = await _desk(app, db, ari)
    body = {"agent_id": str(desk.colleague.id), "number": CALLER} if both else {}
    response = await desk.agent.client.post(f"{desk.base}/consult", json=body)
    _error(response, 422, "consult_target")
    await _nothing_happened(db, desk, ari)


async def test_an_agent_cannot_consult_themselves(app: FastAPI, db: Database, ari: FakeAri) -> None:
    desk = await _desk(app, db, ari)
    response = await desk.agent.client.post(
        f"{desk.base}/consult", json={"agent_id": str(desk.agent.id)}
    )
    _error(response, 422, "consult_self")
    await _nothing_happened(db, desk, ari)


async def test_consulting_an_agent_without_a_phone_or_profile_is_refused(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    phoneless = await caller(app, desk.tenant, Role.agent)
    await _agent_profile(db, desk.tenant, phoneless.id)
    response = await desk.agent.client.post(
        f"{desk.base}/consult", json={"agent_id": str(phoneless.id)}
    )
    _error(response, 409, "agent_without_phone")
    response = await desk.agent.client.post(
        f"{desk.base}/consult", json={"agent_id": str(uuid.uuid4())}
    )
    _error(response, 404, "agent_not_found")
    await _nothing_happened(db, desk, ari)


async def test_consulting_an_agent_rings_their_extension(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    body = _ok(
        await desk.agent.client.post(
            f"{desk.base}/consult", json={"agent_id": str(desk.colleague.id)}
        )
    )
    consult = {"agent_id": str(desk.colleague.id), "number": None, "state": "ringing"}
    assert body["consult"] == consult

    row = await _row(db, desk)
    assert (row.consult_state, row.consult_agent_id, row.consult_number) == (
        "ringing",
        desk.colleague.id,
        None,
    )
    assert row.forwarded_to is None
    assert await _commands(db, desk) == [
        _command(desk, "consult", agent_id=str(desk.colleague.id), extension=COLLEAGUE_EXTENSION)
    ]
    ((kind, data, actor),) = await _timeline(db, desk)
    assert (kind, data["to_agent_id"], actor) == (
        "call.consult_requested",
        str(desk.colleague.id),
        desk.agent.id,
    )
    assert await _timeline_agents(db, desk) == [desk.agent.id]  # the one working the call
    (updated,) = [row.data for row in await _events(db, desk, "call.updated")]
    assert (updated["change"], updated["consult_state"], updated["consult_agent_id"]) == (
        "consult",
        "ringing",
        str(desk.colleague.id),
    )
    assert ari.requests == []
    assert _ok(await desk.agent.client.get(desk.base))["consult"] == consult


async def test_consulting_an_outside_number_dials_it_in_e164(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    body = _ok(await desk.agent.client.post(f"{desk.base}/consult", json={"number": "5587654321"}))
    assert body["consult"] == {"agent_id": None, "number": "+525587654321", "state": "ringing"}
    row = await _row(db, desk)
    assert (row.consult_state, row.consult_agent_id, row.consult_number) == (
        "ringing",
        None,
        "+525587654321",
    )
    assert await _commands(db, desk) == [_command(desk, "consult", number="+525587654321")]


async def test_consulting_a_number_needs_a_valid_one_and_an_outbound_route(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    response = await desk.agent.client.post(f"{desk.base}/consult", json={"number": "12345"})
    _error(response, 422, "invalid_phone")
    await _nothing_happened(db, desk, ari)
    closed = await _desk(app, db, ari, outbound_dial=None)
    response = await closed.agent.client.post(f"{closed.base}/consult", json={"number": CALLER})
    _error(response, 409, "outbound_not_configured")
    await _nothing_happened(db, closed, ari)


async def test_during_a_consultation_another_one_or_a_forward_is_refused(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    await _consulting(db, desk, answered=False)
    other = await caller(app, desk.tenant, Role.agent)
    await _agent_profile(db, desk.tenant, other.id)
    await _extension(db, desk.tenant, other.id, "1003")
    second = await desk.agent.client.post(f"{desk.base}/consult", json={"agent_id": str(other.id)})
    _error(second, 409, "consult_in_progress")
    forward = await desk.agent.client.post(f"{desk.base}/forward", json={"number": CALLER})
    _error(forward, 409, "consult_in_progress")
    row = await _row(db, desk)
    assert (row.consult_state, row.consult_agent_id, row.forwarded_to, row.state) == (
        "ringing",
        desk.colleague.id,
        None,
        "bridged",
    )
    assert [c["command"] for c in await _commands(db, desk)] == ["consult"]


async def test_a_consultation_completes_only_once_the_one_consulted_answered(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    await _consulting(db, desk, answered=False)
    _error(
        await desk.agent.client.post(f"{desk.base}/consult/complete"), 409, "consult_not_answered"
    )
    assert [c["command"] for c in await _commands(db, desk)] == ["consult"]

    await _set_row(db, desk, consult_state="talking")
    body = _ok(await desk.agent.client.post(f"{desk.base}/consult/complete"))
    assert body["consult"]["state"] == "talking"
    assert (await _commands(db, desk))[-1] == _command(desk, "consult_complete")
    kinds = [kind for kind, _, _ in await _timeline(db, desk)]
    assert kinds == ["call.consult_requested", "call.consult_finish_requested"]
    assert ari.requests == []


async def test_completing_towards_an_agent_with_no_room_for_a_call_is_refused(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    await _consulting(db, desk, answered=True)
    async with db.session(Scope.tenant(desk.tenant.id)) as session:
        colleague = await session.get(Agent, desk.colleague.id)
        assert colleague is not None
        colleague.voice_load = colleague.voice_capacity  # took another call meanwhile
    response = await desk.agent.client.post(f"{desk.base}/consult/complete")
    _error(response, 409, "agent_at_capacity")
    assert [c["command"] for c in await _commands(db, desk)] == ["consult"]
    assert [kind for kind, _, _ in await _timeline(db, desk)] == ["call.consult_requested"]
    assert (await _row(db, desk)).consult_state == "talking"


async def test_completing_or_cancelling_without_a_consultation_is_refused(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    for action in ("complete", "cancel"):
        response = await desk.agent.client.post(f"{desk.base}/consult/{action}")
        _error(response, 409, "no_consult")
    await _nothing_happened(db, desk, ari)


async def test_cancelling_a_consultation_asks_call_control_to_go_back(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    await _consulting(db, desk, answered=False)
    body = _ok(await desk.agent.client.post(f"{desk.base}/consult/cancel"))
    assert body["consult"]["agent_id"] == str(desk.colleague.id)  # until call control ends it
    assert (await _commands(db, desk))[-1] == _command(desk, "consult_cancel")
    kinds = [kind for kind, _, _ in await _timeline(db, desk)]
    assert kinds == ["call.consult_requested", "call.consult_cancel_requested"]
    changes = [row.data["change"] for row in await _events(db, desk, "call.updated")]
    assert changes == ["consult", "consult_cancel"]
    assert ari.requests == []
