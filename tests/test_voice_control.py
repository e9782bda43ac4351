"""Call controls through the API against a local ARI: hold and resume, mute, keypad, hang
up and recording each make exactly the ARI requests the PBX needs, then change the call's
row, write the timeline and publish ``call.updated``; the recording plays back to those who
may hear it, audited; and every failure (no call, an ended one, someone else's, a PBX that
is away or refuses) is a clear error that changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from atiende.audit.models import AuditEntry
from atiende.contacts.models import IdentityKind
from atiende.conversations import service as conversations
from atiende.conversations.models import Channel
from atiende.core.clock import TestClock
from atiende.core.db import Database, Scope, now
from atiende.core.events import EventRecord
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.routing import service as routing
from atiende.routing.models import Offer, OfferStatus, Recording
from atiende.tenancy.models import Tenant
from atiende.voice import service
from atiende.voice.calls import bridge_id_of, recording_name_of
from atiende.voice.models import Call
from conversation_factories import open_chat
from factories import Caller, caller, make_tenant
from fakes.ari import PASSWORD, USERNAME, FakeAri, LiveRecording, fake_ari, wav_bytes
from routing_factories import make_queue

CUSTOMER = "1795632527.2"
CALLER = "+525512345678"


@pytest.fixture
async def ari() -> AsyncIterator[FakeAri]:
    async with fake_ari() as fake:
        yield fake


@dataclass
class Desk:
    tenant: Tenant
    agent: Caller
    supervisor: Caller
    interaction_id: uuid.UUID
    call_id: uuid.UUID
    agent_channel: str
    bridge: str

    @property
    def base(self) -> str:
        return f"/api/v1/interactions/{self.interaction_id}"


async def _pbx(app: FastAPI, db: Database, tenant: Tenant, url: str, **fields: Any) -> uuid.UUID:
    data = service.PbxCreate(
        name=fields.pop("name", "main"),
        ari_url=url,
        ari_username=USERNAME,
        ari_password=fields.pop("password", PASSWORD),
    )
    async with db.session(Scope.tenant(tenant.id)) as session:
        pbx = await service.add_pbx(
            session, Actor.system(), data, settings=app.state.atiende.settings
        )
    return pbx.id


async def _desk(
    app: FastAPI,
    db: Database,
    ari: FakeAri,
    *,
    recording: Recording = Recording.on_demand,
    connected: bool = True,
    url: str | None = None,
    **call_fields: Any,
) -> Desk:
    """An agent talking on the phone with a caller: the interaction assigned to the agent,
    the call's row as call control leaves it, and the channels and bridge on the PBX."""
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, name="Ventas", channels=["voice"], recording=recording)
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
    bridge = bridge_id_of(call_id)
    async with db.session(Scope.tenant(tenant.id)) as session:
        instant = now(session)
        fields: dict[str, Any] = {
            "state": "bridged" if connected else "queued",
            "agent_channel_id": agent_channel if connected else None,
            "agent_id": agent.id if connected else None,
            "bridge_id": bridge if connected else None,
            "connected_at": instant if connected else None,
            **call_fields,
        }
        session.add(
            Call(
                id=call_id,
                interaction_id=interaction_id,
                pbx_id=pbx_id,
                direction="inbound",
                customer_channel_id=CUSTOMER,
                caller_number=CALLER,
                number="5551000",
                started_at=instant - timedelta(seconds=30),
                answered_at=instant - timedelta(seconds=30),
                **fields,
            )
        )
    ari.add_call(CUSTOMER, agent_channel, bridge_id=bridge)
    return Desk(tenant, agent, supervisor, interaction_id, call_id, agent_channel, bridge)


async def _row(db: Database, desk: Desk) -> Call:
    async with db.session(Scope.tenant(desk.tenant.id), read_only=True) as session:
        row = await session.get(Call, desk.call_id)
        assert row is not None
        return row


async def _timeline(db: Database, desk: Desk) -> list[tuple[str, dict[str, Any], Any]]:
    async with db.session(Scope.tenant(desk.tenant.id), read_only=True) as session:
        entries = await conversations.timeline(session, desk.interaction_id)
        return [(e.type, e.data, e.actor_id) for e in entries if e.type.startswith("call.")]


async def _call_events(db: Database, desk: Desk) -> list[dict[str, Any]]:
    async with db.session(Scope.system(), read_only=True) as session:
        rows = await session.scalars(
            select(EventRecord)
            .where(EventRecord.type == "call.updated", EventRecord.tenant_id == desk.tenant.id)
            .order_by(EventRecord.id)
        )
        return [row.data for row in rows]


async def _audit(db: Database, desk: Desk, prefix: str) -> list[AuditEntry]:
    async with db.session(Scope.system(), read_only=True) as session:
        rows = await session.scalars(
            select(AuditEntry)
            .where(AuditEntry.tenant_id == desk.tenant.id, AuditEntry.action.startswith(prefix))
            .order_by(AuditEntry.occurred_at)  # tests move the clock between actions
        )
        return list(rows)


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


# --- hold and resume -------------------------------------------------------------------------


async def test_hold_puts_the_caller_on_hold_with_music_and_resume_undoes_it(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    held = _ok(await desk.agent.client.post(f"{desk.base}/call/hold"))
    assert (held["on_hold"], held["state"]) == (True, "on_hold")
    assert ari.made() == [
        ("POST", f"/channels/{CUSTOMER}/hold", {}),
        ("POST", f"/channels/{CUSTOMER}/mute", {"direction": "in"}),
        ("POST", f"/channels/{CUSTOMER}/moh", {}),
    ]
    row = await _row(db, desk)
    assert (row.on_hold, row.state) == (True, "on_hold")

    ari.requests.clear()
    resumed = _ok(await desk.agent.client.post(f"{desk.base}/call/resume"))
    assert (resumed["on_hold"], resumed["state"]) == (False, "bridged")
    assert ari.made() == [
        ("DELETE", f"/channels/{CUSTOMER}/moh", {}),
        ("DELETE", f"/channels/{CUSTOMER}/mute", {"direction": "in"}),
        ("DELETE", f"/channels/{CUSTOMER}/hold", {}),
    ]
    row = await _row(db, desk)
    assert (row.on_hold, row.state) == (False, "bridged")

    timeline = await _timeline(db, desk)
    assert [(kind, data["role"], data["channel_id"], actor) for kind, data, actor in timeline] == [
        ("call.held", "customer", CUSTOMER, desk.agent.id),
        ("call.resumed", "customer", CUSTOMER, desk.agent.id),
    ]
    events = await _call_events(db, desk)
    assert [(e["change"], e["on_hold"], e["state"]) for e in events] == [
        ("held", True, "on_hold"),
        ("resumed", False, "bridged"),
    ]
    assert {e["call_id"] for e in events} == {str(desk.call_id)}
    assert {e["interaction_id"] for e in events} == {str(desk.interaction_id)}


async def test_holding_a_held_call_asks_the_pbx_nothing(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    _ok(await desk.agent.client.post(f"{desk.base}/call/hold"))
    ari.requests.clear()
    again = _ok(await desk.agent.client.post(f"{desk.base}/call/hold"))
    assert again["on_hold"] is True
    assert ari.requests == []
    assert len(await _call_events(db, desk)) == 1


async def test_a_supervisor_can_hold_an_agents_call(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    _ok(await desk.supervisor.client.post(f"{desk.base}/call/hold"))
    ((kind, _, actor),) = await _timeline(db, desk)
    assert (kind, actor) == ("call.held", desk.supervisor.id)


async def test_when_the_pbx_refuses_half_way_the_hold_is_undone_and_nothing_is_written(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    ari.refuse_next("POST", f"/channels/{CUSTOMER}/mute", 409, "Channel not in Stasis application")
    body = _error(await desk.agent.client.post(f"{desk.base}/call/hold"), 409, "call_action_failed")
    assert body["details"]["pbx_message"] == "Channel not in Stasis application"
    assert "Channel not in Stasis application" in body["message"]
    assert ari.made() == [
        ("POST", f"/channels/{CUSTOMER}/hold", {}),
        ("POST", f"/channels/{CUSTOMER}/mute", {"direction": "in"}),
        ("DELETE", f"/channels/{CUSTOMER}/hold", {}),
    ]
    row = await _row(db, desk)
    assert (row.on_hold, row.state) == (False, "bridged")
    assert await _timeline(db, desk) == []
    assert await _call_events(db, desk) == []


# --- mute, keypad, hang up -------------------------------------------------------------------


async def test_mute_silences_the_agent_towards_the_caller_and_unmute_brings_them_back(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    assert _ok(await desk.agent.client.post(f"{desk.base}/call/mute"))["muted"] is True
    assert (await _row(db, desk)).muted is True
    assert _ok(await desk.agent.client.post(f"{desk.base}/call/unmute"))["muted"] is False
    assert (await _row(db, desk)).muted is False
    assert ari.made() == [
        ("POST", f"/channels/{desk.agent_channel}/mute", {"direction": "in"}),
        ("DELETE", f"/channels/{desk.agent_channel}/mute", {"direction": "in"}),
    ]
    events = await _call_events(db, desk)
    assert [(e["change"], e["muted"]) for e in events] == [("muted", True), ("unmuted", False)]


async def test_the_keypad_sends_digits_to_the_caller_and_stores_none(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    _ok(await desk.agent.client.post(f"{desk.base}/call/dtmf", json={"digits": "12*#a"}))
    assert ari.made() == [("POST", f"/channels/{CUSTOMER}/dtmf", {"dtmf": "12*#A"})]
    assert await _timeline(db, desk) == []
    assert await _call_events(db, desk) == []


@pytest.mark.parametrize("digits", ["", "12x", "1" * 21, "1 2"])
async def test_the_keypad_refuses_what_is_not_a_key(
    app: FastAPI, db: Database, ari: FakeAri, digits: str
) -> None:
    desk = await _desk(app, db, ari)
    response = await desk.agent.client.post(f"{desk.base}/call/dtmf", json={"digits": digits})
    _error(response, 422, "validation_error")
    assert ari.requests == []


async def test_hang_up_hangs_up_the_caller_and_leaves_the_rest_to_call_control(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    body = _ok(await desk.agent.client.post(f"{desk.base}/call/hangup"), 202)
    assert body["ended_at"] is None
    assert ari.made() == [("DELETE", f"/channels/{CUSTOMER}", {"reason": "normal"})]
    assert [kind for kind, _, _ in await _timeline(db, desk)] == ["call.hangup_requested"]
    assert (await _row(db, desk)).ended_at is None  # the runtime writes the end


async def test_hanging_up_a_caller_already_gone_is_not_an_error(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    ari.channels.discard(CUSTOMER)
    _ok(await desk.agent.client.post(f"{desk.base}/call/hangup"), 202)


# --- recording -------------------------------------------------------------------------------


async def test_an_on_demand_recording_starts_pauses_and_resumes_audited(
    app: FastAPI, db: Database, ari: FakeAri, clock: TestClock
) -> None:
    desk = await _desk(app, db, ari)
    name = recording_name_of(desk.call_id)
    shown = _ok(await desk.agent.client.get(f"{desk.base}/call"))
    assert (shown["recording"], shown["can_start_recording"]) == (None, True)

    clock.advance(1)
    started = _ok(
        await desk.agent.client.post(f"{desk.base}/call/recording", json={"action": "start"})
    )
    assert (started["recording"], started["can_start_recording"]) == ("recording", False)
    clock.advance(1)
    paused = _ok(
        await desk.agent.client.post(f"{desk.base}/call/recording", json={"action": "pause"})
    )
    assert paused["recording"] == "paused"
    clock.advance(1)
    resumed = _ok(
        await desk.agent.client.post(f"{desk.base}/call/recording", json={"action": "resume"})
    )
    assert resumed["recording"] == "recording"

    assert ari.made() == [
        (
            "POST",
            f"/bridges/{desk.bridge}/record",
            {"name": name, "format": "wav", "ifExists": "fail"},
        ),
        ("POST", f"/recordings/live/{name}/pause", {}),
        ("DELETE", f"/recordings/live/{name}/pause", {}),
    ]
    row = await _row(db, desk)
    assert (row.recording_name, row.recording_state) == (name, "recording")
    audit = await _audit(db, desk, "call.recording")
    assert [(a.action, a.actor_id, a.resource_id) for a in audit] == [
        ("call.recording_started", desk.agent.id, str(desk.call_id)),
        ("call.recording_paused", desk.agent.id, str(desk.call_id)),
        ("call.recording_resumed", desk.agent.id, str(desk.call_id)),
    ]
    assert [(a.before, a.after["recording"]) for a in audit] == [
        ({"recording": None}, "recording"),
        ({"recording": "recording"}, "paused"),
        ({"recording": "paused"}, "recording"),
    ]
    assert [kind for kind, _, _ in await _timeline(db, desk)] == [
        "call.recording_started",
        "call.recording_paused",
        "call.recording_resumed",
    ]
    events = await _call_events(db, desk)
    assert [(e["change"], e["recording"]) for e in events] == [
        ("recording_started", "recording"),
        ("recording_paused", "paused"),
        ("recording_resumed", "recording"),
    ]


async def test_recording_actions_out_of_turn_are_refused_without_asking_the_pbx(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    path = f"{desk.base}/call/recording"
    _error(
        await desk.agent.client.post(path, json={"action": "pause"}), 409, "recording_not_active"
    )
    _error(
        await desk.agent.client.post(path, json={"action": "resume"}), 409, "recording_not_paused"
    )
    _ok(await desk.agent.client.post(path, json={"action": "start"}))
    ari.requests.clear()
    _error(await desk.agent.client.post(path, json={"action": "start"}), 409, "recording_started")
    _error(
        await desk.agent.client.post(path, json={"action": "resume"}), 409, "recording_not_paused"
    )
    _error(await desk.agent.client.post(path, json={"action": "stop"}), 422, "validation_error")
    assert ari.requests == []


async def test_a_queue_that_never_records_refuses_to_start(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari, recording=Recording.never)
    assert _ok(await desk.agent.client.get(f"{desk.base}/call"))["can_start_recording"] is False
    response = await desk.agent.client.post(f"{desk.base}/call/recording", json={"action": "start"})
    _error(response, 409, "recording_not_allowed")
    assert ari.requests == []
    assert (await _row(db, desk)).recording_state is None


async def test_an_always_recorded_call_can_be_paused_for_a_card_number(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari, recording=Recording.always)
    name = recording_name_of(desk.call_id)
    async with db.session(Scope.tenant(desk.tenant.id)) as session:
        row = await session.get(Call, desk.call_id)
        assert row is not None
        row.recording_name, row.recording_state = name, "recording"
    ari.live[name] = LiveRecording(name, "wav", f"bridge:{desk.bridge}", "recording")
    response = await desk.agent.client.post(f"{desk.base}/call/recording", json={"action": "pause"})
    assert _ok(response)["recording"] == "paused"
    assert ari.made() == [("POST", f"/recordings/live/{name}/pause", {})]
    assert ari.live[name].state == "paused"


# --- playing the recording back ------------------------------------------------------------------


async def _finished_recording(db: Database, ari: FakeAri, desk: Desk) -> bytes:
    name = recording_name_of(desk.call_id)
    content = wav_bytes(0.25)
    async with db.session(Scope.tenant(desk.tenant.id)) as session:
        row = await session.get(Call, desk.call_id)
        assert row is not None
        row.recording_name, row.recording_state = name, "done"
        row.state, row.ended_at, row.end_cause = "ended", now(session), "hangup"
    ari.finish_recording(name, content)
    return content


async def test_the_agent_and_a_supervisor_hear_the_recording_and_each_playback_is_audited(
    app: FastAPI, db: Database, ari: FakeAri, clock: TestClock
) -> None:
    desk = await _desk(app, db, ari)
    content = await _finished_recording(db, ari, desk)
    for who in (desk.agent, desk.supervisor):
        clock.advance(1)
        response = await who.client.get(f"{desk.base}/recording")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "audio/wav"
        assert response.content == content
    name = recording_name_of(desk.call_id)
    assert ari.made() == [("GET", f"/recordings/stored/{name}/file", {})] * 2
    plays = await _audit(db, desk, "recording.play")
    assert [(a.actor_id, a.resource_id, a.after) for a in plays] == [
        (who.id, str(desk.call_id), {"interaction_id": str(desk.interaction_id), "name": name})
        for who in (desk.agent, desk.supervisor)
    ]


async def test_another_agent_cannot_hear_the_recording(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    await _finished_recording(db, ari, desk)
    other = await caller(app, desk.tenant, Role.agent)
    _error(await other.client.get(f"{desk.base}/recording"), 404, "interaction_not_found")
    assert ari.requests == []
    assert await _audit(db, desk, "recording.play") == []


async def test_a_recording_still_running_or_lost_by_the_pbx_cannot_be_played(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    _error(await desk.agent.client.get(f"{desk.base}/recording"), 404, "recording_not_found")
    _ok(await desk.agent.client.post(f"{desk.base}/call/recording", json={"action": "start"}))
    _error(await desk.agent.client.get(f"{desk.base}/recording"), 409, "recording_in_progress")
    await _finished_recording(db, ari, desk)
    ari.stored.clear()
    _error(await desk.agent.client.get(f"{desk.base}/recording"), 404, "recording_not_found")
    assert await _audit(db, desk, "recording.play") == []


# --- who and when ----------------------------------------------------------------------------


async def test_the_call_shows_its_state_caller_number_and_times(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    body = _ok(await desk.agent.client.get(f"{desk.base}/call"))
    assert body["id"] == str(desk.call_id)
    assert (body["state"], body["caller_number"], body["number"]) == ("bridged", CALLER, "5551000")
    assert (body["on_hold"], body["muted"], body["recording"]) == (False, False, None)
    assert body["recording_policy"] == "on_demand"
    assert body["connected_at"] is not None
    assert body["ended_at"] is None
    assert ari.requests == []


async def test_an_interaction_without_a_call_and_an_ended_call_are_told_apart(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    chat, _ = await open_chat(db, desk.tenant, agent_id=desk.agent.id)
    path = f"/api/v1/interactions/{chat}/call"
    _error(await desk.agent.client.get(path), 404, "call_not_found")
    _error(await desk.agent.client.post(f"{path}/hold"), 404, "call_not_found")
    async with db.session(Scope.tenant(desk.tenant.id)) as session:
        row = await session.get(Call, desk.call_id)
        assert row is not None
        row.state, row.ended_at, row.end_cause = "ended", now(session), "hangup"
    for action in ("hold", "resume", "mute", "unmute", "hangup"):
        _error(await desk.agent.client.post(f"{desk.base}/call/{action}"), 409, "call_ended")
    _error(
        await desk.agent.client.post(f"{desk.base}/call/dtmf", json={"digits": "1"}),
        409,
        "call_ended",
    )
    assert _ok(await desk.agent.client.get(f"{desk.base}/call"))["state"] == "ended"
    assert ari.requests == []


async def test_a_caller_not_yet_talking_to_an_agent_cannot_be_held_muted_or_recorded(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari, connected=False)
    for action in ("hold", "mute"):
        _error(
            await desk.agent.client.post(f"{desk.base}/call/{action}"), 409, "call_not_connected"
        )
    response = await desk.agent.client.post(f"{desk.base}/call/recording", json={"action": "start"})
    _error(response, 409, "call_not_connected")
    assert ari.requests == []


async def test_only_the_agent_on_the_call_or_a_supervisor_acts_on_it(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    stranger = await caller(app, desk.tenant, Role.agent)
    _error(await stranger.client.get(f"{desk.base}/call"), 404, "interaction_not_found")
    _error(await stranger.client.post(f"{desk.base}/call/hold"), 404, "interaction_not_found")
    # An agent it is offered to sees it, but does not work it.
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
    assert _ok(await offered.client.get(f"{desk.base}/call"))["id"] == str(desk.call_id)
    for action in ("hold", "mute", "hangup"):
        _error(await offered.client.post(f"{desk.base}/call/{action}"), 403, "permission_denied")
    assert ari.requests == []


async def test_another_tenant_cannot_see_or_control_the_call(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    await _finished_recording(db, ari, desk)
    globex = await make_tenant(db)
    intruder = await caller(app, globex, Role.admin)
    _error(await intruder.client.get(f"{desk.base}/call"), 404, "interaction_not_found")
    for action in ("hold", "resume", "mute", "unmute", "hangup"):
        _error(
            await intruder.client.post(f"{desk.base}/call/{action}"), 404, "interaction_not_found"
        )
    _error(await intruder.client.get(f"{desk.base}/recording"), 404, "interaction_not_found")
    assert _ok(await intruder.client.get("/api/v1/voice/calls")) == []
    assert ari.requests == []


async def test_a_pbx_that_is_away_is_a_503_and_changes_nothing(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    async with fake_ari() as gone:
        away = gone.url
    desk = await _desk(app, db, ari, url=away)
    _error(await desk.agent.client.post(f"{desk.base}/call/hold"), 503, "pbx_unavailable")
    _error(await desk.agent.client.post(f"{desk.base}/call/mute"), 503, "pbx_unavailable")
    row = await _row(db, desk)
    assert (row.on_hold, row.muted) == (False, False)
    assert await _timeline(db, desk) == []
    assert await _call_events(db, desk) == []


async def test_a_pbx_that_refuses_atiendes_password_is_a_503(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    ari.password = "changed-on-the-pbx"
    body = _error(await desk.agent.client.post(f"{desk.base}/call/hold"), 503, "pbx_unavailable")
    assert "password" in body["message"]
    assert (await _row(db, desk)).on_hold is False


async def test_supervisors_see_the_live_calls_and_who_is_ringing(
    app: FastAPI, db: Database, ari: FakeAri
) -> None:
    desk = await _desk(app, db, ari)
    _ok(await desk.agent.client.post(f"{desk.base}/call/hold"))
    (live,) = _ok(await desk.supervisor.client.get("/api/v1/voice/calls"))
    assert live["id"] == str(desk.call_id)
    assert (live["agent_id"], live["state"], live["on_hold"]) == (
        str(desk.agent.id),
        "on_hold",
        True,
    )
    assert live["ringing_agent_ids"] == []
    assert live["queue_id"] is not None
    assert (
        live["consult_state"],
        live["consult_agent_id"],
        live["consult_number"],
        live["forwarded_to"],
    ) == (None, None, None, None)
    # An attended transfer under way, then a forward to an outside number, are shown.
    colleague = await caller(app, desk.tenant, Role.agent)
    async with db.session(Scope.tenant(desk.tenant.id)) as session:
        await session.execute(
            update(Call)
            .where(Call.id == desk.call_id)
            .values(consult_state="talking", consult_agent_id=colleague.id)
        )
    (live,) = _ok(await desk.supervisor.client.get("/api/v1/voice/calls"))
    assert (live["consult_state"], live["consult_agent_id"], live["consult_number"]) == (
        "talking",
        str(colleague.id),
        None,
    )
    async with db.session(Scope.tenant(desk.tenant.id)) as session:
        await session.execute(
            update(Call)
            .where(Call.id == desk.call_id)
            .values(
                consult_state=None,
                consult_agent_id=None,
                state="transferring",
                forwarded_to="+525587654321",
            )
        )
    (live,) = _ok(await desk.supervisor.client.get("/api/v1/voice/calls"))
    assert (live["state"], live["forwarded_to"], live["consult_state"]) == (
        "transferring",
        "+525587654321",
        None,
    )
    # An ended call is no longer listed.
    async with db.session(Scope.tenant(desk.tenant.id)) as session:
        await session.execute(
            update(Call).where(Call.id == desk.call_id).values(ended_at=now(session))
        )
    assert _ok(await desk.supervisor.client.get("/api/v1/voice/calls")) == []
    # A call (of another tenant) waits while two phones ring for it (ring-all).
    second = await _desk(app, db, ari, connected=False)
    ringing = sorted([await _offer_phone(app, db, second), await _offer_phone(app, db, second)])
    (waiting,) = _ok(await second.supervisor.client.get("/api/v1/voice/calls"))
    assert (waiting["id"], waiting["state"], waiting["agent_id"]) == (
        str(second.call_id),
        "queued",
        None,
    )
    assert waiting["ringing_agent_ids"] == ringing
    _error(await desk.agent.client.get("/api/v1/voice/calls"), 403, "permission_denied")


async def _offer_phone(app: FastAPI, db: Database, desk: Desk) -> str:
    """An agent's phone rings for the call: a pending offer."""
    agent = await caller(app, desk.tenant, Role.agent)
    async with db.session(Scope.tenant(desk.tenant.id)) as session:
        await routing.ensure_agent(session, agent.id)
        instant = now(session)
        session.add(
            Offer(
                interaction_id=desk.interaction_id,
                agent_id=agent.id,
                status=OfferStatus.pending,
                created_at=instant,
                expires_at=instant + timedelta(seconds=30),
            )
        )
    return str(agent.id)
