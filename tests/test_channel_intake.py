"""Webhook intake under load: webhooks that arrive together are stored together, each one
once, and acknowledged only once stored; what the intake remembers of an account never
outlives a change to it (disabled, deleted, new secrets)."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from atiende.channels import service
from atiende.channels.models import InboundEvent, InboundStatus
from atiende.core.db import Database, Scope
from atiende.jobs import service as jobs
from atiende.jobs.models import Job
from channel_factories import Desk, desk
from factories import api_client
from fakes import whatsapp as meta


async def connect(office: Desk) -> dict[str, Any]:
    return await office.connect(
        "whatsapp",
        {"phone_number_id": meta.PHONE_NUMBER_ID, "waba_id": meta.WABA_ID},
        {
            "access_token": meta.ACCESS_TOKEN,
            "app_secret": meta.APP_SECRET,
            "verify_token": meta.VERIFY_TOKEN,
        },
    )


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


async def test_webhooks_arriving_together_are_stored_together_each_once(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect(office)
    batches: list[int] = []
    write = service.Inbox._write

    async def counting(self: service.Inbox, db: Database, batch: list[Any]) -> Any:
        batches.append(len(batch))
        return await write(self, db, batch)

    monkeypatch.setattr(service.Inbox, "_write", counting)
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
    assert await job_count(office.db) == 20  # one processing job per stored event

    assert await office.run_jobs() == 20
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
    schedule_new = jobs.schedule_new

    async def failing(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(jobs, "schedule_new", failing)
    body = text_message(1)
    async with api_client(app) as provider:
        answers = await asyncio.gather(
            post(provider, account, body), post(provider, account, text_message(2))
        )
        assert [(a.status_code, a.json()["code"]) for a in answers] == [
            (503, "webhook_not_stored")
        ] * 2
        assert await stored(office.db) == []  # the event rolled back with its job
        monkeypatch.setattr(jobs, "schedule_new", schedule_new)
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
