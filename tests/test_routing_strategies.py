"""The pure routing decision: each strategy and every hard rule, without a database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from atiende.routing.strategies import (
    AgentView,
    QueueRules,
    StrategyName,
    Waiting,
    decide,
)

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
SALES = uuid.uuid4()
SKILL = uuid.uuid4()


def agent(
    name: int,
    *,
    licence: str = "omnichannel",
    idle: float = 0,
    chat: int = 4,
    voice: int = 1,
    load: dict[str, int] | None = None,
    skills: dict[uuid.UUID, int] | None = None,
    available: bool = True,
    last_offer: float | None = None,
) -> AgentView:
    return AgentView(
        agent_id=uuid.UUID(int=name),
        licence=licence,
        available=available,
        skills=skills or {},
        capacity={"voice": voice, "chat": chat},
        load=dict(load or {}),
        idle_since=NOW - timedelta(seconds=idle),
        last_offer_at=None if last_offer is None else NOW - timedelta(seconds=last_offer),
    )


def queue(
    agents: list[AgentView], strategy: StrategyName = StrategyName.longest_idle, **kw: object
) -> QueueRules:
    return QueueRules(
        queue_id=kw.pop("queue_id", SALES),  # type: ignore[arg-type]
        strategy=strategy,
        required_skills=kw.pop("required_skills", {}),  # type: ignore[arg-type]
        members=frozenset(a.agent_id for a in agents),
        **kw,  # type: ignore[arg-type]
    )


def waiting(
    n: int = 1, channel: str = "webchat", waited: float = 10, **kw: object
) -> list[Waiting]:
    return [
        Waiting(
            interaction_id=uuid.UUID(int=1000 + i),
            queue_id=kw.get("queue_id", SALES),  # type: ignore[arg-type]
            channel=channel,
            enqueued_at=NOW - timedelta(seconds=waited + n - i),
            priority=kw.get("priority", 0),  # type: ignore[arg-type]
            sticky_agent_id=kw.get("sticky"),  # type: ignore[arg-type]
            excluded_agents=frozenset(kw.get("excluded", ())),  # type: ignore[arg-type]
        )
        for i in range(n)
    ]


def chosen(decisions: list) -> list[int]:  # type: ignore[type-arg]
    return [d.agent_ids[0].int for d in decisions]


def test_longest_idle_picks_the_agent_free_the_longest() -> None:
    agents = [agent(1, idle=10), agent(2, idle=300), agent(3, idle=60)]
    assert chosen(decide(waiting(), {SALES: queue(agents)}, agents, NOW)) == [2]


def test_round_robin_picks_the_agent_offered_least_recently() -> None:
    agents = [agent(1, last_offer=5), agent(2, last_offer=50), agent(3, last_offer=20)]
    rules = queue(agents, StrategyName.round_robin)
    assert chosen(decide(waiting(3), {SALES: rules}, agents, NOW)) == [2, 3, 1]


def test_least_occupied_picks_the_agent_with_the_lowest_load_share() -> None:
    agents = [agent(1, load={"chat": 3}), agent(2, load={"chat": 1}), agent(3, load={"chat": 2})]
    rules = queue(agents, StrategyName.least_occupied)
    assert chosen(decide(waiting(), {SALES: rules}, agents, NOW)) == [2]


def test_skills_weighted_prefers_the_highest_level() -> None:
    agents = [
        agent(1, skills={SKILL: 4}, idle=900),
        agent(2, skills={SKILL: 9}),
        agent(3, skills={SKILL: 6}),
    ]
    rules = queue(agents, StrategyName.skills_weighted, required_skills={SKILL: 3})
    assert chosen(decide(waiting(), {SALES: rules}, agents, NOW)) == [2]


def test_required_skills_exclude_agents_below_the_minimum_level() -> None:
    agents = [agent(1, skills={SKILL: 2}, idle=900), agent(2, skills={SKILL: 5})]
    rules = queue(agents, required_skills={SKILL: 3})
    assert chosen(decide(waiting(2), {SALES: rules}, agents, NOW)) == [2, 2]


def test_ring_all_rings_every_free_agent_for_a_call() -> None:
    agents = [agent(1), agent(2, load={"voice": 1}), agent(3)]
    rules = queue(agents, StrategyName.ring_all)
    decisions = decide(waiting(1, channel="voice"), {SALES: rules}, agents, NOW)
    assert sorted(a.int for a in decisions[0].agent_ids) == [1, 3]


def test_a_voice_licence_agent_is_never_offered_a_chat() -> None:
    agents = [agent(1, licence="voice", idle=999), agent(2, licence="omnichannel")]
    decisions = decide(waiting(5), {SALES: queue(agents)}, agents, NOW)
    assert 1 not in chosen(decisions)


def test_a_voice_licence_agent_takes_calls() -> None:
    agents = [agent(1, licence="voice")]
    assert chosen(decide(waiting(1, channel="voice"), {SALES: queue(agents)}, agents, NOW)) == [1]


def test_capacity_is_never_exceeded_within_a_round() -> None:
    agents = [agent(1, chat=2, load={"chat": 1}), agent(2, chat=1)]
    decisions = decide(waiting(10), {SALES: queue(agents)}, agents, NOW)
    assert len(decisions) == 2
    assert sorted(chosen(decisions)) == [1, 2]


def test_voice_and_chat_capacity_are_separate_pools() -> None:
    agents = [agent(1, chat=1, voice=1, load={"chat": 1})]
    decisions = decide(waiting(1, channel="voice"), {SALES: queue(agents)}, agents, NOW)
    assert chosen(decisions) == [1]


def test_a_closed_queue_never_offers() -> None:
    agents = [agent(1)]
    assert decide(waiting(), {SALES: queue(agents, is_open=False)}, agents, NOW) == []


def test_agents_on_break_or_offline_get_nothing() -> None:
    agents = [agent(1, available=False)]
    assert decide(waiting(), {SALES: queue(agents)}, agents, NOW) == []


def test_non_members_get_nothing() -> None:
    member, outsider = agent(1), agent(2, idle=999)
    assert chosen(decide(waiting(), {SALES: queue([member])}, [member, outsider], NOW)) == [1]


def test_higher_priority_goes_first_then_the_head_of_the_queue() -> None:
    agents = [agent(1, chat=1)]
    normal = waiting(1, waited=100)
    urgent = [Waiting(uuid.UUID(int=9), SALES, "webchat", NOW - timedelta(seconds=1), priority=5)]
    decisions = decide(normal + urgent, {SALES: queue(agents)}, agents, NOW)
    assert [d.interaction_id.int for d in decisions] == [9]
    older_first = decide(waiting(3), {SALES: queue([agent(1, chat=1)])}, [agent(1, chat=1)], NOW)
    assert older_first[0].interaction_id.int == 1000


def test_ageing_lets_a_long_wait_overtake_a_priority() -> None:
    agents = [agent(1, chat=1)]
    old = [Waiting(uuid.UUID(int=1), SALES, "webchat", NOW - timedelta(seconds=600))]
    new_urgent = [Waiting(uuid.UUID(int=2), SALES, "webchat", NOW, priority=5)]
    rules = queue(agents, ageing_seconds=60)  # 600 s waited = 10 points > 5
    assert decide(old + new_urgent, {SALES: rules}, agents, NOW)[0].interaction_id.int == 1


def test_sticky_agent_comes_before_the_strategy_while_eligible() -> None:
    agents = [agent(1, idle=999), agent(2)]
    sticky = decide(waiting(sticky=uuid.UUID(int=2)), {SALES: queue(agents)}, agents, NOW)
    assert chosen(sticky) == [2]
    busy_sticky = [agent(1, idle=999), agent(2, chat=1, load={"chat": 1})]
    fallback = decide(
        waiting(sticky=uuid.UUID(int=2)), {SALES: queue(busy_sticky)}, busy_sticky, NOW
    )
    assert chosen(fallback) == [1]


def test_agents_who_just_refused_are_skipped() -> None:
    agents = [agent(1, idle=999), agent(2)]
    decisions = decide(waiting(excluded={uuid.UUID(int=1)}), {SALES: queue(agents)}, agents, NOW)
    assert chosen(decisions) == [2]


@settings(max_examples=200, deadline=None)
@given(
    licences=st.lists(st.sampled_from(["voice", "omnichannel"]), min_size=1, max_size=12),
    capacities=st.lists(st.integers(min_value=0, max_value=4), min_size=12, max_size=12),
    loads=st.lists(st.integers(min_value=0, max_value=4), min_size=12, max_size=12),
    channels=st.lists(st.sampled_from(["voice", "webchat", "whatsapp"]), min_size=0, max_size=40),
    strategy=st.sampled_from(list(StrategyName)),
)
def test_hard_rules_hold_for_any_snapshot(
    licences: list[str],
    capacities: list[int],
    loads: list[int],
    channels: list[str],
    strategy: StrategyName,
) -> None:
    agents = [
        agent(
            i, licence=lic, chat=capacities[i], voice=1, load={"chat": min(loads[i], capacities[i])}
        )
        for i, lic in enumerate(licences)
    ]
    before = {a.agent_id: dict(a.load) for a in agents}
    items = [
        Waiting(uuid.UUID(int=5000 + i), SALES, ch, NOW - timedelta(seconds=i))
        for i, ch in enumerate(channels)
    ]
    decisions = decide(items, {SALES: queue(agents, strategy)}, [*agents], NOW)
    by_id = {a.agent_id: a for a in agents}
    channel_of = {i.interaction_id: i.channel for i in items}
    assert len({d.interaction_id for d in decisions}) == len(decisions), "assigned twice"
    given_load: dict[tuple[uuid.UUID, str], int] = {}
    for d in decisions:
        channel = channel_of[d.interaction_id]
        for agent_id in d.agent_ids:
            if channel != "voice":
                assert by_id[agent_id].licence == "omnichannel", "voice licence got a chat"
            pool = "voice" if channel == "voice" else "chat"
            given_load[(agent_id, pool)] = given_load.get((agent_id, pool), 0) + 1
    for (agent_id, pool), extra in given_load.items():
        capacity = by_id[agent_id].capacity[pool]
        assert before[agent_id].get(pool, 0) + extra <= capacity, "over capacity"
