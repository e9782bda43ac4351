"""What the sipp phones and callers of the harness do against the real Asterisk, so that the
end-to-end voice tests can trust them: DTMF from a caller (SIP INFO and RFC 2833), a caller
the PBX hangs up on, a phone that never answers, a busy phone, a phone that hangs up, two
callers at once, and music on hold."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from atiende.voice.ari_events import (
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    ChannelStateChange,
    Dial,
    StasisEnd,
    StasisStart,
)
from atiende.voice.pbx import PhoneSecret, render
from voice_real.harness import AriEvents, Asterisk, Sipp, pbx_setup

DIDS = ("5551000", "5552000")
AGENT = PhoneSecret("1001", "agent-1001-secret")


@pytest.fixture
def configured(asterisk: Asterisk) -> Asterisk:
    asterisk.apply(render(pbx_setup(tenant="acme", dids=DIDS, phones=(AGENT,))))
    return asterisk


async def ring_agent(ari: AriEvents) -> str:
    agent_id = f"agent-{uuid.uuid4().hex}"
    await ari.client.originate(
        f"PJSIP/{AGENT.number}", app_args=("@agent", "test"), channel_id=agent_id
    )
    return agent_id


@pytest.mark.parametrize(("mode", "dtmf"), [("info", "12#*9"), ("rfc2833", "1259#")])
async def test_a_caller_sends_dtmf_and_is_hung_up_on_by_the_pbx(
    configured: Asterisk, ari: AriEvents, sipp: Sipp, mode: str, dtmf: str
) -> None:
    caller = sipp.caller(
        DIDS[0], "5550100", hangup_after_ms=0, dtmf=dtmf, dtmf_mode=mode, dtmf_delay_ms=100
    )
    await caller.start()
    start = await ari.wait_for(StasisStart)
    await ari.client.answer(start.channel.id)

    digits = [
        (await ari.wait_for(ChannelDtmfReceived, lambda e: e.channel.id == start.channel.id)).digit
        for _ in range(5)
    ]
    assert "".join(digits) == dtmf
    await ari.client.hangup(start.channel.id)

    result = await caller.wait(timeout=10)
    assert result.exit_code == 0, result.problems
    assert result.successful == 1
    assert result.calls[0].bye_from == "pbx"
    assert result.calls[0].dtmf_sent == (dtmf if mode == "info" else "")  # INFO is in the trace


async def test_a_phone_that_never_answers_rings_until_cancelled(
    configured: Asterisk, ari: AriEvents, sipp: Sipp
) -> None:
    phone = sipp.phone(AGENT.number, AGENT.secret, never_answer=True)
    await phone.start()
    agent_id = await ring_agent(ari)
    await ari.wait_for(
        ChannelStateChange, lambda e: e.channel.id == agent_id and e.channel.state == "Ringing"
    )
    await ari.client.hangup(agent_id)
    destroyed = await ari.wait_for(ChannelDestroyed, lambda e: e.channel.id == agent_id)
    assert destroyed.cause == 16  # normal clearing: we hung up
    report = await phone.wait_until(lambda r: r.cancelled == 1)
    assert (report.received, report.answered) == (1, 0)


async def test_a_busy_phone_rejects_the_call(
    configured: Asterisk, ari: AriEvents, sipp: Sipp
) -> None:
    phone = sipp.phone(AGENT.number, AGENT.secret, reject_with=486)
    await phone.start()
    agent_id = await ring_agent(ari)
    dial = await ari.wait_for(Dial, lambda e: e.peer.id == agent_id and e.dialstatus == "BUSY")
    assert dial.dialstatus == "BUSY"
    destroyed = await ari.wait_for(ChannelDestroyed, lambda e: e.channel.id == agent_id)
    assert destroyed.cause == 17  # user busy
    report = await phone.wait_until(lambda r: r.rejected == 1)
    assert report.calls[0].rejected_with == 486
    assert not [e for e in ari.items if isinstance(e, StasisStart)]


async def test_a_phone_that_hangs_up_ends_its_leg(
    configured: Asterisk, ari: AriEvents, sipp: Sipp
) -> None:
    phone = sipp.phone(AGENT.number, AGENT.secret, answer_after_ms=100, hangup_after_ms=300)
    await phone.start()
    agent_id = await ring_agent(ari)
    await ari.wait_for(StasisStart, lambda e: e.channel.id == agent_id)
    hangup = await ari.wait_for(ChannelHangupRequest, lambda e: e.channel.id == agent_id)
    assert hangup.soft is None  # the far end, not us
    await ari.wait_for(StasisEnd, lambda e: e.channel.id == agent_id)
    report = await phone.wait_until(lambda r: r.ended_by_phone == 1)
    assert (report.received, report.answered) == (1, 1)


async def test_two_callers_at_once_each_reach_the_application(
    configured: Asterisk, ari: AriEvents, sipp: Sipp
) -> None:
    first = sipp.caller(DIDS[0], "5550101", hangup_after_ms=0)
    second = sipp.caller(DIDS[1], "5550102", hangup_after_ms=0)
    await asyncio.gather(first.start(), second.start())
    starts = [await ari.wait_for(StasisStart) for _ in range(2)]
    assert {(s.args[1], s.channel.caller.number) for s in starts} == {
        (DIDS[0], "5550101"),
        (DIDS[1], "5550102"),
    }
    for start in starts:
        await ari.client.answer(start.channel.id)
        await ari.client.hangup(start.channel.id)
    results = await asyncio.gather(first.wait(timeout=10), second.wait(timeout=10))
    assert [(r.successful, r.calls[0].bye_from) for r in results] == [(1, "pbx"), (1, "pbx")]


async def test_a_held_agent_gives_the_customer_music(
    configured: Asterisk, ari: AriEvents, sipp: Sipp
) -> None:
    phone = sipp.phone(AGENT.number, AGENT.secret)
    await phone.start()
    caller = sipp.caller(DIDS[0], "5550100", hangup_after_ms=0)
    await caller.start()
    customer = (await ari.wait_for(StasisStart)).channel
    await ari.client.answer(customer.id)
    bridge = await ari.client.create_bridge()
    agent_id = await ring_agent(ari)
    await ari.wait_for(StasisStart, lambda e: e.channel.id == agent_id)
    await ari.client.add_channel(bridge.id, customer.id, agent_id)

    mark = configured.log_size()
    await ari.client.hold(agent_id)
    await configured.wait_for_log("Started music on hold, class 'default'", since=mark)
    await ari.client.unhold(agent_id)

    for channel_id in (customer.id, agent_id):
        await ari.client.hangup(channel_id)
    await ari.client.destroy_bridge(bridge.id)
    assert (await caller.wait(timeout=10)).successful == 1
