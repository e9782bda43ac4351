"""Historical reports need the ``reports`` add-on; the CSV carries each interaction's times."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

from fastapi import FastAPI

from atiende.core.db import Database
from atiende.identity.models import Role
from atiende.tenancy.models import DeploymentMode
from billing_factories import install_licence
from conversation_factories import open_chat
from factories import caller, make_tenant, make_user

PERIOD = {"since": "2026-11-01T00:00:00-06:00", "until": "2026-12-01T00:00:00-06:00"}


async def test_the_export_lists_interactions_with_their_times(app: FastAPI, db: Database) -> None:
    start = datetime(2026, 11, 20, 15, tzinfo=UTC)
    app.state.atiende.clock.set(start)
    tenant = await make_tenant(db)  # unmetered: no add-on needed
    agent = await make_user(db, tenant, Role.agent)
    interaction_id, _ = await open_chat(
        db, tenant, agent_id=agent.id, first_enqueued_at=start - timedelta(seconds=42)
    )
    supervisor = await caller(app, tenant, Role.supervisor)

    response = await supervisor.client.get("/api/v1/reports/interactions.csv", params=PERIOD)

    assert response.status_code == 200, response.text
    (row,) = list(csv.DictReader(io.StringIO(response.text)))
    assert row["interaction_id"] == str(interaction_id)
    assert (row["channel"], row["agent"], row["wait_seconds"]) == ("whatsapp", agent.name, "42")
    outside = await supervisor.client.get(
        "/api/v1/reports/interactions.csv",
        params={"since": "2026-10-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"},
    )
    assert outside.text.count("\n") == 1  # the header only


async def test_without_the_add_on_the_report_is_refused(app: FastAPI, db: Database) -> None:
    app.state.atiende.clock.set(datetime(2026, 11, 20, 12, tzinfo=UTC))
    tenant = await make_tenant(db, deployment_mode=DeploymentMode.on_premise)
    await install_licence(db, license="omnichannel", agents=10, valid_until=date(2026, 12, 31))
    admin = await caller(app, tenant, Role.admin)
    response = await admin.client.get("/api/v1/reports/interactions.csv", params=PERIOD)
    assert (response.status_code, response.json()["code"]) == (403, "addon_required")


async def test_bad_periods_and_agents_are_refused(app: FastAPI, db: Database) -> None:
    tenant = await make_tenant(db)
    supervisor = await caller(app, tenant, Role.supervisor)
    agent = await caller(app, tenant, Role.agent)
    url = "/api/v1/reports/interactions.csv"
    naive = await supervisor.client.get(
        url, params={"since": "2026-11-01T00:00:00", "until": "2026-12-01T00:00:00"}
    )
    assert (naive.status_code, naive.json()["code"]) == (422, "naive_datetime")
    backwards = await supervisor.client.get(
        url, params={"since": PERIOD["until"], "until": PERIOD["since"]}
    )
    assert (backwards.status_code, backwards.json()["code"]) == (422, "invalid_period")
    assert (await agent.client.get(url, params=PERIOD)).status_code == 403
