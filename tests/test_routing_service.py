"""The routing engine with a real database: offers, refusals, time-outs, transfers, wrap-up,
and the hard rules under concurrency."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select

from atiende.conversations.models import Channel, InteractionStatus, Message, MessageDirection
from atiende.core.clock import TestClock
from atiende.core.config import Settings
from atiende.core.db import Database, Scope
from atiende.core.errors import AtiendeError
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.jobs.service import JobRunner
from atiende.routing import service as routing
from atiende.routing.models import (
    Agent,
    Disposition,
    LicenceType,
    Offer,
    OfferStatus,
    Presence,
    Strategy,
)
from atiende.tasks import build_registry
from factories import make_tenant
from routing_factories import (
    arrive,
    counters_match_truth,
    get,
    make_agent,
    make_queue,
    timeline,
)


def as_agent(agent_id: uuid.UUID, tenant_id: uuid.UUID, role: Role = Role.agent) -> Actor:
    return Actor(user_id=agent_id, email=None, role=role, tenant_id=tenant_id)


async def offers_of(db: Database, tenant_id: uuid.UUID, interaction_id: uuid.UUID) -> list[Offer]:
    async with db.session(Scope.tenant(tenant_id)) as session:
        return list(
            (
                await session.scalars(
                    select(Offer)
                    .where(Offer.interaction_id == interaction_id)
                    .order_by(Offer.created_at)
                )
            ).all()
        )


async def pending_offer(db: Database, tenant_id: uuid.UUID, interaction_id: uuid.UUID) -> Offer:
    pending = [
        o for o in await offers_of(db, tenant_id, interaction_id) if o.status is OfferStatus.pending
    ]
    assert len(pending) == 1, pending
    return pending[0]


async def test_a_waiting_chat_is_offered_to_a_free_agent_who_accepts_it(app, db: Database) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant)
    agent_id = await make_agent(db, tenant, queue)
    interaction_id = await arrive(db, tenant, queue)
    assert (await get(db, tenant, interaction_id)).status is InteractionStatus.offered
    offer = await pending_offer(db, tenant.id, interaction_id)
    assert offer.agent_id == agent_id
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.accept_offer(session, as_agent(agent_id, tenant.id), offer.id)
    interaction = await get(db, tenant, interaction_id)
    assert (interaction.status, interaction.agent_id) == (InteractionStatus.assigned, agent_id)
    assert await timeline(db, tenant, interaction_id) == [
        "created",
        "queued",
        "offered",
        "accepted",
        "assigned",
    ]


async def test_a_rejected_offer_goes_to_the_next_agent_and_counts_against_the_first(
    app, db: Database, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant)
    first = await make_agent(db, tenant, queue)
    clock.advance(5)
    second = await make_agent(db, tenant, queue)
    interaction_id = await arrive(db, tenant, queue)
    offer = await pending_offer(db, tenant.id, interaction_id)
    assert offer.agent_id == first, "longest idle first"
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.reject_offer(session, as_agent(first, tenant.id), offer.id)
    await routing.settle()
    assert (await pending_offer(db, tenant.id, interaction_id)).agent_id == second
    async with db.session(Scope.tenant(tenant.id)) as session:
        assert (await session.get(Agent, first)).no_answer_count == 1  # type: ignore[union-attr]
    events = await timeline(db, tenant, interaction_id)
    assert events[-3:] == ["rejected", "requeued", "offered"]
    assert await counters_match_truth(db, tenant)


async def test_an_unanswered_offer_times_out_through_the_job_and_moves_on(
    app, db: Database, clock: TestClock, settings: Settings
) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, offer_timeout_seconds=20)
    first = await make_agent(db, tenant, queue)
    clock.advance(5)
    second = await make_agent(db, tenant, queue)
    interaction_id = await arrive(db, tenant, queue)
    assert (await pending_offer(db, tenant.id, interaction_id)).agent_id == first
    runner = JobRunner(db, build_registry(), settings)
    clock.advance(19)
    await runner.run_due()
    assert (await pending_offer(db, tenant.id, interaction_id)).agent_id == first
    clock.advance(2)
    await runner.run_due()
    await routing.settle()
    statuses = [(o.agent_id, o.status) for o in await offers_of(db, tenant.id, interaction_id)]
    assert statuses == [(first, OfferStatus.timed_out), (second, OfferStatus.pending)]
    assert await counters_match_truth(db, tenant)


async def test_accepting_a_timed_out_offer_is_refused(app, db: Database, clock: TestClock) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, offer_timeout_seconds=10)
    agent_id = await make_agent(db, tenant, queue)
    interaction_id = await arrive(db, tenant, queue)
    offer = await pending_offer(db, tenant.id, interaction_id)
    clock.advance(11)
    with pytest.raises(AtiendeError) as refused:
        async with db.session(Scope.tenant(tenant.id)) as session:
            await routing.accept_offer(session, as_agent(agent_id, tenant.id), offer.id)
    assert getattr(refused.value, "error_code", None) == "offer_expired"


async def test_auto_accept_queues_assign_directly(app, db: Database) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, auto_accept=True)
    agent_id = await make_agent(db, tenant, queue)
    interaction = await get(db, tenant, await arrive(db, tenant, queue))
    assert (interaction.status, interaction.agent_id) == (InteractionStatus.assigned, agent_id)


async def test_a_voice_licence_agent_is_never_offered_a_chat(app, db: Database) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant)
    await make_agent(db, tenant, queue, licence=LicenceType.voice)
    chat = await arrive(db, tenant, queue, channel=Channel.whatsapp)
    call = await arrive(db, tenant, queue, channel=Channel.voice)
    assert (await get(db, tenant, chat)).status is InteractionStatus.queued
    assert (await get(db, tenant, call)).status is InteractionStatus.offered


async def test_an_agent_on_break_gets_nothing_until_available_again(app, db: Database) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant)
    agent_id = await make_agent(db, tenant, queue, available=False)
    interaction_id = await arrive(db, tenant, queue)
    assert (await get(db, tenant, interaction_id)).status is InteractionStatus.queued
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.set_presence(
            session, as_agent(agent_id, tenant.id), agent_id, Presence.available
        )
    await routing.settle()
    assert (await get(db, tenant, interaction_id)).status is InteractionStatus.offered


async def test_going_on_break_hands_pending_offers_back(app, db: Database) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant)
    agent_id = await make_agent(db, tenant, queue)
    interaction_id = await arrive(db, tenant, queue)
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.set_presence(
            session, as_agent(agent_id, tenant.id), agent_id, Presence.offline
        )
    assert (await get(db, tenant, interaction_id)).status is InteractionStatus.queued
    assert [o.status for o in await offers_of(db, tenant.id, interaction_id)] == [
        OfferStatus.cancelled
    ]
    assert await counters_match_truth(db, tenant)


async def test_capacity_limits_how_many_chats_an_agent_holds(app, db: Database) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, auto_accept=True)
    await make_agent(db, tenant, queue, chat_capacity=2)
    ids = [await arrive(db, tenant, queue) for _ in range(5)]
    statuses = [(await get(db, tenant, i)).status for i in ids]
    assert statuses.count(InteractionStatus.assigned) == 2
    assert statuses.count(InteractionStatus.queued) == 3


async def test_closing_frees_capacity_for_the_next_waiting_chat(app, db: Database) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, auto_accept=True, wrap_up_seconds=30)
    agent_id = await make_agent(db, tenant, queue, chat_capacity=1)
    first, second = await arrive(db, tenant, queue), await arrive(db, tenant, queue)
    assert (await get(db, tenant, second)).status is InteractionStatus.queued
    actor = as_agent(agent_id, tenant.id)
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.wrap_up(session, actor, first)
    await routing.settle()
    assert (await get(db, tenant, second)).status is InteractionStatus.queued, "wrap-up holds"
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.close(session, actor, first)
    await routing.settle()
    assert (await get(db, tenant, second)).status is InteractionStatus.assigned
    assert await counters_match_truth(db, tenant)


async def test_wrap_up_ends_by_itself_at_the_queues_limit(
    app, db: Database, clock: TestClock, settings: Settings
) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, auto_accept=True, wrap_up_seconds=30)
    agent_id = await make_agent(db, tenant, queue)
    interaction_id = await arrive(db, tenant, queue)
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.wrap_up(session, as_agent(agent_id, tenant.id), interaction_id)
    clock.advance(31)
    await JobRunner(db, build_registry(), settings).run_due()
    interaction = await get(db, tenant, interaction_id)
    assert interaction.status is InteractionStatus.closed
    assert interaction.disposition_code is None
    assert await counters_match_truth(db, tenant)


async def test_a_queue_with_dispositions_requires_one_to_close(app, db: Database) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, auto_accept=True)
    async with db.session(Scope.tenant(tenant.id)) as session:
        session.add(Disposition(queue_id=queue.id, code="sold", label="Sold"))
    agent_id = await make_agent(db, tenant, queue)
    interaction_id = await arrive(db, tenant, queue)
    actor = as_agent(agent_id, tenant.id)
    for code, expected in ((None, "disposition_required"), ("nope", "disposition_not_found")):
        with pytest.raises(AtiendeError) as refused:
            async with db.session(Scope.tenant(tenant.id)) as session:
                await routing.close(session, actor, interaction_id, code)
        assert getattr(refused.value, "error_code", None) == expected
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.close(session, actor, interaction_id, "sold")
    assert (await get(db, tenant, interaction_id)).disposition_code == "sold"


async def test_transfer_to_a_queue_with_a_note(app, db: Database) -> None:
    tenant = await make_tenant(db)
    sales = await make_queue(db, tenant, auto_accept=True)
    support = await make_queue(db, tenant)
    agent_id = await make_agent(db, tenant, sales)
    interaction_id = await arrive(db, tenant, sales)
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.transfer(
            session,
            as_agent(agent_id, tenant.id),
            interaction_id,
            queue_id=support.id,
            note="wants a refund",
        )
    interaction = await get(db, tenant, interaction_id)
    assert (interaction.status, interaction.queue_id, interaction.agent_id) == (
        InteractionStatus.queued,
        support.id,
        None,
    )
    async with db.session(Scope.tenant(tenant.id)) as session:
        notes = (
            await session.scalars(
                select(Message).where(
                    Message.interaction_id == interaction_id,
                    Message.direction == MessageDirection.internal,
                )
            )
        ).all()
    assert [n.body for n in notes] == ["wants a refund"]
    assert "transferred" in await timeline(db, tenant, interaction_id)
    assert await counters_match_truth(db, tenant)


async def test_transfer_to_an_agent_offers_it_to_them(app, db: Database) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, auto_accept=True)
    first = await make_agent(db, tenant, queue)
    voice_only = await make_agent(db, tenant, licence=LicenceType.voice)
    colleague = await make_agent(db, tenant)
    interaction_id = await arrive(db, tenant, queue)
    actor = as_agent(first, tenant.id)
    with pytest.raises(AtiendeError) as refused:
        async with db.session(Scope.tenant(tenant.id)) as session:
            await routing.transfer(session, actor, interaction_id, agent_id=voice_only)
    assert getattr(refused.value, "error_code", None) == "licence_mismatch"
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.transfer(session, actor, interaction_id, agent_id=colleague)
    interaction = await get(db, tenant, interaction_id)
    assert (interaction.status, interaction.agent_id) == (InteractionStatus.assigned, colleague)
    assert await counters_match_truth(db, tenant)


async def test_a_returning_contact_goes_to_their_last_agent(
    app, db: Database, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, auto_accept=True, sticky_seconds=3600)
    first = await make_agent(db, tenant, queue)
    clock.advance(5)
    second = await make_agent(db, tenant, queue)
    earlier = await arrive(db, tenant, queue, who="ana")
    assert (await get(db, tenant, earlier)).agent_id == first
    clock.advance(10)  # first becomes idle later than second
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.close(session, as_agent(first, tenant.id), earlier)
    clock.advance(60)
    again = await arrive(db, tenant, queue, who="ana")
    assert (await get(db, tenant, again)).agent_id == first
    stranger = await arrive(db, tenant, queue, who="bob")
    assert (await get(db, tenant, stranger)).agent_id == second


async def test_max_wait_moves_a_waiting_interaction_to_the_overflow_queue(
    app, db: Database, clock: TestClock, settings: Settings
) -> None:
    tenant = await make_tenant(db)
    overflow = await make_queue(db, tenant, name="overflow")
    queue = await make_queue(db, tenant, max_wait_seconds=120, overflow_queue_id=overflow.id)
    interaction_id = await arrive(db, tenant, queue)
    clock.advance(121)
    await JobRunner(db, build_registry(), settings).run_due()
    interaction = await get(db, tenant, interaction_id)
    assert interaction.queue_id == overflow.id
    assert "overflowed" in await timeline(db, tenant, interaction_id)


async def test_a_customer_who_leaves_while_waiting_is_abandoned(app, db: Database) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant)
    interaction_id = await arrive(db, tenant, queue)
    async with db.session(Scope.tenant(tenant.id)) as session:
        assert await routing.abandon(session, interaction_id)
    assert (await get(db, tenant, interaction_id)).status is InteractionStatus.abandoned
    assert await counters_match_truth(db, tenant)


async def test_ring_all_rings_every_free_agent_and_the_first_to_answer_wins(
    app, db: Database
) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, channels=["voice"], strategy=Strategy.ring_all)
    agents = [await make_agent(db, tenant, queue) for _ in range(3)]
    call = await arrive(db, tenant, queue, channel=Channel.voice)
    offers = await offers_of(db, tenant.id, call)
    assert sorted(o.agent_id for o in offers) == sorted(agents)
    winner = offers[1]
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.accept_offer(session, as_agent(winner.agent_id, tenant.id), winner.id)
    with pytest.raises(AtiendeError) as late:
        async with db.session(Scope.tenant(tenant.id)) as session:
            await routing.accept_offer(
                session, as_agent(offers[0].agent_id, tenant.id), offers[0].id
            )
    assert getattr(late.value, "error_code", None) == "offer_closed"
    statuses = sorted(o.status.value for o in await offers_of(db, tenant.id, call))
    assert statuses == ["accepted", "cancelled", "cancelled"]
    assert await counters_match_truth(db, tenant)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.postgres
async def test_routing_workers_racing_on_postgresql_never_double_assign_or_overfill(
    database_url: str, clock: TestClock
) -> None:
    setup = Database(database_url, clock=clock)
    tenant = await make_tenant(setup)
    queue = await make_queue(setup, tenant, auto_accept=True)
    agents = [await make_agent(setup, tenant, queue, chat_capacity=2) for _ in range(6)]
    ids = [await arrive(setup, tenant, queue) for _ in range(40)]
    # Hand the waiting work out again from scratch, with four nodes racing.
    async with setup.session(Scope.tenant(tenant.id)) as session:
        from sqlalchemy import update

        from atiende.conversations.models import Interaction

        await session.execute(
            update(Interaction)
            .where(Interaction.id.in_(ids))
            .values(status=InteractionStatus.queued, agent_id=None)
            .execution_options(synchronize_session=False)
        )
        await session.execute(
            update(Offer)
            .values(status=OfferStatus.cancelled)
            .execution_options(synchronize_session=False)
        )
    async with setup.session(Scope.tenant(tenant.id)) as session:
        assert await routing.recount_loads(session) == len(agents)  # the counters see the reset
    nodes = [Database(database_url, clock=clock) for _ in range(4)]
    try:
        await asyncio.gather(
            *(routing.route_now(node, tenant.id) for node in nodes for _ in range(3))
        )
        async with setup.session(Scope.tenant(tenant.id)) as session:
            from atiende.conversations.models import Interaction

            rows = (
                await session.execute(
                    select(Interaction.agent_id, func.count())
                    .where(Interaction.status == InteractionStatus.assigned)
                    .group_by(Interaction.agent_id)
                )
            ).all()
            accepted = await session.scalar(
                select(func.count())
                .select_from(Offer)
                .where(Offer.status == OfferStatus.accepted, Offer.interaction_id.in_(ids))
            )
        per_agent = dict(rows)
        assert set(per_agent) == set(agents)
        assert all(count <= 2 for count in per_agent.values()), per_agent
        assert sum(per_agent.values()) == 12
        assert await counters_match_truth(setup, tenant)
        assert accepted >= 12  # the first hand-out plus this one; each interaction once here
        assert await counters_match_truth(setup, tenant)
    finally:
        for database in (setup, *nodes):
            await database.dispose()


async def test_max_no_answer_puts_the_agent_on_the_no_answer_break(
    app, db: Database, clock: TestClock, settings: Settings
) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, offer_timeout_seconds=10)
    agent_id = await make_agent(db, tenant, queue)
    async with db.session(Scope.tenant(tenant.id)) as session:
        (await session.get(Agent, agent_id)).max_no_answer = 2  # type: ignore[union-attr]
    runner = JobRunner(db, build_registry(), settings)
    interaction_id = await arrive(db, tenant, queue)
    clock.advance(11)  # past the offer time-out: no answer no. 1
    await runner.run_due()
    await routing.settle()
    clock.advance(61)  # past the reject delay: offered to the same agent again
    await routing.route_now(db, tenant.id)
    clock.advance(11)  # no answer no. 2: the limit
    await runner.run_due()
    await routing.settle()
    async with db.session(Scope.tenant(tenant.id)) as session:
        agent = await session.get(Agent, agent_id)
        from atiende.routing.models import BreakReason

        reason = await session.get(BreakReason, agent.break_reason_id)  # type: ignore[union-attr,arg-type]
    assert agent is not None
    assert agent.presence is Presence.on_break
    assert reason is not None
    assert reason.is_no_answer
    assert (await get(db, tenant, interaction_id)).status is InteractionStatus.queued
    assert await counters_match_truth(db, tenant)


async def test_wallboard_counts_an_answer_once_even_after_a_transfer(
    app, db: Database, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, auto_accept=True, service_level_seconds=20)
    first = await make_agent(db, tenant, queue)
    second = await make_agent(db, tenant, queue)
    quick = await arrive(db, tenant, queue)
    assigned_to = (await get(db, tenant, quick)).agent_id
    other = second if assigned_to == first else first
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.transfer(session, as_agent(assigned_to, tenant.id), quick, agent_id=other)  # type: ignore[arg-type]
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.set_presence(session, as_agent(first, tenant.id), first, Presence.offline)
        await routing.set_presence(session, as_agent(second, tenant.id), second, Presence.offline)
    slow = await arrive(db, tenant, queue)
    clock.advance(30)
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.set_presence(session, as_agent(first, tenant.id), first, Presence.available)
    await routing.settle()
    assert (await get(db, tenant, slow)).status is InteractionStatus.assigned
    async with db.session(Scope.tenant(tenant.id)) as session:
        stats = {s.queue_id: s for s in await routing.queue_stats(session)}[queue.id]
    assert (stats.offered_today, stats.answered_today, stats.answered_in_sl_today) == (2, 2, 1)
    assert stats.service_level_today == 50.0
    assert stats.waiting == 0


async def test_wallboard_shows_how_long_the_oldest_has_waited(
    app, db: Database, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant)
    await arrive(db, tenant, queue)
    clock.advance(30)
    await arrive(db, tenant, queue)
    clock.advance(15)
    async with db.session(Scope.tenant(tenant.id)) as session:
        stats = {s.queue_id: s for s in await routing.queue_stats(session)}[queue.id]
    assert (stats.waiting, stats.longest_wait_seconds) == (2, 45.0)
    assert stats.service_level_today is None  # nothing answered or abandoned yet


async def test_a_full_queue_sends_new_arrivals_to_its_overflow_queue(app, db: Database) -> None:
    tenant = await make_tenant(db)
    overflow = await make_queue(db, tenant, name="overflow")
    queue = await make_queue(db, tenant, max_queue_length=2, overflow_queue_id=overflow.id)
    ids = [await arrive(db, tenant, queue) for _ in range(3)]
    queues = [(await get(db, tenant, i)).queue_id for i in ids]
    assert queues == [queue.id, queue.id, overflow.id]
    assert "overflowed" in await timeline(db, tenant, ids[2])


async def test_a_closed_queue_can_send_arrivals_to_another_queue(app, db: Database) -> None:
    from atiende.routing.models import ClosedAction, Schedule

    tenant = await make_tenant(db)
    night = await make_queue(db, tenant, name="night", auto_accept=True)
    async with db.session(Scope.tenant(tenant.id)) as session:
        never = Schedule(name="never", time_zone="UTC", weekly={}, created_at=db.clock.now())
        session.add(never)
    day = await make_queue(
        db,
        tenant,
        name="day",
        schedule_id=never.id,
        closed_action=ClosedAction.transfer,
        closed_queue_id=night.id,
    )
    agent_id = await make_agent(db, tenant, day, night)
    interaction = await get(db, tenant, await arrive(db, tenant, day))
    assert (interaction.queue_id, interaction.agent_id) == (night.id, agent_id)
    assert "closed_transfer" in await timeline(db, tenant, interaction.id)


async def test_a_closed_queue_offers_nothing_and_auto_replies_once(app, db: Database) -> None:
    from atiende.routing.models import Schedule

    tenant = await make_tenant(db)
    async with db.session(Scope.tenant(tenant.id)) as session:
        never = Schedule(name="never", time_zone="UTC", weekly={}, created_at=db.clock.now())
        session.add(never)
    queue = await make_queue(db, tenant, schedule_id=never.id, closed_message="We open at nine.")
    await make_agent(db, tenant, queue)
    first = await arrive(db, tenant, queue, who="ana")
    assert (await get(db, tenant, first)).status is InteractionStatus.queued
    async with db.session(Scope.tenant(tenant.id)) as session:
        replies = (
            await session.scalars(
                select(Message.body).where(
                    Message.interaction_id == first, Message.direction == MessageDirection.outbound
                )
            )
        ).all()
    assert replies == ["We open at nine."]


async def test_the_sweep_repairs_drifted_counters_and_routes_what_waits(
    app, db: Database, clock: TestClock, settings: Settings
) -> None:
    from atiende.routing.tasks import schedule_sweep

    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, auto_accept=True)
    agent_id = await make_agent(db, tenant, queue)
    async with db.session(Scope.tenant(tenant.id)) as session:
        (await session.get(Agent, agent_id)).chat_load = 4  # type: ignore[union-attr]
    waiting = await arrive(db, tenant, queue)
    assert (await get(db, tenant, waiting)).status is InteractionStatus.queued, "looks full"
    async with db.session(Scope.system()) as session:
        await schedule_sweep(session)
    clock.advance(60)
    await JobRunner(db, build_registry(), settings).run_due()
    assert (await get(db, tenant, waiting)).agent_id == agent_id
    assert await counters_match_truth(db, tenant)


async def test_agents_get_the_directory_of_their_own_tenant(app, db: Database) -> None:
    from factories import caller

    tenant, other = await make_tenant(db), await make_tenant(db)
    queue = await make_queue(db, tenant, name="Ventas")
    await make_queue(db, other, name="Secret queue")
    colleague = await make_agent(db, tenant, queue)
    agent = await caller(app, tenant, Role.agent)
    response = await agent.client.get("/api/v1/directory")
    assert response.status_code == 200
    body = response.json()
    assert [q["name"] for q in body["queues"]] == ["Ventas"]
    assert str(colleague) in {a["id"] for a in body["agents"]}


async def test_only_agents_with_the_queues_skills_at_its_level_are_offered_its_work(
    app, db: Database, clock: TestClock
) -> None:
    from atiende.routing.models import AgentSkill, Skill

    tenant = await make_tenant(db)
    async with db.session(Scope.tenant(tenant.id)) as session:
        billing = Skill(name="billing", created_at=db.clock.now())
        french = Skill(name="french", created_at=db.clock.now())
        session.add_all([billing, french])
    queue = await make_queue(db, tenant, required_skills={str(billing.id): 5})
    novice = await make_agent(db, tenant, queue)  # idle longest: first choice without skills
    clock.advance(5)
    expert = await make_agent(db, tenant, queue)
    async with db.session(Scope.tenant(tenant.id)) as session:
        session.add_all(
            [
                AgentSkill(agent_id=novice, skill_id=billing.id, level=4),
                AgentSkill(agent_id=novice, skill_id=french.id, level=9),
                AgentSkill(agent_id=expert, skill_id=french.id, level=2),
                AgentSkill(agent_id=expert, skill_id=billing.id, level=5),
            ]
        )
    interaction_id = await arrive(db, tenant, queue)
    assert (await pending_offer(db, tenant.id, interaction_id)).agent_id == expert


async def test_an_agent_serving_two_queues_is_offered_work_from_both(app, db: Database) -> None:
    tenant = await make_tenant(db)
    sales, support = await make_queue(db, tenant), await make_queue(db, tenant)
    agent_id = await make_agent(db, tenant, sales, support)
    offered = [await arrive(db, tenant, sales), await arrive(db, tenant, support)]
    assert [(await pending_offer(db, tenant.id, i)).agent_id for i in offered] == [agent_id] * 2


async def test_a_holiday_keeps_a_scheduled_queue_closed_until_it_has_passed(
    app, db: Database, clock: TestClock
) -> None:
    from atiende.routing.models import ClosedAction, Holiday, Schedule

    tenant = await make_tenant(db)
    always = {
        day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    }
    async with db.session(Scope.tenant(tenant.id)) as session:
        schedule = Schedule(name="always", time_zone="UTC", weekly=always, created_at=clock.now())
        session.add_all([schedule, Holiday(day=clock.now().date(), name="Fiesta")])
    queue = await make_queue(
        db, tenant, schedule_id=schedule.id, closed_action=ClosedAction.keep_queued
    )
    agent_id = await make_agent(db, tenant, queue)
    waiting = await arrive(db, tenant, queue)
    assert (await get(db, tenant, waiting)).status is InteractionStatus.queued
    clock.advance(24 * 3600)
    await routing.route_now(db, tenant.id)
    assert (await pending_offer(db, tenant.id, waiting)).agent_id == agent_id


async def test_a_round_writes_with_the_same_statements_for_two_arrivals_or_twenty(
    app, db: Database
) -> None:
    from sqlalchemy import event, update

    async def statements_of_a_round(waiting: int) -> int:
        tenant = await make_tenant(db)
        queue = await make_queue(db, tenant)
        for _ in range(5):
            await make_agent(db, tenant, queue, available=False)
        ids = [await arrive(db, tenant, queue) for _ in range(waiting)]
        async with db.session(Scope.tenant(tenant.id)) as session:
            # Available without asking for a round: the next one is counted.
            await session.execute(update(Agent).values(presence=Presence.available))
        seen: list[str] = []

        def count(conn: object, cursor: object, statement: str, *args: object) -> None:
            # The event log is core.events' table (on SQLite it takes one INSERT per event).
            if "event_log" not in statement:
                seen.append(statement)

        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        try:
            offers = await routing.route_now(db, tenant.id)
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", count)
        assert {o.interaction_id for o in offers} == set(ids)
        assert await counters_match_truth(db, tenant)
        return len(seen)

    assert await statements_of_a_round(2) == await statements_of_a_round(20)
