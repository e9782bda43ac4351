"""Historical reports (the ``reports`` add-on): interaction history exported as CSV with
wait, handling and first-response times, for spreadsheets and BI tools.

Real-time views (wallboard, queue figures) need no add-on; history does.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.billing import entitlements
from atiende.conversations.models import Interaction
from atiende.core.db import require_tenant
from atiende.core.errors import PermissionDenied, ValidationFailed
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.routing.models import Queue

READERS = frozenset({Role.admin, Role.supervisor})
MAX_ROWS = 100_000
COLUMNS = (
    "interaction_id",
    "channel",
    "status",
    "queue",
    "agent",
    "created_at",
    "first_enqueued_at",
    "assigned_at",
    "first_response_at",
    "closed_at",
    "wait_seconds",
    "first_response_seconds",
    "handle_seconds",
    "disposition",
    "labels",
)


def _seconds(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return str(max(0, round((end - start).total_seconds())))


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


async def interactions_csv(
    session: AsyncSession, actor: Actor, *, since: datetime, until: datetime
) -> str:
    """Interactions created in [since, until), oldest first, one CSV row each."""
    if actor.role not in READERS:
        raise PermissionDenied()
    tenant_id = require_tenant(session)
    await entitlements.require_addon(session, tenant_id, "reports")
    if since.tzinfo is None or until.tzinfo is None:
        raise ValidationFailed(
            "Give times with their offset, e.g. 2026-11-01T00:00:00-06:00.",
            code="naive_datetime",
        )
    if until <= since:
        raise ValidationFailed("The period ends before it starts.", code="invalid_period")
    rows: Sequence[Interaction] = (
        await session.scalars(
            select(Interaction)
            .where(Interaction.created_at >= since, Interaction.created_at < until)
            .order_by(Interaction.created_at, Interaction.id)
            .limit(MAX_ROWS + 1)
        )
    ).all()
    if len(rows) > MAX_ROWS:
        raise ValidationFailed(
            f"More than {MAX_ROWS} interactions: export a shorter period.",
            code="report_too_large",
        )
    queues = {q.id: q.name for q in (await session.scalars(select(Queue))).all()}
    agent_ids = {r.agent_id for r in rows if r.agent_id}
    agents = {
        u.id: u.name
        for u in (await session.scalars(select(User).where(User.id.in_(agent_ids)))).all()
    }
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow(
            [
                r.id,
                r.channel.value,
                r.status.value,
                queues.get(r.queue_id, "") if r.queue_id else "",
                agents.get(r.agent_id, "") if r.agent_id else "",
                _iso(r.created_at),
                _iso(r.first_enqueued_at),
                _iso(r.assigned_at),
                _iso(r.first_response_at),
                _iso(r.closed_at),
                _seconds(r.first_enqueued_at, r.assigned_at),
                _seconds(r.created_at, r.first_response_at),
                _seconds(r.assigned_at, r.closed_at),
                r.disposition_code or "",
                " ".join(r.labels or []),
            ]
        )
    return out.getvalue()
