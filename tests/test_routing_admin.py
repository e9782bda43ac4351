"""Routing configuration through the API: skills, queues, members, dispositions, agent
profiles, schedules, holidays and break reasons. Admins write, supervisors read, bad input
changes nothing, every change is audited, and no tenant touches another's configuration."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from atiende.contacts import service as contacts
from atiende.contacts.models import IdentityKind
from atiende.conversations import service as conversations
from atiende.conversations.models import Channel, InteractionStatus
from atiende.core.clock import TestClock
from atiende.core.db import Database, Scope
from atiende.core.events import EventRecord
from atiende.identity.models import Role, User
from atiende.routing import admin
from atiende.routing import service as routing
from atiende.routing.models import Agent, BreakReason, Disposition, Queue, QueueMember, Skill
from atiende.tenancy.models import Tenant
from factories import Caller, caller, make_tenant, make_user
from tenancy_helpers import assert_tenant_isolation

MISSING = "00000000-0000-4000-8000-000000000000"
WEEKDAYS = {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


async def _setup(app: Any, db: Database, **tenant: Any) -> tuple[Tenant, Caller]:
    acme = await make_tenant(db, **tenant)
    return acme, await caller(app, acme)


async def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


async def _skill(admin_: Caller, name: str = "ventas") -> dict[str, Any]:
    return await _ok(await admin_.client.post("/api/v1/skills", json={"name": name}), 201)


async def _queue(admin_: Caller, **fields: Any) -> dict[str, Any]:
    body = {"name": f"queue-{uuid.uuid4().hex[:6]}", "channels": ["webchat"], **fields}
    return await _ok(await admin_.client.post("/api/v1/queues", json=body), 201)


async def _agent(admin_: Caller, db: Database, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    user = await make_user(db, tenant, fields.pop("role", Role.agent))
    body = {"user_id": str(user.id), **fields}
    return await _ok(await admin_.client.post("/api/v1/agents", json=body), 201)


async def _schedule(admin_: Caller, **fields: Any) -> dict[str, Any]:
    body = {"name": f"hours-{uuid.uuid4().hex[:6]}", "weekly": WEEKDAYS, **fields}
    return await _ok(await admin_.client.post("/api/v1/schedules", json=body), 201)


async def _audit_actions(admin_: Caller, resource_id: str) -> list[str]:
    """The audit actions about a resource, sorted (entries of one test share an instant)."""
    entries = await _ok(await admin_.client.get("/api/v1/audit"))
    return sorted(e["action"] for e in entries if e["resource_id"] == resource_id)


# --- skills ----------------------------------------------------------------------------------


async def test_an_admin_creates_renames_lists_and_deletes_skills(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    soporte = await _skill(boss, "soporte")
    ventas = await _skill(boss, "ventas")
    listed = await _ok(await boss.client.get("/api/v1/skills"))
    assert [s["name"] for s in listed] == ["soporte", "ventas"]
    renamed = await _ok(
        await boss.client.patch(f"/api/v1/skills/{ventas['id']}", json={"name": "ventas b2b"})
    )
    assert renamed["name"] == "ventas b2b"
    await _ok(await boss.client.delete(f"/api/v1/skills/{soporte['id']}"), 204)
    _error(await boss.client.get(f"/api/v1/skills/{soporte['id']}"), 404, "skill_not_found")
    assert await _audit_actions(boss, ventas["id"]) == ["skill.create", "skill.update"]
    assert await _audit_actions(boss, soporte["id"]) == ["skill.create", "skill.delete"]


async def test_skill_names_are_unique_per_tenant_ignoring_case(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    first = await _skill(boss, "Ventas")
    other = await _skill(boss, "soporte")
    _error(
        await boss.client.post("/api/v1/skills", json={"name": "ventas"}), 409, "skill_name_taken"
    )
    _error(
        await boss.client.patch(f"/api/v1/skills/{other['id']}", json={"name": "VENTAS"}),
        409,
        "skill_name_taken",
    )
    assert len(await _ok(await boss.client.get("/api/v1/skills"))) == 2
    # The same name in another tenant is fine.
    _, elsewhere = await _setup(app, db)
    await _skill(elsewhere, "Ventas")
    assert (await _ok(await boss.client.get(f"/api/v1/skills/{first['id']}")))["name"] == "Ventas"


async def test_a_skill_a_queue_requires_cannot_be_deleted(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    skill = await _skill(boss)
    queue = await _queue(boss, required_skills={skill["id"]: 3})
    body = _error(await boss.client.delete(f"/api/v1/skills/{skill['id']}"), 409, "skill_in_use")
    assert body["details"]["queue_ids"] == [queue["id"]]
    await _ok(await boss.client.get(f"/api/v1/skills/{skill['id']}"))


async def test_deleting_a_skill_drops_it_from_agents(app, db: Database) -> None:
    tenant, boss = await _setup(app, db)
    skill = await _skill(boss)
    agent = await _agent(boss, db, tenant)
    await _ok(
        await boss.client.put(
            f"/api/v1/agents/{agent['id']}/skills", json={"skills": {skill["id"]: 7}}
        )
    )
    await _ok(await boss.client.delete(f"/api/v1/skills/{skill['id']}"), 204)
    assert (await _ok(await boss.client.get(f"/api/v1/agents/{agent['id']}")))["skills"] == {}


# --- queues ----------------------------------------------------------------------------------


async def test_a_queue_gets_sensible_defaults(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    queue = await _queue(boss, name="General", channels=["webchat", "whatsapp"])
    assert queue | {"id": None, "created_at": None} == {
        "id": None,
        "created_at": None,
        "name": "General",
        "channels": ["webchat", "whatsapp"],
        "strategy": "longest_idle",
        "required_skills": {},
        "priority": 0,
        "service_level_seconds": 20,
        "service_level_target": 80,
        "schedule_id": None,
        "closed_action": "auto_reply",
        "closed_message": None,
        "closed_queue_id": None,
        "max_wait_seconds": None,
        "overflow_queue_id": None,
        "max_queue_length": None,
        "wrap_up_seconds": 60,
        "offer_timeout_seconds": 30,
        "auto_accept": False,
        "sticky_seconds": 0,
        "ageing_seconds": 60,
        "recording": "never",
        "max_wait_action": "overflow",
        "forward_number": None,
        "voicemail_prompt": None,
        "message_prompt": None,
        "announce_every_seconds": 0,
    }


async def test_every_queue_field_can_be_set_and_changed(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    skill = await _skill(boss)
    schedule = await _schedule(boss)
    backup = await _queue(boss, name="Respaldo")
    night = await _queue(boss, name="Nocturna")
    full = {
        "name": "Ventas",
        "channels": ["whatsapp", "webchat"],
        "strategy": "skills_weighted",
        "required_skills": {skill["id"]: 4},
        "priority": 5,
        "service_level_seconds": 30,
        "service_level_target": 90,
        "schedule_id": schedule["id"],
        "closed_action": "transfer",
        "closed_message": "Volvemos a las 9.",
        "closed_queue_id": night["id"],
        "max_wait_seconds": 300,
        "overflow_queue_id": backup["id"],
        "max_queue_length": 50,
        "wrap_up_seconds": 0,
        "offer_timeout_seconds": 15,
        "auto_accept": True,
        "sticky_seconds": 86400,
        "ageing_seconds": 30,
        "recording": "on_demand",
    }
    queue = await _queue(boss, **full)
    assert {k: queue[k] for k in full} == full
    changed = await _ok(
        await boss.client.patch(
            f"/api/v1/queues/{queue['id']}",
            json={"strategy": "round_robin", "schedule_id": None, "max_wait_seconds": None},
        )
    )
    assert changed["strategy"] == "round_robin"
    assert changed["schedule_id"] is None
    assert changed["max_wait_seconds"] is None
    assert changed["overflow_queue_id"] == backup["id"]
    entries = await _ok(await boss.client.get("/api/v1/audit?action=queue.update"))
    assert entries[0]["before"]["strategy"] == "skills_weighted"
    assert entries[0]["after"]["strategy"] == "round_robin"


async def test_ring_all_is_only_for_voice_only_queues(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    mixed = await boss.client.post(
        "/api/v1/queues",
        json={"name": "Mixta", "channels": ["voice", "webchat"], "strategy": "ring_all"},
    )
    _error(mixed, 422, "ring_all_voice_only")
    phones = await _queue(boss, name="Telefonos", channels=["voice"], strategy="ring_all")
    add_chat = await boss.client.patch(
        f"/api/v1/queues/{phones['id']}", json={"channels": ["voice", "webchat"]}
    )
    _error(add_chat, 422, "ring_all_voice_only")
    chat = await _queue(boss, name="Chat")
    _error(
        await boss.client.patch(f"/api/v1/queues/{chat['id']}", json={"strategy": "ring_all"}),
        422,
        "ring_all_voice_only",
    )
    assert [q["name"] for q in await _ok(await boss.client.get("/api/v1/queues"))] == [
        "Chat",
        "Telefonos",
    ]
    assert (await _ok(await boss.client.get(f"/api/v1/queues/{phones['id']}")))["channels"] == [
        "voice"
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {"channels": []},
        {"channels": ["fax"]},
        {"channels": ["webchat", "webchat"]},
        {"strategy": "random"},
        {"service_level_seconds": 0},
        {"service_level_target": 0},
        {"service_level_target": 101},
        {"offer_timeout_seconds": 0},
        {"max_wait_seconds": 0},
        {"ageing_seconds": 0},
        {"wrap_up_seconds": -1},
        {"max_queue_length": 0},
        {"closed_action": "hang_up"},
        {"required_skills": {MISSING: 0}},
        {"required_skills": {MISSING: 11}},
        {"required_skills": {"not-a-uuid": 3}},
        {"name": "   "},
        {"colour": "red"},
    ],
)
async def test_malformed_queues_are_refused(app, db: Database, fields: dict[str, Any]) -> None:
    _, boss = await _setup(app, db)
    body = {"name": "Mala", "channels": ["webchat"], **fields}
    _error(await boss.client.post("/api/v1/queues", json=body), 422, "validation_error")
    assert await _ok(await boss.client.get("/api/v1/queues")) == []


async def test_queue_references_must_exist_in_the_tenant(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    _, other = await _setup(app, db)
    foreign_skill = await _skill(other)
    foreign_schedule = await _schedule(other)
    foreign_queue = await _queue(other)
    cases = [
        ({"required_skills": {foreign_skill["id"]: 2}}, "unknown_skill", "required_skills"),
        ({"schedule_id": foreign_schedule["id"]}, "unknown_schedule", "schedule_id"),
        ({"overflow_queue_id": foreign_queue["id"]}, "unknown_queue", "overflow_queue_id"),
        (
            {"closed_action": "transfer", "closed_queue_id": MISSING},
            "unknown_queue",
            "closed_queue_id",
        ),
        ({"closed_action": "transfer"}, "closed_queue_required", "closed_queue_id"),
    ]
    for fields, code, field in cases:
        response = await boss.client.post(
            "/api/v1/queues", json={"name": "Q", "channels": ["sms"], **fields}
        )
        assert _error(response, 422, code)["details"]["field"] == field
    assert await _ok(await boss.client.get("/api/v1/queues")) == []


async def test_a_queue_cannot_overflow_or_transfer_to_itself(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    queue = await _queue(boss)
    for patch in (
        {"overflow_queue_id": queue["id"], "max_wait_seconds": 60},
        {"closed_action": "transfer", "closed_queue_id": queue["id"]},
    ):
        _error(
            await boss.client.patch(f"/api/v1/queues/{queue['id']}", json=patch),
            422,
            "queue_self_reference",
        )
    assert await _ok(await boss.client.get(f"/api/v1/queues/{queue['id']}")) == queue


async def test_closed_queue_goes_with_the_transfer_action(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    night = await _queue(boss, name="Nocturna")
    without_transfer = await boss.client.post(
        "/api/v1/queues", json={"name": "Q", "channels": ["sms"], "closed_queue_id": night["id"]}
    )
    _error(without_transfer, 422, "closed_queue_without_transfer")
    day = await _queue(boss, name="Diurna", closed_action="transfer", closed_queue_id=night["id"])
    # Leaving transfer clears the target unless the patch sets one (which is refused).
    cleared = await _ok(
        await boss.client.patch(
            f"/api/v1/queues/{day['id']}", json={"closed_action": "keep_queued"}
        )
    )
    assert cleared["closed_queue_id"] is None
    _error(
        await boss.client.patch(
            f"/api/v1/queues/{day['id']}", json={"closed_queue_id": night["id"]}
        ),
        422,
        "closed_queue_without_transfer",
    )


async def test_queue_patch_refuses_null_for_required_fields(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    queue = await _queue(boss)
    for field in ("name", "channels", "strategy", "wrap_up_seconds"):
        response = await boss.client.patch(f"/api/v1/queues/{queue['id']}", json={field: None})
        _error(response, 422, "validation_error")
    assert await _ok(await boss.client.get(f"/api/v1/queues/{queue['id']}")) == queue


async def test_queue_names_are_unique(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    await _queue(boss, name="General")
    other = await _queue(boss, name="Ventas")
    response = await boss.client.post(
        "/api/v1/queues", json={"name": "general", "channels": ["sms"]}
    )
    _error(response, 409, "queue_name_taken")
    _error(
        await boss.client.patch(f"/api/v1/queues/{other['id']}", json={"name": "General"}),
        409,
        "queue_name_taken",
    )


async def test_a_noop_patch_is_not_audited(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    queue = await _queue(boss, name="Igual")
    await _ok(
        await boss.client.patch(
            f"/api/v1/queues/{queue['id']}", json={"name": "Igual", "channels": ["webchat"]}
        )
    )
    assert await _audit_actions(boss, queue["id"]) == ["queue.create"]


async def _open_interaction(
    db: Database, tenant: Tenant, *, queue_id: str | None = None, agent_id: str | None = None
) -> uuid.UUID:
    async with db.session(Scope.tenant(tenant.id)) as session:
        contact = await contacts.find_or_create_by_identity(
            session, IdentityKind.webchat, f"visitor-{uuid.uuid4()}"
        )
        interaction = await conversations.open_interaction(
            session, channel=Channel.webchat, contact_id=contact.id
        )
        interaction.queue_id = uuid.UUID(queue_id) if queue_id else None
        if agent_id:
            interaction.agent_id = uuid.UUID(agent_id)
            interaction.status = InteractionStatus.assigned
        return interaction.id


async def test_a_queue_with_open_interactions_cannot_be_deleted(app, db: Database) -> None:
    tenant, boss = await _setup(app, db)
    queue = await _queue(boss)
    interaction_id = await _open_interaction(db, tenant, queue_id=queue["id"])
    body = _error(
        await boss.client.delete(f"/api/v1/queues/{queue['id']}"),
        409,
        "queue_has_open_interactions",
    )
    assert body["details"]["count"] == 1
    async with db.session(Scope.tenant(tenant.id)) as session:
        (
            await conversations.get_interaction(session, interaction_id)
        ).status = InteractionStatus.closed
    await _ok(await boss.client.delete(f"/api/v1/queues/{queue['id']}"), 204)
    async with db.session(Scope.tenant(tenant.id)) as session:
        closed = await conversations.get_interaction(session, interaction_id)
        assert closed.queue_id is None
        # The timeline still says where it was.
        assert (await conversations.timeline(session, interaction_id))[
            0
        ].interaction_id == closed.id


async def test_a_queue_other_queues_route_to_cannot_be_deleted(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    backup = await _queue(boss, name="Respaldo")
    main = await _queue(boss, name="Principal", overflow_queue_id=backup["id"], max_wait_seconds=60)
    body = _error(await boss.client.delete(f"/api/v1/queues/{backup['id']}"), 409, "queue_in_use")
    assert body["details"]["queue_ids"] == [main["id"]]
    await _ok(
        await boss.client.patch(f"/api/v1/queues/{main['id']}", json={"overflow_queue_id": None})
    )
    await _ok(await boss.client.delete(f"/api/v1/queues/{backup['id']}"), 204)


async def test_deleting_a_queue_takes_its_members_and_dispositions(app, db: Database) -> None:
    tenant, boss = await _setup(app, db)
    queue = await _queue(boss)
    agent = await _agent(boss, db, tenant)
    await _ok(
        await boss.client.put(
            f"/api/v1/queues/{queue['id']}/members", json={"agent_ids": [agent["id"]]}
        )
    )
    await _ok(
        await boss.client.post(
            f"/api/v1/queues/{queue['id']}/dispositions", json={"code": "ok", "label": "OK"}
        ),
        201,
    )
    await _ok(await boss.client.delete(f"/api/v1/queues/{queue['id']}"), 204)
    async with db.session(Scope.tenant(tenant.id)) as session:
        assert await session.scalar(select(func.count()).select_from(QueueMember)) == 0
        assert await session.scalar(select(func.count()).select_from(Disposition)) == 0
    assert (await _ok(await boss.client.get(f"/api/v1/agents/{agent['id']}")))["queue_ids"] == []


# --- members ---------------------------------------------------------------------------------


async def test_putting_members_replaces_the_list(app, db: Database, clock: TestClock) -> None:
    tenant, boss = await _setup(app, db)
    queue = await _queue(boss)
    ana, beto, caro = [await _agent(boss, db, tenant) for _ in range(3)]
    path = f"/api/v1/queues/{queue['id']}/members"
    first = await _ok(await boss.client.put(path, json={"agent_ids": [ana["id"], beto["id"]]}))
    assert first == {"agent_ids": sorted([ana["id"], beto["id"]])}
    clock.advance(1)
    second = await _ok(await boss.client.put(path, json={"agent_ids": [caro["id"], beto["id"]]}))
    assert second == {"agent_ids": sorted([beto["id"], caro["id"]])}
    assert await _ok(await boss.client.get(path)) == second
    belongs = await _ok(await boss.client.get(f"/api/v1/agents/{caro['id']}/queues"))
    assert [q["id"] for q in belongs] == [queue["id"]]
    assert await _ok(await boss.client.get(f"/api/v1/agents/{ana['id']}/queues")) == []
    entries = await _ok(await boss.client.get("/api/v1/audit?action=queue_members.update"))
    assert entries[0]["after"] == second


async def test_members_must_be_agents_of_the_tenant(app, db: Database) -> None:
    tenant, boss = await _setup(app, db)
    other_tenant, other = await _setup(app, db)
    queue = await _queue(boss)
    member = await _agent(boss, db, tenant)
    path = f"/api/v1/queues/{queue['id']}/members"
    await _ok(await boss.client.put(path, json={"agent_ids": [member["id"]]}))
    no_profile = await make_user(db, tenant, Role.agent)
    foreign = await _agent(other, db, other_tenant)
    for stranger in (str(no_profile.id), foreign["id"], MISSING):
        response = await boss.client.put(path, json={"agent_ids": [member["id"], stranger]})
        assert _error(response, 422, "unknown_agent")["details"]["ids"] == [stranger]
    assert await _ok(await boss.client.get(path)) == {"agent_ids": [member["id"]]}


# --- dispositions ----------------------------------------------------------------------------


async def test_dispositions_belong_to_a_queue_with_unique_codes(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    ventas, soporte = await _queue(boss, name="Ventas"), await _queue(boss, name="Soporte")
    base = f"/api/v1/queues/{ventas['id']}/dispositions"
    done = await _ok(
        await boss.client.post(base, json={"code": "vendido", "label": "Vendido"}), 201
    )
    await _ok(
        await boss.client.post(base, json={"code": "no_interesa", "label": "No le interesa"}), 201
    )
    _error(
        await boss.client.post(base, json={"code": "vendido", "label": "Otra"}),
        409,
        "disposition_code_taken",
    )
    # The same code in another queue is another disposition.
    await _ok(
        await boss.client.post(
            f"/api/v1/queues/{soporte['id']}/dispositions", json={"code": "vendido", "label": "V"}
        ),
        201,
    )
    assert [d["code"] for d in await _ok(await boss.client.get(base))] == ["no_interesa", "vendido"]
    relabelled = await _ok(
        await boss.client.patch(f"{base}/{done['id']}", json={"label": "Venta cerrada"})
    )
    assert relabelled["label"] == "Venta cerrada"
    # Reached through the wrong queue, it does not exist.
    _error(
        await boss.client.get(f"/api/v1/queues/{soporte['id']}/dispositions/{done['id']}"),
        404,
        "disposition_not_found",
    )
    await _ok(await boss.client.delete(f"{base}/{done['id']}"), 204)
    assert [d["code"] for d in await _ok(await boss.client.get(base))] == ["no_interesa"]


@pytest.mark.parametrize(
    "body",
    [{"code": "Con Espacios", "label": "x"}, {"code": "", "label": "x"}, {"code": "ok"}],
)
async def test_malformed_dispositions_are_refused(app, db: Database, body: dict[str, str]) -> None:
    _, boss = await _setup(app, db)
    queue = await _queue(boss)
    path = f"/api/v1/queues/{queue['id']}/dispositions"
    _error(await boss.client.post(path, json=body), 422, "validation_error")
    _error(
        await boss.client.post(
            f"/api/v1/queues/{MISSING}/dispositions", json={"code": "ok", "label": "OK"}
        ),
        404,
        "queue_not_found",
    )
    assert await _ok(await boss.client.get(path)) == []


# --- agents ----------------------------------------------------------------------------------


async def test_an_agent_profile_starts_offline_with_default_capacities(
    app, db: Database, clock: TestClock
) -> None:
    tenant, boss = await _setup(app, db)
    user = await make_user(db, tenant, Role.agent)
    agent = await _ok(await boss.client.post("/api/v1/agents", json={"user_id": str(user.id)}), 201)
    assert agent == {
        "id": str(user.id),
        "user_id": str(user.id),
        "name": user.name,
        "email": user.email,
        "role": "agent",
        "licence": "omnichannel",
        "voice_capacity": 1,
        "chat_capacity": 4,
        "max_no_answer": 3,
        "extension": None,
        "presence": "offline",
        "presence_since": clock.now().isoformat().replace("+00:00", "Z"),
        "skills": {},
        "queue_ids": [],
    }
    async with db.session(Scope.tenant(tenant.id)) as session:
        row = await session.get(Agent, user.id)
        assert row is not None
        assert row.idle_since == clock.now()
    assert await _audit_actions(boss, str(user.id)) == ["agent.create", "user.create"]


async def test_supervisors_can_be_agents_but_admins_cannot(app, db: Database) -> None:
    tenant, boss = await _setup(app, db)
    supervisor = await _agent(boss, db, tenant, role=Role.supervisor, extension="201")
    assert supervisor["role"] == "supervisor"
    assert supervisor["extension"] == "201"
    other_admin = await make_user(db, tenant, Role.admin)
    response = await boss.client.post("/api/v1/agents", json={"user_id": str(other_admin.id)})
    _error(response, 422, "agent_role_required")


async def test_an_extension_can_be_changed_and_cleared(app, db: Database) -> None:
    tenant, boss = await _setup(app, db)
    agent = await _agent(boss, db, tenant, extension="101")
    path = f"/api/v1/agents/{agent['id']}"
    moved = await _ok(await boss.client.patch(path, json={"extension": "102", "max_no_answer": 5}))
    assert (moved["extension"], moved["max_no_answer"]) == ("102", 5)
    cleared = await _ok(await boss.client.patch(path, json={"extension": None}))
    assert cleared["extension"] is None
    _error(await boss.client.patch(path, json={"licence": None}), 422, "validation_error")


async def test_a_voice_licence_has_no_chat_capacity(app, db: Database) -> None:
    tenant, boss = await _setup(app, db)
    phone = await _agent(boss, db, tenant, licence="voice")
    assert (phone["licence"], phone["chat_capacity"]) == ("voice", 0)
    user = await make_user(db, tenant, Role.agent)
    refused = await boss.client.post(
        "/api/v1/agents", json={"user_id": str(user.id), "licence": "voice", "chat_capacity": 2}
    )
    _error(refused, 422, "voice_licence_no_chat")
    _error(await boss.client.get(f"/api/v1/agents/{user.id}"), 404, "agent_not_found")
    path = f"/api/v1/agents/{phone['id']}"
    _error(await boss.client.patch(path, json={"chat_capacity": 3}), 422, "voice_licence_no_chat")
    omni = await _ok(
        await boss.client.patch(path, json={"licence": "omnichannel", "chat_capacity": 6})
    )
    assert (omni["licence"], omni["chat_capacity"]) == ("omnichannel", 6)
    back = await _ok(await boss.client.patch(path, json={"licence": "voice"}))
    assert (back["licence"], back["chat_capacity"]) == ("voice", 0)


@pytest.mark.parametrize(
    "fields",
    [
        {"voice_capacity": 2},
        {"voice_capacity": -1},
        {"chat_capacity": 51},
        {"max_no_answer": 0},
        {"licence": "premium"},
        {"extension": "12 34"},
        {"presence": "available"},
    ],
)
async def test_malformed_agent_profiles_are_refused(
    app, db: Database, fields: dict[str, Any]
) -> None:
    tenant, boss = await _setup(app, db)
    user = await make_user(db, tenant, Role.agent)
    response = await boss.client.post("/api/v1/agents", json={"user_id": str(user.id), **fields})
    _error(response, 422, "validation_error")
    agent = await _agent(boss, db, tenant)
    patched = await boss.client.patch(f"/api/v1/agents/{agent['id']}", json=fields)
    _error(patched, 422, "validation_error")
    assert [a["id"] for a in await _ok(await boss.client.get("/api/v1/agents"))] == [agent["id"]]
    assert await _ok(await boss.client.get(f"/api/v1/agents/{agent['id']}")) == agent


async def test_agent_profile_conflicts(app, db: Database) -> None:
    tenant, boss = await _setup(app, db)
    first = await _agent(boss, db, tenant, extension="101")
    _error(
        await boss.client.post("/api/v1/agents", json={"user_id": first["id"]}), 409, "agent_exists"
    )
    user = await make_user(db, tenant, Role.agent)
    _error(
        await boss.client.post(
            "/api/v1/agents", json={"user_id": str(user.id), "extension": "101"}
        ),
        409,
        "extension_taken",
    )
    _, other = await _setup(app, db)
    _error(
        await other.client.post("/api/v1/agents", json={"user_id": str(user.id)}),
        422,
        "unknown_user",
    )


async def test_agent_skills_are_replaced_as_a_whole(app, db: Database, clock: TestClock) -> None:
    tenant, boss = await _setup(app, db)
    ventas, soporte = await _skill(boss, "ventas"), await _skill(boss, "soporte")
    agent = await _agent(boss, db, tenant)
    path = f"/api/v1/agents/{agent['id']}/skills"
    first = await _ok(await boss.client.put(path, json={"skills": {ventas["id"]: 8}}))
    assert first["skills"] == {ventas["id"]: 8}
    clock.advance(1)
    second = await _ok(
        await boss.client.put(path, json={"skills": {soporte["id"]: 2, ventas["id"]: 5}})
    )
    assert second["skills"] == {soporte["id"]: 2, ventas["id"]: 5}
    for bad in ({ventas["id"]: 0}, {ventas["id"]: 11}):
        _error(await boss.client.put(path, json={"skills": bad}), 422, "validation_error")
    _, other = await _setup(app, db)
    foreign = await _skill(other)
    _error(await boss.client.put(path, json={"skills": {foreign["id"]: 3}}), 422, "unknown_skill")
    assert (await _ok(await boss.client.get(f"/api/v1/agents/{agent['id']}")))["skills"] == second[
        "skills"
    ]
    entries = await _ok(await boss.client.get("/api/v1/audit?action=agent_skills.update"))
    assert entries[0]["before"] == {"skills": {ventas["id"]: 8}}


async def test_an_agent_at_work_cannot_be_deleted(app, db: Database) -> None:
    tenant, boss = await _setup(app, db)
    agent = await _agent(boss, db, tenant)
    # A supervisor signs the agent in through the runtime API.
    supervisor = await caller(app, tenant, Role.supervisor)
    await _ok(
        await supervisor.client.put(
            f"/api/v1/agents/{agent['id']}/presence", json={"presence": "available"}
        )
    )
    _error(await boss.client.delete(f"/api/v1/agents/{agent['id']}"), 409, "agent_not_offline")
    await _ok(
        await supervisor.client.put(
            f"/api/v1/agents/{agent['id']}/presence", json={"presence": "offline"}
        )
    )
    await routing.settle()
    await _ok(await boss.client.delete(f"/api/v1/agents/{agent['id']}"), 204)
    _error(await boss.client.get(f"/api/v1/agents/{agent['id']}"), 404, "agent_not_found")
    # The user stays.
    await _ok(await boss.client.get(f"/api/v1/users/{agent['id']}"))


async def test_an_agent_holding_interactions_cannot_be_deleted(app, db: Database) -> None:
    tenant, boss = await _setup(app, db)
    agent = await _agent(boss, db, tenant)
    await _open_interaction(db, tenant, agent_id=agent["id"])
    body = _error(
        await boss.client.delete(f"/api/v1/agents/{agent['id']}"),
        409,
        "agent_has_open_interactions",
    )
    assert body["details"]["count"] == 1
    await _ok(await boss.client.get(f"/api/v1/agents/{agent['id']}"))


async def test_an_agent_reads_only_their_own_profile(app, db: Database) -> None:
    tenant, boss = await _setup(app, db)
    mine = await _agent(boss, db, tenant)
    theirs = await _agent(boss, db, tenant)
    me = await caller(app, tenant, Role.agent)
    async with db.session(Scope.tenant(tenant.id)) as session:
        session.add(Agent(**_agent_row(me.id)))
    own = await _ok(await me.client.get(f"/api/v1/agents/{me.id}"))
    assert own["id"] == str(me.id)
    await _ok(await me.client.get(f"/api/v1/agents/{me.id}/queues"))
    for path in (
        f"/api/v1/agents/{theirs['id']}",
        f"/api/v1/agents/{mine['id']}/queues",
        "/api/v1/agents",
    ):
        _error(await me.client.get(path), 403, "permission_denied")


def _agent_row(user_id: uuid.UUID) -> dict[str, Any]:
    instant = datetime(2026, 1, 5, tzinfo=UTC)
    return {
        "user_id": user_id,
        "licence": "omnichannel",
        "presence_since": instant,
        "idle_since": instant,
    }


# --- schedules and holidays ------------------------------------------------------------------


async def test_a_schedule_defaults_to_the_tenant_zone_and_is_normalised(app, db: Database) -> None:
    _, boss = await _setup(app, db, time_zone="America/Bogota")
    schedule = await _schedule(
        boss, name="Oficina", weekly={"tue": [["15:00", "18:00"], ["09:00", "14:00"]], "mon": []}
    )
    assert schedule["time_zone"] == "America/Bogota"
    assert schedule["weekly"] == {"mon": [], "tue": [["09:00", "14:00"], ["15:00", "18:00"]]}
    explicit = await _schedule(boss, name="Madrid", time_zone="Europe/Madrid")
    assert explicit["time_zone"] == "Europe/Madrid"
    changed = await _ok(
        await boss.client.patch(
            f"/api/v1/schedules/{schedule['id']}", json={"weekly": {"sat": [["10:00", "24:00"]]}}
        )
    )
    assert changed["weekly"] == {"sat": [["10:00", "24:00"]]}
    assert await _audit_actions(boss, schedule["id"]) == ["schedule.create", "schedule.update"]


@pytest.mark.parametrize(
    ("weekly", "message"),
    [
        ({"lunes": [["09:00", "18:00"]]}, "unknown day 'lunes'"),
        ({"mon": [["9", "18:00"]]}, "bad time '9'"),
        ({"mon": [["18:00", "09:00"]]}, "may not cross midnight"),
        ({"mon": [["09:00", "13:00"], ["12:00", "18:00"]]}, "overlap"),
        ({"mon": [["09:00"]]}, "pair"),
    ],
)
async def test_bad_weekly_hours_are_explained(
    app, db: Database, weekly: dict[str, Any], message: str
) -> None:
    _, boss = await _setup(app, db)
    response = await boss.client.post("/api/v1/schedules", json={"name": "X", "weekly": weekly})
    error = _error(response, 422, "validation_error")["details"]["errors"][0]
    assert error["field"] == "weekly"
    assert message in error["message"]
    assert await _ok(await boss.client.get("/api/v1/schedules")) == []


async def test_schedule_rules(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    bad_zone = await boss.client.post(
        "/api/v1/schedules", json={"name": "X", "weekly": {}, "time_zone": "Mars/Base"}
    )
    _error(bad_zone, 422, "validation_error")
    schedule = await _schedule(boss, name="Oficina")
    _error(
        await boss.client.post("/api/v1/schedules", json={"name": "oficina", "weekly": {}}),
        409,
        "schedule_name_taken",
    )
    queue = await _queue(boss, schedule_id=schedule["id"])
    body = _error(
        await boss.client.delete(f"/api/v1/schedules/{schedule['id']}"), 409, "schedule_in_use"
    )
    assert body["details"]["queue_ids"] == [queue["id"]]
    await _ok(await boss.client.patch(f"/api/v1/queues/{queue['id']}", json={"schedule_id": None}))
    await _ok(await boss.client.delete(f"/api/v1/schedules/{schedule['id']}"), 204)


async def test_schedule_status_says_whether_it_is_open_and_when_it_opens(
    app, db: Database, clock: TestClock
) -> None:
    _, boss = await _setup(app, db)
    schedule = await _schedule(boss, time_zone="America/Mexico_City")
    await _ok(
        await boss.client.post("/api/v1/holidays", json={"day": "2026-01-06", "name": "Reyes"}),
        201,
    )
    path = f"/api/v1/schedules/{schedule['id']}/status"
    clock.set(datetime(2026, 1, 5, 16, 0, tzinfo=UTC))  # Monday 10:00 in Mexico City
    now_open = await _ok(await boss.client.get(path))
    assert now_open["open"] is True
    assert now_open["next_opening"] == "2026-01-05T16:00:00Z"
    # Monday 19:00 local: Tuesday is a holiday, so Wednesday 09:00.
    evening = await _ok(await boss.client.get(path, params={"at": "2026-01-05T19:00:00-06:00"}))
    assert evening["open"] is False
    assert evening["next_opening"] == "2026-01-07T15:00:00Z"
    naive = await boss.client.get(path, params={"at": "2026-01-05T19:00:00"})
    _error(naive, 422, "validation_error")


async def test_holidays_are_unique_per_day(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    new_year = await _ok(
        await boss.client.post("/api/v1/holidays", json={"day": "2027-01-01", "name": "Año nuevo"}),
        201,
    )
    await _ok(
        await boss.client.post("/api/v1/holidays", json={"day": "2026-12-25", "name": "Navidad"}),
        201,
    )
    duplicate = await boss.client.post(
        "/api/v1/holidays", json={"day": "2027-01-01", "name": "Otro"}
    )
    _error(duplicate, 409, "holiday_exists")
    _error(
        await boss.client.patch(f"/api/v1/holidays/{new_year['id']}", json={"day": "2026-12-25"}),
        409,
        "holiday_exists",
    )
    assert [h["day"] for h in await _ok(await boss.client.get("/api/v1/holidays"))] == [
        "2026-12-25",
        "2027-01-01",
    ]
    assert [h["name"] for h in await _ok(await boss.client.get("/api/v1/holidays?year=2027"))] == [
        "Año nuevo"
    ]
    _error(
        await boss.client.post("/api/v1/holidays", json={"day": "2026-02-30", "name": "x"}),
        422,
        "validation_error",
    )
    await _ok(await boss.client.delete(f"/api/v1/holidays/{new_year['id']}"), 204)
    assert len(await _ok(await boss.client.get("/api/v1/holidays"))) == 1


# --- break reasons ---------------------------------------------------------------------------


async def test_the_first_break_reason_brings_the_no_answer_reason(app, db: Database) -> None:
    _, boss = await _setup(app, db)  # a Spanish-speaking tenant by default
    lunch = await _ok(await boss.client.post("/api/v1/break-reasons", json={"name": "Comida"}), 201)
    reasons = await _ok(await boss.client.get("/api/v1/break-reasons"))
    assert [(r["name"], r["is_no_answer"]) for r in reasons] == [
        ("Comida", False),
        ("Sin respuesta", True),
    ]
    await _ok(await boss.client.post("/api/v1/break-reasons", json={"name": "Baño"}), 201)
    assert (
        sum(r["is_no_answer"] for r in await _ok(await boss.client.get("/api/v1/break-reasons")))
        == 1
    )
    assert lunch["is_active"] is True


async def test_an_english_tenant_gets_a_no_answer_reason_in_english(app, db: Database) -> None:
    _, boss = await _setup(app, db, locale="en")
    await _ok(await boss.client.post("/api/v1/break-reasons", json={"name": "Lunch"}), 201)
    names = [r["name"] for r in await _ok(await boss.client.get("/api/v1/break-reasons"))]
    assert names == ["Lunch", "No answer"]


async def test_a_reason_named_like_the_no_answer_reason_becomes_it(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    made = await _ok(
        await boss.client.post("/api/v1/break-reasons", json={"name": "Sin respuesta"}), 201
    )
    reasons = await _ok(await boss.client.get("/api/v1/break-reasons"))
    assert [(r["id"], r["is_no_answer"]) for r in reasons] == [(made["id"], True)]


async def test_no_answer_reason_is_created_on_demand_once(app, db: Database) -> None:
    tenant = await make_tenant(db)
    async with db.session(Scope.tenant(tenant.id)) as session:
        first = await admin.no_answer_reason(session)
    async with db.session(Scope.tenant(tenant.id)) as session:
        again = await admin.no_answer_reason(session)
        count = await session.scalar(select(func.count()).select_from(BreakReason))
    assert first.id == again.id
    assert (first.name, first.is_no_answer, count) == ("Sin respuesta", True, 1)


async def test_the_no_answer_reason_can_be_renamed_but_not_removed(app, db: Database) -> None:
    _, boss = await _setup(app, db)
    await _ok(await boss.client.post("/api/v1/break-reasons", json={"name": "Comida"}), 201)
    reasons = await _ok(await boss.client.get("/api/v1/break-reasons"))
    no_answer = next(r for r in reasons if r["is_no_answer"])
    path = f"/api/v1/break-reasons/{no_answer['id']}"
    _error(await boss.client.delete(path), 409, "no_answer_reason_protected")
    _error(
        await boss.client.patch(path, json={"is_active": False}), 409, "no_answer_reason_protected"
    )
    _error(await boss.client.patch(path, json={"is_no_answer": False}), 422, "validation_error")
    renamed = await _ok(await boss.client.patch(path, json={"name": "No contestó"}))
    assert (renamed["name"], renamed["is_no_answer"]) == ("No contestó", True)


async def test_a_break_reason_ever_used_can_only_be_deactivated(app, db: Database) -> None:
    tenant, boss = await _setup(app, db)
    lunch = await _ok(await boss.client.post("/api/v1/break-reasons", json={"name": "Comida"}), 201)
    unused = await _ok(await boss.client.post("/api/v1/break-reasons", json={"name": "Pausa"}), 201)
    _error(
        await boss.client.post("/api/v1/break-reasons", json={"name": "comida"}),
        409,
        "break_reason_name_taken",
    )
    agent = await caller(app, tenant, Role.agent)
    await _ok(await boss.client.post("/api/v1/agents", json={"user_id": str(agent.id)}), 201)
    await _ok(
        await agent.client.put(
            "/api/v1/me/presence", json={"presence": "break", "break_reason_id": lunch["id"]}
        )
    )
    await _ok(await agent.client.put("/api/v1/me/presence", json={"presence": "offline"}))
    await routing.settle()
    path = f"/api/v1/break-reasons/{lunch['id']}"
    _error(await boss.client.delete(path), 409, "break_reason_in_use")
    off = await _ok(await boss.client.patch(path, json={"is_active": False}))
    assert off["is_active"] is False
    await _ok(await boss.client.delete(f"/api/v1/break-reasons/{unused['id']}"), 204)


# --- permissions -----------------------------------------------------------------------------

READ_PATHS = [
    "/api/v1/skills",
    "/api/v1/queues",
    "/api/v1/agents",
    "/api/v1/schedules",
    "/api/v1/holidays",
    "/api/v1/break-reasons",
]


async def test_supervisors_read_but_do_not_write(app, db: Database) -> None:
    tenant, boss = await _setup(app, db)
    queue = await _queue(boss)
    supervisor = await caller(app, tenant, Role.supervisor)
    for path in [*READ_PATHS, f"/api/v1/queues/{queue['id']}/members"]:
        await _ok(await supervisor.client.get(path))
    agent_user = await make_user(db, tenant, Role.agent)
    writes = [
        ("POST", "/api/v1/skills", {"name": "x"}),
        ("POST", "/api/v1/queues", {"name": "x", "channels": ["sms"]}),
        ("PATCH", f"/api/v1/queues/{queue['id']}", {"priority": 3}),
        ("DELETE", f"/api/v1/queues/{queue['id']}", None),
        ("PUT", f"/api/v1/queues/{queue['id']}/members", {"agent_ids": []}),
        ("POST", f"/api/v1/queues/{queue['id']}/dispositions", {"code": "a", "label": "A"}),
        ("POST", "/api/v1/agents", {"user_id": str(agent_user.id)}),
        ("POST", "/api/v1/schedules", {"name": "x", "weekly": {}}),
        ("POST", "/api/v1/holidays", {"day": "2026-05-01", "name": "x"}),
        ("POST", "/api/v1/break-reasons", {"name": "x"}),
    ]
    for method, path, body in writes:
        response = await supervisor.client.request(method, path, json=body)
        _error(response, 403, "permission_denied")
    assert await _ok(await boss.client.get(f"/api/v1/queues/{queue['id']}")) == queue
    assert await _ok(await boss.client.get("/api/v1/skills")) == []


async def test_agents_read_break_reasons_and_dispositions_only(app, db: Database) -> None:
    tenant, boss = await _setup(app, db)
    queue = await _queue(boss)
    await _ok(await boss.client.post("/api/v1/break-reasons", json={"name": "Comida"}), 201)
    agent = await caller(app, tenant, Role.agent)
    await _ok(await agent.client.get("/api/v1/break-reasons"))
    await _ok(await agent.client.get(f"/api/v1/queues/{queue['id']}/dispositions"))
    for path in [p for p in READ_PATHS if p != "/api/v1/break-reasons"]:
        _error(await agent.client.get(path), 403, "permission_denied")
    _error(
        await agent.client.post("/api/v1/break-reasons", json={"name": "Siesta"}),
        403,
        "permission_denied",
    )


async def test_vendor_staff_do_not_configure_tenants(app, db: Database) -> None:
    vendor = await caller(app, None, Role.vendor_admin)
    _error(await vendor.client.get("/api/v1/queues"), 403, "permission_denied")
    _error(await vendor.client.post("/api/v1/skills", json={"name": "x"}), 403, "permission_denied")


# --- events ----------------------------------------------------------------------------------


async def test_changes_are_announced_after_commit(app, db: Database) -> None:
    tenant, boss = await _setup(app, db)
    queue = await _queue(boss)
    await _ok(await boss.client.patch(f"/api/v1/queues/{queue['id']}", json={"priority": 7}))
    async with db.session(Scope.system()) as session:
        events = (
            await session.scalars(
                select(EventRecord)
                .where(EventRecord.type == "routing.config_changed")
                .order_by(EventRecord.id)
            )
        ).all()
    assert [(e.tenant_id, e.data["resource"], e.data["action"]) for e in events] == [
        (tenant.id, "queue", "created"),
        (tenant.id, "queue", "updated"),
    ]
    assert events[1].data["changes"] == ["priority"]


# --- tenant isolation ------------------------------------------------------------------------


async def _two_tenants(app: Any, db: Database) -> tuple[Tenant, Caller, Caller]:
    acme, owner = await _setup(app, db)
    _, intruder = await _setup(app, db)
    return acme, owner, intruder


async def test_skills_are_invisible_to_other_tenants(app, db: Database) -> None:
    _, owner, intruder = await _two_tenants(app, db)
    skill = await _skill(owner)
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"/api/v1/skills/{skill['id']}",
        list_path="/api/v1/skills",
        change={"name": "robada"},
        deletable=True,
    )


async def test_queues_and_their_members_are_invisible_to_other_tenants(app, db: Database) -> None:
    acme, owner, intruder = await _two_tenants(app, db)
    queue = await _queue(owner)
    member = await _agent(owner, db, acme)
    members_path = f"/api/v1/queues/{queue['id']}/members"
    await _ok(await owner.client.put(members_path, json={"agent_ids": [member["id"]]}))
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"/api/v1/queues/{queue['id']}",
        list_path="/api/v1/queues",
        change={"name": "robada", "priority": 100},
        deletable=True,
    )
    _error(await intruder.client.get(members_path), 404, "queue_not_found")
    _error(await intruder.client.put(members_path, json={"agent_ids": []}), 404, "queue_not_found")
    assert await _ok(await owner.client.get(members_path)) == {"agent_ids": [member["id"]]}
    # Nor can another tenant point its own queues at this one.
    response = await intruder.client.post(
        "/api/v1/queues", json={"name": "x", "channels": ["sms"], "overflow_queue_id": queue["id"]}
    )
    _error(response, 422, "unknown_queue")


async def test_dispositions_are_invisible_to_other_tenants(app, db: Database) -> None:
    _, owner, intruder = await _two_tenants(app, db)
    queue = await _queue(owner)
    base = f"/api/v1/queues/{queue['id']}/dispositions"
    made = await _ok(await owner.client.post(base, json={"code": "ok", "label": "OK"}), 201)
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"{base}/{made['id']}",
        list_path=None,
        change={"label": "robada"},
        deletable=True,
    )
    _error(await intruder.client.get(base), 404, "queue_not_found")
    _error(
        await intruder.client.post(base, json={"code": "x", "label": "X"}), 404, "queue_not_found"
    )


async def test_agent_profiles_are_invisible_to_other_tenants(app, db: Database) -> None:
    acme, owner, intruder = await _two_tenants(app, db)
    agent = await _agent(owner, db, acme)
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"/api/v1/agents/{agent['id']}",
        list_path="/api/v1/agents",
        change={"chat_capacity": 50},
        deletable=True,
    )
    skills_path = f"/api/v1/agents/{agent['id']}/skills"
    _error(await intruder.client.put(skills_path, json={"skills": {}}), 404, "agent_not_found")
    _error(
        await intruder.client.get(f"/api/v1/agents/{agent['id']}/queues"), 404, "agent_not_found"
    )


async def test_schedules_are_invisible_to_other_tenants(app, db: Database) -> None:
    _, owner, intruder = await _two_tenants(app, db)
    schedule = await _schedule(owner)
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"/api/v1/schedules/{schedule['id']}",
        list_path="/api/v1/schedules",
        change={"weekly": {}},
        deletable=True,
    )
    status = await intruder.client.get(f"/api/v1/schedules/{schedule['id']}/status")
    _error(status, 404, "schedule_not_found")


async def test_holidays_are_invisible_to_other_tenants(app, db: Database) -> None:
    _, owner, intruder = await _two_tenants(app, db)
    holiday = await _ok(
        await owner.client.post("/api/v1/holidays", json={"day": "2026-09-16", "name": "Patria"}),
        201,
    )
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"/api/v1/holidays/{holiday['id']}",
        list_path="/api/v1/holidays",
        change={"name": "robado"},
        deletable=True,
    )
    # The same day is free for the other tenant: holidays are per tenant.
    await _ok(
        await intruder.client.post("/api/v1/holidays", json={"day": "2026-09-16", "name": "Otro"}),
        201,
    )


async def test_break_reasons_are_invisible_to_other_tenants(app, db: Database) -> None:
    _, owner, intruder = await _two_tenants(app, db)
    reason = await _ok(
        await owner.client.post("/api/v1/break-reasons", json={"name": "Comida"}), 201
    )
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"/api/v1/break-reasons/{reason['id']}",
        list_path="/api/v1/break-reasons",
        change={"is_active": False},
        deletable=True,
    )


# --- the demo --------------------------------------------------------------------------------


async def _demo(
    db: Database, tenant: Tenant, agents: list[User], supervisor: User
) -> admin.DemoRouting:
    async with db.session(Scope.system()) as session:
        return await admin.seed_demo(session, tenant.id, [a.id for a in agents], supervisor.id)


async def test_seed_demo_sets_up_a_tenant_that_answers_at_any_hour(app, db: Database) -> None:
    tenant, boss = await _setup(app, db)
    agents = [await make_user(db, tenant, Role.agent) for _ in range(2)]
    supervisor = await make_user(db, tenant, Role.supervisor)
    demo = await _demo(db, tenant, agents, supervisor)

    queues = {q["name"]: q for q in await _ok(await boss.client.get("/api/v1/queues"))}
    assert set(queues) == {"General", "Ventas", "Llamadas"}
    assert queues["Llamadas"]["channels"] == ["voice"]
    general, ventas = queues["General"], queues["Ventas"]
    assert general["id"] == str(demo.general_queue_id)
    assert general["schedule_id"] is None
    assert general["strategy"] == "longest_idle"
    assert general["channels"] == ["webchat", "whatsapp", "telegram", "sms", "api"]
    assert ventas["schedule_id"] == str(demo.schedule_id)
    assert ventas["required_skills"] == {str(demo.skill_ids["ventas"]): 1}
    schedule = await _ok(await boss.client.get(f"/api/v1/schedules/{demo.schedule_id}"))
    assert schedule["time_zone"] == tenant.time_zone
    assert schedule["weekly"]["sat"] == [["10:00", "14:00"]]
    assert "sun" not in schedule["weekly"]
    codes = [
        d["code"]
        for d in await _ok(await boss.client.get(f"/api/v1/queues/{general['id']}/dispositions"))
    ]
    assert codes == ["no_resuelto", "resuelto", "seguimiento"]
    profiles = await _ok(await boss.client.get("/api/v1/agents"))
    assert {p["id"] for p in profiles} == {str(u.id) for u in [*agents, supervisor]}
    assert all(p["licence"] == "omnichannel" for p in profiles)
    assert all(general["id"] in p["queue_ids"] for p in profiles)
    # General is open on a Sunday at 3 a.m.
    async with db.session(Scope.tenant(tenant.id)) as session:
        queue = await session.get(Queue, demo.general_queue_id)
        assert queue is not None
        assert await routing.queue_is_open(session, queue, datetime(2026, 1, 11, 9, 0, tzinfo=UTC))


async def test_seed_demo_is_idempotent(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agents = [await make_user(db, tenant, Role.agent)]
    supervisor = await make_user(db, tenant, Role.supervisor)
    first = await _demo(db, tenant, agents, supervisor)

    async def counts() -> list[int]:
        async with db.session(Scope.tenant(tenant.id)) as session:
            return [
                await session.scalar(select(func.count()).select_from(model)) or 0
                for model in (Skill, Queue, QueueMember, Disposition, Agent)
            ]

    before = await counts()
    second = await _demo(db, tenant, agents, supervisor)
    async with db.session(Scope.tenant(tenant.id)) as session:
        assert await admin.seed_demo(session, tenant.id, [agents[0].id], supervisor.id) == first
    assert second == first
    assert await counts() == before
    assert before == [2, 3, 4, 3, 2]  # skills, queues (General, Ventas, Llamadas), members…
