"""The cross-tenant proof every resource gets.

``assert_tenant_isolation`` takes a row that tenant A owns and shows that a caller of tenant B
cannot list, read, change or delete it (404 each time, never 403, so B learns nothing about
its existence), and that A's row is byte-for-byte unchanged afterwards.
"""

from __future__ import annotations

from typing import Any

from factories import Caller


async def assert_tenant_isolation(
    *,
    owner: Caller,
    intruder: Caller,
    item_path: str,
    list_path: str | None,
    change: dict[str, Any] | None,
    deletable: bool,
    change_method: str = "PATCH",
) -> None:
    before = await owner.client.get(item_path)
    assert before.status_code == 200, f"owner cannot read {item_path}: {before.text}"
    resource_id = before.json()["id"]

    if list_path is not None:
        listed = await intruder.client.get(list_path)
        assert listed.status_code in {200, 403}, listed.text
        if listed.status_code == 200:
            assert resource_id not in {row["id"] for row in listed.json()}

    read = await intruder.client.get(item_path)
    assert read.status_code == 404, f"tenant B read {item_path}: {read.status_code}"
    assert read.json()["code"].endswith("not_found")

    if change is not None:
        changed = await intruder.client.request(change_method, item_path, json=change)
        assert changed.status_code == 404, f"tenant B changed {item_path}: {changed.status_code}"

    if deletable:
        deleted = await intruder.client.delete(item_path)
        assert deleted.status_code == 404, f"tenant B deleted {item_path}: {deleted.status_code}"

    after = await owner.client.get(item_path)
    assert after.status_code == 200
    assert after.json() == before.json(), "tenant A's row changed"
