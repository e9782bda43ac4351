"""Supervisors joining a call and agents placing one, through the API against a local ARI.

Listen, whisper and barge ring the supervisor's own phone into the call (one originate the
call-control runtime recognises by its Stasis arguments), audited and written to the
timeline; click-to-call opens a voice interaction that is the agent's at once and rings the
agent's phone, which dials the customer once answered. Every refusal (an agent supervising,
no phone, no outbound route, a bad number, an agent already on a call, a PBX that is away)
is a clear error that asks the PBX nothing and writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from atiende.audit.models import AuditEntry
from atiende.contacts import service as contacts
from atiende.contacts.models import Contact, IdentityKind
from atiende.conversations import service as conversations
from atiende.conversations.models import Channel, Interaction, InteractionStatus
from atiende.core.db import Database, Scope, now
from atiende.core.events import EventRecord
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.routing import service as routing
from atiende.routing.models import Presence
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


@pytest.fixture
async def ari() -> AsyncIterator[FakeAri]:
    async with fake_ari() as fake:
        yield fake


# --- set-up ------------------------------------------------------------------------------------


async def _pbx(
    app: FastAPI, db: Database, tenant: Tenant, url: str, *, outbound_dial: str | None = DIAL
) -> uuid.UUID:
    data = service.PbxCreate(name="main", ari_url=url, ari_username=USERNAME, ari_password=PASSWORD)
    async with db.session(Scope.tenant(tenant.id)) as session:
        pbx = await service.add_pbx(
            session, Actor.system(), data, settings=app.state.atiende.settings
        )
        pbx.outbound_dial = outbound_dial
        pbx.outbound_caller_id = "+525550001000" if outbound_dial else None
    return pbx.id


async def _extension(db: Database, tenant: Tenant, user_id: uuid.UUID, number: str) -> None:
    async with db.session(Scope.tenant(tenant.id)) as session:
        session.add(Extension(number=number, user_id=user_id, created_at=now(session)))


async def _agent(
    app: FastAPI, db: Database, tenant: Tenant, *, presence: Presence = Presence.available
) -> Caller:
    """An agent with a voice capacity of one call, in the given state."""
    agent = await caller(app, tenant, Role.agent)
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.ensure_agent(session, agent.id)
        if presence is not Presence.offline:
            await routing.set_presence(session, identity.actor_for(agent.user), agent.id, presence)
    await routing.settle()
    return agent


@dataclass
class Talking:
    """An agent talking with a caller, as call control leaves the call once bridged."""

    tenant: Tenant
    agent: Caller
    supervisor: Caller
    interaction_id: uuid.UUID
    call_id: uuid.UUID
    agent_channel: str

    @property
    def supervise(self) -> str:
        return f"/api/v1/interactions/{self.interaction_id}/call/supervise"


async def _talking(
    app: FastAPI, db: Database, ari: FakeAri, *, url: str | None = None, connected: bool = True
) -> Talking:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, name="Ventas", channels=["voice"])
    agent = await caller(app, tenant, Role.agent)
    supervisor = await caller(app, tenant, Role.supervisor)
    pbx_id = await _pbx(app, db, tenant, url or ari.url)
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
                pbx_id=pbx_id,
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
    return Talking(tenant, agent, supervisor, interaction_id, call_id, agent_channel)


# --- reading back ------------------------------------------------------------------------------


async def _timeline(
    db: Database, tenant: Tenant, interaction_id: uuid.UUID
) -> list[tuple[str, dict[str, Any], uuid.UUID | None]]:
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        entries = await conversations.timeline(session, interaction_id)
        return [(e.type, e.data, e.actor_id) for e in entries]


async def _audit(db: Database, tenant: Tenant, action: str) -> list[AuditEntry]:
    async with db.session(Scope.system(), read_only=True) as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.tenant_id == tenant.id, AuditEntry.action == action)
        )
        return list(rows)


async def _call_events(db: Database, tenant: Tenant) -> list[dict[str, Any]]:
    async with db.session(Scope.system(), read_only=True) as session:
        rows = await session.scalars(
            select(EventRecord)
            .where(EventRecord.type == "call.updated", EventRecord.tenant_id == tenant.id)
            .order_by(EventRecord.id)
        )
        return [row.data for row in rows]


async def _counts(db: Database, tenant: Tenant) -> tuple[int, int]:
    """How many interactions and calls the tenant has."""
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        interactions = await session.scalar(select(func.count()).select_from(Interaction))
        calls = await session.scalar(select(func.count()).select_from(Call))
        return int(interactions or 0), int(calls or 0)


def _ok(response: Any, status: int) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


# --- supervisors: listen, whisper, barge -------------------------------------------------------


@pytest.mark.parametrize("mode", ["listen", "whisper", "barge"])
async def test_a_supervisor_joining_a_call_rings_their_own_phone_into_it(
    app: FastAPI, db: Database, ari: FakeAri, mode: str
) -> None:
    talk = await _talking(app, db, ari)
    await _extension(db, talk.tenant, talk.supervisor.id, "2001")
    body = _ok(await talk.supervisor.client.post(talk.supervise, json={"mode": mode}), 202)
    assert (body["id"], body["state"], body["agent_id"]) == (
        str(talk.call_id),
        "bridged",
        str(talk.agent.id),
    )

    ((method, path, params),) = ari.made()
    assert (method, path) == ("POST", "/channels")
    channel_id = params.pop("channelId")
    assert channel_id.startswith("atiende-sup-")
    assert params == {
        "endpoint": "PJSIP/2001",
        "app": "atiende",
        "appArgs": f"@supervise,{talk.call_id},{mode},{talk.supervisor.id}",
        "callerId": f"{mode} <{CALLER}>",
        "timeout": "30",
    }
    assert channel_id in ari.channels

    (entry,) = await _audit(db, talk.tenant, "call.supervise")
    assert (entry.actor_id, entry.resource_type, entry.resource_id) == (
        talk.supervisor.id,
        "interaction",
        str(talk.interaction_id),
    )
    assert entry.after == {"mode": mode, "extension": "2001", "call_id": str(talk.call_id)}
    supervised = [
        (data, actor)
        for kind, data, actor in await _timeline(db, talk.tenant, talk.interaction_id)
        if kind == "call.supervised"
    ]
    assert supervised == [
        (
            {"role": "customer", "channel_id": CUSTOMER, "mode": mode, "extension": "2001"},
            talk.supervisor.id,
        )
    ]
    # The call itself does not change until the supervisor answers.
    assert await _call_events(db, talk.tenant) == []


async def test_an_admin_may_listen_too(app: FastAPI, db: Database, ari: FakeAri) -> None:
    talk = await _talking(app, db, ari)
    admin = await caller(app, talk.tenant, Role.admin)
    await _extension(db, talk.tenant, admin.id, "2002")
    _ok(await admin.client.post(talk.supervise, json={"mode": "listen"}), 202)
    (originate,) = ari.originated
    assert originate["endpoint"] == "PJSIP/2002"
    assert originate["appArgs"] == f"@supervise,{talk.call_id},listen,{admin.id}"
    assert [e.actor_id for e in await _audit(db, talk.tenant, "call.supervise")] == [admin.id]


async def test_an_agent_cannot_listen_to_calls_not_even_their_own(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    talk = await _talking(app, db, ari)
    await _extension(db, talk.tenant, talk.agent.id, "1001")
    response = await talk.agent.client.post(talk.supervise, json={"mode": "listen"})
    _error(response, 403, "permission_denied")
    assert ari.requests == []
    assert await _audit(db, talk.tenant, "call.supervise") == []


async def test_a_supervisor_without_a_phone_is_told_so_and_nothing_rings(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    talk = await _talking(app, db, ari)
    response = await talk.supervisor.client.post(talk.supervise, json={"mode": "whisper"})
    _error(response, 409, "supervisor_without_phone")
    assert ari.requests == []
    assert await _audit(db, talk.tenant, "call.supervise") == []
    kinds = [kind for kind, _, _ in await _timeline(db, talk.tenant, talk.interaction_id)]
    assert "call.supervised" not in kinds


async def test_a_call_not_yet_answered_or_already_over_cannot_be_joined(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    waiting = await _talking(app, db, ari, connected=False)
    await _extension(db, waiting.tenant, waiting.supervisor.id, "2001")
    response = await waiting.supervisor.client.post(waiting.supervise, json={"mode": "barge"})
    _error(response, 409, "call_not_connected")

    async with db.session(Scope.tenant(waiting.tenant.id)) as session:
        row = await session.get(Call, waiting.call_id)
        assert row is not None
        row.state, row.ended_at, row.end_cause = "ended", now(session), "hangup"
    response = await waiting.supervisor.client.post(waiting.supervise, json={"mode": "barge"})
    _error(response, 409, "call_ended")
    assert ari.requests == []
    assert await _audit(db, waiting.tenant, "call.supervise") == []


async def test_an_unknown_mode_is_refused(app: FastAPI, db: Database, ari: FakeAri) -> None:
    talk = await _talking(app, db, ari)
    await _extension(db, talk.tenant, talk.supervisor.id, "2001")
    for body in ({"mode": "spy"}, {}, {"mode": "listen", "extra": 1}):
        _error(
            await talk.supervisor.client.post(talk.supervise, json=body), 422, "validation_error"
        )
    assert ari.requests == []


async def test_a_pbx_that_is_away_is_a_503_and_nothing_is_audited(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    async with fake_ari() as gone:
        away = gone.url
    talk = await _talking(app, db, ari, url=away)
    await _extension(db, talk.tenant, talk.supervisor.id, "2001")
    response = await talk.supervisor.client.post(talk.supervise, json={"mode": "listen"})
    _error(response, 503, "pbx_unavailable")
    assert await _audit(db, talk.tenant, "call.supervise") == []


async def test_another_tenants_supervisor_cannot_join_the_call(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    talk = await _talking(app, db, ari)
    globex = await make_tenant(db)
    intruder = await caller(app, globex, Role.supervisor)
    await _extension(db, globex, intruder.id, "2001")
    response = await intruder.client.post(talk.supervise, json={"mode": "listen"})
    _error(response, 404, "interaction_not_found")
    assert ari.requests == []


# --- click-to-call -----------------------------------------------------------------------------


@dataclass
class Dialer:
    tenant: Tenant
    agent: Caller
    pbx_id: uuid.UUID


async def _dialer(
    app: FastAPI,
    db: Database,
    ari: FakeAri,
    *,
    outbound_dial: str | None = DIAL,
    extension: str | None = "1001",
    presence: Presence = Presence.available,
) -> Dialer:
    tenant = await make_tenant(db)
    pbx_id = await _pbx(app, db, tenant, ari.url, outbound_dial=outbound_dial)
    agent = await _agent(app, db, tenant, presence=presence)
    if extension is not None:
        await _extension(db, tenant, agent.id, extension)
    return Dialer(tenant, agent, pbx_id)


async def test_an_agent_places_a_call_that_is_theirs_at_once_and_rings_their_phone(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    dialer = await _dialer(app, db, ari)
    body = _ok(
        await dialer.agent.client.post("/api/v1/calls", json={"number": "+52 55 1234 5678"}), 202
    )
    interaction_id = uuid.UUID(body["interaction_id"])
    placed = body["call"]
    assert (placed["interaction_id"], placed["direction"], placed["state"]) == (
        str(interaction_id),
        "outbound",
        "dialing",
    )
    assert (placed["caller_number"], placed["agent_id"]) == (CALLER, str(dialer.agent.id))
    assert placed["ended_at"] is None

    async with db.session(Scope.tenant(dialer.tenant.id), read_only=True) as session:
        call = await session.scalar(select(Call).where(Call.interaction_id == interaction_id))
        assert call is not None
        interaction = await session.get(Interaction, interaction_id)
        assert interaction is not None
        contact = await session.get(Contact, interaction.contact_id)
        assert contact is not None
    assert (call.direction, call.state, call.agent_id, call.pbx_id) == (
        "outbound",
        "dialing",
        dialer.agent.id,
        dialer.pbx_id,
    )
    assert call.customer_channel_id.startswith("atiende-out-")
    assert (call.agent_channel_id, call.bridge_id, call.number) == (None, None, None)
    assert (interaction.status, interaction.agent_id, interaction.queue_id) == (
        InteractionStatus.assigned,
        dialer.agent.id,
        None,
    )
    assert (interaction.channel, interaction.subject) == (Channel.voice, CALLER)
    assert contact.phone == CALLER

    assert ari.made() == [("POST", "/channels", ari.originated[0])]
    assert ari.originated == [
        {
            "endpoint": "PJSIP/1001",
            "app": "atiende",
            "appArgs": f"@outbound,{call.id},{call.customer_channel_id}",
            "callerId": f"{CALLER} <{CALLER}>",
            "timeout": "30",
            "channelId": f"atiende-dial-{call.id.hex}",
        }
    ]
    timeline = await _timeline(db, dialer.tenant, interaction_id)
    assert [kind for kind, _, _ in timeline] == ["created", "assigned", "call.dialing"]
    _, dialing, actor = timeline[-1]
    assert actor == dialer.agent.id
    assert dialing == {"role": "agent", "number": CALLER, "extension": "1001"}
    events = await _call_events(db, dialer.tenant)
    assert [(e["change"], e["state"], e["call_id"]) for e in events] == [
        ("dialing", "dialing", str(call.id))
    ]
    # The desktop lists it with the agent's work.
    mine = _ok(await dialer.agent.client.get("/api/v1/me/interactions"), 200)
    assert [item["id"] for item in mine] == [str(interaction_id)]


async def test_calling_back_a_customer_from_their_profile_shows_their_name(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    dialer = await _dialer(app, db, ari)
    async with db.session(Scope.tenant(dialer.tenant.id)) as session:
        contact = await contacts.find_or_create_by_identity(
            session, IdentityKind.phone, CALLER, name="Carmen Cliente", phone=CALLER
        )
    # The agent served her before (a closed SMS conversation), so may read her profile.
    earlier, same = await open_chat(
        db,
        dialer.tenant,
        agent_id=dialer.agent.id,
        status=InteractionStatus.closed,
        channel=Channel.sms,
        kind=IdentityKind.phone,
        who=CALLER,
    )
    assert same == contact.id
    body = _ok(
        await dialer.agent.client.post(
            "/api/v1/calls", json={"number": "55 1234 5678", "contact_id": str(contact.id)}
        ),
        202,
    )
    assert body["interaction_id"] != str(earlier)
    details = _ok(
        await dialer.agent.client.get(f"/api/v1/interactions/{body['interaction_id']}"), 200
    )
    assert details["contact"]["id"] == str(contact.id)
    assert ari.originated[0]["callerId"] == f"Carmen Cliente <{CALLER}>"


async def test_an_agent_cannot_call_on_behalf_of_a_contact_they_may_not_read(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    dialer = await _dialer(app, db, ari)
    async with db.session(Scope.tenant(dialer.tenant.id)) as session:
        stranger = await contacts.find_or_create_by_identity(
            session, IdentityKind.phone, CALLER, name="Nadie Conocido", phone=CALLER
        )
    response = await dialer.agent.client.post(
        "/api/v1/calls", json={"number": CALLER, "contact_id": str(stranger.id)}
    )
    _error(response, 404, "contact_not_found")
    assert ari.requests == []
    assert await _counts(db, dialer.tenant) == (0, 0)


async def test_an_agent_already_on_a_call_cannot_place_another(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    dialer = await _dialer(app, db, ari)
    _ok(await dialer.agent.client.post("/api/v1/calls", json={"number": CALLER}), 202)
    response = await dialer.agent.client.post("/api/v1/calls", json={"number": "+525598765432"})
    _error(response, 409, "agent_at_capacity")
    assert len(ari.originated) == 1
    assert await _counts(db, dialer.tenant) == (1, 1)


async def test_a_pbx_without_an_outbound_route_places_no_call(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    dialer = await _dialer(app, db, ari, outbound_dial=None)
    response = await dialer.agent.client.post("/api/v1/calls", json={"number": CALLER})
    _error(response, 409, "outbound_not_configured")
    assert ari.requests == []
    assert await _counts(db, dialer.tenant) == (0, 0)


@pytest.mark.parametrize("number", ["12345", "+52 55 12", "no es un número"])
async def test_a_number_that_is_not_a_phone_is_refused(
    app: FastAPI, db: Database, ari: FakeAri, number: str
) -> None:
    dialer = await _dialer(app, db, ari)
    response = await dialer.agent.client.post("/api/v1/calls", json={"number": number})
    _error(response, 422, "invalid_phone")
    assert ari.requests == []
    assert await _counts(db, dialer.tenant) == (0, 0)


async def test_an_agent_without_a_phone_or_offline_or_a_tenant_without_a_pbx_is_told_why(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    phoneless = await _dialer(app, db, ari, extension=None)
    response = await phoneless.agent.client.post("/api/v1/calls", json={"number": CALLER})
    _error(response, 409, "agent_without_phone")

    offline = await _dialer(app, db, ari, presence=Presence.offline)
    response = await offline.agent.client.post("/api/v1/calls", json={"number": CALLER})
    _error(response, 409, "agent_unavailable")
    assert await _counts(db, offline.tenant) == (0, 0)

    tenant = await make_tenant(db)
    agent = await _agent(app, db, tenant)
    await _extension(db, tenant, agent.id, "1001")
    _error(
        await agent.client.post("/api/v1/calls", json={"number": CALLER}), 409, "pbx_not_configured"
    )
    assert ari.requests == []


async def test_when_the_pbx_cannot_ring_the_agent_nothing_is_kept(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    dialer = await _dialer(app, db, ari)
    ari.refuse_next("POST", "/channels", 500, "Allocation failed")
    response = await dialer.agent.client.post("/api/v1/calls", json={"number": CALLER})
    body = _error(response, 409, "call_action_failed")
    assert body["details"]["pbx_message"] == "Allocation failed"
    assert await _counts(db, dialer.tenant) == (0, 0)
    assert await _call_events(db, dialer.tenant) == []
    # The agent is not left "on a call": the next attempt goes through.
    _ok(await dialer.agent.client.post("/api/v1/calls", json={"number": CALLER}), 202)
