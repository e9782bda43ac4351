"""The routing decision, as a pure function of a snapshot.

Input: the interactions waiting (with their queue's rules) and the agents (presence, licence,
skills, capacity, load). Output: offers — which agent(s) each interaction goes to. No I/O, no
clock: ``now`` is an argument. The service takes a snapshot under the tenant's routing lock,
calls ``decide``, and applies the result in the same transaction.

Rules every decision obeys (and tests prove):

- only available agents, who are members of the interaction's queue, get offers;
- an agent is never offered more than their free capacity for that channel class
  (voice vs. chat), counting what is already assigned, offered or in wrap-up;
- a voice-licence agent is never offered a digital interaction;
- an agent must have every skill the queue requires, at the minimum level;
- agents excluded for this interaction (who just rejected or let it time out) are skipped;
- closed queues offer nothing;
- interactions go in order of effective priority (queue priority + interaction priority +
  one point per ``ageing_seconds`` waited), then by time in queue (the head first);
- a returning contact's last agent (sticky) comes before the strategy while eligible.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

VOICE = "voice"
CHAT = "chat"


class StrategyName(StrEnum):
    longest_idle = "longest_idle"
    round_robin = "round_robin"
    least_occupied = "least_occupied"
    skills_weighted = "skills_weighted"
    ring_all = "ring_all"


def channel_class(channel: str) -> str:
    """Capacity pools: calls use the voice pool, every digital channel the chat pool."""
    return VOICE if channel == "voice" else CHAT


@dataclass(frozen=True, slots=True)
class QueueRules:
    queue_id: uuid.UUID
    strategy: StrategyName
    required_skills: Mapping[uuid.UUID, int]
    priority: int = 0
    is_open: bool = True
    ageing_seconds: int = 60
    members: frozenset[uuid.UUID] = frozenset()


@dataclass(frozen=True, slots=True)
class Waiting:
    interaction_id: uuid.UUID
    queue_id: uuid.UUID
    channel: str
    enqueued_at: datetime
    priority: int = 0
    sticky_agent_id: uuid.UUID | None = None
    excluded_agents: frozenset[uuid.UUID] = frozenset()


@dataclass(slots=True)
class AgentView:
    agent_id: uuid.UUID
    licence: str  # "voice" | "omnichannel"
    available: bool
    skills: Mapping[uuid.UUID, int]
    capacity: Mapping[str, int]  # {"voice": 1, "chat": 4}
    load: dict[str, int] = field(default_factory=dict)
    idle_since: datetime | None = None
    last_offer_at: datetime | None = None

    def free(self, pool: str) -> int:
        return self.capacity.get(pool, 0) - self.load.get(pool, 0)

    def occupancy(self) -> float:
        total = sum(self.capacity.values())
        return sum(self.load.values()) / total if total else 1.0


@dataclass(frozen=True, slots=True)
class Decision:
    interaction_id: uuid.UUID
    agent_ids: tuple[uuid.UUID, ...]  # one, or several for ring-all


def may_serve(agent: AgentView, item: Waiting, rules: QueueRules) -> bool:
    """Every hard rule but capacity, for one agent and one interaction."""
    if not agent.available or agent.agent_id not in rules.members:
        return False
    if item.channel != "voice" and agent.licence != "omnichannel":
        return False
    if agent.agent_id in item.excluded_agents:
        return False
    return all(
        agent.skills.get(skill, 0) >= level for skill, level in rules.required_skills.items()
    )


def effective_priority(item: Waiting, rules: QueueRules, now: datetime) -> float:
    waited = max(0.0, (now - item.enqueued_at).total_seconds())
    ageing = waited / rules.ageing_seconds if rules.ageing_seconds > 0 else 0.0
    return rules.priority + item.priority + ageing


def _idle_key(agent: AgentView) -> tuple[object, ...]:
    idle = agent.idle_since.timestamp() if agent.idle_since else float("-inf")
    return (idle, agent.agent_id)


def _round_robin_key(agent: AgentView) -> tuple[object, ...]:
    last = agent.last_offer_at.timestamp() if agent.last_offer_at else float("-inf")
    return (last, agent.agent_id)


def _least_occupied_key(agent: AgentView) -> tuple[object, ...]:
    return (agent.occupancy(), *_idle_key(agent))


def _skills_key(rules: QueueRules) -> Callable[[AgentView], tuple[object, ...]]:
    skills = list(rules.required_skills) or None

    def key(agent: AgentView) -> tuple[object, ...]:
        relevant = skills if skills is not None else list(agent.skills)
        score = sum(agent.skills.get(s, 0) for s in relevant)
        return (-score, *_idle_key(agent))

    return key


def strategy_key(rules: QueueRules) -> Callable[[AgentView], tuple[object, ...]]:
    """Lower sorts first: the agent a strategy prefers."""
    if rules.strategy is StrategyName.round_robin:
        return _round_robin_key
    if rules.strategy is StrategyName.least_occupied:
        return _least_occupied_key
    if rules.strategy is StrategyName.skills_weighted:
        return _skills_key(rules)
    return _idle_key  # longest idle, and ring-all's order of ringing


class _Pool:
    """Candidates of one queue in strategy order, with lazy re-keying as loads change."""

    def __init__(self, rules: QueueRules, agents: Iterable[AgentView]) -> None:
        self.rules = rules
        self.key = strategy_key(rules)
        self.heap: list[tuple[tuple[object, ...], int, AgentView]] = []
        self.versions: dict[uuid.UUID, int] = {}
        for agent in agents:
            self.push(agent)

    def push(self, agent: AgentView) -> None:
        version = self.versions.get(agent.agent_id, 0) + 1
        self.versions[agent.agent_id] = version
        heapq.heappush(self.heap, (self.key(agent), version, agent))

    def take(self, item: Waiting, pool: str) -> AgentView | None:
        """The best eligible agent with free capacity for ``item``; ineligible-for-this-item
        agents are put back, full ones dropped until they are pushed again."""
        skipped: list[AgentView] = []
        chosen: AgentView | None = None
        while self.heap:
            key, version, agent = heapq.heappop(self.heap)
            if self.versions.get(agent.agent_id) != version:
                continue  # stale entry
            if key != self.key(agent):
                self.push(agent)  # its load or idle time changed in another queue
                continue
            if agent.free(pool) <= 0 or not agent.available:
                self.versions[agent.agent_id] = version + 1  # dropped
                continue
            if agent.agent_id in item.excluded_agents:
                skipped.append(agent)
                continue
            chosen = agent
            break
        for agent in skipped:
            self.push(agent)
        return chosen

    def all_free(self, item: Waiting, pool: str) -> list[AgentView]:
        return [
            agent
            for _, version, agent in sorted(self.heap)
            if self.versions.get(agent.agent_id) == version
            and agent.free(pool) > 0
            and agent.available
            and agent.agent_id not in item.excluded_agents
        ]


def decide(
    waiting: Sequence[Waiting],
    queues: Mapping[uuid.UUID, QueueRules],
    agents: Sequence[AgentView],
    now: datetime,
) -> list[Decision]:
    """Offers for as many waiting interactions as free agents allow, highest priority first.

    ``agents`` are updated in place (their load and last offer), so capacity holds across the
    whole round; pass copies to keep the originals.
    """
    by_id = {agent.agent_id: agent for agent in agents}
    pools: dict[tuple[uuid.UUID, bool], _Pool] = {}

    def pool_for(rules: QueueRules, channel: str) -> _Pool:
        key = (rules.queue_id, channel != "voice")
        if key not in pools:
            probe = Waiting(uuid.UUID(int=0), rules.queue_id, channel, now)
            members = (by_id[m] for m in rules.members if m in by_id)
            pools[key] = _Pool(rules, (a for a in members if may_serve(a, probe, rules)))
        return pools[key]

    order = sorted(
        (item for item in waiting if item.queue_id in queues and queues[item.queue_id].is_open),
        key=lambda item: (-effective_priority(item, queues[item.queue_id], now), item.enqueued_at),
    )
    decisions: list[Decision] = []
    for item in order:
        rules = queues[item.queue_id]
        pool_name = channel_class(item.channel)
        candidates = pool_for(rules, item.channel)
        sticky = by_id.get(item.sticky_agent_id) if item.sticky_agent_id else None
        chosen: list[AgentView]
        if sticky is not None and sticky.free(pool_name) > 0 and may_serve(sticky, item, rules):
            chosen = [sticky]
        elif rules.strategy is StrategyName.ring_all and item.channel == "voice":
            chosen = candidates.all_free(item, pool_name)
        else:
            best = candidates.take(item, pool_name)
            chosen = [best] if best is not None else []
        if not chosen:
            continue
        for agent in chosen:
            agent.load[pool_name] = agent.load.get(pool_name, 0) + 1
            agent.last_offer_at = now
            # Other pools notice the new key lazily when this agent reaches their top.
            candidates.push(agent)
        decisions.append(Decision(item.interaction_id, tuple(a.agent_id for a in chosen)))
    return decisions
