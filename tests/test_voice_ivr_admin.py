"""IVR menus through the API (``/api/v1/voice/ivr-menus``) and on numbers: administrators
write them, supervisors read them; a menu is checked whole (prompts, keys, actions, queues
that take calls, menus that exist, outside numbers stored in E.164) and names what is
wrong; a menu in use cannot be deleted; every change is audited; other tenants see nothing;
and ``load_menus`` hands call control menus the engine runs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from atiende.audit.models import AuditEntry
from atiende.core.db import Database, Scope
from atiende.core.errors import PermissionDenied
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.routing.models import Queue
from atiende.tenancy.models import Tenant
from atiende.voice import ivr, ivr_store
from atiende.voice.models import IvrMenu, VoiceNumber
from factories import Caller, caller, make_tenant
from routing_factories import make_queue
from tenancy_helpers import assert_tenant_isolation

BASE = "/api/v1/voice/ivr-menus"
NUMBERS = "/api/v1/voice/numbers"


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def _error(response: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    if field is not None:
        assert body["details"]["field"] == field, body
    return body


async def _setup(app: FastAPI, db: Database) -> tuple[Tenant, Caller, Queue, Queue]:
    tenant = await make_tenant(db)
    admin = await caller(app, tenant)
    ventas = await make_queue(db, tenant, name="Ventas", channels=["voice"])
    soporte = await make_queue(db, tenant, name="Soporte", channels=["voice", "webchat"])
    return tenant, admin, ventas, soporte


async def _menu(admin: Caller, name: str = "Principal", **fields: Any) -> dict[str, Any]:
    body = {"name": name, "prompt": "sound:custom/welcome"} | fields
    made: dict[str, Any] = _ok(await admin.client.post(BASE, json=body), 201)
    return made


async def _count(db: Database, tenant: Tenant) -> int:
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        return int(await session.scalar(select(func.count()).select_from(IvrMenu)) or 0)


async def _audit(db: Database, tenant: Tenant) -> list[AuditEntry]:
    async with db.session(Scope.system(), read_only=True) as session:
        rows = await session.scalars(
            select(AuditEntry).where(
                AuditEntry.tenant_id == tenant.id, AuditEntry.action.startswith("ivr_menu")
            )
        )
        return sorted(rows, key=lambda entry: entry.action)


# --- the menus -----------------------------------------------------------------------------------


async def test_an_admin_builds_a_menu_with_every_kind_of_option(app: FastAPI, db: Database) -> None:
    tenant, admin, ventas, soporte = await _setup(app, db)
    support = await _menu(admin, "Soporte", prompt="sound:custom/support")
    made = await _menu(
        admin,
        prompt=" sound:custom/welcome , digits:5551000 ",
        options={
            "#": {"action": "hangup"},
            "9": {"action": "repeat"},
            "2": {"action": "menu", "menu_id": support["id"]},
            "1": {"action": "queue", "queue_id": str(ventas.id)},
            "0": {"action": "queue"},
        },
        timeout_action={"action": "queue", "queue_id": str(soporte.id)},
    )
    assert made["name"] == "Principal"
    assert made["prompt"] == "sound:custom/welcome,digits:5551000"
    assert (made["invalid_prompt"], made["timeout_seconds"], made["max_attempts"]) == (
        "sound:option-is-invalid",
        5,
        3,
    )
    assert list(made["options"]) == ["0", "1", "2", "9", "#"]  # keypad order
    assert made["options"]["1"] == {"action": "queue", "queue_id": str(ventas.id)}
    assert made["options"]["0"] == {"action": "queue"}
    assert made["options"]["2"] == {"action": "menu", "menu_id": support["id"]}
    assert made["timeout_action"] == {"action": "queue", "queue_id": str(soporte.id)}
    assert support["options"] == {}
    assert support["timeout_action"] is None

    assert _ok(await admin.client.get(f"{BASE}/{made['id']}")) == made
    assert [m["name"] for m in _ok(await admin.client.get(BASE))] == ["Principal", "Soporte"]
    assert await _count(db, tenant) == 2


async def test_an_admin_changes_a_menu_and_the_audit_keeps_before_and_after(
    app: FastAPI, db: Database
) -> None:
    tenant, admin, ventas, soporte = await _setup(app, db)
    made = await _menu(
        admin,
        options={"1": {"action": "queue", "queue_id": str(ventas.id)}},
        timeout_action={"action": "hangup"},
    )
    changed = _ok(
        await admin.client.patch(
            f"{BASE}/{made['id']}",
            json={
                "name": "Bienvenida",
                "invalid_prompt": "sound:custom/try-again",
                "timeout_seconds": 8,
                "max_attempts": 2,
                "options": {
                    "1": {"action": "queue", "queue_id": str(soporte.id)},
                    "*": {"action": "menu", "menu_id": made["id"]},  # itself: start over
                },
            },
        )
    )
    assert changed["name"] == "Bienvenida"
    assert (changed["timeout_seconds"], changed["max_attempts"]) == (8, 2)
    assert changed["options"] == {
        "1": {"action": "queue", "queue_id": str(soporte.id)},
        "*": {"action": "menu", "menu_id": made["id"]},
    }
    assert changed["timeout_action"] == {"action": "hangup"}  # not given: kept
    cleared = _ok(await admin.client.patch(f"{BASE}/{made['id']}", json={"timeout_action": None}))
    assert cleared["timeout_action"] is None
    assert cleared["options"] == changed["options"]
    same = _ok(await admin.client.patch(f"{BASE}/{made['id']}", json={"max_attempts": 2}))
    assert same == cleared

    entries = await _audit(db, tenant)
    assert [e.action for e in entries] == ["ivr_menu.create", "ivr_menu.update", "ivr_menu.update"]
    first_update = next(
        e
        for e in entries
        if e.action == "ivr_menu.update" and (e.before or {})["name"] == "Principal"
    )
    assert (first_update.after or {})["name"] == "Bienvenida"
    assert first_update.resource_id == made["id"]
    assert first_update.actor_id == admin.id


async def test_a_menu_name_is_used_once_whatever_its_case(app: FastAPI, db: Database) -> None:
    tenant, admin, _, _ = await _setup(app, db)
    first = await _menu(admin, "Principal")
    body = {"name": "PRINCIPAL", "prompt": "sound:custom/welcome"}
    _error(await admin.client.post(BASE, json=body), 409, "ivr_menu_name_taken", "name")
    second = await _menu(admin, "Noche")
    response = await admin.client.patch(f"{BASE}/{second['id']}", json={"name": "principal"})
    _error(response, 409, "ivr_menu_name_taken", "name")
    renamed = _ok(await admin.client.patch(f"{BASE}/{first['id']}", json={"name": "principal"}))
    assert renamed["name"] == "principal"
    assert await _count(db, tenant) == 2


WRONG_MENUS: list[tuple[dict[str, Any], str, str]] = [
    ({"prompt": "welcome"}, "ivr_prompt_invalid", "prompt"),
    ({"prompt": "sound:../../etc/passwd"}, "ivr_prompt_invalid", "prompt"),
    ({"prompt": "sound:a,,sound:b"}, "ivr_prompt_invalid", "prompt"),
    ({"invalid_prompt": "http://x/y.wav"}, "ivr_prompt_invalid", "invalid_prompt"),
    ({"options": {"x": {"action": "hangup"}}}, "ivr_option_invalid", "options"),
    ({"options": {"1": {"action": "dial"}}}, "ivr_option_invalid", "options.1.action"),
    ({"options": {"1": {"action": "menu"}}}, "ivr_option_invalid", "options.1.menu_id"),
    (
        {"options": {"#": {"action": "hangup", "queue_id": str(uuid.uuid4())}}},
        "ivr_option_invalid",
        "options.#.queue_id",
    ),
    (
        {"options": {"2": {"action": "queue", "queue_id": "ventas"}}},
        "ivr_option_invalid",
        "options.2.queue_id",
    ),
    (
        {"options": {"3": {"action": "repeat", "say": "x"}}},
        "ivr_option_invalid",
        "options.3.say",
    ),
    ({"timeout_action": {"action": "repeat"}}, "ivr_option_invalid", "timeout_action.action"),
    (
        {"options": {"1": {"action": "queue", "queue_id": str(uuid.uuid4())}}},
        "unknown_queue",
        "options.1.queue_id",
    ),
    (
        {"timeout_action": {"action": "menu", "menu_id": str(uuid.uuid4())}},
        "unknown_ivr_menu",
        "timeout_action.menu_id",
    ),
    (
        {"options": {"3": {"action": "number", "number": "12345"}}},
        "ivr_option_invalid",
        "options.3.number",
    ),
    (
        {"options": {"3": {"action": "number", "number": "llamar a Juan"}}},
        "ivr_option_invalid",
        "options.3.number",
    ),
    ({"options": {"3": {"action": "number"}}}, "ivr_option_invalid", "options.3.number"),
    (
        {"options": {"1": {"action": "queue", "number": "+525512345678"}}},
        "ivr_option_invalid",
        "options.1.number",
    ),
    (
        {"timeout_action": {"action": "number", "number": "+52 55"}},
        "ivr_option_invalid",
        "timeout_action.number",
    ),
    (
        {"options": {"4": {"action": "voicemail", "menu_id": str(uuid.uuid4())}}},
        "ivr_option_invalid",
        "options.4.menu_id",
    ),
    (
        {"options": {"4": {"action": "voicemail", "queue_id": str(uuid.uuid4())}}},
        "unknown_queue",
        "options.4.queue_id",
    ),
    (
        {"timeout_action": {"action": "voicemail", "queue_id": str(uuid.uuid4())}},
        "unknown_queue",
        "timeout_action.queue_id",
    ),
    (
        {"options": {"0": {"action": "menu", "menu_id": str(uuid.uuid4())}}},
        "unknown_ivr_menu",
        "options.0.menu_id",
    ),
]


async def test_a_wrong_menu_is_refused_naming_the_part(app: FastAPI, db: Database) -> None:
    tenant, admin, _, _ = await _setup(app, db)
    for fields, code, field in WRONG_MENUS:
        body = {"name": "Principal", "prompt": "sound:custom/welcome"} | fields
        _error(await admin.client.post(BASE, json=body), 422, code, field)
    assert await _count(db, tenant) == 0


async def test_a_menu_sends_calls_only_to_queues_that_take_them(app: FastAPI, db: Database) -> None:
    tenant, admin, ventas, _ = await _setup(app, db)
    chat = await make_queue(db, tenant, name="Chat", channels=["webchat"])
    body = {
        "name": "Principal",
        "prompt": "sound:custom/welcome",
        "options": {"1": {"action": "queue", "queue_id": str(chat.id)}},
    }
    _error(
        await admin.client.post(BASE, json=body),
        422,
        "queue_channel_mismatch",
        "options.1.queue_id",
    )
    made = await _menu(admin, options={"1": {"action": "queue", "queue_id": str(ventas.id)}})
    response = await admin.client.patch(
        f"{BASE}/{made['id']}",
        json={"timeout_action": {"action": "queue", "queue_id": str(chat.id)}},
    )
    _error(response, 422, "queue_channel_mismatch", "timeout_action.queue_id")
    assert _ok(await admin.client.get(f"{BASE}/{made['id']}")) == made
    assert [e.action for e in await _audit(db, tenant)] == ["ivr_menu.create"]


async def test_a_menu_forwards_to_numbers_and_takes_voicemail(app: FastAPI, db: Database) -> None:
    tenant, admin, _, soporte = await _setup(app, db)
    made = await _menu(
        admin,
        options={
            "3": {"action": "number", "number": "55 1234 5678"},
            "4": {"action": "voicemail", "queue_id": str(soporte.id)},
            "5": {"action": "voicemail"},
        },
        timeout_action={"action": "number", "number": "+1 (202) 456-1111"},
    )
    assert made["options"] == {
        "3": {"action": "number", "number": "+525512345678"},  # national: read in Mexico
        "4": {"action": "voicemail", "queue_id": str(soporte.id)},
        "5": {"action": "voicemail"},
    }
    assert made["timeout_action"] == {"action": "number", "number": "+12024561111"}
    assert _ok(await admin.client.get(f"{BASE}/{made['id']}")) == made
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        row = await session.get(IvrMenu, uuid.UUID(made["id"]))
        assert row is not None
        assert row.options["3"] == {"action": "number", "number": "+525512345678"}
        assert row.timeout_action == {"action": "number", "number": "+12024561111"}

    changed = _ok(
        await admin.client.patch(
            f"{BASE}/{made['id']}",
            json={"timeout_action": {"action": "voicemail", "queue_id": str(soporte.id)}},
        )
    )
    assert changed["timeout_action"] == {"action": "voicemail", "queue_id": str(soporte.id)}
    assert changed["options"] == made["options"]
    entries = await _audit(db, tenant)
    update_entry = next(e for e in entries if e.action == "ivr_menu.update")
    assert (update_entry.before or {})["timeout_action"] == made["timeout_action"]

    # call control gets them as the engine's ends
    fallback = uuid.uuid4()
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        menus = await ivr_store.load_menus(session, tenant.id)
    menu_id = uuid.UUID(made["id"])
    started = ivr.start(menus, menu_id, fallback)
    assert ivr.press(started.state, menus, "3").end == ivr.ToNumber("+525512345678", "3")
    assert ivr.press(started.state, menus, "4").end == ivr.ToVoicemail(soporte.id, "4")
    assert ivr.press(started.state, menus, "5").end == ivr.ToVoicemail(fallback, "5")
    outcome = started
    for _ in range(3):
        outcome = ivr.timed_out(outcome.state, menus)
    assert outcome.end == ivr.ToVoicemail(soporte.id, "")


async def test_voicemail_goes_only_to_the_tenants_queues_that_take_calls(
    app: FastAPI, db: Database
) -> None:
    tenant, admin, ventas, _ = await _setup(app, db)
    chat = await make_queue(db, tenant, name="Chat", channels=["webchat"])
    theirs = await make_queue(db, await make_tenant(db), name="Ajena", channels=["voice"])
    for queue_id, code in ((chat.id, "queue_channel_mismatch"), (theirs.id, "unknown_queue")):
        body = {
            "name": "Principal",
            "prompt": "sound:custom/welcome",
            "options": {"4": {"action": "voicemail", "queue_id": str(queue_id)}},
        }
        _error(await admin.client.post(BASE, json=body), 422, code, "options.4.queue_id")
        body = {
            "name": "Principal",
            "prompt": "sound:custom/welcome",
            "timeout_action": {"action": "voicemail", "queue_id": str(queue_id)},
        }
        _error(await admin.client.post(BASE, json=body), 422, code, "timeout_action.queue_id")
    assert await _count(db, tenant) == 0
    made = await _menu(admin, options={"4": {"action": "voicemail", "queue_id": str(ventas.id)}})
    response = await admin.client.patch(
        f"{BASE}/{made['id']}",
        json={"options": {"4": {"action": "voicemail", "queue_id": str(chat.id)}}},
    )
    _error(response, 422, "queue_channel_mismatch", "options.4.queue_id")
    assert _ok(await admin.client.get(f"{BASE}/{made['id']}")) == made


OUT_OF_RANGE: list[dict[str, Any]] = [
    {"timeout_seconds": 0},
    {"timeout_seconds": 31},
    {"max_attempts": 0},
    {"max_attempts": 6},
    {"name": ""},
    {"prompt": ""},
    {"options": []},
    {"colour": "blue"},
]


async def test_out_of_range_settings_are_validation_errors(app: FastAPI, db: Database) -> None:
    tenant, admin, _, _ = await _setup(app, db)
    for fields in OUT_OF_RANGE:
        body = {"name": "Principal", "prompt": "sound:custom/welcome"} | fields
        _error(await admin.client.post(BASE, json=body), 422, "validation_error")
    assert await _count(db, tenant) == 0


async def test_a_menu_in_use_cannot_be_deleted(app: FastAPI, db: Database) -> None:
    tenant, admin, ventas, _ = await _setup(app, db)
    support = await _menu(admin, "Soporte")
    night = await _menu(admin, "Noche")
    main = await _menu(
        admin,
        "Principal",
        options={"2": {"action": "menu", "menu_id": support["id"]}},
        timeout_action={"action": "menu", "menu_id": night["id"]},
    )
    number = _ok(
        await admin.client.post(
            NUMBERS,
            json={"number": "5551000", "queue_id": str(ventas.id), "ivr_menu_id": main["id"]},
        ),
        201,
    )
    body = _error(await admin.client.delete(f"{BASE}/{main['id']}"), 409, "ivr_menu_in_use")
    assert body["details"] == {"number_ids": [number["id"]], "menu_ids": []}
    body = _error(await admin.client.delete(f"{BASE}/{support['id']}"), 409, "ivr_menu_in_use")
    assert body["details"] == {"number_ids": [], "menu_ids": [main["id"]]}
    _error(await admin.client.delete(f"{BASE}/{night['id']}"), 409, "ivr_menu_in_use")
    assert await _count(db, tenant) == 3

    # once nothing points at them, they go
    _ok(await admin.client.patch(f"{NUMBERS}/{number['id']}", json={"ivr_menu_id": None}))
    _ok(await admin.client.delete(f"{BASE}/{main['id']}"), 204)
    _ok(await admin.client.delete(f"{BASE}/{support['id']}"), 204)
    _ok(await admin.client.delete(f"{BASE}/{night['id']}"), 204)
    _error(await admin.client.get(f"{BASE}/{main['id']}"), 404, "ivr_menu_not_found")
    assert await _count(db, tenant) == 0
    deleted = [e for e in await _audit(db, tenant) if e.action == "ivr_menu.delete"]
    assert {(e.before or {})["name"] for e in deleted} == {"Principal", "Soporte", "Noche"}


async def test_a_menu_that_only_points_at_itself_can_be_deleted(app: FastAPI, db: Database) -> None:
    _, admin, _, _ = await _setup(app, db)
    made = await _menu(admin)
    loop = {"options": {"0": {"action": "menu", "menu_id": made["id"]}}}
    _ok(await admin.client.patch(f"{BASE}/{made['id']}", json=loop))
    _ok(await admin.client.delete(f"{BASE}/{made['id']}"), 204)


async def test_supervisors_read_menus_and_agents_do_not(app: FastAPI, db: Database) -> None:
    tenant, admin, _, _ = await _setup(app, db)
    made = await _menu(admin)
    supervisor = await caller(app, tenant, Role.supervisor)
    agent = await caller(app, tenant, Role.agent)
    assert [m["id"] for m in _ok(await supervisor.client.get(BASE))] == [made["id"]]
    assert _ok(await supervisor.client.get(f"{BASE}/{made['id']}")) == made
    body = {"name": "Otro", "prompt": "sound:custom/welcome"}
    _error(await supervisor.client.post(BASE, json=body), 403, "permission_denied")
    _error(
        await supervisor.client.patch(f"{BASE}/{made['id']}", json={"name": "X"}),
        403,
        "permission_denied",
    )
    _error(await supervisor.client.delete(f"{BASE}/{made['id']}"), 403, "permission_denied")
    _error(await agent.client.get(BASE), 403, "permission_denied")
    _error(await agent.client.get(f"{BASE}/{made['id']}"), 403, "permission_denied")
    assert _ok(await admin.client.get(f"{BASE}/{made['id']}")) == made


async def test_menus_are_invisible_to_other_tenants(app: FastAPI, db: Database) -> None:
    _, owner, ventas, _ = await _setup(app, db)
    globex = await make_tenant(db)
    intruder = await caller(app, globex)
    made = await _menu(owner, options={"1": {"action": "queue", "queue_id": str(ventas.id)}})
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"{BASE}/{made['id']}",
        list_path=BASE,
        change={"name": "Robado"},
        deletable=True,
    )
    # Nor can another tenant point its menus or numbers at this tenant's queue or menu...
    body = {
        "name": "Principal",
        "prompt": "sound:custom/welcome",
        "options": {"1": {"action": "queue", "queue_id": str(ventas.id)}},
    }
    _error(await intruder.client.post(BASE, json=body), 422, "unknown_queue", "options.1.queue_id")
    body["options"] = {"2": {"action": "menu", "menu_id": made["id"]}}
    _error(
        await intruder.client.post(BASE, json=body), 422, "unknown_ivr_menu", "options.2.menu_id"
    )
    theirs = await make_queue(db, globex, name="Ventas", channels=["voice"])
    number = {"number": "5551000", "queue_id": str(theirs.id), "ivr_menu_id": made["id"]}
    _error(await intruder.client.post(NUMBERS, json=number), 422, "unknown_ivr_menu", "ivr_menu_id")
    # ...while the same name is free for them.
    _ok(await intruder.client.post(BASE, json={"name": "Principal", "prompt": "sound:x"}), 201)
    assert len(_ok(await owner.client.get(BASE))) == 1


# --- numbers with a menu -------------------------------------------------------------------------


async def test_a_number_plays_a_menu_and_can_lose_it_again(app: FastAPI, db: Database) -> None:
    tenant, admin, ventas, _ = await _setup(app, db)
    main = await _menu(admin)
    night = await _menu(admin, "Noche")
    plain = _ok(
        await admin.client.post(NUMBERS, json={"number": "5551000", "queue_id": str(ventas.id)}),
        201,
    )
    assert plain["ivr_menu_id"] is None
    made = _ok(
        await admin.client.post(
            NUMBERS,
            json={"number": "5552000", "queue_id": str(ventas.id), "ivr_menu_id": main["id"]},
        ),
        201,
    )
    assert made["ivr_menu_id"] == main["id"]
    path = f"{NUMBERS}/{made['id']}"
    moved = _ok(await admin.client.patch(path, json={"ivr_menu_id": night["id"]}))
    assert moved["ivr_menu_id"] == night["id"]
    renumbered = _ok(await admin.client.patch(path, json={"number": "5552001"}))
    assert renumbered["ivr_menu_id"] == night["id"]  # not given: kept
    _error(
        await admin.client.patch(path, json={"ivr_menu_id": str(uuid.uuid4())}),
        422,
        "unknown_ivr_menu",
        "ivr_menu_id",
    )
    removed = _ok(await admin.client.patch(path, json={"ivr_menu_id": None}))
    assert removed["ivr_menu_id"] is None
    assert removed["queue_id"] == str(ventas.id)
    async with db.session(Scope.system(), read_only=True) as session:
        updates = (
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.tenant_id == tenant.id,
                    AuditEntry.action == "voice_number.update",
                    AuditEntry.resource_id == made["id"],
                )
            )
        ).all()
    menus = {((e.before or {})["ivr_menu_id"], (e.after or {})["ivr_menu_id"]) for e in updates}
    assert menus == {(main["id"], night["id"]), (night["id"], night["id"]), (night["id"], None)}


async def test_the_database_unsets_a_numbers_menu_when_the_menu_row_goes(
    app: FastAPI, db: Database
) -> None:
    """The service refuses to delete a menu in use; should a row go another way (a tenant's
    data being removed by hand), the number keeps its queue."""
    tenant, admin, ventas, _ = await _setup(app, db)
    main = await _menu(admin)
    number = _ok(
        await admin.client.post(
            NUMBERS,
            json={"number": "5551000", "queue_id": str(ventas.id), "ivr_menu_id": main["id"]},
        ),
        201,
    )
    async with db.session(Scope.tenant(tenant.id)) as session:
        row = await session.get(IvrMenu, uuid.UUID(main["id"]))
        assert row is not None
        await session.delete(row)
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        kept = await session.get(VoiceNumber, uuid.UUID(number["id"]))
        assert kept is not None
        assert (kept.ivr_menu_id, kept.queue_id) == (None, ventas.id)


# --- the service and call control ----------------------------------------------------------------


async def test_the_service_refuses_non_admins(db: Database) -> None:
    tenant = await make_tenant(db)
    supervisor = Actor(
        user_id=uuid.uuid4(), email="s@example.com", role=Role.supervisor, tenant_id=tenant.id
    )
    async with db.session(Scope.tenant(tenant.id)) as session:
        made = await ivr_store.create_menu(
            session, Actor.system(), ivr_store.MenuCreate(name="Principal", prompt="sound:x")
        )
        with pytest.raises(PermissionDenied, match="administrators"):
            await ivr_store.create_menu(
                session, supervisor, ivr_store.MenuCreate(name="Otro", prompt="sound:x")
            )
        with pytest.raises(PermissionDenied):
            await ivr_store.delete_menu(session, supervisor, made.id)
        assert [m.id for m in await ivr_store.list_menus(session, supervisor)] == [made.id]


async def test_call_control_loads_the_menus_and_runs_them(app: FastAPI, db: Database) -> None:
    tenant, admin, ventas, soporte = await _setup(app, db)
    support = await _menu(
        admin,
        "Soporte",
        prompt="sound:custom/support",
        timeout_seconds=9,
        options={"1": {"action": "queue", "queue_id": str(soporte.id)}},
    )
    main = await _menu(
        admin,
        prompt="sound:custom/welcome,digits:1",
        invalid_prompt="sound:custom/sorry",
        max_attempts=2,
        options={
            "1": {"action": "queue", "queue_id": str(ventas.id)},
            "2": {"action": "menu", "menu_id": support["id"]},
        },
        timeout_action={"action": "hangup"},
    )
    other = await make_tenant(db)
    await _menu(await caller(app, other), "Ajeno")
    fallback = uuid.uuid4()
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        menus = await ivr_store.load_menus(session, tenant.id)
    assert set(menus) == {uuid.UUID(main["id"]), uuid.UUID(support["id"])}
    loaded = menus[uuid.UUID(main["id"])]
    assert loaded.prompt == ("sound:custom/welcome", "digits:1")
    assert loaded.invalid_prompt == ("sound:custom/sorry",)
    assert loaded.timeout_action == ivr.Option(ivr.OptionKind.hangup)

    outcome = ivr.start(menus, loaded.id, fallback)
    assert outcome.actions == (
        ivr.Play(("sound:custom/welcome", "digits:1")),
        ivr.WaitDigit(5),
    )
    outcome = ivr.press(outcome.state, menus, "2")
    assert outcome.actions == (ivr.Play(("sound:custom/support",)), ivr.WaitDigit(9))
    assert ivr.press(outcome.state, menus, "1").end == ivr.ToQueue(soporte.id, "21")
    wrong = ivr.press(ivr.start(menus, loaded.id, fallback).state, menus, "7")
    assert ivr.timed_out(wrong.state, menus).end == ivr.HangUp(ivr.HangUpReason.no_choice)


async def test_a_queue_that_stops_taking_calls_sends_its_callers_to_the_numbers_queue(
    app: FastAPI, db: Database
) -> None:
    """Queues are edited on their own page, which knows nothing of menus: a menu option into
    a queue that no longer takes calls (or is gone) falls back to the number's queue; a
    voicemail option into it stays a voicemail, for the number's queue."""
    tenant, admin, ventas, soporte = await _setup(app, db)
    main = await _menu(
        admin,
        options={
            "1": {"action": "queue", "queue_id": str(ventas.id)},
            "2": {"action": "queue", "queue_id": str(soporte.id)},
            "4": {"action": "voicemail", "queue_id": str(ventas.id)},
            "5": {"action": "voicemail", "queue_id": str(soporte.id)},
        },
        timeout_action={"action": "queue", "queue_id": str(ventas.id)},
    )
    async with db.session(Scope.tenant(tenant.id)) as session:
        await session.execute(update(Queue).where(Queue.id == ventas.id).values(channels=["sms"]))
    fallback = uuid.uuid4()
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        menus = await ivr_store.load_menus(session, tenant.id)
    menu_id = uuid.UUID(main["id"])
    started = ivr.start(menus, menu_id, fallback)
    assert ivr.press(started.state, menus, "1").end == ivr.ToQueue(fallback, "1")
    assert ivr.press(started.state, menus, "2").end == ivr.ToQueue(soporte.id, "2")
    # a voicemail into it stays a voicemail, for the number's queue
    assert ivr.press(started.state, menus, "4").end == ivr.ToVoicemail(fallback, "4")
    assert ivr.press(started.state, menus, "5").end == ivr.ToVoicemail(soporte.id, "5")
    outcome = started
    for _ in range(3):
        outcome = ivr.timed_out(outcome.state, menus)
    assert outcome.end == ivr.ToQueue(fallback, "")


async def test_a_stored_menu_that_no_longer_parses_is_left_out(db: Database) -> None:
    tenant = await make_tenant(db)
    async with db.session(Scope.tenant(tenant.id)) as session:
        good = await ivr_store.create_menu(
            session, Actor.system(), ivr_store.MenuCreate(name="Bueno", prompt="sound:a")
        )
        bad = await ivr_store.create_menu(
            session, Actor.system(), ivr_store.MenuCreate(name="Malo", prompt="sound:a")
        )
        await session.execute(
            update(IvrMenu).where(IvrMenu.id == bad.id).values(prompt="http://x/y.wav")
        )
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        menus = await ivr_store.load_menus(session, tenant.id)
    assert set(menus) == {good.id}
    fallback = uuid.uuid4()
    assert ivr.start(menus, bad.id, fallback).end == ivr.ToQueue(fallback, "")
