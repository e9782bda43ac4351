"""The harness against a real Asterisk 22: configuration from Atiende's own generator, a
registered sipp agent phone, a sipp caller on a DID, and our ARI client answering, ringing
the agent and bridging the two."""

from __future__ import annotations

import uuid

import pytest

from atiende.voice.ari import AriRequestFailed
from atiende.voice.ari_events import (
    ChannelEnteredBridge,
    ChannelLeftBridge,
    StasisEnd,
    StasisStart,
)
from atiende.voice.pbx import PhoneSecret, render
from voice_real.harness import AriEvents, Asterisk, Sipp, pbx_setup

DID = "5551000"
CUSTOMER = "5550100"
AGENT = PhoneSecret("1001", "agent-1001-secret")
ABSENT_AGENT = PhoneSecret("1002", "agent-1002-secret")


@pytest.fixture
def configured(asterisk: Asterisk) -> Asterisk:
    setup = pbx_setup(tenant="acme", dids=(DID,), phones=(AGENT, ABSENT_AGENT))
    asterisk.apply(render(setup))
    return asterisk


async def test_a_caller_on_a_did_is_bridged_to_a_registered_agent_phone(
    configured: Asterisk, ari: AriEvents, sipp: Sipp
) -> None:
    phone = sipp.phone(AGENT.number, AGENT.secret, answer_after_ms=200)
    await phone.start()
    await configured.wait_endpoint_state(AGENT.number, "online")
    assert f"{AGENT.number}/sip:{AGENT.number}@127.0.0.1:{phone.sip_port}" in configured.cli(
        "pjsip show contacts"
    )

    caller = sipp.caller(DID, CUSTOMER, hangup_after_ms=1500)
    await caller.start()
    inbound = await ari.wait_for(StasisStart, lambda e: e.args[:1] == ("acme",))
    customer = inbound.channel
    assert inbound.args == ("acme", DID)
    assert customer.caller.number == CUSTOMER
    assert customer.dialplan.context == "atiende-inbound"

    client = ari.client
    await client.answer(customer.id)
    bridge = await client.create_bridge()
    await client.add_channel(bridge.id, customer.id)
    agent_id = f"agent-{uuid.uuid4().hex}"
    await client.originate(
        f"PJSIP/{AGENT.number}",
        app_args=("@agent", "test"),
        caller_id=f"Customer <{CUSTOMER}>",
        channel_id=agent_id,
    )
    agent = await ari.wait_for(StasisStart, lambda e: e.channel.id == agent_id)
    assert agent.args == ("@agent", "test")
    await client.add_channel(bridge.id, agent_id)
    await ari.wait_for(
        ChannelEnteredBridge, lambda e: e.channel is not None and e.channel.id == agent_id
    )
    bridged = {b.id: set(b.channels) for b in await client.list_bridges()}
    assert bridged[bridge.id] == {customer.id, agent_id}

    # The customer hangs up; the agent's leg is ours to end.
    await ari.wait_for(ChannelLeftBridge, lambda e: e.channel.id == customer.id)
    await ari.wait_for(StasisEnd, lambda e: e.channel.id == customer.id)
    await client.hangup(agent_id)
    await ari.wait_for(StasisEnd, lambda e: e.channel.id == agent_id)
    await client.destroy_bridge(bridge.id)

    result = await caller.wait(timeout=15)
    assert result.exit_code == 0, result.problems
    assert (result.successful, result.failed, result.final_status) == (1, 0, 200)
    assert result.calls[0].bye_from == "caller"
    report = await phone.wait_until(lambda r: r.ended_by_pbx == 1)
    assert (report.received, report.answered, report.ended_by_pbx) == (1, 1, 1)
    assert f"<sip:{CUSTOMER}@" in report.calls[0].caller  # the phone shows who calls
    assert not {customer.id, agent_id} & {c.id for c in await client.list_channels()}
    assert bridge.id not in {b.id for b in await client.list_bridges()}


async def test_ringing_an_extension_that_is_not_registered_fails_at_once(
    configured: Asterisk, ari: AriEvents
) -> None:
    mark = configured.log_size()
    with pytest.raises(AriRequestFailed) as failure:
        await ari.client.originate(f"PJSIP/{ABSENT_AGENT.number}", app_args=("@agent", "test"))
    assert (failure.value.status, failure.value.message) == (500, "Allocation failed")
    await configured.wait_for_log("Is endpoint registered and reachable?", since=mark)
    assert await configured.endpoint_state(ABSENT_AGENT.number) == "offline"


async def test_a_call_to_an_unknown_number_gets_404_and_never_reaches_the_application(
    configured: Asterisk, ari: AriEvents, sipp: Sipp
) -> None:
    result = await sipp.caller("5559999", CUSTOMER).run(timeout=15)
    assert result.exit_code == 1
    assert (result.successful, result.failed, result.final_status) == (0, 1, 404)
    assert not [item for item in ari.items if isinstance(item, StasisStart)]
