"""An on-premise installation runs only within its signed licence: seats, licence type and
agent logins follow the installed licence and its grace period."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from fastapi import FastAPI

from atiende.billing import entitlements
from atiende.core.db import Database, Scope
from atiende.identity.models import Role
from atiende.licensing import service as licensing
from atiende.tenancy.models import DeploymentMode
from billing_factories import install_licence
from factories import PASSWORD, api_client, caller, make_tenant, make_user


async def _login(app: FastAPI, email: str) -> tuple[int, str | None]:
    async with api_client(app) as browser:
        response = await browser.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        return response.status_code, response.json().get("code")


async def test_without_a_licence_only_the_admin_of_an_on_premise_tenant_logs_in(
    app: FastAPI, db: Database
) -> None:
    tenant = await make_tenant(db, deployment_mode=DeploymentMode.on_premise)
    admin = await make_user(db, tenant, Role.admin)
    supervisor = await make_user(db, tenant, Role.supervisor)
    assert await _login(app, admin.email) == (200, None)
    assert await _login(app, supervisor.email) == (403, "licence_missing")
    creating = await caller(app, tenant, Role.admin)
    response = await creating.client.post(
        "/api/v1/users",
        json={"email": "a1@onprem.example.com", "name": "A", "role": "agent", "password": PASSWORD},
    )
    assert (response.status_code, response.json()["code"]) == (409, "license_seats_exhausted")


async def test_the_installed_licence_sets_seats_and_its_grace_period_ends_logins(
    app: FastAPI, db: Database
) -> None:
    app.state.atiende.clock.set(datetime(2026, 11, 20, 12, tzinfo=UTC))
    tenant = await make_tenant(db, deployment_mode=DeploymentMode.on_premise)
    await install_licence(db, license="omnichannel", agents=10, valid_until=date(2026, 11, 30))
    agents = [await make_user(db, tenant, Role.agent) for _ in range(10)]
    with pytest.raises(entitlements.LicenseSeatsExhausted):
        await make_user(db, tenant, Role.agent)
    assert await _login(app, agents[0].email) == (200, None)

    app.state.atiende.clock.set(datetime(2026, 12, 14, 12, tzinfo=UTC))  # day 14 of grace
    assert await _login(app, agents[0].email) == (200, None)
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        status = await licensing.licence_status(session, today=date(2026, 12, 14), grace_days=14)
    assert (status.state.value, status.days_left) == ("grace", 1)

    app.state.atiende.clock.set(datetime(2026, 12, 15, 12, tzinfo=UTC))
    assert await _login(app, agents[0].email) == (403, "licence_expired")

    await install_licence(db, license="omnichannel", agents=10, valid_until=date(2027, 1, 31))
    assert await _login(app, agents[0].email) == (200, None)


async def test_a_voice_licence_keeps_digital_channels_off(app: FastAPI, db: Database) -> None:
    app.state.atiende.clock.set(datetime(2026, 11, 20, 12, tzinfo=UTC))
    tenant = await make_tenant(db, deployment_mode=DeploymentMode.on_premise)
    await install_licence(db, license="voice", agents=10, valid_until=date(2026, 12, 31))
    admin = await caller(app, tenant, Role.admin)
    response = await admin.client.post(
        "/api/v1/queues", json={"name": "Chat", "channels": ["webchat", "voice"]}
    )
    assert (response.status_code, response.json()["code"]) == (403, "license_type_voice_only")
    assert (await admin.client.get("/api/v1/queues")).json() == []


async def test_add_ons_gate_features_only_for_metered_tenants(db: Database) -> None:
    unmetered = await make_tenant(db)
    on_premise = await make_tenant(db, deployment_mode=DeploymentMode.on_premise)
    await install_licence(db, license="omnichannel", agents=10, valid_until=date(2099, 1, 1))
    async with db.session(Scope.system()) as session:
        await entitlements.require_addon(session, unmetered.id, "reports")
        with pytest.raises(entitlements.AddonRequired):
            await entitlements.require_addon(session, on_premise.id, "reports")
        assert (await entitlements.for_tenant(session, on_premise.id)).support_plan == "standard"
