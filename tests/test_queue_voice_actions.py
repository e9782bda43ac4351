"""The queue settings for calls through the API: voicemail, forwarding and a message before
hanging up as closed-hours and max-wait actions, the forward number (stored in E.164), the
voicemail and message prompts (media as IVR prompts) and position announcements. Bad input
is refused with a stable code and changes nothing; every change is audited like any other
queue change."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from atiende.core.db import Database
from atiende.identity.models import Role
from factories import Caller, caller, make_tenant

FORWARD = "+525512345678"
MESSAGE = "sound:custom/closed,digits:123"


async def _admin(app: Any, db: Database) -> Caller:
    return await caller(app, await make_tenant(db))


async def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


async def _create(boss: Caller, **fields: Any) -> Any:
    body = {"name": f"queue-{uuid.uuid4().hex[:6]}", "channels": ["voice"], **fields}
    return await boss.client.post("/api/v1/queues", json=body)


async def _queue(boss: Caller, **fields: Any) -> dict[str, Any]:
    created: dict[str, Any] = await _ok(await _create(boss, **fields), 201)
    return created


async def _patch(boss: Caller, queue: dict[str, Any], **fields: Any) -> Any:
    return await boss.client.patch(f"/api/v1/queues/{queue['id']}", json=fields)


async def _audit_actions(boss: Caller, resource_id: str) -> list[str]:
    entries = await _ok(await boss.client.get("/api/v1/audit"))
    return sorted(e["action"] for e in entries if e["resource_id"] == resource_id)


async def _unchanged(boss: Caller, queue: dict[str, Any]) -> None:
    """The queue reads as it did, and nothing but its creation was audited."""
    assert await _ok(await boss.client.get(f"/api/v1/queues/{queue['id']}")) == queue
    assert await _audit_actions(boss, queue["id"]) == ["queue.create"]


# --- defaults and output ---------------------------------------------------------------------


async def test_a_new_queue_overflows_forwards_nowhere_and_announces_nothing(
    app: Any, db: Database
) -> None:
    boss = await _admin(app, db)
    queue = await _queue(boss, channels=["webchat"])
    assert {
        k: queue[k]
        for k in (
            "max_wait_action",
            "forward_number",
            "voicemail_prompt",
            "message_prompt",
            "announce_every_seconds",
        )
    } == {
        "max_wait_action": "overflow",
        "forward_number": None,
        "voicemail_prompt": None,
        "message_prompt": None,
        "announce_every_seconds": 0,
    }
    listed = await _ok(await boss.client.get("/api/v1/queues"))
    assert listed[0]["max_wait_action"] == "overflow"
    assert listed[0]["message_prompt"] is None
    assert listed[0]["announce_every_seconds"] == 0


# --- create ----------------------------------------------------------------------------------


@pytest.mark.parametrize("closed_action", ["auto_reply", "voicemail", "forward"])
@pytest.mark.parametrize("max_wait_action", ["overflow", "message", "voicemail", "forward"])
async def test_each_new_action_can_be_created_and_read_back(
    app: Any, db: Database, closed_action: str, max_wait_action: str
) -> None:
    boss = await _admin(app, db)
    fields = {
        "channels": ["voice", "webchat"],
        "closed_action": closed_action,
        "max_wait_seconds": 120,
        "max_wait_action": max_wait_action,
        "forward_number": FORWARD,
        "voicemail_prompt": "sound:custom/leave-message",
        "message_prompt": MESSAGE,
        "announce_every_seconds": 30,
    }
    queue = await _queue(boss, **fields)
    assert {k: queue[k] for k in fields} == fields
    read = await _ok(await boss.client.get(f"/api/v1/queues/{queue['id']}"))
    assert {k: read[k] for k in fields} == fields
    listed = await _ok(await boss.client.get("/api/v1/queues"))
    assert {k: listed[0][k] for k in fields} == fields


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("55 1234 5678", "+525512345678"),  # national numbers are Mexican
        ("(55) 1234-5678", "+525512345678"),
        ("+52 55 1234 5678", "+525512345678"),
        ("  +1 415 555 2671 ", "+14155552671"),
        ("+34 612 345 678", "+34612345678"),
    ],
)
async def test_the_forward_number_is_stored_in_e164(
    app: Any, db: Database, given: str, stored: str
) -> None:
    boss = await _admin(app, db)
    queue = await _queue(boss, closed_action="forward", forward_number=given)
    assert queue["forward_number"] == stored
    read = await _ok(await boss.client.get(f"/api/v1/queues/{queue['id']}"))
    assert read["forward_number"] == stored


async def test_the_voicemail_prompt_is_stored_without_spaces_around_commas(
    app: Any, db: Database
) -> None:
    boss = await _admin(app, db)
    queue = await _queue(
        boss, closed_action="voicemail", voicemail_prompt=" sound:custom/leave-message , digits:123"
    )
    assert queue["voicemail_prompt"] == "sound:custom/leave-message,digits:123"


async def test_the_message_prompt_is_stored_without_spaces_around_commas(
    app: Any, db: Database
) -> None:
    boss = await _admin(app, db)
    queue = await _queue(
        boss,
        max_wait_seconds=90,
        max_wait_action="message",
        message_prompt="  sound:custom/closed ,digits:123 ",
    )
    assert (queue["max_wait_action"], queue["message_prompt"]) == ("message", MESSAGE)
    read = await _ok(await boss.client.get(f"/api/v1/queues/{queue['id']}"))
    assert read["message_prompt"] == MESSAGE
    # The same prompt written another way is the same prompt: nothing changes, nothing audited.
    same = await _ok(await _patch(boss, queue, message_prompt="sound:custom/closed , digits:123"))
    assert same == queue
    assert await _audit_actions(boss, queue["id"]) == ["queue.create"]
    changed = await _ok(await _patch(boss, queue, message_prompt=" sound:custom/bye , tone:busy"))
    assert changed["message_prompt"] == "sound:custom/bye,tone:busy"


async def test_a_closed_auto_reply_queue_may_have_no_message_prompt(app: Any, db: Database) -> None:
    boss = await _admin(app, db)
    queue = await _queue(boss, closed_action="auto_reply", message_prompt=MESSAGE)
    cleared = await _ok(await _patch(boss, queue, message_prompt=None))
    assert (cleared["closed_action"], cleared["message_prompt"]) == ("auto_reply", None)


async def test_a_forward_number_may_wait_for_a_forward_action(app: Any, db: Database) -> None:
    boss = await _admin(app, db)
    queue = await _queue(boss, forward_number="5512345678")
    assert (queue["closed_action"], queue["max_wait_action"]) == ("auto_reply", "overflow")
    assert queue["forward_number"] == FORWARD
    # Then a patch that only chooses forwarding is judged with the stored number.
    changed = await _ok(await _patch(boss, queue, max_wait_action="forward", max_wait_seconds=60))
    assert (changed["max_wait_action"], changed["forward_number"]) == ("forward", FORWARD)


# --- update and audit ------------------------------------------------------------------------


async def test_every_new_setting_can_be_changed_and_the_change_is_audited(
    app: Any, db: Database
) -> None:
    boss = await _admin(app, db)
    queue = await _queue(boss, name="Conmutador")
    steps: list[dict[str, Any]] = [
        {"closed_action": "voicemail"},
        {"voicemail_prompt": "sound:custom/leave-message, digits:123"},
        {"forward_number": "55 8765 4321", "closed_action": "forward"},
        {"max_wait_seconds": 300, "max_wait_action": "voicemail"},
        {"max_wait_action": "forward"},
        {"message_prompt": " sound:custom/closed , digits:123"},
        {"max_wait_action": "message"},
        {"announce_every_seconds": 15},
        {"announce_every_seconds": 3600},
        {"announce_every_seconds": 0},
        {"voicemail_prompt": None},
        {"max_wait_action": "overflow", "message_prompt": None},
        {"closed_action": "auto_reply", "forward_number": None},
    ]
    expected = dict(queue)
    for patch in steps:
        changed = await _ok(await _patch(boss, queue, **patch))
        expected |= patch
        if patch.get("voicemail_prompt"):
            expected["voicemail_prompt"] = "sound:custom/leave-message,digits:123"
        if patch.get("forward_number"):
            expected["forward_number"] = "+525587654321"
        if patch.get("message_prompt"):
            expected["message_prompt"] = MESSAGE
        assert changed == expected
    assert await _ok(await boss.client.get(f"/api/v1/queues/{queue['id']}")) == expected
    assert await _audit_actions(boss, queue["id"]) == ["queue.create"] + ["queue.update"] * len(
        steps
    )


async def test_the_audit_entry_holds_the_new_settings_before_and_after(
    app: Any, db: Database
) -> None:
    boss = await _admin(app, db)
    queue = await _queue(boss, name="Buzon")
    await _ok(
        await _patch(
            boss,
            queue,
            closed_action="forward",
            forward_number="55 1234 5678",
            max_wait_action="voicemail",
            voicemail_prompt="sound:vm-intro",
            message_prompt="sound:custom/closed, digits:123",
            announce_every_seconds=45,
        )
    )
    entries = await _ok(await boss.client.get("/api/v1/audit?action=queue.update"))
    mine = [e for e in entries if e["resource_id"] == queue["id"]]
    assert len(mine) == 1
    before, after = mine[0]["before"], mine[0]["after"]
    assert {k: before[k] for k in after if before[k] != after[k]} == {
        "closed_action": "auto_reply",
        "forward_number": None,
        "max_wait_action": "overflow",
        "voicemail_prompt": None,
        "message_prompt": None,
        "announce_every_seconds": 0,
    }
    assert after["closed_action"] == "forward"
    assert after["forward_number"] == FORWARD
    assert after["max_wait_action"] == "voicemail"
    assert after["voicemail_prompt"] == "sound:vm-intro"
    assert after["message_prompt"] == MESSAGE
    assert after["announce_every_seconds"] == 45


async def test_a_patch_that_only_restates_a_number_is_not_audited(app: Any, db: Database) -> None:
    boss = await _admin(app, db)
    queue = await _queue(boss, closed_action="forward", forward_number=FORWARD)
    # The same number written another way is the same number.
    same = await _ok(await _patch(boss, queue, forward_number="55 1234 5678"))
    assert same == queue
    assert await _audit_actions(boss, queue["id"]) == ["queue.create"]


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["12345", "abc", "+52 55", "+999 1234 5678", ""])
async def test_an_invalid_forward_number_is_refused(app: Any, db: Database, number: str) -> None:
    boss = await _admin(app, db)
    body = _error(await _create(boss, forward_number=number), 422, "invalid_forward_number")
    assert body["details"]["field"] == "forward_number"
    queue = await _queue(boss, name="Existente")
    refused = await _patch(boss, queue, forward_number=number, closed_action="forward")
    _error(refused, 422, "invalid_forward_number")
    await _unchanged(boss, queue)
    listed = await _ok(await boss.client.get("/api/v1/queues"))
    assert [q["name"] for q in listed] == ["Existente"]


@pytest.mark.parametrize(
    "fields",
    [
        {"closed_action": "forward"},
        {"max_wait_action": "forward", "max_wait_seconds": 60},
        {"closed_action": "forward", "max_wait_action": "forward", "forward_number": None},
    ],
)
async def test_forwarding_needs_a_forward_number(
    app: Any, db: Database, fields: dict[str, Any]
) -> None:
    boss = await _admin(app, db)
    body = _error(await _create(boss, **fields), 422, "forward_number_required")
    assert body["details"]["field"] == "forward_number"
    assert await _ok(await boss.client.get("/api/v1/queues")) == []
    queue = await _queue(boss)
    _error(await _patch(boss, queue, **fields), 422, "forward_number_required")
    await _unchanged(boss, queue)


async def test_a_patch_is_judged_on_the_merged_queue(app: Any, db: Database) -> None:
    boss = await _admin(app, db)
    closed = await _queue(boss, name="Cerrada", closed_action="forward", forward_number=FORWARD)
    waiting = await _queue(
        boss, name="Espera", max_wait_seconds=60, max_wait_action="forward", forward_number=FORWARD
    )
    # Clearing the number while an action still forwards is refused...
    for queue in (closed, waiting):
        _error(await _patch(boss, queue, forward_number=None), 422, "forward_number_required")
        await _unchanged(boss, queue)
    # ...and allowed once neither action forwards.
    cleared = await _ok(await _patch(boss, closed, closed_action="voicemail", forward_number=None))
    assert (cleared["closed_action"], cleared["forward_number"]) == ("voicemail", None)


@pytest.mark.parametrize(
    "fields",
    [
        {"max_wait_action": "message"},
        {"max_wait_action": "message", "max_wait_seconds": 60},
        {"max_wait_action": "message", "message_prompt": None},
    ],
)
async def test_ending_calls_with_a_message_needs_a_message_prompt(
    app: Any, db: Database, fields: dict[str, Any]
) -> None:
    boss = await _admin(app, db)
    body = _error(await _create(boss, **fields), 422, "message_prompt_required")
    assert body["details"]["field"] == "message_prompt"
    assert await _ok(await boss.client.get("/api/v1/queues")) == []
    queue = await _queue(boss)
    _error(await _patch(boss, queue, **fields), 422, "message_prompt_required")
    await _unchanged(boss, queue)


async def test_a_message_prompt_patch_is_judged_on_the_merged_queue(app: Any, db: Database) -> None:
    boss = await _admin(app, db)
    prompted = await _queue(boss, name="Con mensaje", message_prompt=MESSAGE)
    # A stored prompt lets a patch choose the message action alone...
    chosen = await _ok(await _patch(boss, prompted, max_wait_action="message"))
    assert (chosen["max_wait_action"], chosen["message_prompt"]) == ("message", MESSAGE)
    # ...clearing it while the action still plays it is refused...
    _error(await _patch(boss, chosen, message_prompt=None), 422, "message_prompt_required")
    assert await _ok(await boss.client.get(f"/api/v1/queues/{chosen['id']}")) == chosen
    # ...and allowed together with another action.
    cleared = await _ok(await _patch(boss, chosen, max_wait_action="overflow", message_prompt=None))
    assert (cleared["max_wait_action"], cleared["message_prompt"]) == ("overflow", None)


@pytest.mark.parametrize(
    "prompt",
    [
        "",
        "   ",
        "welcome",
        "http://example.com/hello.wav",
        "sound:/etc/passwd",
        "sound:../secret",
        "digits:12a",
        "sound:a," * 11 + "sound:b",
    ],
)
async def test_a_voicemail_prompt_that_is_not_media_is_refused(
    app: Any, db: Database, prompt: str
) -> None:
    boss = await _admin(app, db)
    created = await _create(boss, closed_action="voicemail", voicemail_prompt=prompt)
    body = _error(created, 422, "voicemail_prompt_invalid")
    assert body["details"]["field"] == "voicemail_prompt"
    assert await _ok(await boss.client.get("/api/v1/queues")) == []
    queue = await _queue(boss, closed_action="voicemail")
    refused = await _patch(boss, queue, voicemail_prompt=prompt)
    assert _error(refused, 422, "voicemail_prompt_invalid")["details"]["field"] == (
        "voicemail_prompt"
    )
    await _unchanged(boss, queue)


@pytest.mark.parametrize(
    "prompt",
    [
        "",
        "   ",
        "closed",
        "http://example.com/closed.wav",
        "sound:/etc/passwd",
        "sound:../secret",
        "digits:12a",
        "sound:a," * 11 + "sound:b",
    ],
)
async def test_a_message_prompt_that_is_not_media_is_refused(
    app: Any, db: Database, prompt: str
) -> None:
    boss = await _admin(app, db)
    created = await _create(boss, max_wait_action="message", message_prompt=prompt)
    body = _error(created, 422, "message_prompt_invalid")
    assert body["details"]["field"] == "message_prompt"
    assert await _ok(await boss.client.get("/api/v1/queues")) == []
    queue = await _queue(boss, max_wait_action="message", message_prompt=MESSAGE)
    for fields in ({"message_prompt": prompt}, {"message_prompt": prompt, "name": "Otra"}):
        refused = await _patch(boss, queue, **fields)
        assert _error(refused, 422, "message_prompt_invalid")["details"]["field"] == (
            "message_prompt"
        )
    await _unchanged(boss, queue)


@pytest.mark.parametrize("seconds", [-1, 1, 14, 3601])
async def test_announcements_are_never_or_every_15_to_3600_seconds(
    app: Any, db: Database, seconds: int
) -> None:
    boss = await _admin(app, db)
    body = _error(await _create(boss, announce_every_seconds=seconds), 422, "validation_error")
    assert body["details"]["errors"][0]["field"] == "announce_every_seconds"
    assert await _ok(await boss.client.get("/api/v1/queues")) == []
    queue = await _queue(boss)
    refused = await _patch(boss, queue, announce_every_seconds=seconds)
    assert _error(refused, 422, "validation_error")["details"]["errors"][0]["field"] == (
        "announce_every_seconds"
    )
    await _unchanged(boss, queue)


@pytest.mark.parametrize(
    "fields",
    [
        {"closed_action": "record"},
        {"max_wait_action": "transfer"},
        {"max_wait_action": None},
        {"announce_every_seconds": None},
        {"announce_every_seconds": "often"},
        {"forward_number": "+52 1" + "0" * 40},
        {"voicemail_prompt": "sound:" + "a" * 200},
        {"message_prompt": "sound:" + "a" * 200},
        {"message_prompt": 123},
        {"max_wait_action": "hang_up"},
    ],
)
async def test_malformed_new_settings_are_refused(
    app: Any, db: Database, fields: dict[str, Any]
) -> None:
    boss = await _admin(app, db)
    _error(await _create(boss, **fields), 422, "validation_error")
    queue = await _queue(boss)
    _error(await _patch(boss, queue, **fields), 422, "validation_error")
    await _unchanged(boss, queue)


async def test_supervisors_read_the_new_settings_but_cannot_change_them(
    app: Any, db: Database
) -> None:
    tenant = await make_tenant(db)
    boss = await caller(app, tenant)
    queue = await _queue(
        boss, closed_action="forward", forward_number=FORWARD, message_prompt=MESSAGE
    )
    watcher = await caller(app, tenant, Role.supervisor)
    read = await _ok(await watcher.client.get(f"/api/v1/queues/{queue['id']}"))
    assert (read["forward_number"], read["message_prompt"]) == (FORWARD, MESSAGE)
    refused = await watcher.client.patch(
        f"/api/v1/queues/{queue['id']}", json={"announce_every_seconds": 30}
    )
    assert refused.status_code == 403, refused.text
    await _unchanged(boss, queue)
