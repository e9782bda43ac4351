"""Call control end to end: real SIP calls (sipp) through a real Asterisk 22 into Atiende's
call control, routed by the engine to sipp agent phones — on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from atiende.conversations.models import InteractionEvent, InteractionStatus
from atiende.core.config import Settings
from atiende.core.db import Scope
from atiende.identity import service as identity
from atiende.identity.models import Role
from atiende.routing import service as routing
from atiende.routing.models import Agent, Presence, Queue, Recording
from atiende.voice import control
from atiende.voice.ari import AriClient
from atiende.voice.calls import recording_name_of
from atiende.voice.models import Extension, IvrMenu, Pbx, VoiceNumber
from atiende.voice.pbx import PhoneSecret
from factories import make_user
from routing_factories import make_queue
from voice_real.centre import CUSTOMER, DID, Centre, eventually
from voice_real.harness import ARI_PASSWORD, ARI_URL, ARI_USERNAME, Sipp


async def test_a_call_is_queued_rings_the_right_agent_and_is_bridged(
    centre: Centre, sipp: Sipp
) -> None:
    other_queue = await make_queue(centre.db, centre.tenant, name="Other", channels=["voice"])
    ana, ana_phone = await centre.phone_agent("1001", centre.queue)
    _, bob_phone = await centre.phone_agent("1002", other_queue)  # not in this queue
    centre.configure(ana_phone, bob_phone)
    ana_sipp = sipp.phone("1001", ana_phone.secret, answer_after_ms=300)
    bob_sipp = sipp.phone("1002", bob_phone.secret, answer_after_ms=300)
    await ana_sipp.start()
    await bob_sipp.start()
    await centre.asterisk.wait_endpoint_state("1001", "online")

    caller = sipp.caller(DID, CUSTOMER, hangup_after_ms=2500)
    await caller.start()
    call = (await eventually(centre.calls, lambda c: bool(c) and c[0].connected_at is not None))[0]
    interaction = await centre.interaction()
    assert interaction.status is InteractionStatus.assigned
    assert interaction.agent_id == ana
    assert (call.agent_id, call.caller_number, call.number) == (ana, CUSTOMER, DID)
    async with AriClient(ARI_URL, ARI_USERNAME, ARI_PASSWORD) as client:
        bridges = {b.id: set(b.channels) for b in await client.list_bridges()}
    assert bridges[call.bridge_id or ""] == {call.customer_channel_id, call.agent_channel_id}

    result = await caller.wait(timeout=20)
    assert (result.successful, result.failed) == (1, 0), result.problems
    ended = (await eventually(centre.calls, lambda c: c[0].ended_at is not None))[0]
    assert ended.end_cause == "hangup"
    assert await eventually(centre.status, lambda s: s is InteractionStatus.wrap_up)
    report = await ana_sipp.wait_until(lambda r: r.ended_by_pbx == 1)
    assert (report.received, report.answered) == (1, 1)
    assert CUSTOMER.lstrip("+") in report.calls[0].caller
    assert (await bob_sipp.stop()).received == 0
    steps = await centre.timeline(interaction.id)
    for kind in ("created", "call.answered", "queued", "offered", "call.offered"):
        assert kind in steps
    assert steps.index("call.connected") < steps.index("call.ended") < steps.index("wrap_up")
    assert "accepted" in steps
    assert "assigned" in steps


async def test_a_phone_that_does_not_answer_passes_the_call_to_the_next_agent(
    centre: Centre, sipp: Sipp
) -> None:
    ana, ana_phone = await centre.phone_agent("1001", centre.queue)  # idle longer: rings first
    bob, bob_phone = await centre.phone_agent("1002", centre.queue)
    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        (await session.get_one(Agent, bob)).idle_since = centre.db.clock.now() + timedelta(
            seconds=1
        )
    centre.configure(ana_phone, bob_phone)
    ana_sipp = sipp.phone("1001", ana_phone.secret, never_answer=True)
    bob_sipp = sipp.phone("1002", bob_phone.secret, answer_after_ms=200)
    await ana_sipp.start()
    await bob_sipp.start()

    caller = sipp.caller(DID, CUSTOMER, hangup_after_ms=12_000)
    await caller.start()
    call = (
        await eventually(
            centre.calls, lambda c: bool(c) and c[0].connected_at is not None, timeout=25
        )
    )[0]
    assert call.agent_id == bob
    assert (await centre.agent(ana)).no_answer_count == 1
    ana_report = await ana_sipp.wait_until(lambda r: r.cancelled == 1)
    assert (ana_report.received, ana_report.answered) == (1, 0)
    interaction = await centre.interaction()
    steps = await centre.timeline(interaction.id)
    assert steps.count("call.offered") == 2
    assert "phone_declined" in steps
    assert "requeued" in steps
    await caller.stop()


async def test_a_caller_who_hangs_up_while_waiting_abandons(centre: Centre, sipp: Sipp) -> None:
    ana, ana_phone = await centre.phone_agent("1001", centre.queue, available=False)
    centre.configure(ana_phone)
    result = await sipp.caller(DID, CUSTOMER, hangup_after_ms=1500).run(timeout=20)
    assert (result.successful, result.failed) == (1, 0), result.problems  # answered: music
    assert await eventually(centre.status, lambda s: s is InteractionStatus.abandoned)
    call = (await eventually(centre.calls, lambda c: c[0].ended_at is not None))[0]
    assert (call.state, call.connected_at) == ("ended", None)
    steps = await centre.timeline((await centre.interaction()).id)
    assert steps[-1] == "abandoned"
    assert "call.ended" in steps
    assert (await centre.agent(ana)).presence is Presence.offline


async def test_a_transfer_to_another_queue_rings_its_agent_and_drops_the_first(
    centre: Centre, sipp: Sipp
) -> None:
    sales = await make_queue(centre.db, centre.tenant, name="Sales", channels=["voice"])
    ana, ana_phone = await centre.phone_agent("1001", centre.queue)
    bob, bob_phone = await centre.phone_agent("1002", sales)
    centre.configure(ana_phone, bob_phone)
    ana_sipp = sipp.phone("1001", ana_phone.secret, answer_after_ms=200)
    bob_sipp = sipp.phone("1002", bob_phone.secret, answer_after_ms=200)
    await ana_sipp.start()
    await bob_sipp.start()
    caller = sipp.caller(DID, CUSTOMER, hangup_after_ms=10_000)
    await caller.start()
    await eventually(centre.calls, lambda c: bool(c) and c[0].agent_id == ana)
    interaction = await centre.interaction()

    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        actor = identity.actor_for(await session.get_one(identity.User, ana))
        await routing.transfer(session, actor, interaction.id, queue_id=sales.id, note="billing")
    call = (
        await eventually(
            centre.calls, lambda c: c[0].agent_id == bob and c[0].connected_at is not None
        )
    )[0]
    assert call.ended_at is None
    await ana_sipp.wait_until(lambda r: r.ended_by_pbx == 1)
    assert (await centre.interaction()).agent_id == bob
    steps = await centre.timeline(interaction.id)
    assert "transferred" in steps
    assert steps.count("call.connected") >= 2
    await caller.stop()


async def test_a_recorded_queue_keeps_the_conversation_in_asterisk(
    centre: Centre, sipp: Sipp
) -> None:
    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        queue = await session.get_one(Queue, centre.queue.id)
        queue.recording = Recording.always
    _, ana_phone = await centre.phone_agent("1001", centre.queue)
    centre.configure(ana_phone)
    ana_sipp = sipp.phone("1001", ana_phone.secret, answer_after_ms=100)
    await ana_sipp.start()
    result = await sipp.caller(DID, CUSTOMER, hangup_after_ms=2500).run(timeout=20)
    assert (result.successful, result.failed) == (1, 0), result.problems
    call = (await eventually(centre.calls, lambda c: bool(c) and c[0].ended_at is not None))[0]
    name = recording_name_of(call.id)
    assert (call.recording_name, call.recording_state) == (name, "done")
    async with AriClient(ARI_URL, ARI_USERNAME, ARI_PASSWORD) as client:
        audio = await eventually(
            lambda: _stored(client, name), lambda body: body is not None and len(body) > 44
        )
    assert audio is not None
    assert audio[:4] == b"RIFF"
    async with AriClient(ARI_URL, ARI_USERNAME, ARI_PASSWORD) as client:
        await client.delete_stored_recording(name)


async def _stored(client: AriClient, name: str) -> bytes | None:
    from atiende.voice.ari import AriRequestFailed

    try:
        return await client.stored_recording(name)
    except AriRequestFailed:
        return None


@pytest.mark.parametrize("mode", ["listen", "barge"])
async def test_a_supervisor_listens_or_barges_from_their_own_phone(
    centre: Centre, sipp: Sipp, settings: Settings, mode: str
) -> None:
    ana, ana_phone = await centre.phone_agent("1001", centre.queue)
    boss = await make_user(centre.db, centre.tenant, Role.supervisor)
    boss_phone = PhoneSecret("1009", "secret-1009-boss")
    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        session.add(Extension(number="1009", user_id=boss.id, created_at=centre.db.clock.now()))
    centre.configure(ana_phone, boss_phone)
    ana_sipp = sipp.phone("1001", ana_phone.secret, answer_after_ms=100)
    boss_sipp = sipp.phone("1009", boss_phone.secret, answer_after_ms=100)
    await ana_sipp.start()
    await boss_sipp.start()
    caller = sipp.caller(DID, CUSTOMER, hangup_after_ms=6000)
    await caller.start()
    call = (await eventually(centre.calls, lambda c: bool(c) and c[0].connected_at is not None))[0]

    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        await control.supervise(
            session, identity.actor_for(boss), call.interaction_id, mode, settings=settings
        )  # type: ignore[arg-type]
    await boss_sipp.wait_until(lambda r: r.answered == 1)

    async def bridges() -> dict[str, set[str]]:  # the call's, and the supervisor's own
        async with AriClient(ARI_URL, ARI_USERNAME, ARI_PASSWORD) as client:
            return {
                b.id: set(b.channels)
                for b in await client.list_bridges()
                if b.id == call.bridge_id or b.id.startswith("atiende-sup-")
            }

    main = call.bridge_id or ""
    if mode == "barge":
        found = await eventually(bridges, lambda b: len(b.get(main, ())) == 3)
        assert {call.customer_channel_id, call.agent_channel_id} < found[main]
    else:
        found = await eventually(
            bridges, lambda b: any(len(m) == 2 for k, m in b.items() if k != main)
        )
        side = next(members for bridge_id, members in found.items() if bridge_id != main)
        assert len(side) == 2  # the supervisor's phone and a snoop on the agent's channel
        assert found[main] == {call.customer_channel_id, call.agent_channel_id}
    steps = await centre.timeline(call.interaction_id)
    assert "call.supervised" in steps
    result = await caller.wait(timeout=20)
    assert (result.successful, result.failed) == (1, 0), result.problems
    report = await boss_sipp.wait_until(lambda r: r.ended_by_pbx == 1)
    assert report.received == 1
    assert await eventually(bridges, lambda b: not b) == {}  # the call's and the side bridge
    assert (await centre.interaction()).agent_id == ana


async def test_click_to_call_rings_the_agent_then_dials_the_customer(
    centre: Centre, sipp: Sipp, settings: Settings
) -> None:
    ana, ana_phone = await centre.phone_agent("1001", centre.queue)
    customer_phone = PhoneSecret("1050", "secret-1050-customer")  # plays the customer's line
    centre.configure(ana_phone, customer_phone)
    ana_sipp = sipp.phone("1001", ana_phone.secret, answer_after_ms=100)
    customer_sipp = sipp.phone(
        "1050", customer_phone.secret, answer_after_ms=300, hangup_after_ms=2000
    )
    await ana_sipp.start()
    await customer_sipp.start()
    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        pbx = (await session.scalars(select(Pbx))).one()
        # the test trunk dials the customer's "line" (a sipp phone) directly
        pbx.outbound_dial = f"PJSIP/pstn/sip:{{number}}@127.0.0.1:{customer_sipp.sip_port}"
        pbx.outbound_caller_id = "Acme <5550000>"

    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        actor = identity.actor_for(await session.get_one(identity.User, ana))
        interaction_id, placed = await control.place_call(
            session, actor, control.PlaceCall(number=CUSTOMER), settings=settings
        )
    assert placed.state == "dialing"
    call = (await eventually(centre.calls, lambda c: c[0].connected_at is not None))[0]
    assert (call.direction, call.agent_id, call.caller_number) == ("outbound", ana, CUSTOMER)
    assert call.agent_channel_id is not None
    assert call.bridge_id is not None  # so hold, mute, record and supervise work on it
    report = await customer_sipp.wait_until(lambda r: r.ended_by_phone == 1)
    assert "5550000" in report.calls[0].caller  # the tenant's caller id
    ended = (await eventually(centre.calls, lambda c: c[0].ended_at is not None))[0]
    assert ended.end_cause == "hangup"
    assert await eventually(centre.status, lambda s: s is InteractionStatus.wrap_up)
    await ana_sipp.wait_until(lambda r: r.ended_by_pbx == 1)
    steps = await centre.timeline(interaction_id)
    assert steps[:3] == ["created", "assigned", "call.dialing"]
    assert "call.connected" in steps
    assert steps.index("call.ended") < steps.index("wrap_up")


async def _menu(centre: Centre, **fields: object) -> uuid.UUID:
    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        menu = IvrMenu(
            name=f"menu-{uuid.uuid4().hex[:6]}",
            prompt="sound:hello-world",
            invalid_prompt="sound:option-is-invalid",
            created_at=centre.db.clock.now(),
            **fields,
        )
        session.add(menu)
        await session.flush()
        number = (await session.scalars(select(VoiceNumber))).one()
        number.ivr_menu_id = menu.id
        return menu.id


async def test_a_caller_choosing_in_the_menu_reaches_that_queues_agent(
    centre: Centre, sipp: Sipp
) -> None:
    support = await make_queue(centre.db, centre.tenant, name="Support", channels=["voice"])
    _, ana_phone = await centre.phone_agent("1001", centre.queue)  # the number's queue
    bob, bob_phone = await centre.phone_agent("1002", support)
    await _menu(
        centre,
        timeout_seconds=5,
        max_attempts=2,
        options={"2": {"action": "queue", "queue_id": str(support.id)}},
    )
    centre.configure(ana_phone, bob_phone)
    ana_sipp = sipp.phone("1001", ana_phone.secret, answer_after_ms=100)
    bob_sipp = sipp.phone("1002", bob_phone.secret, answer_after_ms=100)
    await ana_sipp.start()
    await bob_sipp.start()
    caller = sipp.caller(DID, CUSTOMER, dtmf="2", dtmf_delay_ms=600, hangup_after_ms=5000)
    await caller.start()
    call = (await eventually(centre.calls, lambda c: bool(c) and c[0].connected_at is not None))[0]
    assert call.agent_id == bob
    assert (await ana_sipp.stop()).received == 0
    steps = await centre.timeline(call.interaction_id)
    assert steps.index("call.ivr") < steps.index("call.ivr_done") < steps.index("queued")
    async with centre.db.session(Scope.tenant(centre.tenant.id), read_only=True) as session:
        done = await session.scalar(
            select(InteractionEvent).where(InteractionEvent.type == "call.ivr_done")
        )
    assert done is not None
    assert (done.data["path"], done.data["queue_id"]) == ("2", str(support.id))
    await caller.stop()


async def test_a_caller_who_presses_nothing_goes_to_the_numbers_queue(
    centre: Centre, sipp: Sipp
) -> None:
    ana, ana_phone = await centre.phone_agent("1001", centre.queue)
    await _menu(centre, timeout_seconds=1, max_attempts=1, options={"1": {"action": "repeat"}})
    centre.configure(ana_phone)
    ana_sipp = sipp.phone("1001", ana_phone.secret, answer_after_ms=100)
    await ana_sipp.start()
    caller = sipp.caller(DID, CUSTOMER, hangup_after_ms=9000)
    await caller.start()
    call = (
        await eventually(
            centre.calls, lambda c: bool(c) and c[0].connected_at is not None, timeout=20
        )
    )[0]
    assert call.agent_id == ana
    steps = await centre.timeline(call.interaction_id)
    assert steps.index("call.ivr") < steps.index("call.ivr_done") < steps.index("queued")
    await caller.stop()


async def test_a_placed_call_the_agent_does_not_answer_ends_without_dialling(
    centre: Centre, sipp: Sipp, settings: Settings
) -> None:
    ana, ana_phone = await centre.phone_agent("1001", centre.queue)
    centre.configure(ana_phone)
    ana_sipp = sipp.phone("1001", ana_phone.secret, reject_with=486)
    await ana_sipp.start()
    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        pbx = (await session.scalars(select(Pbx))).one()
        pbx.outbound_dial = "PJSIP/pstn/sip:{number}@127.0.0.1:9"  # never dialled
    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        actor = identity.actor_for(await session.get_one(identity.User, ana))
        interaction_id, _ = await control.place_call(
            session, actor, control.PlaceCall(number=CUSTOMER), settings=settings
        )
    call = (await eventually(centre.calls, lambda c: c[0].ended_at is not None))[0]
    assert (call.end_cause, call.connected_at) == ("agent_no_answer", None)
    assert await eventually(centre.status, lambda s: s is InteractionStatus.wrap_up)
    assert (await ana_sipp.stop()).rejected == 1
    assert (await centre.timeline(interaction_id))[-2:] == ["call.ended", "wrap_up"]


async def test_an_agent_with_auto_answer_gets_calls_that_ask_the_phone_to_pick_up(
    centre: Centre, sipp: Sipp, settings: Settings
) -> None:
    from atiende.voice import phones

    ana, ana_phone = await centre.phone_agent("1001", centre.queue)  # idle longer: rings first
    bob, bob_phone = await centre.phone_agent("1002", centre.queue)
    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        (await session.get_one(Agent, bob)).idle_since = centre.db.clock.now() + timedelta(
            seconds=1
        )
        actor = identity.actor_for(await session.get_one(identity.User, ana))
        shown = await phones.set_my_extension(
            session, actor, phones.ExtensionSettings(auto_answer=True), settings=settings
        )
    assert shown.auto_answer
    centre.configure(ana_phone, bob_phone)
    ana_sipp = sipp.phone("1001", ana_phone.secret, answer_after_ms=100)
    bob_sipp = sipp.phone("1002", bob_phone.secret, answer_after_ms=100)
    await ana_sipp.start()
    await bob_sipp.start()

    first = sipp.caller(DID, CUSTOMER, hangup_after_ms=6000)
    await first.start()
    headers = (await ana_sipp.wait_until(lambda r: r.answered == 1)).calls[0].invite_headers
    assert "answer-after=0" in headers.get("call-info", "")
    assert "alert-autoanswer" in headers.get("alert-info", "")
    second = sipp.caller(DID, "+525511112222", hangup_after_ms=3000)  # ana is busy: bob's
    await second.start()
    headers = (await bob_sipp.wait_until(lambda r: r.answered == 1)).calls[0].invite_headers
    assert "call-info" not in headers
    assert "alert-info" not in headers
    for caller in (first, second):
        result = await caller.wait(timeout=20)
        assert (result.successful, result.failed) == (1, 0), result.problems
