"""Webhook intake under load: webhooks that arrive together are stored together, each one
once, and acknowledged only once stored; what the intake remembers of an account never
outlives a change to it (disabled, deleted, new secrets)."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from atiende.channels import service
from atiende.channels.models import ChannelAccount, InboundEvent, InboundStatus
from atiende.conversations.models import MessageStatus
from atiende.core.db import Database, Scope
from atiende.core.events import EVENT_LOG, EventEnvelope
from atiende.jobs import service as jobs
from atiende.jobs.models import Job, JobStatus
from channel_factories import Desk, desk
from factories import LiveServer, api_client
from fakes import whatsapp as meta


@pytest.fixture
async def graph() -> AsyncIterator[meta.FakeGraph]:
    fake = meta.FakeGraph()
    async with LiveServer(fake.app) as server:
        fake.base = f"{server.http}/{meta.VERSION}"
        yield fake


SECRETS = {
    "access_token": meta.ACCESS_TOKEN,
    "app_secret": meta.APP_SECRET,
    "verify_token": meta.VERIFY_TOKEN,
}


async def connect(office: Desk, graph: meta.FakeGraph | None = None) -> dict[str, Any]:
    settings: dict[str, Any] = {"phone_number_id": meta.PHONE_NUMBER_ID, "waba_id": meta.WABA_ID}
    if graph is not None:
        settings["api_base"] = graph.base
    return await office.connect("whatsapp", settings, SECRETS)


def text_message(n: int) -> bytes:
    """A distinct inbound text from a distinct customer."""
    payload = copy.deepcopy(meta.WEBHOOK_TEXT_MESSAGE)
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = f"1650555{n:04d}"
    message = value["messages"][0]
    message["from"] = f"1650555{n:04d}"
    message["id"] = f"wamid.intake{n:08d}"
    message["text"]["body"] = f"message {n}"
    return json.dumps(payload).encode()


async def post(
    provider: httpx.AsyncClient,
    account: dict[str, Any],
    body: bytes,
    app_secret: str = meta.APP_SECRET,
) -> httpx.Response:
    path = account["webhook_url"].split("://", 1)[1].split("/", 1)[1]
    return await provider.post(
        f"/{path}",
        content=body,
        headers={
            "content-type": "application/json",
            "x-hub-signature-256": meta.sign(body, app_secret),
        },
    )


async def stored(db: Database) -> list[InboundEvent]:
    async with db.session(Scope.system(), read_only=True) as session:
        return list((await session.scalars(select(InboundEvent))).all())


async def job_count(db: Database) -> int:
    async with db.session(Scope.system(), read_only=True) as session:
        return int(await session.scalar(select(func.count(Job.id))) or 0)


def counting_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every intake transaction from now on."""
    batches: list[int] = []
    write = service.Inbox._write

    def counting(self: service.Inbox, batch: list[Any], session: Any) -> Any:
        batches.append(len(batch))
        return write(self, batch, session)

    monkeypatch.setattr(service.Inbox, "_write", counting)
    return batches


def read_status_of(provider_message_id: str) -> bytes:
    payload = copy.deepcopy(meta.WEBHOOK_STATUS_READ)
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = provider_message_id
    return json.dumps(payload).encode()


async def test_webhooks_arriving_together_are_stored_together_each_once(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect(office)
    batches = counting_batches(monkeypatch)
    bodies = [text_message(n) for n in range(20)]
    again = bodies[3]  # a provider redelivering while the first delivery is in flight
    async with api_client(app) as provider:
        answers = await asyncio.gather(
            *(post(provider, account, body) for body in [*bodies, again, again])
        )

    assert [a.status_code for a in answers] == [200] * 22
    outcomes = [a.json()["status"] for a in answers]
    assert outcomes.count("stored") == 20
    assert outcomes.count("duplicate") == 2
    assert sum(batches) == 22
    assert len(batches) < 22  # some transactions held several webhooks
    events = await stored(office.db)
    assert len(events) == 20
    assert {e.status for e in events} == {InboundStatus.received}
    # One processing job per transaction that stored something, for all it stored.
    processing = await job_count(office.db)
    assert processing < 20
    assert processing <= len(batches)

    assert await office.run_jobs() == processing
    interactions = await office.interactions()
    assert len(interactions) == 20
    assert all(e.status is InboundStatus.processed for e in await stored(office.db))


async def test_a_disabled_channel_refuses_webhooks_right_away(app: FastAPI) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect(office)
    async with api_client(app) as provider:
        assert (await post(provider, account, text_message(1))).json() == {"status": "stored"}
        disabled = await office.admin.client.patch(
            f"/api/v1/channels/{account['id']}", json={"is_active": False}
        )
        assert disabled.status_code == 200
        refused = await post(provider, account, text_message(2))
    assert (refused.status_code, refused.json()["code"]) == (404, "channel_not_found")
    assert len(await stored(office.db)) == 1


async def test_a_deleted_channel_refuses_webhooks_right_away(app: FastAPI) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect(office)
    async with api_client(app) as provider:
        assert (await post(provider, account, text_message(1))).status_code == 200
        deleted = await office.admin.client.delete(f"/api/v1/channels/{account['id']}")
        assert deleted.status_code == 204
        refused = await post(provider, account, text_message(2))
    assert refused.status_code == 404
    assert await stored(office.db) == []  # the account's events went with it


async def test_new_secrets_verify_the_very_next_webhook(app: FastAPI) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect(office)
    async with api_client(app) as provider:
        assert (await post(provider, account, text_message(1))).status_code == 200
        rotated = await office.admin.client.patch(
            f"/api/v1/channels/{account['id']}", json={"secrets": {"app_secret": "rotated"}}
        )
        assert rotated.status_code == 200
        old = await post(provider, account, text_message(2))
        new = await post(provider, account, text_message(3), app_secret="rotated")
    assert (old.status_code, old.json()["code"]) == (401, "webhook_signature_invalid")
    assert (new.status_code, new.json()) == (200, {"status": "stored"})
    assert len(await stored(office.db)) == 2


async def test_a_failed_write_acknowledges_nothing_and_the_redelivery_is_stored(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect(office)
    schedule_new = jobs.schedule_new_sync

    def failing(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(jobs, "schedule_new_sync", failing)
    body = text_message(1)
    async with api_client(app) as provider:
        answers = await asyncio.gather(
            post(provider, account, body), post(provider, account, text_message(2))
        )
        assert [(a.status_code, a.json()["code"]) for a in answers] == [
            (503, "webhook_not_stored")
        ] * 2
        assert await stored(office.db) == []  # the event rolled back with its job
        monkeypatch.setattr(jobs, "schedule_new_sync", schedule_new)
        redelivered = await post(provider, account, body)
    assert (redelivered.status_code, redelivered.json()) == (200, {"status": "stored"})
    assert len(await stored(office.db)) == 1
    assert await job_count(office.db) == 1


async def test_a_malformed_payload_among_good_ones_is_kept_and_refused_alone(
    app: FastAPI,
) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect(office)
    async with api_client(app) as provider:
        good, bad, repeated = await asyncio.gather(
            post(provider, account, text_message(1)),
            post(provider, account, b"{not json"),
            post(provider, account, b"{not json"),
        )
    assert (good.status_code, good.json()) == (200, {"status": "stored"})
    answers = sorted([(bad.status_code, bad.text), (repeated.status_code, repeated.text)])
    assert answers[0] == (200, json.dumps({"status": "duplicate"}, separators=(",", ":")))
    assert answers[1][0] == 400
    assert json.loads(answers[1][1])["code"] == "webhook_payload_malformed"
    statuses = sorted(e.status.value for e in await stored(office.db))
    assert statuses == ["received", "rejected"]
    assert await job_count(office.db) == 1


async def test_an_event_not_applicable_yet_waits_alone_while_the_rest_of_its_batch_is_applied(
    app: FastAPI, graph: meta.FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect(office, graph)
    async with api_client(app) as provider:
        assert (await post(provider, account, text_message(1))).status_code == 200
    await office.run_jobs()
    (interaction,) = await office.interactions()
    graph.reply(
        "messages", 429, meta.graph_error(130429, "Rate limit hit"), **{"Retry-After": "30"}
    )
    await office.reply(interaction.id, "Un momento")
    await office.run_jobs()  # the send waits 30 s: its provider id is not known yet

    # The provider reports the send read (as it will be named) together with two messages.
    batches = counting_batches(monkeypatch)
    async with api_client(app) as provider:
        answers = await asyncio.gather(
            post(provider, account, read_status_of("wamid.fake1")),
            post(provider, account, text_message(2)),
            post(provider, account, text_message(3)),
        )
    assert [a.json() for a in answers] == [{"status": "stored"}] * 3
    assert batches == [3]

    assert await office.run_jobs() == 1  # the three events' job
    assert len(await office.interactions()) == 3  # both messages are in
    statuses = {e.provider_event_id: e.status for e in await stored(office.db)}
    status_event = hashlib.sha256(read_status_of("wamid.fake1")).hexdigest()
    assert statuses.pop(status_event) is InboundStatus.received  # rolled back, set aside
    assert set(statuses.values()) == {InboundStatus.processed}
    async with office.db.session(Scope.system(), read_only=True) as session:
        aside = await session.scalar(select(Job).where(Job.dedupe_key.like("%:alone")))
    assert aside is not None
    assert aside.status is JobStatus.pending

    clock = app.state.atiende.clock
    clock.advance(timedelta(seconds=31))
    await office.run_jobs()  # the status, due first, waits again; then the send goes out
    clock.advance(timedelta(seconds=6))
    await office.run_jobs()
    assert (await office.messages(interaction.id))[-1].status is MessageStatus.read
    assert all(e.status is InboundStatus.processed for e in await stored(office.db))


async def test_what_a_set_aside_event_published_is_withdrawn_with_it(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    office = await desk(app, ["whatsapp"])
    routed = await connect(office)
    created = await office.admin.client.post(
        "/api/v1/channels",
        json={
            "kind": "whatsapp",
            "name": "second line",
            "queue_id": str(office.queue.id),
            "settings": {"phone_number_id": meta.PHONE_NUMBER_ID, "waba_id": meta.WABA_ID},
            "secrets": SECRETS,
        },
    )
    assert created.status_code == 201, created.text
    unrouted = created.json()
    async with api_client(app) as provider:  # both lines known to intake: one batch below
        for n, line in enumerate((routed, unrouted)):
            assert (await post(provider, line, text_message(100 + n))).status_code == 200
    assert await office.run_jobs() == 2
    async with office.db.session(Scope.tenant(office.tenant.id)) as session:
        account = await session.get(ChannelAccount, uuid.UUID(unrouted["id"]))
        assert account is not None
        account.queue_id = None  # its queue was deleted: its messages cannot be routed

    async with office.db.session(Scope.system(), read_only=True) as session:
        logged_before = int(await session.scalar(select(func.max(EVENT_LOG.c.id))) or 0)
    published: list[EventEnvelope] = []
    unsubscribe = app.state.atiende.bus.subscribe(published.append)
    batches = counting_batches(monkeypatch)
    async with api_client(app) as provider:
        answers = await asyncio.gather(
            post(provider, routed, text_message(1)),
            post(provider, unrouted, text_message(2)),
            post(provider, routed, text_message(3)),
        )
    assert [a.status_code for a in answers] == [200] * 3
    assert batches == [3]
    try:
        assert await office.run_jobs() == 1
    finally:
        unsubscribe()

    assert len(await office.interactions()) == 4  # the unrouted message was rolled back
    async with office.db.session(Scope.system(), read_only=True) as session:
        logged = await session.scalars(
            select(EVENT_LOG.c.id).where(EVENT_LOG.c.id > logged_before).order_by(EVENT_LOG.c.id)
        )
        # Published: what the two applied messages logged, nothing the rolled-back one did.
        assert sorted(e.id for e in published) == list(logged)
    assert published


async def test_a_webhook_for_an_unknown_kind_of_channel_is_refused_as_invalid(
    app: FastAPI,
) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect(office)
    key = account["webhook_url"].rsplit("/", 1)[1]
    async with api_client(app) as provider:
        answer = await provider.post(f"/webhooks/fax/{key}", content=text_message(1))
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "validation_error"
    assert body["details"]["errors"][0]["location"] == "path"
    assert body["details"]["errors"][0]["field"] == "kind"
    assert await stored(office.db) == []


def inbox_waiting_for(expected: int) -> service.Inbox:
    """An inbox whose last batch, with what came during its write, was ``expected``."""
    inbox = service.Inbox.__new__(service.Inbox)
    inbox._waiting = []
    inbox._expected = expected
    inbox._enough = None
    return inbox


def arrival() -> Any:
    return object()  # gathering only counts arrivals


async def test_a_batch_waits_for_the_senders_of_the_last_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """16 senders split into two batches of 8 wait for each other: the next batch holds
    all 16 (fewer, bigger transactions)."""
    monkeypatch.setattr(service.Inbox, "GATHER_WAIT", 30.0)
    inbox = inbox_waiting_for(16)
    for _ in range(8):
        inbox._join(arrival())
    gathering = asyncio.create_task(inbox._gather())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not gathering.done()  # eight are not the sixteen that came last time
    for _ in range(8):
        inbox._join(arrival())
    await asyncio.wait_for(gathering, 1)
    assert len(inbox._waiting) == 16


async def test_a_batch_waits_only_briefly_and_then_expects_less(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service.Inbox, "GATHER_WAIT", 0.01)
    inbox = inbox_waiting_for(16)
    for _ in range(3):
        inbox._join(arrival())
    await asyncio.wait_for(inbox._gather(), 1)
    assert inbox._expected == 3  # the senders are fewer now: the next batch does not wait
    inbox._waiting.clear()
    for _ in range(3):
        inbox._join(arrival())
    monkeypatch.setattr(service.Inbox, "GATHER_WAIT", 30.0)
    await asyncio.wait_for(inbox._gather(), 1)  # three are enough now
