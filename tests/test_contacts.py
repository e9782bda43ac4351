"""Contacts through the API: identities normalised, search, the profile with its history
across channels, edits, merges; who may do what; bad input changes nothing."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from atiende.audit.models import AuditEntry
from atiende.contacts import service as contacts
from atiende.contacts.models import Contact, IdentityKind
from atiende.conversations import service as conversations
from atiende.conversations.models import Channel, InteractionStatus
from atiende.core.clock import TestClock
from atiende.core.db import Database, Scope
from atiende.identity.models import Role
from conversation_factories import open_chat
from factories import Caller, caller, make_tenant
from routing_factories import make_queue
from tenancy_helpers import assert_tenant_isolation

PATH = "/api/v1/contacts"


async def _create(who: Caller, **body: object) -> dict:
    response = await who.client.post(PATH, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def _count_contacts(db: Database, tenant_id: uuid.UUID) -> int:
    async with db.session(Scope.tenant(tenant_id)) as session:
        return int(await session.scalar(select(func.count()).select_from(Contact)) or 0)


async def _audit_actions(db: Database, tenant_id: uuid.UUID) -> list[str]:
    async with db.session(Scope.tenant(tenant_id)) as session:
        return list(
            await session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.action.startswith("contact."))
                .order_by(AuditEntry.occurred_at)
            )
        )


# --- creating and normalising ---------------------------------------------------------------


async def test_a_supervisor_creates_a_contact_with_normalised_identities(app, db: Database) -> None:
    tenant = await make_tenant(db)
    supervisor = await caller(app, tenant, Role.supervisor)
    created = await _create(
        supervisor,
        name="María López",
        email="Maria@Example.COM",
        phone="55 1234 5678",
        identities=[
            {"kind": "phone", "value": "(55) 1234-5678"},
            {"kind": "whatsapp", "value": "+52 1 55 1234 5678"},
            {"kind": "email", "value": " Maria@Example.com "},
        ],
    )
    assert created["phone"] == "+525512345678"
    assert created["email"] == "maria@example.com"
    assert {(i["kind"], i["value"]) for i in created["identities"]} == {
        ("phone", "+525512345678"),
        ("whatsapp", "5215512345678"),
        ("email", "maria@example.com"),
    }
    assert created["history"] == []
    assert await _audit_actions(db, tenant.id) == ["contact.create"]


async def test_an_invalid_phone_is_refused_and_nothing_is_created(app, db: Database) -> None:
    tenant = await make_tenant(db)
    supervisor = await caller(app, tenant, Role.supervisor)
    for body in (
        {"name": "Ana", "phone": "12"},
        {"name": "Ana", "identities": [{"kind": "phone", "value": "not a phone"}]},
    ):
        response = await supervisor.client.post(PATH, json=body)
        assert response.status_code == 422
        assert response.json()["code"] == "invalid_phone"
    for body in (
        {"email": "not-an-email"},
        {"name": ""},
        {"identities": [{"kind": "fax", "value": "1"}]},
        {"name": "Ana", "surname": "López"},
    ):
        response = await supervisor.client.post(PATH, json=body)
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
    assert await _count_contacts(db, tenant.id) == 0
    assert await _audit_actions(db, tenant.id) == []


async def test_an_identity_of_another_contact_is_a_conflict(app, db: Database) -> None:
    tenant = await make_tenant(db)
    supervisor = await caller(app, tenant, Role.supervisor)
    first = await _create(supervisor, identities=[{"kind": "telegram", "value": "777"}])
    response = await supervisor.client.post(
        PATH, json={"name": "Otra", "identities": [{"kind": "telegram", "value": " 777 "}]}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "identity_taken"
    second = await _create(supervisor, name="Otra")
    added = await supervisor.client.post(
        f"{PATH}/{second['id']}/identities", json={"kind": "telegram", "value": "777"}
    )
    assert added.status_code == 409
    assert await _count_contacts(db, tenant.id) == 2
    assert (await supervisor.client.get(f"{PATH}/{first['id']}")).json()["identities"][0][
        "value"
    ] == "777"


async def test_identities_are_added_and_removed(app, db: Database) -> None:
    tenant = await make_tenant(db)
    supervisor = await caller(app, tenant, Role.supervisor)
    contact = await _create(supervisor, name="Ana")
    added = await supervisor.client.post(
        f"{PATH}/{contact['id']}/identities", json={"kind": "phone", "value": "+52 55 8765 4321"}
    )
    assert added.status_code == 201
    assert added.json()["value"] == "+525587654321"
    again = await supervisor.client.post(
        f"{PATH}/{contact['id']}/identities", json={"kind": "phone", "value": "5587654321"}
    )
    assert again.json()["id"] == added.json()["id"]
    removed = await supervisor.client.delete(
        f"{PATH}/{contact['id']}/identities/{added.json()['id']}"
    )
    assert removed.status_code == 204
    assert (await supervisor.client.get(f"{PATH}/{contact['id']}")).json()["identities"] == []
    assert await _audit_actions(db, tenant.id) == [
        "contact.create",
        "contact.identity_add",
        "contact.identity_remove",
    ]


# --- searching and reading --------------------------------------------------------------------


async def test_search_matches_name_email_phone_and_identity_values(app, db: Database) -> None:
    tenant = await make_tenant(db)
    supervisor = await caller(app, tenant, Role.supervisor)
    maria = await _create(supervisor, name="María López", email="maria@example.com")
    pedro = await _create(supervisor, name="Pedro", phone="+52 55 1234 5678")
    tele = await _create(
        supervisor, name="Sin datos", identities=[{"kind": "telegram", "value": "tg-4455"}]
    )

    async def found(q: str) -> set[str]:
        response = await supervisor.client.get(PATH, params={"q": q})
        assert response.status_code == 200, response.text
        return {row["id"] for row in response.json()}

    assert await found("maría") == {maria["id"]}
    assert await found("EXAMPLE.com") == {maria["id"]}
    assert await found("55 1234-5678") == {pedro["id"]}
    assert await found("TG-44") == {tele["id"]}
    assert await found("nadie") == set()
    assert await found("%") == set()
    assert len(await found("")) == 3


async def test_the_profile_shows_every_interaction_across_channels_newest_first(
    app, db: Database, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    supervisor = await caller(app, tenant, Role.supervisor)
    agent = await caller(app, tenant, Role.agent)
    queue = await make_queue(db, tenant, name="Soporte")
    first, contact_id = await open_chat(
        db,
        tenant,
        who="5215512345678",
        agent_id=agent.id,
        status=InteractionStatus.closed,
        queue_id=queue.id,
        disposition_code="resolved",
    )
    clock.advance(3600)
    async with db.session(Scope.tenant(tenant.id)) as session:
        second = await conversations.open_interaction(
            session, channel=Channel.voice, contact_id=contact_id
        )

    detail = (await supervisor.client.get(f"{PATH}/{contact_id}")).json()
    assert [(i["kind"], i["value"]) for i in detail["identities"]] == [
        ("whatsapp", "5215512345678")
    ]
    history = detail["history"]
    assert [h["id"] for h in history] == [str(second.id), str(first)]
    assert history[0]["channel"] == "voice"
    assert history[0]["status"] == "queued"
    assert history[1] == {
        **history[1],
        "channel": "whatsapp",
        "status": "closed",
        "queue_id": str(queue.id),
        "queue_name": "Soporte",
        "agent_id": str(agent.id),
        "agent_name": agent.user.name,
        "disposition_code": "resolved",
    }


# --- who may do what ----------------------------------------------------------------------------


async def test_an_agent_reads_only_contacts_of_interactions_they_can_see(app, db: Database) -> None:
    tenant = await make_tenant(db)
    ana, beto = await caller(app, tenant, Role.agent), await caller(app, tenant, Role.agent)
    _, of_ana = await open_chat(db, tenant, agent_id=ana.id)
    _, of_beto = await open_chat(db, tenant, agent_id=beto.id)
    _, of_nobody = await open_chat(db, tenant)

    assert (await ana.client.get(f"{PATH}/{of_ana}")).status_code == 200
    for contact_id in (of_beto, of_nobody):
        response = await ana.client.get(f"{PATH}/{contact_id}")
        assert response.status_code == 404
        assert response.json()["code"] == "contact_not_found"
    assert [row["id"] for row in (await ana.client.get(PATH)).json()] == [str(of_ana)]


async def test_an_agent_corrects_a_customers_details_mid_conversation(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    _, contact_id = await open_chat(db, tenant, agent_id=agent.id)
    changed = await agent.client.patch(
        f"{PATH}/{contact_id}", json={"name": "Lucía Pérez", "phone": "5512345678"}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "Lucía Pérez"
    assert changed.json()["phone"] == "+525512345678"
    cleared = await agent.client.patch(f"{PATH}/{contact_id}", json={"phone": None})
    assert cleared.json()["phone"] is None
    added = await agent.client.post(
        f"{PATH}/{contact_id}/identities", json={"kind": "email", "value": "lucia@example.com"}
    )
    assert added.status_code == 201
    assert await _audit_actions(db, tenant.id) == [
        "contact.update",
        "contact.update",
        "contact.identity_add",
    ]


async def test_agents_do_not_create_merge_or_unlink_contacts(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    _, mine = await open_chat(db, tenant, agent_id=agent.id)
    _, also_mine = await open_chat(db, tenant, agent_id=agent.id)
    identity_id = (await agent.client.get(f"{PATH}/{mine}")).json()["identities"][0]["id"]
    for response in (
        await agent.client.post(PATH, json={"name": "Nuevo"}),
        await agent.client.post(f"{PATH}/{mine}/merge", json={"other_id": str(also_mine)}),
        await agent.client.delete(f"{PATH}/{mine}/identities/{identity_id}"),
    ):
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"
    assert await _count_contacts(db, tenant.id) == 2


async def test_vendor_staff_do_not_read_contacts(app, db: Database) -> None:
    vendor = await caller(app, None, Role.vendor_admin)
    assert (await vendor.client.get(PATH)).status_code == 403


# --- merging -------------------------------------------------------------------------------------


async def test_a_merge_moves_identities_and_interactions_to_the_survivor(
    app, db: Database, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    supervisor = await caller(app, tenant, Role.supervisor)
    by_whatsapp, survivor_id = await open_chat(db, tenant, who="5215512345678")
    clock.advance(60)
    by_webchat, other_id = await open_chat(
        db, tenant, channel=Channel.webchat, kind=IdentityKind.webchat, who="visitor-1"
    )
    await supervisor.client.patch(f"{PATH}/{other_id}", json={"email": "ana@example.com"})

    merged = await supervisor.client.post(
        f"{PATH}/{survivor_id}/merge", json={"other_id": str(other_id)}
    )
    assert merged.status_code == 200, merged.text
    survivor = merged.json()
    assert survivor["email"] == "ana@example.com"  # an empty field is filled from the other
    assert {i["kind"] for i in survivor["identities"]} == {"whatsapp", "webchat"}
    assert [h["id"] for h in survivor["history"]] == [str(by_webchat), str(by_whatsapp)]

    other = (await supervisor.client.get(f"{PATH}/{other_id}")).json()
    assert other["merged_into_id"] == str(survivor_id)
    assert other["identities"] == []
    listed = {row["id"] for row in (await supervisor.client.get(PATH)).json()}
    assert listed == {str(survivor_id)}
    interaction = (await supervisor.client.get(f"/api/v1/interactions/{by_webchat}")).json()
    assert interaction["contact"]["id"] == str(survivor_id)

    async with db.session(Scope.tenant(tenant.id)) as session:
        found = await contacts.find_by_identity(session, IdentityKind.webchat, "visitor-1")
        assert found is not None
        assert found.id == survivor_id
        resolved = await contacts.resolve(session, other_id)
        assert resolved.id == survivor_id
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "contact.merge"))
    assert entry is not None
    assert entry.actor_id == supervisor.id
    assert entry.resource_id == str(survivor_id)
    assert entry.after["merged_id"] == str(other_id)
    assert entry.after["moved_interactions"] == 1
    assert entry.after["moved_identities"] == 1


async def test_merges_chain_into_the_last_survivor(app, db: Database) -> None:
    tenant = await make_tenant(db)
    admin = await caller(app, tenant, Role.admin)
    first, a = await open_chat(db, tenant)
    second, b = await open_chat(db, tenant)
    third, c = await open_chat(db, tenant)
    assert (await admin.client.post(f"{PATH}/{b}/merge", json={"other_id": str(c)})).is_success
    assert (await admin.client.post(f"{PATH}/{a}/merge", json={"other_id": str(b)})).is_success
    detail = (await admin.client.get(f"{PATH}/{a}")).json()
    assert {h["id"] for h in detail["history"]} == {str(first), str(second), str(third)}
    assert len(detail["identities"]) == 3
    # c now points straight at a, not through b.
    assert (await admin.client.get(f"{PATH}/{c}")).json()["merged_into_id"] == str(a)


async def test_refused_merges_change_nothing(app, db: Database) -> None:
    acme, globex = await make_tenant(db), await make_tenant(db)
    supervisor = await caller(app, acme, Role.supervisor)
    _, a = await open_chat(db, acme)
    _, b = await open_chat(db, acme)
    _, c = await open_chat(db, acme)
    _, foreign = await open_chat(db, globex)
    assert (await supervisor.client.post(f"{PATH}/{b}/merge", json={"other_id": str(c)})).is_success
    before = {x: (await supervisor.client.get(f"{PATH}/{x}")).json() for x in (a, b, c)}

    cases = [
        (a, a, 422, "cannot_merge_self"),
        (a, foreign, 404, "contact_not_found"),
        (foreign, a, 404, "contact_not_found"),
        (a, uuid.uuid4(), 404, "contact_not_found"),
        (a, c, 409, "contact_merged"),  # c is already merged into b
        (c, a, 409, "contact_merged"),
    ]
    for survivor, other, status, code in cases:
        response = await supervisor.client.post(
            f"{PATH}/{survivor}/merge", json={"other_id": str(other)}
        )
        assert response.status_code == status, (survivor, other, response.text)
        assert response.json()["code"] == code
    after = {x: (await supervisor.client.get(f"{PATH}/{x}")).json() for x in (a, b, c)}
    assert after == before
    assert (await supervisor.client.post(f"{PATH}/{a}/merge", json={})).status_code == 422
    assert await _audit_actions(db, acme.id) == ["contact.merge"]


async def test_a_merged_contact_is_not_edited_any_more(app, db: Database) -> None:
    tenant = await make_tenant(db)
    supervisor = await caller(app, tenant, Role.supervisor)
    _, a = await open_chat(db, tenant)
    _, b = await open_chat(db, tenant)
    await supervisor.client.post(f"{PATH}/{a}/merge", json={"other_id": str(b)})
    response = await supervisor.client.patch(f"{PATH}/{b}", json={"name": "Tarde"})
    assert response.status_code == 409
    assert response.json()["code"] == "contact_merged"
    assert response.json()["details"]["merged_into_id"] == str(a)


# --- tenants -------------------------------------------------------------------------------


async def test_contacts_are_invisible_to_another_tenant(app, db: Database) -> None:
    acme, globex = await make_tenant(db), await make_tenant(db)
    owner = await caller(app, acme, Role.supervisor)
    intruder = await caller(app, globex, Role.admin)
    contact = await _create(
        owner, name="Secreto", identities=[{"kind": "telegram", "value": "12345"}]
    )
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"{PATH}/{contact['id']}",
        list_path=PATH,
        change={"name": "Hijacked"},
        deletable=False,
    )
    identity_id = contact["identities"][0]["id"]
    for response in (
        await intruder.client.post(
            f"{PATH}/{contact['id']}/identities", json={"kind": "email", "value": "x@y.com"}
        ),
        await intruder.client.delete(f"{PATH}/{contact['id']}/identities/{identity_id}"),
    ):
        assert response.status_code == 404
    assert (await intruder.client.get(PATH, params={"q": "12345"})).json() == []
    # The same identity value is free in the other tenant: identities are per tenant.
    await _create(intruder, identities=[{"kind": "telegram", "value": "12345"}])
    assert (await owner.client.get(f"{PATH}/{contact['id']}")).json() == contact
