"""Administering PBXs through the API, against a local ARI: administrators add, change, check
and remove a tenant's PBXs, the ARI password is write-only and never audited, a check talks
to the PBX as call control would and tells its failures apart, the generated configuration
is what ``atiende pbx config --json`` prints, and the phones' registration states come from
the PBXs (``unknown`` when none answers). Every change is audited and tenant-scoped."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from atiende.audit.models import AuditEntry
from atiende.contacts.models import IdentityKind
from atiende.conversations.models import Channel
from atiende.core.db import Database, Scope, now
from atiende.core.events import EventRecord
from atiende.identity.models import Role
from atiende.tenancy.models import Tenant
from atiende.voice import phones, service
from atiende.voice.models import Call, Extension, Pbx
from conversation_factories import open_chat
from factories import Caller, caller, make_tenant
from fakes.ari import PASSWORD, USERNAME
from fakes.ari_pbx import VERSION, FakePbx, fake_pbx
from tenancy_helpers import assert_tenant_isolation

BASE = "/api/v1/voice/pbxs"


@pytest.fixture
async def ari() -> AsyncIterator[FakePbx]:
    async with fake_pbx() as fake:
        yield fake


def closed_url() -> str:
    """An ARI address where nothing listens (a PBX that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/ari"


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def _body(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "main",
        "ari_url": url,
        "ari_username": USERNAME,
        "ari_password": PASSWORD,
        **fields,
    }


async def _audit(db: Database, tenant: Tenant, prefix: str = "pbx.") -> list[AuditEntry]:
    async with db.session(Scope.system(), read_only=True) as session:
        rows = await session.scalars(
            select(AuditEntry)
            .where(AuditEntry.tenant_id == tenant.id, AuditEntry.action.startswith(prefix))
            .order_by(AuditEntry.occurred_at, AuditEntry.action)
        )
        return list(rows)


async def _stored(db: Database, tenant: Tenant, pbx_id: str) -> Pbx:
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        pbx = await session.get(Pbx, uuid.UUID(pbx_id))
        assert pbx is not None
        return pbx


async def _admin_with_pbx(app: FastAPI, db: Database, url: str) -> tuple[Tenant, Caller, str]:
    tenant = await make_tenant(db)
    admin = await caller(app, tenant)
    made = _ok(await admin.client.post(BASE, json=_body(url)), 201)
    return tenant, admin, made["id"]


# --- adding, changing and removing -------------------------------------------------------------


async def test_an_admin_adds_a_pbx_changes_it_and_deletes_it(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant = await make_tenant(db)
    admin = await caller(app, tenant)
    made = _ok(await admin.client.post(BASE, json=_body(ari.url + "/")), 201)
    assert made["name"] == "main"
    assert made["ari_url"] == ari.url  # stored without the trailing slash
    assert (made["ari_username"], made["app_name"]) == (USERNAME, "atiende")
    assert "ari_password" not in made
    assert _ok(await admin.client.get(f"{BASE}/{made['id']}")) == made
    assert [p["id"] for p in _ok(await admin.client.get(BASE))] == [made["id"]]

    changed = _ok(
        await admin.client.patch(
            f"{BASE}/{made['id']}",
            json={"name": "central", "ari_url": "https://pbx.example.com:8089/ari"},
        )
    )
    assert (changed["name"], changed["ari_url"]) == ("central", "https://pbx.example.com:8089/ari")
    assert changed["app_name"] == "atiende"  # left out, left alone

    _ok(await admin.client.delete(f"{BASE}/{made['id']}"), 204)
    _error(await admin.client.get(f"{BASE}/{made['id']}"), 404, "pbx_not_found")
    assert _ok(await admin.client.get(BASE)) == []
    entries = await _audit(db, tenant)
    assert sorted(e.action for e in entries) == ["pbx.create", "pbx.delete", "pbx.update"]
    update = next(e for e in entries if e.action == "pbx.update")
    assert (update.before or {})["name"] == "main"
    assert (update.after or {})["name"] == "central"
    assert (update.after or {})["ari_password_changed"] is False
    assert all(e.actor_id == admin.id for e in entries)


async def test_the_ari_password_is_write_only_resealed_on_change_and_never_audited(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant, admin, pbx_id = await _admin_with_pbx(app, db, ari.url)
    settings = app.state.atiende.settings
    stored = await _stored(db, tenant, pbx_id)
    assert PASSWORD not in stored.sealed_ari_password
    assert service.ari_password(settings, stored) == PASSWORD

    changed = _ok(await admin.client.patch(f"{BASE}/{pbx_id}", json={"ari_password": "n3w-Pass"}))
    assert "ari_password" not in changed
    stored = await _stored(db, tenant, pbx_id)
    assert service.ari_password(settings, stored) == "n3w-Pass"
    entries = await _audit(db, tenant)
    assert [e.action for e in entries] == ["pbx.create", "pbx.update"]
    assert (entries[1].after or {})["ari_password_changed"] is True
    for entry in entries:
        dumped = json.dumps([entry.before, entry.after])
        assert PASSWORD not in dumped
        assert "n3w-Pass" not in dumped


async def test_an_unchanged_pbx_is_not_audited_again(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant, admin, pbx_id = await _admin_with_pbx(app, db, ari.url)
    _ok(await admin.client.patch(f"{BASE}/{pbx_id}", json={"name": "main"}))
    assert [e.action for e in await _audit(db, tenant)] == ["pbx.create"]


async def test_a_pbx_name_is_used_once_per_tenant(app: FastAPI, db: Database, ari: FakePbx) -> None:
    tenant, admin, _ = await _admin_with_pbx(app, db, ari.url)
    _error(await admin.client.post(BASE, json=_body(ari.url)), 409, "pbx_name_taken")
    other = _ok(await admin.client.post(BASE, json=_body(ari.url, name="backup")), 201)
    body = _error(
        await admin.client.patch(f"{BASE}/{other['id']}", json={"name": "main"}),
        409,
        "pbx_name_taken",
    )
    assert body["details"]["field"] == "name"
    assert (await _stored(db, tenant, other["id"])).name == "backup"
    # Another tenant may call its PBX the same.
    neighbour = await caller(app, await make_tenant(db))
    _ok(await neighbour.client.post(BASE, json=_body(ari.url)), 201)


@pytest.mark.parametrize(
    "change",
    [
        {"ari_url": "http://10.0.0.5:8088/"},  # not …/ari
        {"ari_url": "ftp://10.0.0.5/ari"},
        {"ari_password": "pass;word"},  # Asterisk's config syntax would cut it short
        {"ari_password": "with space"},
        {"name": "main pbx"},
        {"app_name": ""},
        {"name": None},
        {"sealed_ari_password": "x"},
    ],
)
async def test_what_asterisk_would_misread_is_refused_and_changes_nothing(
    app: FastAPI, db: Database, ari: FakePbx, change: dict[str, Any]
) -> None:
    tenant, admin, pbx_id = await _admin_with_pbx(app, db, ari.url)
    before = _ok(await admin.client.get(f"{BASE}/{pbx_id}"))
    _error(await admin.client.patch(f"{BASE}/{pbx_id}", json=change), 422, "validation_error")
    _error(
        await admin.client.post(BASE, json={**_body(ari.url), **change}), 422, "validation_error"
    )
    assert _ok(await admin.client.get(f"{BASE}/{pbx_id}")) == before
    assert (
        service.ari_password(app.state.atiende.settings, await _stored(db, tenant, pbx_id))
        == PASSWORD
    )
    assert [e.action for e in await _audit(db, tenant)] == ["pbx.create"]


async def test_a_pbx_that_has_carried_calls_is_kept(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant, admin, pbx_id = await _admin_with_pbx(app, db, ari.url)
    interaction_id, _ = await open_chat(
        db, tenant, channel=Channel.voice, kind=IdentityKind.phone, who="+525512345678", inbound=()
    )
    async with db.session(Scope.tenant(tenant.id)) as session:
        instant = now(session)
        session.add(
            Call(
                interaction_id=interaction_id,
                pbx_id=uuid.UUID(pbx_id),
                direction="inbound",
                customer_channel_id="1795632527.2",
                state="ended",
                started_at=instant - timedelta(minutes=5),
                ended_at=instant,
            )
        )
    body = _error(await admin.client.delete(f"{BASE}/{pbx_id}"), 409, "pbx_in_use")
    assert body["details"]["calls"] == 1
    _ok(await admin.client.get(f"{BASE}/{pbx_id}"))


async def test_only_administrators_change_pbxs_and_supervisors_read_them(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant, _, pbx_id = await _admin_with_pbx(app, db, ari.url)
    supervisor = await caller(app, tenant, Role.supervisor)
    agent = await caller(app, tenant, Role.agent)
    assert _ok(await supervisor.client.get(f"{BASE}/{pbx_id}"))["id"] == pbx_id
    for who in (supervisor, agent):
        _error(await who.client.post(BASE, json=_body(ari.url, name="x")), 403, "permission_denied")
        _error(
            await who.client.patch(f"{BASE}/{pbx_id}", json={"name": "x"}),
            403,
            "permission_denied",
        )
        _error(await who.client.delete(f"{BASE}/{pbx_id}"), 403, "permission_denied")
        _error(await who.client.post(f"{BASE}/{pbx_id}/test"), 403, "permission_denied")
        _error(await who.client.get(f"{BASE}/{pbx_id}/config"), 403, "permission_denied")
    _error(await agent.client.get(f"{BASE}/{pbx_id}"), 403, "permission_denied")
    assert ari.requests == []  # nobody reached the PBX
    assert [e.action for e in await _audit(db, tenant)] == ["pbx.create"]


async def test_another_tenant_can_neither_see_nor_touch_a_pbx(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    _, admin, pbx_id = await _admin_with_pbx(app, db, ari.url)
    intruder = await caller(app, await make_tenant(db))
    await assert_tenant_isolation(
        owner=admin,
        intruder=intruder,
        item_path=f"{BASE}/{pbx_id}",
        list_path=BASE,
        change={"name": "mine-now", "ari_password": "st0len-Pass"},
        deletable=True,
    )
    _error(await intruder.client.post(f"{BASE}/{pbx_id}/test"), 404, "pbx_not_found")
    _error(await intruder.client.get(f"{BASE}/{pbx_id}/config"), 404, "pbx_not_found")
    assert ari.requests == []


# --- checking a PBX ------------------------------------------------------------------------------


async def test_a_check_reports_the_version_and_opens_the_events_websocket_once(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant, admin, pbx_id = await _admin_with_pbx(app, db, ari.url)
    found = _ok(await admin.client.post(f"{BASE}/{pbx_id}/test"))
    assert found == {
        "id": pbx_id,
        "name": "main",
        "version": VERSION,
        "app_name": "atiende",
        "app_active": False,
        "websocket_ok": True,
        "websocket_error": None,
    }
    assert [(m, p) for m, p, _ in ari.made()] == [
        ("GET", "/asterisk/info"),
        ("GET", "/applications/atiende"),
    ]
    assert ari.events_opened == 1
    for _ in range(100):  # the fake sees the close a moment after the client has left
        if not ari.applications:
            break
        await asyncio.sleep(0.02)
    assert ari.applications == set()  # the probe let go of the application
    (entry,) = await _audit(db, tenant, "pbx.check")
    assert entry.after == {
        "outcome": "ok",
        "version": VERSION,
        "app_active": False,
        "websocket_ok": True,
    }


async def test_a_check_leaves_the_websocket_of_call_control_alone(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    _, admin, pbx_id = await _admin_with_pbx(app, db, ari.url)
    ari.applications.add("atiende")  # call control is connected
    found = _ok(await admin.client.post(f"{BASE}/{pbx_id}/test"))
    assert (found["app_active"], found["websocket_ok"]) == (True, True)
    assert ari.events_opened == 0


async def test_a_check_says_when_the_events_websocket_cannot_be_opened(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    _, admin, pbx_id = await _admin_with_pbx(app, db, ari.url)
    ari.events_refusal = (400, "<h1>Bad Request</h1>")  # e.g. a proxy that does not upgrade
    found = _ok(await admin.client.post(f"{BASE}/{pbx_id}/test"))
    assert (found["version"], found["websocket_ok"]) == (VERSION, False)
    assert "400" in found["websocket_error"]


async def test_a_pbx_that_is_down_is_unreachable_and_the_check_is_audited(
    app: FastAPI, db: Database
) -> None:
    tenant, admin, pbx_id = await _admin_with_pbx(app, db, closed_url())
    _error(await admin.client.post(f"{BASE}/{pbx_id}/test"), 502, "pbx_unreachable")
    (entry,) = await _audit(db, tenant, "pbx.check")
    assert (entry.after or {})["outcome"] == "pbx_unreachable"


async def test_a_wrong_ari_password_is_told_apart(app: FastAPI, db: Database, ari: FakePbx) -> None:
    tenant, admin, pbx_id = await _admin_with_pbx(app, db, ari.url)
    ari.password = "another-one"  # the PBX's password changed
    _error(await admin.client.post(f"{BASE}/{pbx_id}/test"), 502, "pbx_auth_failed")
    (entry,) = await _audit(db, tenant, "pbx.check")
    assert (entry.after or {})["outcome"] == "pbx_auth_failed"
    assert ari.events_opened == 0


async def test_an_address_that_is_not_asterisks_ari_is_unreachable_with_its_answer(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    _, admin, pbx_id = await _admin_with_pbx(app, db, ari.url)
    ari.refuse_next("GET", "/asterisk/info", 404, "Resource not found")
    body = _error(await admin.client.post(f"{BASE}/{pbx_id}/test"), 502, "pbx_unreachable")
    assert body["details"] == {"pbx_status": 404, "pbx_message": "Resource not found"}


# --- the configuration ----------------------------------------------------------------------------


async def test_the_configuration_is_what_atiende_pbx_config_prints_without_secrets(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant, admin, pbx_id = await _admin_with_pbx(app, db, ari.url)
    async with db.session(Scope.tenant(tenant.id)) as session:
        session.add(Extension(number="1001", created_at=now(session)))
    config = _ok(await admin.client.get(f"{BASE}/{pbx_id}/config"))
    assert set(config) == {"tenant", "pbx", "secrets_shown", "files"}
    assert (config["tenant"], config["pbx"], config["secrets_shown"]) == (
        tenant.slug,
        "main",
        False,
    )
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        expected = await service.pbx_config(
            session, tenant, settings=app.state.atiende.settings, pbx_name="main"
        )
    assert config["files"] == expected.files
    assert list(config["files"]) == ["ari.conf", "http.conf", "pjsip.conf", "extensions.conf"]
    assert "<ari-password>" in config["files"]["ari.conf"]
    assert "<secret-1001>" in config["files"]["pjsip.conf"]
    assert PASSWORD not in json.dumps(config)
    (entry,) = await _audit(db, tenant, "pbx.config")
    assert entry.actor_id == admin.id


# --- phones -------------------------------------------------------------------------------------


async def _extensions(db: Database, tenant: Tenant, holders: dict[str, Caller | None]) -> None:
    async with db.session(Scope.tenant(tenant.id)) as session:
        for number, holder in holders.items():
            session.add(
                Extension(
                    number=number,
                    user_id=holder.id if holder else None,
                    created_at=now(session),
                )
            )


async def test_extensions_show_whether_each_phone_is_registered(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant, admin, _ = await _admin_with_pbx(app, db, ari.url)
    agent = await caller(app, tenant, Role.agent)
    supervisor = await caller(app, tenant, Role.supervisor)
    await _extensions(db, tenant, {"1001": agent, "1002": supervisor, "1003": None})
    ari.endpoints = {"1001": "online", "1002": "offline", "sipp": "online"}
    listed = _ok(await supervisor.client.get("/api/v1/voice/extensions"))
    assert [(e["number"], e["user_id"], e["state"]) for e in listed] == [
        ("1001", str(agent.id), "online"),
        ("1002", str(supervisor.id), "offline"),
        ("1003", None, "offline"),  # the PBX does not know it (its config is not applied)
    ]
    assert listed[0]["user_name"].startswith("Agent")
    assert [(m, p) for m, p, _ in ari.made()] == [("GET", "/endpoints/PJSIP")]  # one request
    _error(await agent.client.get("/api/v1/voice/extensions"), 403, "permission_denied")
    # Another tenant lists only its own extensions.
    neighbour = await caller(app, await make_tenant(db))
    assert _ok(await neighbour.client.get("/api/v1/voice/extensions")) == []
    assert _ok(await admin.client.get("/api/v1/voice/extensions"))[0]["state"] == "online"


async def test_phones_are_unknown_when_no_pbx_answers_and_known_when_one_does(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant, admin, _ = await _admin_with_pbx(app, db, closed_url())
    await _extensions(db, tenant, {"1001": None})
    states = _ok(await admin.client.get("/api/v1/voice/extensions"))
    assert [e["state"] for e in states] == ["unknown"]
    _ok(await admin.client.post(BASE, json=_body(ari.url, name="second")), 201)
    ari.endpoints = {"1001": "offline"}
    states = _ok(await admin.client.get("/api/v1/voice/extensions"))
    assert [e["state"] for e in states] == ["offline"]


async def test_phones_of_a_tenant_without_a_pbx_are_unknown(app: FastAPI, db: Database) -> None:
    tenant = await make_tenant(db)
    admin = await caller(app, tenant)
    await _extensions(db, tenant, {"1001": admin})
    assert [e["state"] for e in _ok(await admin.client.get("/api/v1/voice/extensions"))] == [
        "unknown"
    ]


async def test_an_agent_sees_whether_their_own_phone_is_connected(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant, _, _ = await _admin_with_pbx(app, db, ari.url)
    agent = await caller(app, tenant, Role.agent)
    other = await caller(app, tenant, Role.agent)
    await _extensions(db, tenant, {"1001": agent, "1002": other})
    ari.endpoints = {"1001": "online", "1002": "offline"}
    mine = _ok(await agent.client.get("/api/v1/voice/extensions/mine"))
    assert (mine["number"], mine["user_id"], mine["state"]) == ("1001", str(agent.id), "online")
    assert ari.made() == [("GET", "/endpoints/PJSIP/1001", {})]
    ari.endpoints["1001"] = "offline"  # the phone unregistered
    assert _ok(await agent.client.get("/api/v1/voice/extensions/mine"))["state"] == "offline"
    del ari.endpoints["1001"]  # 404 Endpoint not found: not on this PBX
    assert _ok(await agent.client.get("/api/v1/voice/extensions/mine"))["state"] == "offline"
    nobody = await caller(app, tenant, Role.agent)
    _error(await nobody.client.get("/api/v1/voice/extensions/mine"), 404, "extension_not_found")


def test_one_pbx_saying_online_is_enough() -> None:
    assert phones.combine([None, {"1001": "offline"}, {"1001": "online"}], "1001") == "online"
    assert phones.combine([None, {}], "1001") == "offline"
    assert phones.combine([None, None], "1001") == "unknown"
    assert phones.combine([], "1001") == "unknown"
    assert phones.combine([{"1001": "unknown"}], "1001") == "unknown"  # Asterisk cannot tell
    assert phones.combine([{"1001": "unknown"}, {}], "1001") == "offline"


async def test_an_agent_sets_their_phone_to_answer_by_itself(
    app: FastAPI, db: Database, ari: FakePbx
) -> None:
    tenant, _, _ = await _admin_with_pbx(app, db, ari.url)
    agent = await caller(app, tenant, Role.agent)
    other = await caller(app, tenant, Role.agent)
    await _extensions(db, tenant, {"1001": agent, "1002": other})
    ari.endpoints = {"1001": "online", "1002": "online"}
    assert _ok(await agent.client.get("/api/v1/voice/extensions/mine"))["auto_answer"] is False

    mine = _ok(await agent.client.put("/api/v1/voice/extensions/mine", json={"auto_answer": True}))
    assert (mine["number"], mine["auto_answer"]) == ("1001", True)
    assert _ok(await other.client.get("/api/v1/voice/extensions/mine"))["auto_answer"] is False
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        logged = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "extension.update"))
        ).all()
        changed = await session.scalar(
            select(EventRecord).where(EventRecord.type == "extension.changed")
        )
    assert [(e.before, e.after) for e in logged] == [
        ({"auto_answer": False}, {"auto_answer": True})
    ]
    assert changed is not None
    assert changed.data == {"user_id": str(agent.id), "number": "1001", "auto_answer": True}
    # the same value again changes nothing and logs nothing
    _ok(await agent.client.put("/api/v1/voice/extensions/mine", json={"auto_answer": True}))
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        assert (
            len(
                (
                    await session.scalars(
                        select(AuditEntry).where(AuditEntry.action == "extension.update")
                    )
                ).all()
            )
            == 1
        )

    _error(
        await agent.client.put("/api/v1/voice/extensions/mine", json={"auto_answer": "maybe"}),
        422,
        "validation_error",
    )
    _error(
        await agent.client.put("/api/v1/voice/extensions/mine", json={"number": "1002"}),
        422,
        "validation_error",
    )
    nobody = await caller(app, tenant, Role.agent)
    _error(
        await nobody.client.put("/api/v1/voice/extensions/mine", json={"auto_answer": True}),
        404,
        "extension_not_found",
    )
