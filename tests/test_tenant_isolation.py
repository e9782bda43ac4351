"""No tenant sees or changes another tenant's data, through the API or the data layer."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from atiende.audit.models import AuditEntry
from atiende.core.db import Database, Scope
from atiende.core.errors import TenantScopeMissing
from atiende.identity.models import Role, User
from factories import caller, make_tenant, make_user
from tenancy_helpers import assert_tenant_isolation


async def test_users_of_one_tenant_are_invisible_to_another(app, db: Database) -> None:
    acme, globex = await make_tenant(db), await make_tenant(db)
    owner, intruder = await caller(app, acme), await caller(app, globex)
    victim = await make_user(db, acme, Role.agent)
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"/api/v1/users/{victim.id}",
        list_path="/api/v1/users",
        change={"name": "Hijacked", "is_active": False},
        deletable=True,
    )


async def test_api_tokens_of_one_tenant_are_invisible_to_another(app, db: Database) -> None:
    acme, globex = await make_tenant(db), await make_tenant(db)
    owner, intruder = await caller(app, acme), await caller(app, globex)
    created = await owner.client.post("/api/v1/tokens", json={"name": "crm"})
    assert created.status_code == 201
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"/api/v1/tokens/{created.json()['id']}",
        list_path="/api/v1/tokens",
        change=None,
        deletable=True,
    )


async def test_audit_entries_of_one_tenant_are_invisible_to_another(app, db: Database) -> None:
    acme, globex = await make_tenant(db), await make_tenant(db)
    owner, intruder = await caller(app, acme), await caller(app, globex)
    entries = (await owner.client.get("/api/v1/audit")).json()
    assert entries, "creating the owner should have been audited"
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"/api/v1/audit/{entries[0]['id']}",
        list_path="/api/v1/audit",
        change=None,
        deletable=False,
    )


async def test_a_tenant_record_is_invisible_to_another_tenant(app, db: Database) -> None:
    acme, globex = await make_tenant(db), await make_tenant(db)
    owner, intruder = await caller(app, acme), await caller(app, globex)
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"/api/v1/tenants/{acme.id}",
        list_path="/api/v1/tenants",
        change={"name": "Taken over"},
        deletable=False,
    )


async def test_a_session_without_scope_cannot_read_tenant_data(db: Database) -> None:
    tenant = await make_tenant(db)
    await make_user(db, tenant)
    async with db.sessionmaker() as session:
        with pytest.raises(TenantScopeMissing):
            await session.scalars(select(User))


async def test_tenant_scope_filters_every_query_without_being_asked(db: Database) -> None:
    acme, globex = await make_tenant(db), await make_tenant(db)
    mine = await make_user(db, acme)
    theirs = await make_user(db, globex)
    async with db.session(Scope.tenant(acme.id)) as session:
        ids = set((await session.scalars(select(User.id))).all())
        assert mine.id in ids
        assert theirs.id not in ids
        assert await session.get(User, theirs.id) is None
        audit_tenants = set((await session.scalars(select(AuditEntry.tenant_id))).all())
        assert audit_tenants == {acme.id}


async def test_counts_over_a_model_or_a_subquery_see_only_the_tenant(db: Database) -> None:
    acme, globex = await make_tenant(db), await make_tenant(db)
    await make_user(db, acme)
    await make_user(db, globex)
    async with db.session(Scope.tenant(acme.id)) as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 1
        inner = select(User.id).where(User.role == Role.admin).subquery()
        assert await session.scalar(select(func.count()).select_from(inner)) == 1
        assert await session.scalar(select(func.count(User.id))) == 1


async def test_writing_another_tenants_row_is_refused(db: Database) -> None:
    acme, globex = await make_tenant(db), await make_tenant(db)
    with pytest.raises(TenantScopeMissing):
        async with db.session(Scope.tenant(acme.id)) as session:
            session.add(
                AuditEntry(
                    tenant_id=globex.id,
                    action="forged",
                    resource_type="user",
                    occurred_at=db.clock.now(),
                )
            )
    async with db.session(Scope.system()) as session:
        forged = await session.scalars(select(AuditEntry).where(AuditEntry.action == "forged"))
        assert forged.all() == []


async def test_new_rows_take_the_sessions_tenant(db: Database) -> None:
    acme = await make_tenant(db)
    async with db.session(Scope.tenant(acme.id)) as session:
        entry = AuditEntry(action="stamped", resource_type="x", occurred_at=db.clock.now())
        session.add(entry)
    assert entry.tenant_id == acme.id
