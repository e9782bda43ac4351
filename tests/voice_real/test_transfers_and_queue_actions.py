"""Transfers and the queue's unattended actions end to end, through the real Asterisk:
blind transfer to an outside number (answered, or refused and back to the queue), attended
transfer to another agent (completed, or cancelled), voicemail when the queue is closed,
forwarding when it is closed, and position announcements while waiting."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from atiende.conversations.models import InteractionEvent, InteractionStatus
from atiende.core.db import Scope
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.routing.models import ClosedAction, LicenceType, Queue, Schedule
from atiende.voice import control
from atiende.voice.ari import AriClient, AriRequestFailed
from atiende.voice.calls import consult_bridge_id_of, voicemail_name_of
from atiende.voice.models import Call, IvrMenu, Pbx, VoiceNumber
from atiende.voice.pbx import PhoneSecret
from routing_factories import make_agent
from voice_real.centre import CUSTOMER, DID, Centre, eventually
from voice_real.harness import ARI_PASSWORD, ARI_URL, ARI_USERNAME, AgentPhone, Sipp

OUTSIDE = "+525587654321"


async def _outside_line(centre: Centre, sipp: Sipp, **options: object) -> AgentPhone:
    """A sipp phone that plays the outside number: the PBX's outbound route dials it."""
    line = PhoneSecret("1050", "secret-1050-outside")
    phone = sipp.phone("1050", line.secret, **options)
    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        pbx = (await session.scalars(select(Pbx))).one()
        pbx.outbound_dial = f"PJSIP/pstn/sip:{{number}}@127.0.0.1:{phone.sip_port}"
        pbx.outbound_caller_id = "Acme <5550000>"
    return phone


async def _actor(centre: Centre, user_id: uuid.UUID) -> Actor:
    async with centre.db.session(Scope.tenant(centre.tenant.id), read_only=True) as session:
        return identity.actor_for(await session.get_one(identity.User, user_id))


async def _bridges() -> dict[str, set[str]]:
    async with AriClient(ARI_URL, ARI_USERNAME, ARI_PASSWORD) as client:
        return {b.id: set(b.channels) for b in await client.list_bridges()}


async def _event(centre: Centre, kind: str) -> InteractionEvent:
    async with centre.db.session(Scope.tenant(centre.tenant.id), read_only=True) as session:
        found = await session.scalar(
            select(InteractionEvent)
            .where(InteractionEvent.type == kind)
            .order_by(InteractionEvent.id.desc())
        )
    assert found is not None, kind
    return found


async def _connected_to(centre: Centre, agent_id: uuid.UUID) -> Call:
    calls = await eventually(
        centre.calls,
        lambda c: bool(c) and c[0].agent_id == agent_id and c[0].connected_at is not None,
        timeout=20,
    )
    return calls[0]


async def test_a_blind_transfer_to_a_number_connects_the_caller_and_frees_the_agent(
    centre: Centre, sipp: Sipp
) -> None:
    ana, ana_phone = await centre.phone_agent("1001", centre.queue)
    outside = await _outside_line(centre, sipp, answer_after_ms=300)
    centre.configure(ana_phone, PhoneSecret("1050", outside.secret))
    ana_sipp = sipp.phone("1001", ana_phone.secret, answer_after_ms=100)
    await ana_sipp.start()
    await outside.start()
    caller = sipp.caller(DID, CUSTOMER, hangup_after_ms=12_000)
    await caller.start()
    call = await _connected_to(centre, ana)

    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        shown = await control.forward(
            session,
            await _actor(centre, ana),
            call.interaction_id,
            control.ForwardRequest(number=OUTSIDE),
        )
    assert (shown.state, shown.forwarded_to) == ("transferring", OUTSIDE)
    forwarded = (
        await eventually(
            centre.calls, lambda c: c[0].forwarded_to == OUTSIDE and c[0].state == "bridged"
        )
    )[0]
    await ana_sipp.wait_until(lambda r: r.ended_by_pbx == 1)  # the agent's phone is let go
    report = await outside.wait_until(lambda r: r.answered == 1)
    assert "5550000" in report.calls[0].caller  # the tenant's caller id
    assert (forwarded.agent_channel_id, forwarded.agent_id) == (None, None)  # agent let go
    bridges = await eventually(_bridges, lambda b: len(b.get(call.bridge_id or "", ())) == 2)
    assert call.customer_channel_id in bridges[call.bridge_id or ""]
    assert await eventually(centre.status, lambda s: s is InteractionStatus.wrap_up)

    result = await caller.wait(timeout=20)
    assert (result.successful, result.failed) == (1, 0), result.problems
    await outside.wait_until(lambda r: r.ended_by_pbx == 1)  # the caller's hang-up ends it
    ended = (await eventually(centre.calls, lambda c: c[0].ended_at is not None))[0]
    assert ended.forwarded_to == OUTSIDE
    steps = await centre.timeline(call.interaction_id)
    assert steps.index("call.transfer_requested") < steps.index("call.transferred")
    assert steps.index("call.transferred") < steps.index("wrap_up")
    assert (await _event(centre, "call.transferred")).data["number"] == OUTSIDE


async def test_a_number_that_refuses_the_transfer_sends_the_caller_back_to_the_queue(
    centre: Centre, sipp: Sipp
) -> None:
    ana, ana_phone = await centre.phone_agent("1001", centre.queue)
    outside = await _outside_line(centre, sipp, reject_with=486)
    centre.configure(ana_phone, PhoneSecret("1050", outside.secret))
    ana_sipp = sipp.phone("1001", ana_phone.secret, answer_after_ms=100)
    await ana_sipp.start()
    await outside.start()
    caller = sipp.caller(DID, CUSTOMER, hangup_after_ms=12_000)
    await caller.start()
    call = await _connected_to(centre, ana)

    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        await control.forward(
            session,
            await _actor(centre, ana),
            call.interaction_id,
            control.ForwardRequest(number=OUTSIDE),
        )
    await outside.wait_until(lambda r: r.received == 1)
    # back at the head of the queue: the only agent, free again, rings and answers again
    report = await ana_sipp.wait_until(lambda r: r.answered == 2, timeout=25)
    assert report.received == 2
    again = await eventually(
        centre.calls,
        lambda c: (
            c[0].agent_channel_id not in (None, call.agent_channel_id) and c[0].state == "bridged"
        ),
        timeout=20,
    )
    assert again[0].forwarded_to is None
    assert again[0].ended_at is None
    steps = await centre.timeline(call.interaction_id)
    assert "call.transfer_failed" in steps
    assert steps.index("call.transfer_failed") < len(steps) - 1 - steps[::-1].index("queued")
    assert steps.count("call.connected") >= 2
    await caller.stop()


async def test_an_attended_transfer_hands_the_caller_to_the_agent_consulted(
    centre: Centre, sipp: Sipp
) -> None:
    ana, ana_phone = await centre.phone_agent("1001", centre.queue)
    bob, bob_phone = await centre.phone_agent("1002")  # in no queue: reached only by consulting
    centre.configure(ana_phone, bob_phone)
    ana_sipp = sipp.phone("1001", ana_phone.secret, answer_after_ms=100)
    bob_sipp = sipp.phone("1002", bob_phone.secret, answer_after_ms=300)
    await ana_sipp.start()
    await bob_sipp.start()
    caller = sipp.caller(DID, CUSTOMER, hangup_after_ms=12_000)
    await caller.start()
    call = await _connected_to(centre, ana)
    actor = await _actor(centre, ana)

    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        shown = await control.consult(
            session, actor, call.interaction_id, control.ConsultRequest(agent_id=bob)
        )
    assert shown.consult is not None
    assert (shown.consult.agent_id, shown.consult.state) == (bob, "ringing")
    talking = (await eventually(centre.calls, lambda c: c[0].consult_state == "talking"))[0]
    assert talking.on_hold
    consulting = consult_bridge_id_of(call.id)
    bridges = await eventually(_bridges, lambda b: len(b.get(consulting, ())) == 2)
    assert call.agent_channel_id in bridges[consulting]
    assert bridges[call.bridge_id or ""] == {call.customer_channel_id}  # on hold, alone

    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        await control.complete_consult(session, actor, call.interaction_id)
    handed = await _connected_to(centre, bob)
    assert handed.consult_state is None
    assert not handed.on_hold
    await ana_sipp.wait_until(lambda r: r.ended_by_pbx == 1)
    bridges = await eventually(_bridges, lambda b: consulting not in b)
    assert bridges[call.bridge_id or ""] == {call.customer_channel_id, handed.agent_channel_id}
    interaction = await centre.interaction()
    assert (interaction.status, interaction.agent_id) == (InteractionStatus.assigned, bob)
    assert ((await centre.agent(ana)).voice_load, (await centre.agent(bob)).voice_load) == (0, 1)
    steps = await centre.timeline(call.interaction_id)
    for kind in ("call.consult_requested", "call.consult_answered", "transferred"):
        assert kind in steps
    assert (await _event(centre, "transferred")).data["attended"] is True
    await caller.stop()


async def test_a_cancelled_consultation_goes_back_to_the_caller(centre: Centre, sipp: Sipp) -> None:
    ana, ana_phone = await centre.phone_agent("1001", centre.queue)
    bob, bob_phone = await centre.phone_agent("1002")
    centre.configure(ana_phone, bob_phone)
    ana_sipp = sipp.phone("1001", ana_phone.secret, answer_after_ms=100)
    bob_sipp = sipp.phone("1002", bob_phone.secret, answer_after_ms=300)
    await ana_sipp.start()
    await bob_sipp.start()
    caller = sipp.caller(DID, CUSTOMER, hangup_after_ms=12_000)
    await caller.start()
    call = await _connected_to(centre, ana)
    actor = await _actor(centre, ana)
    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        await control.consult(
            session, actor, call.interaction_id, control.ConsultRequest(agent_id=bob)
        )
    await eventually(centre.calls, lambda c: c[0].consult_state == "talking")

    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        await control.cancel_consult(session, actor, call.interaction_id)
    await bob_sipp.wait_until(lambda r: r.ended_by_pbx == 1)
    back = (
        await eventually(centre.calls, lambda c: c[0].consult_state is None and not c[0].on_hold)
    )[0]
    assert (back.agent_id, back.agent_channel_id) == (ana, call.agent_channel_id)
    bridges = await eventually(_bridges, lambda b: consult_bridge_id_of(call.id) not in b)
    assert bridges[call.bridge_id or ""] == {call.customer_channel_id, call.agent_channel_id}
    assert (await centre.interaction()).agent_id == ana
    assert (await _event(centre, "call.consult_ended")).data["reason"] == "cancelled"
    await caller.stop()


async def _close_queue(centre: Centre, **fields: object) -> None:
    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        never = Schedule(
            name=f"never-{uuid.uuid4().hex[:6]}",
            time_zone="America/Mexico_City",
            weekly={},
            created_at=centre.db.clock.now(),
        )
        session.add(never)
        await session.flush()
        queue = await session.get_one(Queue, centre.queue.id)
        queue.schedule_id = never.id
        for name, value in fields.items():
            setattr(queue, name, value)


async def test_a_closed_queue_takes_a_voicemail(centre: Centre, sipp: Sipp) -> None:
    centre.configure()
    await _close_queue(
        centre, closed_action=ClosedAction.voicemail, voicemail_prompt="sound:hello-world"
    )
    # the caller speaks after the beep, then presses # to end the message: the PBX hangs up
    caller = sipp.caller(
        DID,
        CUSTOMER,
        hangup_after_ms=20_000,
        dtmf="#",
        dtmf_mode="rfc2833",
        dtmf_delay_ms=4000,
    )
    result = await caller.run(timeout=30)
    assert (result.successful, result.failed) == (1, 0), result.problems
    assert result.calls[0].bye_from == "pbx"
    call = (await eventually(centre.calls, lambda c: bool(c) and c[0].ended_at is not None))[0]
    name = voicemail_name_of(call.id)
    assert (call.recording_name, call.recording_state, call.end_cause) == (
        name,
        "done",
        "voicemail",
    )
    assert await centre.status() is InteractionStatus.closed
    closed = await _event(centre, "closed")
    assert (closed.data["reason"], closed.data["because"]) == ("voicemail", "closed")
    assert (await _event(centre, "call.voicemail")).data["recording"] == name
    async with AriClient(ARI_URL, ARI_USERNAME, ARI_PASSWORD) as client:
        audio = await eventually(lambda: _stored(client, name), lambda body: body is not None)
        assert audio is not None
        assert audio[:4] == b"RIFF"  # a WAV file (the test caller sends no voice frames)
        await client.delete_stored_recording(name)


async def _stored(client: AriClient, name: str) -> bytes | None:
    try:
        return await client.stored_recording(name)
    except AriRequestFailed:
        return None


async def test_a_closed_queue_forwards_callers_to_its_number(centre: Centre, sipp: Sipp) -> None:
    outside = await _outside_line(centre, sipp, answer_after_ms=200)
    centre.configure(PhoneSecret("1050", outside.secret))
    await outside.start()
    await _close_queue(centre, closed_action=ClosedAction.forward, forward_number=OUTSIDE)
    caller = sipp.caller(DID, CUSTOMER, hangup_after_ms=5000)
    await caller.start()
    await outside.wait_until(lambda r: r.answered == 1)
    forwarded = (
        await eventually(
            centre.calls, lambda c: bool(c) and c[0].forwarded_to == OUTSIDE and c[0].bridge_id
        )
    )[0]
    bridges = await eventually(_bridges, lambda b: len(b.get(forwarded.bridge_id or "", ())) == 2)
    assert forwarded.customer_channel_id in bridges[forwarded.bridge_id or ""]
    result = await caller.wait(timeout=20)
    assert (result.successful, result.failed) == (1, 0), result.problems
    await outside.wait_until(lambda r: r.ended_by_pbx == 1)
    assert await centre.status() is InteractionStatus.closed
    assert (await _event(centre, "closed")).data["reason"] == "forward"


async def test_waiting_callers_hear_their_place_in_the_queue(centre: Centre, sipp: Sipp) -> None:
    await make_agent(
        centre.db, centre.tenant, centre.queue, licence=LicenceType.voice, available=False
    )
    centre.configure()
    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        (await session.get_one(Queue, centre.queue.id)).announce_every_seconds = 2
    first = sipp.caller(DID, CUSTOMER, hangup_after_ms=15_000)
    await first.start()
    await eventually(centre.calls, lambda c: len(c) == 1)
    centre.db.clock.advance(5)  # the test clock stands still: the second caller came later
    second = sipp.caller(DID, "+525511112222", hangup_after_ms=12_000)
    await second.start()

    async def positions() -> dict[str, list[int]]:
        async with centre.db.session(Scope.tenant(centre.tenant.id), read_only=True) as session:
            rows = (
                await session.execute(
                    select(Call.caller_number, InteractionEvent.data)
                    .join(Call, Call.interaction_id == InteractionEvent.interaction_id)
                    .where(InteractionEvent.type == "call.announced")
                    .order_by(InteractionEvent.id)
                )
            ).all()
        found: dict[str, list[int]] = {}
        for number, data in rows:
            found.setdefault(number or "", []).append(int(data["position"]))
        return found

    heard = await eventually(
        positions, lambda p: len(p.get(CUSTOMER, ())) >= 2 and bool(p.get("+525511112222"))
    )
    assert set(heard[CUSTOMER]) == {1}
    assert set(heard["+525511112222"]) == {2}
    for caller in (first, second):
        result = await caller.wait(timeout=20)
        assert (result.successful, result.failed) == (1, 0), result.problems


async def _menu(centre: Centre, **fields: object) -> None:
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
        (await session.scalars(select(VoiceNumber))).one().ivr_menu_id = menu.id


async def test_a_menu_option_forwards_the_caller_to_a_number(centre: Centre, sipp: Sipp) -> None:
    outside = await _outside_line(centre, sipp, answer_after_ms=200)
    centre.configure(PhoneSecret("1050", outside.secret))
    await outside.start()
    await _menu(
        centre,
        timeout_seconds=5,
        max_attempts=2,
        options={"3": {"action": "number", "number": OUTSIDE}},
    )
    caller = sipp.caller(DID, CUSTOMER, dtmf="3", dtmf_delay_ms=600, hangup_after_ms=6000)
    await caller.start()
    await outside.wait_until(lambda r: r.answered == 1)
    forwarded = (
        await eventually(
            centre.calls, lambda c: bool(c) and c[0].forwarded_to == OUTSIDE and c[0].bridge_id
        )
    )[0]
    assert await centre.status() is InteractionStatus.closed
    closed = await _event(centre, "closed")
    assert (closed.data["reason"], closed.data["because"]) == ("forward", "ivr")
    done = await _event(centre, "call.ivr_done")
    assert (done.data["path"], done.data["number"]) == ("3", OUTSIDE)
    result = await caller.wait(timeout=20)
    assert (result.successful, result.failed) == (1, 0), result.problems
    await outside.wait_until(lambda r: r.ended_by_pbx == 1)
    steps = await centre.timeline(forwarded.interaction_id)
    assert "queued" not in steps  # the menu sent the caller straight out


async def test_a_caller_who_chooses_nothing_leaves_a_voicemail(centre: Centre, sipp: Sipp) -> None:
    centre.configure()
    await _menu(
        centre,
        timeout_seconds=1,
        max_attempts=1,
        options={"1": {"action": "repeat"}},
        timeout_action={"action": "voicemail"},
    )
    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        (await session.get_one(Queue, centre.queue.id)).voicemail_prompt = "sound:beep"
    # the menu (about 2 s), the prompt and the beep, then a few seconds of message: hang up
    result = await sipp.caller(DID, CUSTOMER, hangup_after_ms=7000).run(timeout=25)
    assert (result.successful, result.failed) == (1, 0), result.problems
    assert result.calls[0].bye_from == "caller"
    call = (await eventually(centre.calls, lambda c: bool(c) and c[0].ended_at is not None))[0]
    assert (call.recording_name, call.end_cause) == (voicemail_name_of(call.id), "voicemail")
    closed = await _event(centre, "closed")
    assert (closed.data["reason"], closed.data["because"]) == ("voicemail", "ivr")
    async with AriClient(ARI_URL, ARI_USERNAME, ARI_PASSWORD) as client:
        audio = await eventually(
            lambda: _stored(client, call.recording_name or ""), lambda body: body is not None
        )
        assert audio is not None
        assert audio[:4] == b"RIFF"
        await client.delete_stored_recording(call.recording_name or "")


async def test_a_closed_queue_plays_its_message_and_ends_the_call(
    centre: Centre, sipp: Sipp
) -> None:
    centre.configure()
    await _close_queue(
        centre, closed_action=ClosedAction.auto_reply, message_prompt="sound:hello-world"
    )
    result = await sipp.caller(DID, CUSTOMER, hangup_after_ms=15_000).run(timeout=30)
    assert (result.successful, result.failed) == (1, 0), result.problems
    assert result.calls[0].bye_from == "pbx"  # the message played, then the PBX hung up
    call = (await eventually(centre.calls, lambda c: bool(c) and c[0].ended_at is not None))[0]
    assert call.end_cause == "message"
    assert await centre.status() is InteractionStatus.closed
    closed = await _event(centre, "closed")
    assert (closed.data["reason"], closed.data["because"]) == ("message", "closed")


async def test_a_forwarded_call_outlives_a_restart_of_call_control(
    centre: Centre, sipp: Sipp
) -> None:
    ana, ana_phone = await centre.phone_agent("1001", centre.queue)
    outside = await _outside_line(centre, sipp, answer_after_ms=200, hangup_after_ms=5000)
    centre.configure(ana_phone, PhoneSecret("1050", outside.secret))
    ana_sipp = sipp.phone("1001", ana_phone.secret, answer_after_ms=100)
    await ana_sipp.start()
    await outside.start()
    caller = sipp.caller(DID, CUSTOMER, hangup_after_ms=30_000)
    await caller.start()
    call = await _connected_to(centre, ana)
    async with centre.db.session(Scope.tenant(centre.tenant.id)) as session:
        await control.forward(
            session,
            await _actor(centre, ana),
            call.interaction_id,
            control.ForwardRequest(number=OUTSIDE),
        )
    await eventually(
        centre.calls, lambda c: c[0].forwarded_to == OUTSIDE and c[0].state == "bridged"
    )

    await centre.stop_control()  # Atiende restarts while the two talk
    await centre.start_control()
    taken_up = await eventually(
        lambda: _third_of(centre, call.interaction_id), lambda third: third is not None
    )
    assert taken_up is not None
    assert taken_up.startswith("atiende-xfer-")
    # the outside party hangs up after 5 s: the caller's call ends with it, not left alone
    await outside.wait_until(lambda r: r.ended_by_phone == 1, timeout=20)
    result = await caller.wait(timeout=20)
    assert (result.successful, result.failed) == (1, 0), result.problems
    assert result.calls[0].bye_from == "pbx"
    ended = (await eventually(centre.calls, lambda c: c[0].ended_at is not None))[0]
    assert ended.forwarded_to == OUTSIDE
    await eventually(_bridges, lambda b: call.bridge_id not in b)  # removed with the call


async def _third_of(centre: Centre, interaction_id: uuid.UUID) -> str | None:
    found = centre.control.call_of(interaction_id)
    return None if found is None else found.third
