"""Installing licences on an installation: only genuine, current files are stored (once), the
install is audited, and the stored licences decide whether agents may log in."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from atiende.audit.models import AuditEntry
from atiende.core.config import Settings
from atiende.core.db import Database, Scope
from atiende.core.errors import PermissionDenied
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.licensing import service, signing
from atiende.licensing.models import InstalledLicence
from atiende.licensing.signing import LicenceInvalid, LicenceState, LicenceTerms
from atiende.tenancy.models import DeploymentMode
from factories import Caller, caller, make_tenant, make_user

PRIVATE, PUBLIC = signing.generate_keypair()
TODAY = date(2026, 11, 25)


def _file(
    *,
    valid_until: date = date(2027, 11, 30),
    issued_at: datetime = datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
    agents: int = 15,
    license: str = "omnichannel",
) -> bytes:
    terms = LicenceTerms(
        customer="it@acme.example",
        license=license,
        agents=agents,
        addons=("reports",),
        valid_until=valid_until,
    )
    return signing.dumps(signing.issue(PRIVATE, terms, issued_at=issued_at)).encode()


async def _install(db: Database, document: bytes | str, *, today: date = TODAY) -> LicenceTerms:
    async with db.session(Scope.system()) as session:
        return await service.install(session, Actor.system(), document, PUBLIC, today=today)


async def _counts(db: Database) -> tuple[int, int]:
    async with db.session(Scope.system()) as session:
        licences = await session.scalar(select(func.count()).select_from(InstalledLicence))
        audits = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "licence.install")
        )
    return int(licences or 0), int(audits or 0)


async def test_installing_a_genuine_licence_stores_it_and_audits_it(db: Database) -> None:
    document = _file()
    terms = await _install(db, document)
    assert (terms.license, terms.agents, terms.addons) == ("omnichannel", 15, ("reports",))
    async with db.session(Scope.system()) as session:
        row = (await session.scalars(select(InstalledLicence))).one()
        entry = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "licence.install"))
        ).one()
    assert row.licence_id == terms.licence_id
    assert row.document == signing.load(document)
    assert (row.customer, row.license, row.agents, row.addons) == (
        "it@acme.example",
        "omnichannel",
        15,
        ["reports"],
    )
    assert row.valid_until == date(2027, 11, 30)
    assert row.issued_at == datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert row.installed_at == db.clock.now()
    assert row.installed_by is None
    assert entry.tenant_id is None
    assert entry.resource_id == terms.licence_id
    assert entry.after is not None
    assert entry.after["agents"] == 15


async def test_installing_the_same_licence_again_changes_nothing(db: Database) -> None:
    document = _file()
    first = await _install(db, document)
    again = await _install(db, document)
    assert again == first
    assert await _counts(db) == (1, 1)


async def test_the_installing_user_is_recorded(db: Database) -> None:
    staff = await make_user(db, None, Role.vendor_admin)
    async with db.session(Scope.system()) as session:
        await service.install(session, identity.actor_for(staff), _file(), PUBLIC, today=TODAY)
    async with db.session(Scope.system()) as session:
        row = (await session.scalars(select(InstalledLicence))).one()
        entry = await session.scalars(select(AuditEntry).where(AuditEntry.actor_id == staff.id))
        assert row.installed_by == staff.id
        assert entry.one().action == "licence.install"


def _forged() -> bytes:
    document: dict[str, Any] = signing.load(_file())  # type: ignore[assignment]
    document["payload"]["agents"] = 500
    return signing.dumps(document).encode()


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (_forged(), "licence_forged"),
        (
            _file(
                issued_at=datetime(2026, 1, 2, tzinfo=UTC),
                valid_until=date(2026, 6, 30),
            ),
            "licence_expired",
        ),
        (b"{not json", "licence_malformed"),
    ],
    ids=["forged", "expired", "malformed"],
)
async def test_a_licence_that_does_not_verify_is_refused_and_nothing_is_stored(
    db: Database, document: bytes, reason: str
) -> None:
    with pytest.raises(LicenceInvalid) as caught:
        await _install(db, document)
    assert caught.value.reason == reason
    assert await _counts(db) == (0, 0)


async def test_a_licence_signed_with_another_key_is_refused(db: Database) -> None:
    other_private, _ = signing.generate_keypair()
    terms = LicenceTerms(
        customer="it@acme.example", license="voice", agents=10, valid_until=date(2027, 1, 31)
    )
    document = signing.issue(other_private, terms, issued_at=datetime(2026, 11, 1, tzinfo=UTC))
    with pytest.raises(LicenceInvalid) as caught:
        await _install(db, signing.dumps(document))
    assert caught.value.reason == "licence_forged"
    assert await _counts(db) == (0, 0)


async def test_the_administrator_of_an_on_premise_tenant_installs_the_licence(
    db: Database,
) -> None:
    tenant = await make_tenant(db, deployment_mode=DeploymentMode.on_premise)
    admin = await make_user(db, tenant, Role.admin)
    async with db.session(Scope.tenant(tenant.id)) as session:
        terms = await service.install(
            session, identity.actor_for(admin), _file(), PUBLIC, today=TODAY
        )
    async with db.session(Scope.system()) as session:
        row = (await session.scalars(select(InstalledLicence))).one()
        entry = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "licence.install"))
        ).one()
    assert row.licence_id == terms.licence_id
    assert row.installed_by == admin.id
    assert (entry.actor_id, entry.tenant_id) == (admin.id, tenant.id)
    assert (await _status(db, TODAY)).state is LicenceState.active


@pytest.mark.parametrize(
    ("role", "deployment"),
    [
        (Role.admin, DeploymentMode.cloud),  # a cloud tenant is provisioned, never licensed
        (Role.supervisor, DeploymentMode.on_premise),
        (Role.vendor_support, None),
        (Role.vendor_billing, None),
    ],
)
async def test_only_vendor_admins_and_on_premise_tenant_admins_install_licences(
    db: Database, role: Role, deployment: DeploymentMode | None
) -> None:
    tenant = await make_tenant(db, deployment_mode=deployment) if deployment else None
    user = await make_user(db, tenant, role)
    scope = Scope.tenant(tenant.id) if tenant else Scope.system()
    async with db.session(scope) as session:
        with pytest.raises(PermissionDenied):
            await service.install(session, identity.actor_for(user), _file(), PUBLIC, today=TODAY)
    assert await _counts(db) == (0, 0)


async def _status(db: Database, today: date, grace_days: int = 14) -> signing.LicenceStatus:
    async with db.session(Scope.system(), read_only=True) as session:
        return await service.licence_status(session, today=today, grace_days=grace_days)


async def _login_check(db: Database, today: date, grace_days: int = 14) -> signing.LicenceStatus:
    async with db.session(Scope.system(), read_only=True) as session:
        return await service.require_agent_login_allowed(
            session, today=today, grace_days=grace_days
        )


async def _terms_on(db: Database, today: date) -> LicenceTerms | None:
    async with db.session(Scope.system(), read_only=True) as session:
        return await service.licensed_terms(session, today=today)


async def test_without_a_licence_agents_may_not_log_in(db: Database) -> None:
    assert (await _status(db, TODAY)).state is LicenceState.missing
    assert await _terms_on(db, TODAY) is None
    with pytest.raises(service.LicenceMissing) as caught:
        await _login_check(db, TODAY)
    assert (caught.value.status_code, caught.value.error_code) == (403, "licence_missing")


async def test_agents_log_in_through_the_grace_period_and_not_after(db: Database) -> None:
    terms = await _install(db, _file(valid_until=date(2026, 12, 31)))

    active = await _login_check(db, date(2026, 12, 31))
    assert (active.state, active.days_left, active.terms) == (LicenceState.active, 1, terms)
    assert await _terms_on(db, date(2026, 12, 31)) == terms

    grace = await _login_check(db, date(2027, 1, 3))
    assert (grace.state, grace.days_left) == (LicenceState.grace, 12)
    assert grace.grace_ends_on == date(2027, 1, 14)
    assert await _terms_on(db, date(2027, 1, 3)) is None, "no licence is in force in grace"

    assert (await _login_check(db, date(2027, 1, 14))).state is LicenceState.grace
    with pytest.raises(service.LicenceExpired) as caught:
        await _login_check(db, date(2027, 1, 15))
    assert (caught.value.status_code, caught.value.error_code) == (403, "licence_expired")
    assert caught.value.details == {"grace_ended_on": "2027-01-14"}
    with pytest.raises(service.LicenceExpired):
        await _login_check(db, date(2027, 1, 4), grace_days=3)


async def test_a_renewal_takes_over_from_the_licence_before_it(db: Database) -> None:
    first = await _install(db, _file(valid_until=date(2026, 12, 31), agents=10))
    renewal = await _install(
        db,
        _file(
            valid_until=date(2027, 12, 31),
            agents=20,
            issued_at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
        ),
    )
    assert await _terms_on(db, TODAY) == renewal
    assert (await _status(db, date(2027, 6, 1))).terms == renewal
    assert first != renewal
    assert await _counts(db) == (2, 2)


# --- through the API (GET / POST /api/v1/licence) --------------------------------------------


@pytest.fixture
def trusted_key(settings: Settings, tmp_path: Path) -> Path:
    path = tmp_path / "atiende-licence-public.pem"
    path.write_bytes(PUBLIC)
    settings.licence_public_key = path
    return path


async def _on_premise_admin(app: FastAPI) -> Caller:
    app.state.atiende.clock.set(datetime(2026, 11, 25, 15, 0, tzinfo=UTC))
    tenant = await make_tenant(app.state.atiende.db, deployment_mode=DeploymentMode.on_premise)
    return await caller(app, tenant, Role.admin)


@pytest.mark.usefixtures("trusted_key")
async def test_an_on_premise_admin_installs_a_licence_through_the_api(app: FastAPI) -> None:
    admin = await _on_premise_admin(app)
    before = await admin.client.get("/api/v1/licence")
    assert before.status_code == 200, before.text
    assert before.json() == {
        "state": "missing",
        "terms": None,
        "grace_ends_on": None,
        "days_left": 0,
    }

    document = signing.load(_file(valid_until=date(2026, 12, 31)))
    installed = await admin.client.post("/api/v1/licence", json={"document": document})
    assert installed.status_code == 200, installed.text
    body = installed.json()
    assert (body["state"], body["days_left"], body["grace_ends_on"]) == ("active", 37, "2027-01-14")
    assert body["terms"]["licence_id"] == document["payload"]["licence_id"]
    assert (body["terms"]["license"], body["terms"]["agents"]) == ("omnichannel", 15)
    assert (await admin.client.get("/api/v1/licence")).json() == body


@pytest.mark.usefixtures("trusted_key")
@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (signing.load(_forged()), "licence_forged"),
        (
            signing.load(
                _file(issued_at=datetime(2026, 1, 2, tzinfo=UTC), valid_until=date(2026, 6, 30))
            ),
            "licence_expired",
        ),
        ({"format": "atiende-licence/1", "payload": {}}, "licence_malformed"),
    ],
    ids=["forged", "expired", "malformed"],
)
async def test_the_api_refuses_a_file_that_does_not_verify(
    app: FastAPI, db: Database, document: dict[str, Any], reason: str
) -> None:
    admin = await _on_premise_admin(app)
    response = await admin.client.post("/api/v1/licence", json={"document": document})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == reason
    assert await _counts(db) == (0, 0)


async def test_the_api_needs_a_trusted_public_key(app: FastAPI, db: Database) -> None:
    admin = await _on_premise_admin(app)
    document = signing.load(_file())
    response = await admin.client.post("/api/v1/licence", json={"document": document})
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "licence_key_not_configured"
    assert await _counts(db) == (0, 0)


@pytest.mark.usefixtures("trusted_key")
async def test_the_licence_api_is_for_administrators(app: FastAPI, db: Database) -> None:
    await _on_premise_admin(app)
    tenant = await make_tenant(db, deployment_mode=DeploymentMode.on_premise)
    supervisor = await caller(app, tenant, Role.supervisor)
    assert (await supervisor.client.get("/api/v1/licence")).status_code == 403
    response = await supervisor.client.post(
        "/api/v1/licence", json={"document": signing.load(_file())}
    )
    assert response.status_code == 403
    assert await _counts(db) == (0, 0)
