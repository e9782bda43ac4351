"""Recording retention: call recordings older than the tenant's ``recording_retention_days``
are deleted from the PBX that stored them.

A recording's age counts from the end of its call (when call control marked it ``done``).
Each PBX is asked in turn, oldest recordings first: ``DELETE /recordings/stored/{name}``,
where a 404 means the file is already gone. Then the call's ``recording_state`` becomes
``deleted``, the interaction's timeline gets ``recording.deleted`` and the audit log
``recording.delete``. A PBX that cannot be reached (or refuses the login) keeps its rows as
they are for the next run; a recording the PBX refuses to delete for another reason is left
too, and logged. A run stops after a batch per PBX or a time budget, and says whether work is
left, so one run never holds the database for long.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.audit import service as audit
from atiende.conversations import service as conversations
from atiende.conversations.models import Interaction
from atiende.core.config import Settings
from atiende.core.db import in_tenant, now
from atiende.identity.actor import Actor
from atiende.tenancy.models import Tenant
from atiende.voice.ari import AriAuthFailed, AriClient, AriRequestFailed, AriUnavailable
from atiende.voice.models import Call, Pbx
from atiende.voice.service import ari_client

log = logging.getLogger(__name__)

DONE: Final = "done"
DELETED: Final = "deleted"
NOT_FOUND: Final = 404
#: Recordings deleted per PBX in one run, and how long a run may go on.
BATCH: Final = 200
TIME_BUDGET_SECONDS: Final = 30.0
ARI_TIMEOUT_SECONDS: Final = 5.0


@dataclass(slots=True)
class RetentionRun:
    deleted: int = 0  # files the PBX deleted now
    already_gone: int = 0  # files the PBX no longer had (404): rows marked all the same
    left: int = 0  # due recordings left for the next run (PBX away or refusing)
    more: bool = False  # a batch or the time budget ran out with work left: run again soon


async def delete_expired_recordings(
    session: AsyncSession,
    *,
    settings: Settings,
    batch: int = BATCH,
    time_budget: float = TIME_BUDGET_SECONDS,
) -> RetentionRun:
    """One pass over every PBX of the tenants that keep recordings for a limited time (in a
    system-scoped unit of work: the daily job's)."""
    run = RetentionRun()
    started = time.monotonic()
    instant = now(session)
    pbxs = (
        await session.execute(
            select(Pbx, Tenant.recording_retention_days)
            .join(Tenant, Tenant.id == Pbx.tenant_id)
            .where(Tenant.recording_retention_days > 0)
            .order_by(Pbx.tenant_id, Pbx.name)
        )
    ).all()
    for pbx, days in pbxs:
        if time.monotonic() - started > time_budget:
            run.more = True
            break
        async with in_tenant(session, pbx.tenant_id):
            due = await _due(session, pbx, instant - timedelta(days=days), batch)
            if not due:
                continue
            async with ari_client(settings, pbx, timeout=ARI_TIMEOUT_SECONDS) as client:
                done = await _delete(session, client, pbx, due, days=days, run=run)
            await session.flush()
        # A full batch means more may be due; a PBX that is away is tried tomorrow.
        if len(due) == batch and done:
            run.more = True
    return run


async def _due(session: AsyncSession, pbx: Pbx, cutoff: datetime, batch: int) -> Sequence[Call]:
    return (
        await session.scalars(
            select(Call)
            .where(
                Call.pbx_id == pbx.id,
                Call.recording_name.is_not(None),
                Call.recording_state == DONE,
                Call.ended_at < cutoff,
            )
            .order_by(Call.ended_at, Call.id)
            .limit(batch)
        )
    ).all()


async def _delete(
    session: AsyncSession,
    client: AriClient,
    pbx: Pbx,
    due: Sequence[Call],
    *,
    days: int,
    run: RetentionRun,
) -> int:
    """Delete the due recordings of one PBX; returns how many rows were marked deleted."""
    done = 0
    for index, call in enumerate(due):
        name = call.recording_name or ""
        already_gone = False
        try:
            await client.delete_stored_recording(name)
        except (AriAuthFailed, AriUnavailable) as error:
            log.warning("PBX %s: recordings kept for the next run: %s", pbx.name, error)
            run.left += len(due) - index
            return done
        except AriRequestFailed as error:
            if error.status != NOT_FOUND:
                log.warning("PBX %s: recording %s not deleted: %s", pbx.name, name, error)
                run.left += 1
                continue
            already_gone = True
        await _mark_deleted(session, call, name, days, already_gone=already_gone)
        done += 1
        if already_gone:
            run.already_gone += 1
        else:
            run.deleted += 1
    return done


async def _mark_deleted(
    session: AsyncSession, call: Call, name: str, days: int, *, already_gone: bool
) -> None:
    call.recording_state = DELETED
    interaction = await session.get(Interaction, call.interaction_id)
    if interaction is not None:
        await conversations.record(
            session,
            interaction,
            "recording.deleted",
            call_id=str(call.id),
            recording=name,
            reason="retention",
            retention_days=days,
        )
    await audit.record(
        session,
        Actor.system(),
        "recording.delete",
        resource_type="call",
        resource_id=call.id,
        tenant_id=call.tenant_id,
        before={"recording": DONE},
        after={
            "recording": DELETED,
            "name": name,
            "interaction_id": str(call.interaction_id),
            "reason": "retention",
            "retention_days": days,
            "already_gone": already_gone,
        },
    )
