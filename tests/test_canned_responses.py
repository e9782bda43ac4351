"""Canned responses: tenant-wide ones managed by supervisors and admins, personal ones by
their owner alone; found by ``/shortcut`` prefix or text; audited; isolated per tenant."""

from __future__ import annotations

from sqlalchemy import func, select

from atiende.core.db import Database, Scope
from atiende.identity.models import Role
from atiende.routing.models import CannedResponse
from factories import Caller, caller, make_tenant
from tenancy_helpers import assert_tenant_isolation

PATH = "/api/v1/canned-responses"


async def _create(who: Caller, shortcut: str, body: str, scope: str = "personal") -> dict:
    response = await who.client.post(
        PATH, json={"shortcut": shortcut, "body": body, "scope": scope}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _shortcuts(who: Caller, query: str = "") -> list[tuple[str, str]]:
    response = await who.client.get(PATH + query)
    assert response.status_code == 200, response.text
    return [(row["shortcut"], row["scope"]) for row in response.json()]


async def _count(db: Database, tenant_id) -> int:
    async with db.session(Scope.tenant(tenant_id)) as session:
        return int(await session.scalar(select(func.count()).select_from(CannedResponse)) or 0)


async def test_a_supervisor_shares_a_response_with_the_whole_tenant(app, db: Database) -> None:
    tenant = await make_tenant(db)
    supervisor = await caller(app, tenant, Role.supervisor)
    agent = await caller(app, tenant, Role.agent)
    shared = await _create(supervisor, "/Hola", "¡Hola! ¿En qué te ayudo?", "tenant")
    assert shared["shortcut"] == "hola"
    assert shared["scope"] == "tenant"
    assert shared["owner_id"] is None

    assert await _shortcuts(agent) == [("hola", "tenant")]
    assert (await agent.client.get(f"{PATH}/{shared['id']}")).status_code == 200
    for response in (
        await agent.client.patch(f"{PATH}/{shared['id']}", json={"body": "Cambiado"}),
        await agent.client.delete(f"{PATH}/{shared['id']}"),
    ):
        assert response.status_code == 403
    assert (await agent.client.get(f"{PATH}/{shared['id']}")).json() == shared


async def test_an_agent_cannot_create_tenant_wide_responses(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    response = await agent.client.post(
        PATH, json={"shortcut": "hola", "body": "Hola", "scope": "tenant"}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert await _count(db, tenant.id) == 0


async def test_personal_responses_are_seen_and_managed_only_by_their_owner(
    app, db: Database
) -> None:
    tenant = await make_tenant(db)
    ana, beto = await caller(app, tenant, Role.agent), await caller(app, tenant, Role.agent)
    admin = await caller(app, tenant, Role.admin)
    mine = await _create(ana, "despedida", "¡Hasta pronto!")
    assert mine["scope"] == "personal"
    assert mine["owner_id"] == str(ana.id)

    assert await _shortcuts(beto) == []
    assert await _shortcuts(admin) == []
    for other in (beto, admin):
        for response in (
            await other.client.get(f"{PATH}/{mine['id']}"),
            await other.client.patch(f"{PATH}/{mine['id']}", json={"body": "x"}),
            await other.client.delete(f"{PATH}/{mine['id']}"),
        ):
            assert response.status_code == 404
            assert response.json()["code"] == "canned_response_not_found"

    changed = await ana.client.patch(f"{PATH}/{mine['id']}", json={"body": "¡Nos vemos!"})
    assert changed.status_code == 200
    assert changed.json()["body"] == "¡Nos vemos!"
    assert (await ana.client.delete(f"{PATH}/{mine['id']}")).status_code == 204
    assert await _shortcuts(ana) == []


async def test_typing_a_shortcut_finds_prefix_matches_first_then_text_matches(
    app, db: Database
) -> None:
    tenant = await make_tenant(db)
    supervisor = await caller(app, tenant, Role.supervisor)
    agent = await caller(app, tenant, Role.agent)
    await _create(supervisor, "horario", "Abrimos de 9 a 18 h.", "tenant")
    await _create(supervisor, "hola", "¡Hola! Gracias por escribir.", "tenant")
    await _create(supervisor, "gracias", "Gracias a ti.", "tenant")
    await _create(supervisor, "envio", "El envío tarda 3 días; ¡gracias!", "tenant")
    await _create(agent, "hola", "¡Hola, soy Ana!")

    assert await _shortcuts(agent, "?q=/ho") == [
        ("hola", "personal"),
        ("hola", "tenant"),
        ("horario", "tenant"),
    ]
    assert await _shortcuts(agent, "?q=GRACIAS") == [
        ("gracias", "tenant"),
        ("envio", "tenant"),
        ("hola", "tenant"),
    ]
    assert await _shortcuts(agent, "?q=nada") == []
    assert await _shortcuts(agent, "?q=%25") == []  # LIKE wildcards are literal


async def test_a_shortcut_is_unique_per_owner(app, db: Database) -> None:
    tenant = await make_tenant(db)
    supervisor = await caller(app, tenant, Role.supervisor)
    agent = await caller(app, tenant, Role.agent)
    shared = await _create(supervisor, "hola", "Hola", "tenant")
    await _create(agent, "hola", "Hola, soy Ana")  # a personal one may shadow a shared one
    mine = await _create(agent, "adios", "Adiós")

    for who, body in (
        (supervisor, {"shortcut": "/HOLA", "body": "Otra", "scope": "tenant"}),
        (agent, {"shortcut": "hola", "body": "Otra"}),
    ):
        response = await who.client.post(PATH, json=body)
        assert response.status_code == 409
        assert response.json()["code"] == "canned_shortcut_taken"
    renamed = await agent.client.patch(f"{PATH}/{mine['id']}", json={"shortcut": "hola"})
    assert renamed.status_code == 409
    assert await _count(db, tenant.id) == 3
    assert (await supervisor.client.get(f"{PATH}/{shared['id']}")).json() == shared


async def test_bad_input_is_refused_and_changes_nothing(app, db: Database) -> None:
    tenant = await make_tenant(db)
    supervisor = await caller(app, tenant, Role.supervisor)
    existing = await _create(supervisor, "hola", "Hola", "tenant")
    for body in (
        {"shortcut": "dos palabras", "body": "x"},
        {"shortcut": "/", "body": "x"},
        {"shortcut": "x" * 51, "body": "x"},
        {"shortcut": "ok", "body": "   "},
        {"shortcut": "ok", "body": ""},
        {"shortcut": "ok", "body": "x", "scope": "everyone"},
        {"shortcut": "ok", "body": "x", "owner_id": str(supervisor.id)},
    ):
        response = await supervisor.client.post(PATH, json=body)
        assert response.status_code == 422, body
    for change in ({"body": None}, {"shortcut": None}, {"body": "  "}, {"scope": "personal"}):
        response = await supervisor.client.patch(f"{PATH}/{existing['id']}", json=change)
        assert response.status_code == 422, change
    assert await _count(db, tenant.id) == 1
    assert (await supervisor.client.get(f"{PATH}/{existing['id']}")).json() == existing


async def test_every_change_is_audited(app, db: Database) -> None:
    tenant = await make_tenant(db)
    admin = await caller(app, tenant, Role.admin)
    created = await _create(admin, "hola", "Hola", "tenant")
    await admin.client.patch(f"{PATH}/{created['id']}", json={"body": "Hola de nuevo"})
    await admin.client.patch(f"{PATH}/{created['id']}", json={"body": "Hola de nuevo"})  # no-op
    await admin.client.delete(f"{PATH}/{created['id']}")
    entries = [
        e
        for e in (await admin.client.get("/api/v1/audit")).json()
        if e["resource_id"] == created["id"]
    ]
    assert sorted(e["action"] for e in entries) == [
        "canned_response.create",
        "canned_response.delete",
        "canned_response.update",
    ]
    update = next(e for e in entries if e["action"] == "canned_response.update")
    assert update["before"]["body"] == "Hola"
    assert update["after"]["body"] == "Hola de nuevo"
    assert update["actor_id"] == str(admin.id)


async def test_canned_responses_are_invisible_to_another_tenant(app, db: Database) -> None:
    acme, globex = await make_tenant(db), await make_tenant(db)
    owner = await caller(app, acme, Role.supervisor)
    intruder = await caller(app, globex, Role.admin)
    shared = await _create(owner, "hola", "Hola", "tenant")
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"{PATH}/{shared['id']}",
        list_path=PATH,
        change={"body": "Hijacked"},
        deletable=True,
    )
    # The other tenant may use the same shortcut for its own response.
    await _create(intruder, "hola", "Hello", "tenant")
    assert await _shortcuts(owner) == [("hola", "tenant")]


async def test_vendor_staff_have_no_canned_responses(app, db: Database) -> None:
    vendor = await caller(app, None, Role.vendor_admin)
    assert (await vendor.client.get(PATH)).status_code == 403
