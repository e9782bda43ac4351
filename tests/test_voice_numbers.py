"""A tenant's phone numbers (DIDs): administrators route each to a voice queue through the
API or ``atiende pbx number``; numbers are stored as the dialplan matches them, never twice,
only into queues that take calls, audited, invisible to other tenants; and ``atiende pbx
config`` writes them into the dialplan when no ``--did`` is given."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from typer.testing import CliRunner

from atiende.audit.models import AuditEntry
from atiende.cli import app as cli
from atiende.core.db import Database, Scope, in_tenant, now
from atiende.core.errors import PermissionDenied, ValidationFailed
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.identity.schemas import UserCreate
from atiende.routing.models import Queue
from atiende.tenancy import service as tenancy
from atiende.tenancy.models import Tenant
from atiende.tenancy.schemas import TenantCreate
from atiende.voice import numbers, service
from atiende.voice.models import VoiceNumber
from factories import Caller, caller, make_tenant
from routing_factories import make_queue
from tenancy_helpers import assert_tenant_isolation

BASE = "/api/v1/voice/numbers"
runner = CliRunner()


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


async def _setup(app: FastAPI, db: Database) -> tuple[Tenant, Caller, Queue]:
    tenant = await make_tenant(db)
    admin = await caller(app, tenant)
    queue = await make_queue(db, tenant, name="Ventas", channels=["voice"])
    return tenant, admin, queue


async def _count(db: Database, tenant: Tenant) -> int:
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        return int(await session.scalar(select(func.count()).select_from(VoiceNumber)) or 0)


async def _audit_actions(db: Database, tenant: Tenant) -> list[str]:
    async with db.session(Scope.system(), read_only=True) as session:
        rows = await session.scalars(
            select(AuditEntry.action).where(
                AuditEntry.tenant_id == tenant.id, AuditEntry.action.startswith("voice_number")
            )
        )
        return sorted(rows)  # one test's entries share the test clock's instant


# --- the API ---------------------------------------------------------------------------------


async def test_an_admin_routes_a_number_to_a_queue_moves_it_and_deletes_it(
    app: FastAPI, db: Database
) -> None:
    tenant, admin, ventas = await _setup(app, db)
    soporte = await make_queue(db, tenant, name="Soporte", channels=["voice", "webchat"])
    made = _ok(
        await admin.client.post(
            BASE, json={"number": " +52 55 1234-5678 ", "queue_id": str(ventas.id)}
        ),
        201,
    )
    assert (made["number"], made["queue_id"]) == ("+525512345678", str(ventas.id))
    other = _ok(
        await admin.client.post(BASE, json={"number": "5551000", "queue_id": str(ventas.id)}), 201
    )
    assert [n["number"] for n in _ok(await admin.client.get(BASE))] == ["+525512345678", "5551000"]

    moved = _ok(
        await admin.client.patch(f"{BASE}/{made['id']}", json={"queue_id": str(soporte.id)})
    )
    assert moved["queue_id"] == str(soporte.id)
    assert _ok(await admin.client.get(f"{BASE}/{made['id']}")) == moved
    renumbered = _ok(await admin.client.patch(f"{BASE}/{other['id']}", json={"number": "555 2000"}))
    assert renumbered["number"] == "5552000"

    _ok(await admin.client.delete(f"{BASE}/{made['id']}"), 204)
    _error(await admin.client.get(f"{BASE}/{made['id']}"), 404, "voice_number_not_found")
    assert [n["number"] for n in _ok(await admin.client.get(BASE))] == ["5552000"]
    assert await _audit_actions(db, tenant) == [
        "voice_number.create",
        "voice_number.create",
        "voice_number.delete",
        "voice_number.update",
        "voice_number.update",
    ]


async def test_the_audit_keeps_the_number_before_and_after_a_change(
    app: FastAPI, db: Database
) -> None:
    tenant, admin, ventas = await _setup(app, db)
    made = _ok(
        await admin.client.post(BASE, json={"number": "5551000", "queue_id": str(ventas.id)}), 201
    )
    _ok(await admin.client.patch(f"{BASE}/{made['id']}", json={"number": "5551001"}))
    async with db.session(Scope.system(), read_only=True) as session:
        entry = await session.scalar(
            select(AuditEntry).where(
                AuditEntry.tenant_id == tenant.id, AuditEntry.action == "voice_number.update"
            )
        )
    assert entry is not None
    assert entry.resource_id == made["id"]
    assert (entry.before or {})["number"] == "5551000"
    assert (entry.after or {})["number"] == "5551001"
    assert entry.actor_id == admin.id


async def test_a_number_is_routed_only_once_however_it_is_written(
    app: FastAPI, db: Database
) -> None:
    tenant, admin, ventas = await _setup(app, db)
    first = _ok(
        await admin.client.post(BASE, json={"number": "555-1000", "queue_id": str(ventas.id)}), 201
    )
    body = _error(
        await admin.client.post(BASE, json={"number": "555 1000", "queue_id": str(ventas.id)}),
        409,
        "voice_number_taken",
    )
    assert body["details"] == {"field": "number"}
    second = _ok(
        await admin.client.post(BASE, json={"number": "5552000", "queue_id": str(ventas.id)}), 201
    )
    response = await admin.client.patch(f"{BASE}/{second['id']}", json={"number": first["number"]})
    _error(response, 409, "voice_number_taken")
    assert await _count(db, tenant) == 2


async def test_a_number_must_be_a_did_and_its_queue_must_take_calls(
    app: FastAPI, db: Database
) -> None:
    tenant, admin, ventas = await _setup(app, db)
    chat = await make_queue(db, tenant, name="Chat", channels=["webchat", "whatsapp"])
    cases = [
        (
            {"number": "5551000", "queue_id": str(chat.id)},
            422,
            "queue_channel_mismatch",
            "queue_id",
        ),
        ({"number": "5551000", "queue_id": str(uuid.uuid4())}, 422, "unknown_queue", "queue_id"),
        ({"number": "ventas", "queue_id": str(ventas.id)}, 422, "did_invalid", "number"),
        ({"number": "1", "queue_id": str(ventas.id)}, 422, "did_invalid", "number"),
        ({"number": "+" + "1" * 21, "queue_id": str(ventas.id)}, 422, "did_invalid", "number"),
    ]
    for body, status, code, field in cases:
        error = _error(await admin.client.post(BASE, json=body), status, code)
        assert error["details"]["field"] == field
    _error(await admin.client.post(BASE, json={"number": "5551000"}), 422, "validation_error")
    _error(
        await admin.client.post(
            BASE, json={"number": "5551000", "queue_id": str(ventas.id), "pbx": "x"}
        ),
        422,
        "validation_error",
    )
    made = _ok(
        await admin.client.post(BASE, json={"number": "5551000", "queue_id": str(ventas.id)}), 201
    )
    response = await admin.client.patch(f"{BASE}/{made['id']}", json={"queue_id": str(chat.id)})
    _error(response, 422, "queue_channel_mismatch")
    assert _ok(await admin.client.get(f"{BASE}/{made['id']}"))["queue_id"] == str(ventas.id)
    assert await _count(db, tenant) == 1
    assert await _audit_actions(db, tenant) == ["voice_number.create"]


async def test_supervisors_read_the_numbers_and_agents_do_not(app: FastAPI, db: Database) -> None:
    tenant, admin, ventas = await _setup(app, db)
    made = _ok(
        await admin.client.post(BASE, json={"number": "5551000", "queue_id": str(ventas.id)}), 201
    )
    supervisor = await caller(app, tenant, Role.supervisor)
    agent = await caller(app, tenant, Role.agent)
    assert [n["id"] for n in _ok(await supervisor.client.get(BASE))] == [made["id"]]
    _error(
        await supervisor.client.post(BASE, json={"number": "5552000", "queue_id": str(ventas.id)}),
        403,
        "permission_denied",
    )
    _error(await supervisor.client.delete(f"{BASE}/{made['id']}"), 403, "permission_denied")
    _error(await agent.client.get(BASE), 403, "permission_denied")
    _error(await agent.client.get("/api/v1/voice/pbxs"), 403, "permission_denied")
    assert await _count(db, tenant) == 1


async def test_numbers_are_invisible_to_other_tenants(app: FastAPI, db: Database) -> None:
    _, owner, ventas = await _setup(app, db)
    globex = await make_tenant(db)
    intruder = await caller(app, globex)
    made = _ok(
        await owner.client.post(BASE, json={"number": "5551000", "queue_id": str(ventas.id)}), 201
    )
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"{BASE}/{made['id']}",
        list_path=BASE,
        change={"number": "5559999"},
        deletable=True,
    )
    # Nor can another tenant send its number into this tenant's queue...
    _error(
        await intruder.client.post(BASE, json={"number": "5552000", "queue_id": str(ventas.id)}),
        422,
        "unknown_queue",
    )
    # ...but the same number may belong to both (each PBX has its own dialplan).
    theirs = await make_queue(db, globex, name="Ventas", channels=["voice"])
    _ok(
        await intruder.client.post(BASE, json={"number": "5551000", "queue_id": str(theirs.id)}),
        201,
    )
    assert len(_ok(await owner.client.get(BASE))) == 1


async def test_the_pbx_list_never_shows_the_ari_password(app: FastAPI, db: Database) -> None:
    tenant, admin, _ = await _setup(app, db)
    async with db.session(Scope.tenant(tenant.id)) as session:
        await service.add_pbx(
            session,
            Actor.system(),
            service.PbxCreate(
                name="main",
                ari_url="http://10.0.0.5:8088/ari",
                ari_username="atiende",
                ari_password="s3cret-Pass",
            ),
            settings=app.state.atiende.settings,
        )
    response = await admin.client.get("/api/v1/voice/pbxs")
    (pbx,) = _ok(response)
    assert (pbx["name"], pbx["ari_url"], pbx["ari_username"], pbx["app_name"]) == (
        "main",
        "http://10.0.0.5:8088/ari",
        "atiende",
        "atiende",
    )
    assert "s3cret-Pass" not in response.text
    assert not any("password" in key for key in pbx)
    globex = await make_tenant(db)
    assert _ok(await (await caller(app, globex)).client.get("/api/v1/voice/pbxs")) == []


# --- the service -----------------------------------------------------------------------------


async def test_the_service_refuses_a_non_admin_and_lists_the_dids_in_order(
    db: Database,
) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, channels=["voice"])
    agent = Actor(user_id=uuid.uuid4(), email="a@example.com", role=Role.agent, tenant_id=tenant.id)
    async with db.session(Scope.tenant(tenant.id)) as session:
        for number in ("5552000", "+525512345678", "5551000"):
            await numbers.create_number(
                session, Actor.system(), numbers.NumberCreate(number=number, queue_id=queue.id)
            )
        assert await numbers.dids(session) == ["+525512345678", "5551000", "5552000"]
        with pytest.raises(PermissionDenied, match="administrators"):
            await numbers.create_number(
                session, agent, numbers.NumberCreate(number="5553000", queue_id=queue.id)
            )
        with pytest.raises(ValidationFailed) as invalid:
            await numbers.create_number(
                session, Actor.system(), numbers.NumberCreate(number="12a", queue_id=queue.id)
            )
        assert invalid.value.error_code == "did_invalid"
    assert await _count(db, tenant) == 3


# --- the command line ------------------------------------------------------------------------


@pytest.fixture
def installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> str:
    monkeypatch.setenv("ATIENDE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ATIENDE_DATABASE_URL", database_url)
    monkeypatch.delenv("ATIENDE_SECRET_KEY", raising=False)
    return database_url


def _seed(database_url: str, slug: str, queues: dict[str, list[str]]) -> None:
    async def work() -> None:
        db = Database(database_url, pool=False)
        try:
            async with db.session(Scope.system()) as session:
                tenant = await tenancy.create_tenant(
                    session, Actor.system(), TenantCreate(slug=slug, name=slug.title())
                )
                async with in_tenant(session, tenant.id):
                    for name, channels in queues.items():
                        session.add(Queue(name=name, channels=channels, created_at=now(session)))
                    await session.flush()
        finally:
            await db.dispose()

    asyncio.run(work())


def test_pbx_number_add_and_list_route_numbers_into_queues(installation: str) -> None:
    _seed(installation, "acme", {"Ventas": ["voice"], "Chat": ["webchat"]})
    _seed(installation, "globex", {"Ventas": ["voice"]})
    added = runner.invoke(
        cli,
        [
            "pbx",
            "number",
            "add",
            "--tenant",
            "acme",
            "--number",
            "+52 55 1234 5678",
            "--queue",
            "ventas",
        ],
    )
    assert added.exit_code == 0, added.output
    assert "number +525512345678 of acme added: calls wait in queue Ventas" in added.stdout
    args = ["pbx", "number", "add", "--tenant", "acme", "--number", "5551000", "--queue", "Ventas"]
    assert runner.invoke(cli, args).exit_code == 0

    listed = runner.invoke(cli, ["pbx", "number", "list", "--tenant", "acme"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines() == ["+525512345678  Ventas", "5551000        Ventas"]
    as_json = runner.invoke(cli, ["pbx", "number", "list", "--tenant", "acme", "--json"])
    assert json.loads(as_json.stdout) == [
        {"number": "+525512345678", "queue": "Ventas"},
        {"number": "5551000", "queue": "Ventas"},
    ]
    empty = runner.invoke(cli, ["pbx", "number", "list", "--tenant", "globex"])
    assert (empty.exit_code, empty.stdout) == (0, "")
    assert "has no numbers" in empty.stderr


@pytest.mark.parametrize(
    ("number", "queue", "code"),
    [
        ("5551000", "Chat", "queue_channel_mismatch"),
        ("5551000", "Nadie", "queue_not_found"),
        ("ventas", "Ventas", "did_invalid"),
        ("555-1000", "Ventas", "voice_number_taken"),
    ],
)
def test_pbx_number_add_refuses_what_the_api_refuses(
    installation: str, number: str, queue: str, code: str
) -> None:
    _seed(installation, "acme", {"Ventas": ["voice"], "Chat": ["webchat"]})
    first = ["pbx", "number", "add", "--tenant", "acme", "--number", "5551000", "--queue", "Ventas"]
    assert runner.invoke(cli, first).exit_code == 0
    args = ["pbx", "number", "add", "--tenant", "acme", "--number", number, "--queue", queue]
    result = runner.invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert f"error ({code})" in result.stderr
    listed = runner.invoke(cli, ["pbx", "number", "list", "--tenant", "acme"])
    assert listed.stdout.splitlines() == ["5551000  Ventas"]


def test_pbx_number_commands_need_a_known_tenant(installation: str) -> None:
    result = runner.invoke(cli, ["pbx", "number", "list", "--tenant", "nadie"])
    assert result.exit_code == 1
    assert "error (tenant_not_found)" in result.stderr


def test_pbx_config_writes_the_tenants_numbers_unless_dids_are_given(installation: str) -> None:
    _seed(installation, "acme", {"Ventas": ["voice"]})
    _seed(installation, "globex", {"Ventas": ["voice"]})
    for tenant, number in (("acme", "5551000"), ("acme", "+525512345678"), ("globex", "5559999")):
        args = ["pbx", "number", "add", "--tenant", tenant, "--number", number, "--queue", "Ventas"]
        assert runner.invoke(cli, args).exit_code == 0
    result = runner.invoke(cli, ["pbx", "config", "--tenant", "acme", "--json"])
    assert result.exit_code == 0, result.output
    dialplan = json.loads(result.stdout)["files"]["extensions.conf"]
    assert " same => n,Stasis(atiende,acme,+525512345678)" in dialplan
    assert " same => n,Stasis(atiende,acme,5551000)" in dialplan
    assert "5559999" not in dialplan
    given = runner.invoke(cli, ["pbx", "config", "--tenant", "acme", "--did", "5557777", "--json"])
    dialplan = json.loads(given.stdout)["files"]["extensions.conf"]
    assert "Stasis(atiende,acme,5557777)" in dialplan
    assert "5551000" not in dialplan


def _seed_user(database_url: str, slug: str, email: str) -> None:
    async def work() -> None:
        db = Database(database_url, pool=False)
        try:
            async with db.session(Scope.system()) as session:
                tenant = await tenancy.get_tenant_by_slug(session, slug)
                assert tenant is not None
                await identity.create_user(
                    session,
                    Actor.system(),
                    UserCreate(
                        email=email,
                        name="Alicia",
                        role=Role.agent,
                        password="una clave larga",
                        tenant_id=tenant.id,
                    ),
                )
        finally:
            await db.dispose()

    asyncio.run(work())


def test_pbx_extension_add_and_list_give_people_their_phones(installation: str) -> None:
    _seed(installation, "acme", {"Ventas": ["voice"]})
    _seed(installation, "globex", {"Ventas": ["voice"]})
    _seed_user(installation, "acme", "alicia@acme.example.com")
    added = runner.invoke(
        cli,
        [
            "pbx",
            "extension",
            "add",
            "--tenant",
            "acme",
            "--number",
            "1001",
            "--user",
            "Alicia@Acme.example.com",
        ],
    )
    assert added.exit_code == 0, added.output
    assert "extension 1001 (alicia@acme.example.com) of acme added" in added.stdout
    free = ["pbx", "extension", "add", "--tenant", "acme", "--number", "1002"]
    assert runner.invoke(cli, free).exit_code == 0
    listed = runner.invoke(cli, ["pbx", "extension", "list", "--tenant", "acme"])
    assert listed.stdout.splitlines() == ["1001  alicia@acme.example.com", "1002  -"]
    as_json = runner.invoke(cli, ["pbx", "extension", "list", "--tenant", "acme", "--json"])
    assert json.loads(as_json.stdout) == [
        {"number": "1001", "user": "alicia@acme.example.com"},
        {"number": "1002", "user": None},
    ]
    other = runner.invoke(cli, ["pbx", "extension", "list", "--tenant", "globex"])
    assert (other.exit_code, other.stdout) == (0, "")
    # the config now has a PJSIP endpoint for each
    config = runner.invoke(cli, ["pbx", "config", "--tenant", "acme", "--json"])
    pjsip = json.loads(config.stdout)["files"]["pjsip.conf"]
    assert "[1001]" in pjsip
    assert "[1002]" in pjsip

    for args, code, exit_code in (
        (["--number", "1001"], "extension_number_taken", 1),
        (["--number", "1003", "--user", "alicia@acme.example.com"], "user_has_extension", 1),
        (["--number", "1003", "--user", "nadie@acme.example.com"], "user_not_found", 1),
        (["--number", "1a"], "validation_error", 2),
    ):
        refused = runner.invoke(cli, ["pbx", "extension", "add", "--tenant", "acme", *args])
        assert refused.exit_code == exit_code, refused.output
        assert f"error ({code})" in refused.stderr
    again = runner.invoke(cli, ["pbx", "extension", "list", "--tenant", "acme"])
    assert again.stdout.splitlines() == ["1001  alicia@acme.example.com", "1002  -"]
