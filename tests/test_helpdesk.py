"""Support cases through the API: who may open them, the first-response SLA, the support
team's work, closing with the terms' reasons, files, warnings and compliance."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select

from atiende.core.db import Database, Scope
from atiende.helpdesk import service as helpdesk
from atiende.identity.models import Role, User
from billing_factories import billing_staff, buyer, cloud_terms, mails_to, order, pay
from factories import Caller, api_client, caller, make_tenant, make_token

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
MODERATE = {
    "severity": "moderate",
    "title": "Calls drop after transfer",
    "description": "Since Monday every blind transfer to queue Ventas drops the caller.",
    "product_area": "voice",
}


def mexico(day: str, hour: int, minute: int = 0) -> datetime:
    """A Mexico City wall-clock time (UTC-6) as an aware UTC datetime."""
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=UTC) + timedelta(
        hours=6
    )


async def customer_with_subscription(app: FastAPI, *addons: str) -> Caller:
    customer = await buyer(app)
    purchase = await order(
        customer, deployment="on_premise", license="voice", agents=10, addons=list(addons)
    )
    await pay(await billing_staff(app), purchase.invoice)
    return customer


async def open_case(who: Caller, **fields: Any) -> dict[str, Any]:
    response = await who.client.post("/api/v1/helpdesk/cases", json={**MODERATE, **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_moderate_case_is_due_after_eight_business_hours(
    app: FastAPI, db: Database
) -> None:
    app.state.atiende.clock.set(mexico("2026-11-25", 10))  # Wednesday 10:00
    customer = await customer_with_subscription(app)

    case = await open_case(customer)

    assert case["sla"]["due_at"] == "2026-11-26T10:00:00-06:00"
    assert (case["state"], case["plan"], case["sla"]["met"]) == ("new", "standard", None)
    (received,) = await mails_to(db, customer.user.email, "helpdesk.received")
    assert "2026-11-26 10:00" in received.text_body


async def test_critical_cases_follow_the_plan(app: FastAPI) -> None:
    app.state.atiende.clock.set(mexico("2026-11-28", 20))  # Saturday 20:00
    standard = await customer_with_subscription(app)
    around_the_clock = await customer_with_subscription(app, "support_24x7")
    assert (await open_case(standard, severity="critical"))["sla"]["due_at"] == (
        "2026-11-29T13:00:00-06:00"
    )
    case = await open_case(around_the_clock, severity="critical")
    assert (case["plan"], case["sla"]["due_at"]) == ("24x7", "2026-11-29T00:00:00-06:00")


async def test_only_accounts_with_an_active_subscription_open_cases(
    app: FastAPI, db: Database
) -> None:
    unpaid = await buyer(app)
    await order(unpaid, deployment="on_premise", license="voice", agents=10)
    refused = await unpaid.client.post("/api/v1/helpdesk/cases", json=MODERATE)
    assert (refused.status_code, refused.json()["code"]) == (403, "subscription_required")
    unmetered_admin = await caller(app, await make_tenant(db), Role.admin)
    refused = await unmetered_admin.client.post("/api/v1/helpdesk/cases", json=MODERATE)
    assert (refused.status_code, refused.json()["code"]) == (403, "subscription_required")
    agent = await caller(app, await make_tenant(db), Role.agent)
    assert (await agent.client.post("/api/v1/helpdesk/cases", json=MODERATE)).status_code == 403
    short = await (await customer_with_subscription(app)).client.post(
        "/api/v1/helpdesk/cases", json={**MODERATE, "description": "broken"}
    )
    assert short.status_code == 422
    async with db.session(Scope.system(), read_only=True) as session:
        assert (await session.scalars(select(helpdesk.SupportCase))).all() == []


async def test_a_tenant_admin_and_the_buyer_share_their_accounts_cases(
    app: FastAPI, db: Database
) -> None:
    customer = await buyer(app)
    terms = cloud_terms(agents=5, pbx_users=5)
    purchase = await order(customer, **terms)
    await pay(await billing_staff(app), purchase.invoice)
    async with db.session(Scope.system(), read_only=True) as session:
        admin = await session.scalar(select(User).where(User.email == terms["admin_email"]))
    assert admin is not None
    tenant_admin = Caller(user=admin, client=api_client(app, await make_token(db, admin)))

    case = await open_case(tenant_admin)

    assert [c["id"] for c in (await customer.client.get("/api/v1/helpdesk/cases")).json()] == [
        case["id"]
    ]
    stranger = await customer_with_subscription(app)
    assert (await stranger.client.get(f"/api/v1/helpdesk/cases/{case['id']}")).status_code == 404
    assert (await stranger.client.get("/api/v1/helpdesk/cases")).json() == []


async def test_support_works_a_case_and_the_first_reply_stops_the_clock(
    app: FastAPI, db: Database
) -> None:
    app.state.atiende.clock.set(mexico("2026-11-25", 10))
    customer = await customer_with_subscription(app)
    support = await caller(app, None, Role.vendor_support)
    later = await open_case(customer, severity="consultation", title="How to export reports")
    sooner = await open_case(customer, severity="critical", title="Platform down for all")
    queue = (await support.client.get("/api/v1/helpdesk/cases?open=true")).json()
    assert [c["id"] for c in queue] == [sooner["id"], later["id"]]
    path = f"/api/v1/helpdesk/cases/{sooner['id']}"
    assigned = (await support.client.post(f"{path}/assign", json={})).json()
    assert assigned["assignee_id"] == str(support.user.id)

    app.state.atiende.clock.set(mexico("2026-11-25", 11))
    note = await support.client.post(
        f"{path}/messages", json={"body": "Looks like trunk", "internal": True}
    )
    assert note.status_code == 201
    assert (await support.client.get(path)).json()["first_response_at"] is None
    reply = await support.client.post(f"{path}/messages", json={"body": "We are on it."})
    assert reply.status_code == 201

    detail = (await customer.client.get(path)).json()
    assert detail["state"] == "in_progress"
    assert detail["sla"]["met"] is True
    assert [m["body"] for m in detail["messages"]] == ["We are on it."]  # no internal note
    assert "note" not in [e["kind"] for e in detail["events"]]
    staff_view = (await support.client.get(path)).json()
    assert "note" in [e["kind"] for e in staff_view["events"]]
    (reply_mail,) = await mails_to(db, customer.user.email, "helpdesk.reply")
    assert "We are on it." in reply_mail.text_body
    waiting = await support.client.post(f"{path}/state", json={"state": "waiting_on_customer"})
    assert waiting.json()["state"] == "waiting_on_customer"
    await customer.client.post(f"{path}/messages", json={"body": "Here are the logs."})
    assert (await customer.client.get(path)).json()["state"] == "in_progress"
    by_customer = await customer.client.post(f"{path}/assign", json={})
    assert by_customer.status_code == 403


async def test_a_severity_correction_moves_the_due_time_from_the_opening(app: FastAPI) -> None:
    app.state.atiende.clock.set(mexico("2026-11-25", 10))
    customer = await customer_with_subscription(app)
    support = await caller(app, None, Role.vendor_support)
    case = await open_case(customer, severity="critical")
    assert case["sla"]["due_at"] == "2026-11-25T14:00:00-06:00"
    app.state.atiende.clock.set(mexico("2026-11-25", 12))
    changed = await support.client.post(
        f"/api/v1/helpdesk/cases/{case['id']}/severity",
        json={"severity": "moderate", "reason": "One user affected, not the platform"},
    )
    assert changed.json()["sla"]["due_at"] == "2026-11-26T10:00:00-06:00"
    events = (await support.client.get(f"/api/v1/helpdesk/cases/{case['id']}")).json()["events"]
    assert events[-1]["data"]["reason"] == "One user affected, not the platform"
    refused = await customer.client.post(
        f"/api/v1/helpdesk/cases/{case['id']}/severity",
        json={"severity": "critical", "reason": "x!!"},
    )
    assert refused.status_code == 403


async def test_closing_needs_a_reason_of_the_terms_and_reopens_within_the_window(
    app: FastAPI, db: Database
) -> None:
    app.state.atiende.clock.set(mexico("2026-11-25", 10))
    customer = await customer_with_subscription(app)
    support = await caller(app, None, Role.vendor_support)
    case = await open_case(customer)
    path = f"/api/v1/helpdesk/cases/{case['id']}"

    solved_by_customer = await customer.client.post(f"{path}/close", json={"reason": "solved"})
    assert solved_by_customer.status_code == 403
    no_category = await support.client.post(f"{path}/close", json={"reason": "out_of_scope"})
    assert (no_category.status_code, no_category.json()["code"]) == (
        422,
        "excluded_category_mismatch",
    )
    bad = await support.client.post(f"{path}/close", json={"reason": "fixed_itself"})
    assert bad.status_code == 422
    closed = await support.client.post(
        f"{path}/close",
        json={"reason": "out_of_scope", "excluded_category": "customer_infrastructure"},
    )
    assert (closed.json()["state"], closed.json()["close_reason"]) == ("closed", "out_of_scope")
    assert len(await mails_to(db, customer.user.email, "helpdesk.closed")) == 1
    writing = await customer.client.post(f"{path}/messages", json={"body": "still broken"})
    assert (writing.status_code, writing.json()["code"]) == (409, "case_closed")

    app.state.atiende.clock.set(mexico("2026-11-30", 10))
    reopened = await customer.client.post(f"{path}/reopen")
    assert reopened.json()["state"] == "new"
    await customer.client.post(f"{path}/close", json={"reason": "customer_archived"})
    app.state.atiende.clock.set(mexico("2026-12-08", 10))
    late = await customer.client.post(f"{path}/reopen")
    assert (late.status_code, late.json()["code"]) == (409, "reopen_window_passed")


async def test_files_are_checked_and_served_only_to_the_account_and_support(app: FastAPI) -> None:
    customer = await customer_with_subscription(app)
    stranger = await customer_with_subscription(app)
    support = await caller(app, None, Role.vendor_support)
    case = await open_case(customer)
    path = f"/api/v1/helpdesk/cases/{case['id']}/files"

    uploaded = await customer.client.post(path, files={"file": ("screen.png", PNG, "image/png")})
    assert uploaded.status_code == 201, uploaded.text
    disguised = await customer.client.post(
        path, files={"file": ("screen.png", b"MZ\x90\x00binary", "image/png")}
    )
    assert disguised.status_code == 415
    file_url = f"{path}/{uploaded.json()['id']}"
    assert (await support.client.get(file_url)).content == PNG
    assert (await stranger.client.get(file_url)).status_code == 404
    message = await customer.client.post(
        f"/api/v1/helpdesk/cases/{case['id']}/messages",
        json={"body": "see screenshot", "attachment_ids": [uploaded.json()["id"]]},
    )
    assert message.status_code == 201
    foreign = await customer.client.post(
        f"/api/v1/helpdesk/cases/{case['id']}/messages",
        json={"body": "x", "attachment_ids": [str(uuid.uuid4())]},
    )
    assert (foreign.status_code, foreign.json()["code"]) == (422, "unknown_attachment")


async def test_the_team_hears_once_when_a_case_is_at_risk_and_once_when_breached(
    app: FastAPI, db: Database
) -> None:
    app.state.atiende.clock.set(mexico("2026-11-25", 10))
    customer = await customer_with_subscription(app)
    case = await open_case(customer, severity="critical")  # due 14:00
    settings = app.state.atiende.settings

    async def watch_at(hour: int, minute: int = 0) -> dict[str, int]:
        app.state.atiende.clock.set(mexico("2026-11-25", hour, minute))
        async with db.session(Scope.system()) as session:
            return await helpdesk.watch_sla(session, settings=settings)

    assert await watch_at(12, 59) == {"at_risk": 0, "breached": 0}
    assert await watch_at(13, 0) == {"at_risk": 1, "breached": 0}  # 75 % of 4 h
    assert await watch_at(13, 30) == {"at_risk": 0, "breached": 0}
    assert await watch_at(14, 0) == {"at_risk": 0, "breached": 0}  # due, not yet breached
    assert await watch_at(14, 1) == {"at_risk": 0, "breached": 1}
    assert await watch_at(15, 0) == {"at_risk": 0, "breached": 0}
    team = await mails_to(db, settings.support_team_email)
    assert [m.kind for m in team] == ["helpdesk.sla_at_risk", "helpdesk.sla_breached"]
    detail = (await customer.client.get(f"/api/v1/helpdesk/cases/{case['id']}")).json()
    assert detail["sla"]["breached"] is True


async def test_compliance_counts_first_responses_per_severity(app: FastAPI) -> None:
    app.state.atiende.clock.set(mexico("2026-11-25", 10))
    customer = await customer_with_subscription(app)
    support = await caller(app, None, Role.vendor_support)
    in_time = await open_case(customer, severity="critical")
    await open_case(customer, severity="critical")  # never answered
    app.state.atiende.clock.set(mexico("2026-11-25", 11))
    await support.client.post(
        f"/api/v1/helpdesk/cases/{in_time['id']}/messages", json={"body": "Hi"}
    )
    app.state.atiende.clock.set(mexico("2026-11-26", 9))

    report = (await support.client.get("/api/v1/helpdesk/compliance?month=2026-11")).json()

    critical = next(r for r in report["rows"] if r["severity"] == "critical")
    assert critical == {
        "severity": "critical",
        "opened": 2,
        "answered_in_time": 1,
        "answered_late": 0,
        "unanswered_breached": 1,
        "open_in_time": 0,
        "compliance_percent": 50.0,
    }
    assert (
        await customer.client.get("/api/v1/helpdesk/compliance?month=2026-11")
    ).status_code == 403
