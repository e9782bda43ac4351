"""Managing users: roles decide who may, bad input changes nothing, everything is audited."""

from __future__ import annotations

import asyncio

from atiende.core.clock import TestClock
from atiende.core.db import Database
from atiende.identity.models import Role
from factories import PASSWORD, caller, make_tenant, make_user

NEW_AGENT = {"email": "nuevo@example.com", "name": "Nuevo", "role": "agent", "password": PASSWORD}


async def _emails(admin) -> list[str]:
    return sorted(u["email"] for u in (await admin.client.get("/api/v1/users")).json())


async def test_an_admin_creates_changes_and_deletes_a_user_of_their_tenant(
    app, db: Database
) -> None:
    tenant = await make_tenant(db)
    admin = await caller(app, tenant)
    created = await admin.client.post("/api/v1/users", json=NEW_AGENT)
    assert created.status_code == 201
    user = created.json()
    assert user["tenant_id"] == str(tenant.id)
    assert "password" not in user
    assert "password_hash" not in user
    changed = await admin.client.patch(f"/api/v1/users/{user['id']}", json={"role": "supervisor"})
    assert changed.json()["role"] == "supervisor"
    assert (await admin.client.delete(f"/api/v1/users/{user['id']}")).status_code == 204
    assert (await admin.client.get(f"/api/v1/users/{user['id']}")).status_code == 404


async def test_every_administrative_action_is_audited_with_before_and_after(
    app, db: Database, clock: TestClock
) -> None:
    admin = await caller(app, await make_tenant(db))
    user = (await admin.client.post("/api/v1/users", json=NEW_AGENT)).json()
    clock.advance(1)
    await admin.client.patch(f"/api/v1/users/{user['id']}", json={"name": "Renamed"})
    clock.advance(1)
    await admin.client.delete(f"/api/v1/users/{user['id']}")
    entries = (await admin.client.get("/api/v1/audit")).json()
    about_user = [e for e in entries if e["resource_id"] == user["id"]]
    assert [e["action"] for e in about_user] == ["user.delete", "user.update", "user.create"]
    update = about_user[1]
    assert update["actor_id"] == str(admin.id)
    assert update["before"]["name"] == "Nuevo"
    assert update["after"]["name"] == "Renamed"
    assert about_user[0]["before"]["email"] == "nuevo@example.com"


async def test_agents_and_supervisors_cannot_manage_users(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    supervisor = await caller(app, tenant, Role.supervisor)
    assert (await agent.client.get("/api/v1/users")).status_code == 403
    assert (await supervisor.client.get("/api/v1/users")).status_code == 200
    for member in (agent, supervisor):
        response = await member.client.post("/api/v1/users", json=NEW_AGENT)
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"


async def test_a_tenant_admin_cannot_create_vendor_staff(app, db: Database) -> None:
    admin = await caller(app, await make_tenant(db))
    response = await admin.client.post("/api/v1/users", json={**NEW_AGENT, "role": "vendor_admin"})
    assert response.status_code == 403


async def test_a_tenant_admin_cannot_create_users_in_another_tenant(app, db: Database) -> None:
    acme, globex = await make_tenant(db), await make_tenant(db)
    admin = await caller(app, acme)
    response = await admin.client.post(
        "/api/v1/users", json={**NEW_AGENT, "tenant_id": str(globex.id)}
    )
    assert response.status_code == 404
    assert response.json()["code"] == "tenant_not_found"


async def test_duplicate_emails_conflict_across_tenants(app, db: Database) -> None:
    acme, globex = await make_tenant(db), await make_tenant(db)
    await make_user(db, globex, email="taken@example.com")
    admin = await caller(app, acme)
    response = await admin.client.post(
        "/api/v1/users", json={**NEW_AGENT, "email": "Taken@example.com"}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "user_email_taken"


async def test_bad_input_gets_a_clear_error_and_changes_nothing(app, db: Database) -> None:
    admin = await caller(app, await make_tenant(db))
    before = await _emails(admin)
    bad_email = await admin.client.post("/api/v1/users", json={**NEW_AGENT, "email": "nope"})
    bad_role = await admin.client.post("/api/v1/users", json={**NEW_AGENT, "role": "owner"})
    extra = await admin.client.post("/api/v1/users", json={**NEW_AGENT, "is_root": True})
    not_json = await admin.client.post(
        "/api/v1/users", content=b"{oops", headers={"content-type": "application/json"}
    )
    for response in (bad_email, bad_role, extra, not_json):
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
    assert bad_email.json()["details"]["errors"][0]["field"] == "email"
    assert await _emails(admin) == before


async def test_unknown_and_malformed_ids_are_4xx(app, db: Database) -> None:
    admin = await caller(app, await make_tenant(db))
    unknown = await admin.client.get("/api/v1/users/00000000-0000-4000-8000-000000000000")
    malformed = await admin.client.patch("/api/v1/users/not-a-uuid", json={"name": "x"})
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "user_not_found"
    assert malformed.status_code == 422


async def test_admins_cannot_lock_themselves_out(app, db: Database) -> None:
    admin = await caller(app, await make_tenant(db))
    demote = await admin.client.patch(f"/api/v1/users/{admin.id}", json={"role": "agent"})
    delete = await admin.client.delete(f"/api/v1/users/{admin.id}")
    assert demote.status_code == delete.status_code == 409
    assert (await admin.client.get("/api/v1/auth/me")).json()["role"] == "admin"


async def test_a_tenant_user_cannot_get_a_vendor_role(app, db: Database) -> None:
    tenant = await make_tenant(db)
    admin = await caller(app, tenant)
    agent = await make_user(db, tenant, Role.agent)
    response = await admin.client.patch(
        f"/api/v1/users/{agent.id}", json={"role": "vendor_billing"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "role_not_allowed"


async def test_vendor_admins_create_tenants_and_tenant_admins_cannot(app, db: Database) -> None:
    vendor = await caller(app, None, Role.vendor_admin)
    tenant_admin = await caller(app, await make_tenant(db))
    body = {"name": "Globex", "slug": "globex", "time_zone": "America/Bogota", "locale": "en"}
    assert (await tenant_admin.client.post("/api/v1/tenants", json=body)).status_code == 403
    created = await vendor.client.post("/api/v1/tenants", json=body)
    assert created.status_code == 201
    assert created.json()["deployment_mode"] == "cloud"
    again = await vendor.client.post("/api/v1/tenants", json=body)
    assert again.status_code == 409
    assert again.json()["code"] == "tenant_slug_taken"
    bad_zone = await vendor.client.post(
        "/api/v1/tenants", json={**body, "slug": "other", "time_zone": "Mars/Olympus"}
    )
    assert bad_zone.status_code == 422


async def test_a_tenant_admin_updates_their_own_tenant_settings(app, db: Database) -> None:
    tenant = await make_tenant(db)
    admin = await caller(app, tenant)
    agent = await caller(app, tenant, Role.agent)
    assert (await agent.client.patch("/api/v1/tenant", json={"locale": "en"})).status_code == 403
    response = await admin.client.patch(
        "/api/v1/tenant", json={"time_zone": "America/Monterrey", "locale": "en"}
    )
    assert response.status_code == 200
    assert (await agent.client.get("/api/v1/tenant")).json()["time_zone"] == "America/Monterrey"


async def test_nulls_are_refused_where_a_user_needs_a_value(app, db: Database) -> None:
    tenant = await make_tenant(db)
    admin = await caller(app, tenant)
    agent = await make_user(db, tenant, Role.agent, locale="en")
    for body in ({"name": None}, {"is_active": None}, {"role": None}):
        response = await admin.client.patch(f"/api/v1/users/{agent.id}", json=body)
        assert response.status_code == 422, body
    cleared = await admin.client.patch(f"/api/v1/users/{agent.id}", json={"locale": None})
    assert cleared.status_code == 200
    assert cleared.json()["locale"] is None


async def test_an_update_that_changes_nothing_is_not_audited(app, db: Database) -> None:
    tenant = await make_tenant(db)
    admin = await caller(app, tenant)
    agent = await make_user(db, tenant, Role.agent)
    same = await admin.client.patch(
        f"/api/v1/users/{agent.id}", json={"name": agent.name, "role": "agent"}
    )
    assert same.status_code == 200
    entries = (await admin.client.get("/api/v1/audit", params={"action": "user.update"})).json()
    assert entries == []


async def test_two_simultaneous_creates_of_one_email_give_one_user_and_one_409(
    app, db: Database
) -> None:
    admin = await caller(app, await make_tenant(db))
    body = {**NEW_AGENT, "email": "race@example.com"}
    first, second = await asyncio.gather(
        admin.client.post("/api/v1/users", json=body), admin.client.post("/api/v1/users", json=body)
    )
    assert sorted([first.status_code, second.status_code]) == [201, 409]
    assert (await _emails(admin)).count("race@example.com") == 1
