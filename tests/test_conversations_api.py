"""Working conversations through the API: who sees which interaction, replies, notes,
labels, unread counts and the timeline; bad input and repeats change nothing."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from atiende.conversations import service as conversations
from atiende.conversations.models import Channel, InteractionStatus, Message
from atiende.core.clock import TestClock
from atiende.core.db import Database, Scope
from atiende.core.events import EventRecord
from atiende.identity.models import Role
from atiende.routing.models import Disposition
from conversation_factories import offer_to, open_chat, update_interaction
from factories import Caller, caller, make_tenant
from routing_factories import make_queue
from tenancy_helpers import assert_tenant_isolation

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


async def _messages(caller_: Caller, interaction_id: uuid.UUID) -> list[dict]:
    response = await caller_.client.get(f"/api/v1/interactions/{interaction_id}/messages")
    assert response.status_code == 200, response.text
    return response.json()


async def _count_messages(db: Database, tenant_id: uuid.UUID) -> int:
    async with db.session(Scope.tenant(tenant_id)) as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


# --- lists and visibility -------------------------------------------------------------------


async def test_an_agent_lists_only_their_own_assigned_and_wrap_up_interactions(
    app, db: Database
) -> None:
    tenant = await make_tenant(db)
    ana, beto = await caller(app, tenant, Role.agent), await caller(app, tenant, Role.agent)
    assigned, _ = await open_chat(db, tenant, agent_id=ana.id)
    wrapping, _ = await open_chat(db, tenant, agent_id=ana.id, status=InteractionStatus.wrap_up)
    await open_chat(db, tenant, agent_id=ana.id, status=InteractionStatus.closed)
    await open_chat(db, tenant, agent_id=beto.id)
    await open_chat(db, tenant)  # waiting in a queue

    listed = (await ana.client.get("/api/v1/interactions")).json()
    assert {row["id"] for row in listed} == {str(assigned), str(wrapping)}
    assert all(row["agent"]["id"] == str(ana.id) for row in listed)


async def test_a_supervisor_sees_every_open_interaction_and_filters_them(app, db: Database) -> None:
    tenant = await make_tenant(db)
    supervisor = await caller(app, tenant, Role.supervisor)
    ana, beto = await caller(app, tenant, Role.agent), await caller(app, tenant, Role.agent)
    queue = await make_queue(db, tenant)
    of_ana, _ = await open_chat(db, tenant, agent_id=ana.id, queue_id=queue.id)
    of_beto, _ = await open_chat(db, tenant, agent_id=beto.id, channel=Channel.webchat)
    waiting, _ = await open_chat(db, tenant, queue_id=queue.id)
    closed, _ = await open_chat(db, tenant, agent_id=ana.id, status=InteractionStatus.closed)

    async def ids(query: str = "") -> set[str]:
        response = await supervisor.client.get(f"/api/v1/interactions{query}")
        assert response.status_code == 200, response.text
        return {row["id"] for row in response.json()}

    assert await ids() == {str(of_ana), str(of_beto), str(waiting)}
    assert await ids(f"?agent_id={beto.id}") == {str(of_beto)}
    assert await ids(f"?queue_id={queue.id}") == {str(of_ana), str(waiting)}
    assert await ids("?channel=webchat") == {str(of_beto)}
    assert await ids("?status=closed") == {str(closed)}
    assert await ids("?status=queued&status=closed") == {str(waiting), str(closed)}


async def test_the_list_carries_unread_counts_and_reading_resets_the_agents_count(
    app, db: Database
) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    supervisor = await caller(app, tenant, Role.supervisor)
    interaction_id, _ = await open_chat(db, tenant, agent_id=agent.id, inbound=["Hola", "¿Hay?"])

    [row] = (await agent.client.get("/api/v1/interactions")).json()
    assert row["unread_count"] == 2

    # A supervisor looking in does not clear the agent's counter.
    looked = await supervisor.client.post(f"/api/v1/interactions/{interaction_id}/read")
    assert looked.status_code == 200
    assert looked.json()["unread_count"] == 2

    read = await agent.client.post(f"/api/v1/interactions/{interaction_id}/read")
    assert read.status_code == 200
    assert read.json()["unread_count"] == 0
    [row] = (await agent.client.get("/api/v1/interactions")).json()
    assert row["unread_count"] == 0


async def test_an_interaction_an_agent_cannot_see_does_not_exist_for_them(
    app, db: Database
) -> None:
    tenant = await make_tenant(db)
    ana, beto = await caller(app, tenant, Role.agent), await caller(app, tenant, Role.agent)
    interaction_id, _ = await open_chat(db, tenant, agent_id=ana.id)
    base = f"/api/v1/interactions/{interaction_id}"
    for response in (
        await beto.client.get(base),
        await beto.client.get(f"{base}/messages"),
        await beto.client.get(f"{base}/timeline"),
        await beto.client.post(f"{base}/messages", json={"body": "Hijacked"}),
        await beto.client.post(f"{base}/notes", json={"body": "Hijacked"}),
        await beto.client.put(f"{base}/labels", json={"labels": ["x"]}),
        await beto.client.post(f"{base}/read"),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "interaction_not_found"
    assert len(await _messages(ana, interaction_id)) == 1


async def test_an_agent_offered_an_interaction_sees_it_but_cannot_answer_yet(
    app, db: Database
) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    interaction_id, _ = await open_chat(db, tenant)
    await offer_to(db, tenant, interaction_id, agent.id)
    base = f"/api/v1/interactions/{interaction_id}"

    assert (await agent.client.get(base)).json()["status"] == "offered"
    assert len(await _messages(agent, interaction_id)) == 1
    listed = (await agent.client.get("/api/v1/interactions?status=offered")).json()
    assert [row["id"] for row in listed] == [str(interaction_id)]

    refused = await agent.client.post(f"{base}/messages", json={"body": "Hola"})
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    assert len(await _messages(agent, interaction_id)) == 1


async def test_the_detail_names_contact_queue_agent_labels_and_disposition(
    app, db: Database
) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    queue = await make_queue(db, tenant, name="Ventas")
    async with db.session(Scope.tenant(tenant.id)) as session:
        session.add(Disposition(queue_id=queue.id, code="sale", label="Venta cerrada"))
    interaction_id, contact_id = await open_chat(
        db,
        tenant,
        agent_id=agent.id,
        who="5215512345678",
        queue_id=queue.id,
        labels=["vip"],
        disposition_code="sale",
    )
    detail = (await agent.client.get(f"/api/v1/interactions/{interaction_id}")).json()
    assert detail["contact"]["id"] == str(contact_id)
    assert detail["queue"] == {"id": str(queue.id), "name": "Ventas"}
    assert detail["agent"] == {"id": str(agent.id), "name": agent.user.name}
    assert detail["labels"] == ["vip"]
    assert detail["disposition_code"] == "sale"
    assert detail["disposition_label"] == "Venta cerrada"
    assert detail["channel"] == "whatsapp"
    assert detail["status"] == "assigned"


async def test_vendor_staff_do_not_work_conversations(app, db: Database) -> None:
    tenant = await make_tenant(db)
    interaction_id, _ = await open_chat(db, tenant)
    vendor = await caller(app, None, Role.vendor_admin)
    assert (await vendor.client.get("/api/v1/interactions")).status_code == 403
    assert (await vendor.client.get(f"/api/v1/interactions/{interaction_id}")).status_code == 403


# --- replies ---------------------------------------------------------------------------------


async def test_the_assigned_agent_replies_outbound_and_pending_for_the_channel(
    app, db: Database, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    interaction_id, _ = await open_chat(db, tenant, agent_id=agent.id)
    clock.advance(30)

    response = await agent.client.post(
        f"/api/v1/interactions/{interaction_id}/messages", json={"body": "¡Hola! ¿En qué ayudo?"}
    )
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["direction"] == "outbound"
    assert message["author_kind"] == "agent"
    assert message["author_user_id"] == str(agent.id)
    assert message["status"] == "pending"
    assert message["body"] == "¡Hola! ¿En qué ayudo?"

    detail = (await agent.client.get(f"/api/v1/interactions/{interaction_id}")).json()
    assert detail["first_response_at"] is not None
    assert detail["unread_count"] == 0  # answering is reading
    thread = await _messages(agent, interaction_id)
    assert [m["direction"] for m in thread] == ["inbound", "outbound"]
    one = await agent.client.get(f"/api/v1/interactions/{interaction_id}/messages/{message['id']}")
    assert one.json() == message

    async with db.session(Scope.tenant(tenant.id)) as session:
        published = await session.scalar(
            select(EventRecord)
            .where(EventRecord.type == "message.added")
            .order_by(EventRecord.id.desc())
            .limit(1)
        )
    assert published is not None
    assert published.data["message_id"] == message["id"]


async def test_a_reply_sent_again_with_its_client_id_is_stored_once(
    app, db: Database, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    interaction_id, _ = await open_chat(db, tenant, agent_id=agent.id)
    clock.advance(1)
    path = f"/api/v1/interactions/{interaction_id}/messages"
    first = await agent.client.post(path, json={"body": "Listo", "client_id": "c-1"})
    again = await agent.client.post(path, json={"body": "Listo", "client_id": "c-1"})
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert [m["body"] for m in await _messages(agent, interaction_id)] == ["Hola", "Listo"]

    # Even once the interaction is closed, a late re-send still gets its message back.
    await update_interaction(db, tenant, interaction_id, status=InteractionStatus.closed)
    late = await agent.client.post(path, json={"body": "Listo", "client_id": "c-1"})
    assert late.status_code == 200
    assert late.json()["id"] == first.json()["id"]


async def test_a_client_id_already_used_by_someone_else_is_a_conflict(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    supervisor = await caller(app, tenant, Role.supervisor)
    interaction_id, _ = await open_chat(db, tenant, agent_id=agent.id)
    path = f"/api/v1/interactions/{interaction_id}"
    await agent.client.post(f"{path}/messages", json={"body": "Hola", "client_id": "same"})
    by_other = await supervisor.client.post(
        f"{path}/messages", json={"body": "Otro", "client_id": "same"}
    )
    as_note = await agent.client.post(f"{path}/notes", json={"body": "Nota", "client_id": "same"})
    for response in (by_other, as_note):
        assert response.status_code == 409
        assert response.json()["code"] == "client_id_taken"
    assert len(await _messages(agent, interaction_id)) == 2


async def test_a_closed_interaction_takes_no_more_replies(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    interaction_id, _ = await open_chat(
        db, tenant, agent_id=agent.id, status=InteractionStatus.closed
    )
    response = await agent.client.post(
        f"/api/v1/interactions/{interaction_id}/messages", json={"body": "¿Sigues ahí?"}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "interaction_closed"
    assert len(await _messages(agent, interaction_id)) == 1


async def test_a_supervisor_may_reply_but_another_agent_may_not(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    supervisor = await caller(app, tenant, Role.supervisor)
    interaction_id, _ = await open_chat(db, tenant, agent_id=agent.id)
    response = await supervisor.client.post(
        f"/api/v1/interactions/{interaction_id}/messages", json={"body": "Soy la supervisora"}
    )
    assert response.status_code == 201
    assert response.json()["author_user_id"] == str(supervisor.id)


async def test_a_reply_carries_its_uploaded_attachments(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    interaction_id, _ = await open_chat(db, tenant, agent_id=agent.id)
    uploaded = await agent.client.post(
        "/api/v1/attachments", files={"file": ("factura.png", PNG, "image/png")}
    )
    assert uploaded.status_code == 201, uploaded.text
    attachment = uploaded.json()

    response = await agent.client.post(
        f"/api/v1/interactions/{interaction_id}/messages",
        json={"attachment_ids": [attachment["id"]]},
    )
    assert response.status_code == 201, response.text
    assert response.json()["attachments"] == [
        {"id": attachment["id"], "name": "factura.png", "content_type": "image/png", "size": 40}
    ]


async def test_a_reply_with_an_unknown_or_foreign_attachment_changes_nothing(
    app, db: Database
) -> None:
    acme, globex = await make_tenant(db), await make_tenant(db)
    agent = await caller(app, acme, Role.agent)
    outsider = await caller(app, globex, Role.agent)
    interaction_id, _ = await open_chat(db, acme, agent_id=agent.id)
    foreign = (
        await outsider.client.post(
            "/api/v1/attachments", files={"file": ("x.png", PNG, "image/png")}
        )
    ).json()
    before = await _count_messages(db, acme.id)
    for attachment_id in (str(uuid.uuid4()), foreign["id"]):
        response = await agent.client.post(
            f"/api/v1/interactions/{interaction_id}/messages",
            json={"body": "adjunto", "attachment_ids": [attachment_id]},
        )
        assert response.status_code == 422
        assert response.json()["code"] == "attachment_not_found"
    assert await _count_messages(db, acme.id) == before


async def test_malformed_replies_are_refused_and_change_nothing(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    interaction_id, _ = await open_chat(db, tenant, agent_id=agent.id)
    path = f"/api/v1/interactions/{interaction_id}"
    before = await _count_messages(db, tenant.id)
    for response in (
        await agent.client.post(f"{path}/messages", json={"body": "   "}),
        await agent.client.post(f"{path}/messages", json={}),
        await agent.client.post(f"{path}/messages", json={"body": "x" * 10_001}),
        await agent.client.post(f"{path}/messages", json={"body": "hola", "extra": 1}),
        await agent.client.post(f"{path}/messages", json={"body": "hola", "client_id": ""}),
        await agent.client.post(f"{path}/notes", json={"body": ""}),
        await agent.client.put(f"{path}/labels", json={"labels": ["ok", "  "]}),
        await agent.client.put(f"{path}/labels", json={"labels": [str(i) for i in range(21)]}),
        await agent.client.get("/api/v1/interactions/not-a-uuid"),
        await agent.client.get("/api/v1/interactions?status=sleeping"),
    ):
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_error"
    assert await _count_messages(db, tenant.id) == before
    assert (await agent.client.get(path)).json()["labels"] == []


# --- notes, labels, timeline -----------------------------------------------------------------


async def test_notes_are_internal_seen_by_staff_and_never_by_the_customer(
    app, db: Database, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    supervisor = await caller(app, tenant, Role.supervisor)
    interaction_id, _ = await open_chat(db, tenant, agent_id=agent.id)
    clock.advance(1)
    note = await supervisor.client.post(
        f"/api/v1/interactions/{interaction_id}/notes", json={"body": "Cliente VIP, trato fino"}
    )
    assert note.status_code == 201
    assert note.json()["direction"] == "internal"
    assert note.json()["status"] == "sent"

    staff_view = await _messages(agent, interaction_id)
    assert [m["direction"] for m in staff_view] == ["inbound", "internal"]
    async with db.session(Scope.tenant(tenant.id)) as session:
        customer_view = await conversations.list_messages(
            session, interaction_id, include_internal=False
        )
    assert [m.body for m in customer_view] == ["Hola"]


async def test_a_note_can_be_added_after_the_close(app, db: Database) -> None:
    tenant = await make_tenant(db)
    supervisor = await caller(app, tenant, Role.supervisor)
    interaction_id, _ = await open_chat(db, tenant, status=InteractionStatus.closed)
    response = await supervisor.client.post(
        f"/api/v1/interactions/{interaction_id}/notes", json={"body": "Revisado en calidad"}
    )
    assert response.status_code == 201


async def test_labels_are_replaced_without_duplicates_and_recorded(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    interaction_id, _ = await open_chat(db, tenant, agent_id=agent.id)
    path = f"/api/v1/interactions/{interaction_id}"
    first = await agent.client.put(f"{path}/labels", json={"labels": ["vip", " queja ", "vip"]})
    assert first.status_code == 200
    assert first.json()["labels"] == ["vip", "queja"]
    second = await agent.client.put(f"{path}/labels", json={"labels": ["queja", "factura"]})
    assert second.json()["labels"] == ["queja", "factura"]
    # The same labels again change nothing and write nothing.
    await agent.client.put(f"{path}/labels", json={"labels": ["queja", "factura"]})

    timeline = (await agent.client.get(f"{path}/timeline")).json()
    labelled = [entry for entry in timeline if entry["type"] == "labels"]
    assert [(e["data"]["added"], e["data"]["removed"]) for e in labelled] == [
        (["vip", "queja"], []),
        (["factura"], ["vip"]),
    ]
    assert all(e["actor_id"] == str(agent.id) for e in labelled)


async def test_the_timeline_lists_what_happened_in_order(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    interaction_id, _ = await open_chat(db, tenant, agent_id=agent.id)
    path = f"/api/v1/interactions/{interaction_id}"
    await agent.client.post(f"{path}/messages", json={"body": "Hola"})
    await agent.client.post(f"{path}/notes", json={"body": "Nota"})
    timeline = (await agent.client.get(f"{path}/timeline")).json()
    assert [entry["type"] for entry in timeline] == ["created", "message_in", "message_out", "note"]
    assert [entry["id"] for entry in timeline] == sorted(entry["id"] for entry in timeline)


# --- tenants ----------------------------------------------------------------------------------


async def test_interactions_are_invisible_to_another_tenant(app, db: Database) -> None:
    acme, globex = await make_tenant(db), await make_tenant(db)
    owner = await caller(app, acme, Role.supervisor)
    intruder = await caller(app, globex, Role.supervisor)
    interaction_id, _ = await open_chat(db, acme)
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"/api/v1/interactions/{interaction_id}",
        list_path="/api/v1/interactions",
        change=None,
        deletable=False,
    )
    base = f"/api/v1/interactions/{interaction_id}"
    for response in (
        await intruder.client.get(f"{base}/messages"),
        await intruder.client.get(f"{base}/timeline"),
        await intruder.client.post(f"{base}/messages", json={"body": "x"}),
        await intruder.client.post(f"{base}/notes", json={"body": "x"}),
        await intruder.client.put(f"{base}/labels", json={"labels": ["x"]}),
        await intruder.client.post(f"{base}/read"),
    ):
        assert response.status_code == 404
    assert (await owner.client.get(base)).json()["labels"] == []
    assert len(await _messages(owner, interaction_id)) == 1


async def test_messages_are_invisible_to_another_tenant(app, db: Database) -> None:
    acme, globex = await make_tenant(db), await make_tenant(db)
    owner = await caller(app, acme, Role.supervisor)
    intruder = await caller(app, globex, Role.supervisor)
    interaction_id, _ = await open_chat(db, acme)
    [message] = await _messages(owner, interaction_id)
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"/api/v1/interactions/{interaction_id}/messages/{message['id']}",
        list_path=None,
        change=None,
        deletable=False,
    )


async def test_a_message_id_of_another_interaction_is_not_found(app, db: Database) -> None:
    tenant = await make_tenant(db)
    supervisor = await caller(app, tenant, Role.supervisor)
    first, _ = await open_chat(db, tenant)
    second, _ = await open_chat(db, tenant)
    [message] = await _messages(supervisor, second)
    response = await supervisor.client.get(f"/api/v1/interactions/{first}/messages/{message['id']}")
    assert response.status_code == 404
    assert response.json()["code"] == "message_not_found"


async def test_the_sql_visibility_rule_agrees_with_routing(app, db: Database) -> None:
    """``visible_to`` (lists) and ``routing.service.can_see_interaction`` (one) agree."""
    from atiende.identity import service as identity
    from atiende.routing import service as routing

    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    other = await caller(app, tenant, Role.agent)
    mine, _ = await open_chat(db, tenant, agent_id=agent.id)
    offered, _ = await open_chat(db, tenant)
    await offer_to(db, tenant, offered, agent.id)
    others, _ = await open_chat(db, tenant, agent_id=other.id)
    waiting, _ = await open_chat(db, tenant)
    actor = identity.actor_for(agent.user)
    async with db.session(Scope.tenant(tenant.id)) as session:
        listed = set(
            await session.scalars(
                select(conversations.Interaction.id).where(conversations.visible_to(actor))
            )
        )
        for interaction_id in (mine, offered, others, waiting):
            one = await conversations.get_interaction(session, interaction_id)
            assert (interaction_id in listed) == await routing.can_see_interaction(
                session, actor, one
            )
    assert listed == {mine, offered}
