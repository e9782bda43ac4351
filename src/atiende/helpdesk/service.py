"""Support cases: opened only through the helpdesk by people of an account with an active
subscription, answered by support staff against a first-response SLA (``sla.py``), closed
with one of the reasons of the terms.

Who may do what:

- the **customer**: the buyer of the account, or an administrator or supervisor of a cloud
  tenant the account bought. They open cases, read their account's cases (never support's
  internal notes), reply, attach files, close a case as confirmed or archived, and reopen a
  closed one within ``support_reopen_days``;
- **support staff** (``vendor_support``, ``vendor_admin``): every case; assign, reply (the
  first public reply stops the SLA clock), internal notes, waiting-on-customer, severity
  corrections with a reason (the due time follows, from the opening time), closing with
  any reason.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.attachments import media
from atiende.attachments import service as attachments
from atiende.attachments.storage import AttachmentStore
from atiende.audit import service as audit
from atiende.billing.models import BillingAccount, Subscription, SubscriptionStatus
from atiende.core.config import Settings
from atiende.core.db import next_number, now
from atiende.core.errors import AtiendeError, Conflict, NotFound, PermissionDenied, ValidationFailed
from atiende.core.ids import new_id
from atiende.helpdesk import sla
from atiende.helpdesk.models import (
    CaseCounter,
    CaseEvent,
    CaseFile,
    CaseMessage,
    CaseState,
    CloseReason,
    SupportCase,
)
from atiende.helpdesk.schemas import (
    CaseIn,
    CloseIn,
    ComplianceOut,
    ComplianceRow,
    MessageIn,
    SlaOut,
)
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.mail import service as mail

STAFF = frozenset({Role.vendor_support, Role.vendor_admin})
CUSTOMER_TENANT_ROLES = frozenset({Role.admin, Role.supervisor})
SUPPORTED = (SubscriptionStatus.active, SubscriptionStatus.past_due)
CUSTOMER_CLOSE_REASONS = frozenset({CloseReason.customer_confirmed, CloseReason.customer_archived})
MEXICO_CITY = ZoneInfo("America/Mexico_City")
CASE_FILE_MAX_BYTES = 10 * 1024 * 1024
CASE_FILE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"}
)


class SubscriptionRequired(AtiendeError):
    status_code = 403
    code = "subscription_required"
    default_message = "Support is for accounts with an active subscription; this account has none."


@dataclass(frozen=True, slots=True)
class Customer:
    account: BillingAccount
    subscription: Subscription | None  # the one that gives support, if any


def is_staff(actor: Actor) -> bool:
    return actor.role in STAFF


async def _customer(session: AsyncSession, actor: Actor) -> Customer:
    """The account the caller acts for, and its subscription that gives support now."""
    if actor.role is Role.buyer and actor.user_id is not None:
        account = await session.scalar(
            select(BillingAccount).where(BillingAccount.owner_id == actor.user_id)
        )
        if account is None:
            raise PermissionDenied()
        subscriptions = (
            await session.scalars(
                select(Subscription)
                .where(Subscription.account_id == account.id, Subscription.status.in_(SUPPORTED))
                .order_by(Subscription.created_at)
            )
        ).all()
        best = sorted(subscriptions, key=lambda s: "support_24x7" not in s.addons)
        return Customer(account, best[0] if best else None)
    if actor.role in CUSTOMER_TENANT_ROLES and actor.tenant_id is not None:
        subscription = await session.scalar(
            select(Subscription).where(Subscription.tenant_id == actor.tenant_id)
        )
        if subscription is None:
            raise SubscriptionRequired()
        account = await session.get(BillingAccount, subscription.account_id)
        assert account is not None
        return Customer(account, subscription if subscription.status in SUPPORTED else None)
    raise PermissionDenied()


def _plan(subscription: Subscription) -> sla.Plan:
    return sla.Plan("24x7") if "support_24x7" in subscription.addons else sla.Plan("standard")


def sla_of(case: SupportCase, at: datetime, *, at_risk_fraction: float = 0.75) -> SlaOut:
    severity, plan = sla.Severity(case.severity), sla.Plan(case.plan)
    until = case.first_response_at or at
    fraction = sla.fraction_elapsed(case.opened_at, until, severity, plan)
    remaining = sla.remaining(case.opened_at, until, severity, plan)
    answered = case.first_response_at is not None
    breached = until > case.due_at
    return SlaOut(
        due_at=case.due_at.astimezone(MEXICO_CITY),
        met=(not breached) if answered else None,
        breached=breached,
        remaining_seconds=int(remaining.total_seconds()),
        elapsed_fraction=round(fraction, 4),
        at_risk=not answered and not breached and fraction >= at_risk_fraction,
    )


async def _next_number(session: AsyncSession) -> int:
    return await next_number(session, CaseCounter, CaseCounter.name, "cases")


async def _event(
    session: AsyncSession, case: SupportCase, kind: str, actor: Actor, **data: object
) -> None:
    session.add(
        CaseEvent(
            case_id=case.id, kind=kind, actor_id=actor.user_id, data=data, created_at=now(session)
        )
    )
    case.updated_at = now(session)
    await session.flush()


def _local(instant: datetime) -> str:
    return instant.astimezone(MEXICO_CITY).strftime("%Y-%m-%d %H:%M (%Z)")


def _link(settings: Settings, case: SupportCase) -> str:
    return f"{settings.public_url.rstrip('/')}/helpdesk/cases/{case.id}"


# --- customers ----------------------------------------------------------------------------


async def open_case(
    session: AsyncSession, actor: Actor, data: CaseIn, *, settings: Settings
) -> SupportCase:
    customer = await _customer(session, actor)
    if customer.subscription is None:
        raise SubscriptionRequired()
    opened_at = now(session)
    plan = _plan(customer.subscription)
    case = SupportCase(
        number=await _next_number(session),
        account_id=customer.account.id,
        subscription_id=customer.subscription.id,
        opened_by=actor.user_id,
        opener_email=(actor.email or customer.account.email).lower(),
        title=data.title,
        description=data.description,
        product_area=data.product_area,
        severity=data.severity,
        plan=plan.value,
        state=CaseState.new,
        opened_at=opened_at,
        due_at=sla.due_at(opened_at, sla.Severity(data.severity), plan).astimezone(UTC),
        updated_at=opened_at,
    )
    session.add(case)
    await session.flush()
    await _event(session, case, "opened", actor, severity=case.severity, plan=case.plan)
    await mail.queue_mail(
        session,
        to=case.opener_email,
        subject=f"[#{case.number}] {case.title}",
        text=(
            f"We received your case #{case.number} ({case.severity}).\n"
            f"Support will answer by {_local(case.due_at)}.\n\n{_link(settings, case)}\n\n"
            f"Recibimos tu caso #{case.number} ({case.severity}). Soporte responderá antes de "
            f"{_local(case.due_at)}.\n"
        ),
        kind="helpdesk.received",
    )
    return case


async def list_cases(
    session: AsyncSession, actor: Actor, *, open_only: bool = False
) -> Sequence[SupportCase]:
    query = select(SupportCase)
    if not is_staff(actor):
        customer = await _customer(session, actor)
        query = query.where(SupportCase.account_id == customer.account.id)
    if open_only:
        query = query.where(SupportCase.state != CaseState.closed)
    # Unanswered cases by how soon they are due, then the rest by last activity.
    query = query.order_by(
        SupportCase.first_response_at.is_not(None),
        SupportCase.due_at,
        SupportCase.updated_at.desc(),
    )
    return (await session.scalars(query)).all()


async def get_case(session: AsyncSession, actor: Actor, case_id: uuid.UUID) -> SupportCase:
    case = await session.get(SupportCase, case_id)
    if case is None:
        raise NotFound("case")
    if not is_staff(actor):
        customer = await _customer(session, actor)
        if case.account_id != customer.account.id:
            raise NotFound("case")
    return case


async def thread(
    session: AsyncSession, actor: Actor, case: SupportCase
) -> tuple[Sequence[CaseMessage], Sequence[CaseFile], Sequence[CaseEvent]]:
    messages = select(CaseMessage).where(CaseMessage.case_id == case.id)
    events = select(CaseEvent).where(CaseEvent.case_id == case.id)
    if not is_staff(actor):
        messages = messages.where(CaseMessage.internal.is_(False))
        events = events.where(CaseEvent.kind != "note")  # not even that notes exist
    return (
        (await session.scalars(messages.order_by(CaseMessage.created_at))).all(),
        (
            await session.scalars(
                select(CaseFile).where(CaseFile.case_id == case.id).order_by(CaseFile.created_at)
            )
        ).all(),
        (await session.scalars(events.order_by(CaseEvent.created_at))).all(),
    )


async def add_message(
    session: AsyncSession,
    actor: Actor,
    case_id: uuid.UUID,
    data: MessageIn,
    *,
    settings: Settings,
) -> CaseMessage:
    case = await get_case(session, actor, case_id)
    staff = is_staff(actor)
    if case.state is CaseState.closed:
        raise Conflict("The case is closed; reopen it to write.", code="case_closed")
    if data.internal and not staff:
        raise PermissionDenied("Only support staff write internal notes.")
    files = set(
        (await session.scalars(select(CaseFile.id).where(CaseFile.case_id == case.id))).all()
    )
    if any(file_id not in files for file_id in data.attachment_ids):
        raise ValidationFailed(
            "Attach files of this case only.", code="unknown_attachment", field="attachment_ids"
        )
    instant = now(session)
    message = CaseMessage(
        case_id=case.id,
        author_id=actor.user_id,
        author_kind="support" if staff else "customer",
        internal=data.internal,
        body=data.body,
        attachment_ids=[str(i) for i in data.attachment_ids],
        created_at=instant,
    )
    session.add(message)
    if staff and not data.internal:
        if case.first_response_at is None:
            case.first_response_at = instant  # the SLA clock stops here
            await _event(session, case, "first_response", actor, met=instant <= case.due_at)
        if case.state is CaseState.new:
            case.state = CaseState.in_progress
        await mail.queue_mail(
            session,
            to=case.opener_email,
            subject=f"[#{case.number}] {case.title}",
            text=f"{data.body}\n\n— Atiende Support\n{_link(settings, case)}\n",
            kind="helpdesk.reply",
        )
    elif not staff and case.state is CaseState.waiting_on_customer:
        case.state = CaseState.in_progress
    await _event(
        session, case, "note" if data.internal else "message", actor, message_id=str(message.id)
    )
    return message


async def add_file(
    session: AsyncSession,
    actor: Actor,
    case_id: uuid.UUID,
    *,
    data: bytes,
    filename: str | None,
    content_type: str | None,
    blobs: AttachmentStore,
) -> CaseFile:
    """Screenshots, logs and examples: images, PDF or plain text up to 10 MiB, content
    checked against the declared type; kept under the account's own key prefix."""
    case = await get_case(session, actor, case_id)
    if case.state is CaseState.closed:
        raise Conflict("The case is closed; reopen it to add files.", code="case_closed")
    media_type = attachments.check_upload(
        data, content_type, max_bytes=CASE_FILE_MAX_BYTES, allowed_types=CASE_FILE_TYPES
    )
    file_id = new_id()
    row = CaseFile(
        id=file_id,
        case_id=case.id,
        name=media.safe_name(filename),
        content_type=media_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        storage_key=f"{case.account_id}/{file_id}",
        uploaded_by=actor.user_id,
        created_at=now(session),
    )
    session.add(row)
    await session.flush()
    await blobs.put(row.storage_key, data)
    await _event(session, case, "file", actor, file_id=str(file_id), name=row.name)
    return row


async def read_file(
    session: AsyncSession,
    actor: Actor,
    case_id: uuid.UUID,
    file_id: uuid.UUID,
    *,
    blobs: AttachmentStore,
) -> tuple[CaseFile, bytes]:
    case = await get_case(session, actor, case_id)
    row = await session.get(CaseFile, file_id)
    if row is None or row.case_id != case.id:
        raise NotFound("case_file")
    return row, await blobs.get(row.storage_key)


async def close_case(
    session: AsyncSession, actor: Actor, case_id: uuid.UUID, data: CloseIn, *, settings: Settings
) -> SupportCase:
    case = await get_case(session, actor, case_id)
    if case.state is CaseState.closed:
        raise Conflict("The case is already closed.", code="case_closed")
    if not is_staff(actor) and data.reason not in CUSTOMER_CLOSE_REASONS:
        raise PermissionDenied(
            "Customers close a case as confirmed or archived; support gives the other reasons."
        )
    if (data.reason is CloseReason.out_of_scope) != (data.excluded_category is not None):
        raise ValidationFailed(
            "An out-of-scope closure names the excluded category, and only it does.",
            code="excluded_category_mismatch",
            field="excluded_category",
        )
    case.state = CaseState.closed
    case.closed_at = now(session)
    case.close_reason = data.reason
    case.excluded_category = data.excluded_category
    await _event(
        session,
        case,
        "closed",
        actor,
        reason=data.reason.value,
        excluded_category=data.excluded_category.value if data.excluded_category else None,
        note=data.note,
    )
    await mail.queue_mail(
        session,
        to=case.opener_email,
        subject=f"[#{case.number}] closed: {data.reason.value}",
        text=(
            f"Case #{case.number} was closed ({data.reason.value}).\n"
            f"{data.note or ''}\n\nYou may reopen it within {settings.support_reopen_days} days: "
            f"{_link(settings, case)}\n"
        ),
        kind="helpdesk.closed",
    )
    return case


async def reopen_case(
    session: AsyncSession, actor: Actor, case_id: uuid.UUID, *, settings: Settings
) -> SupportCase:
    case = await get_case(session, actor, case_id)
    if case.state is not CaseState.closed or case.closed_at is None:
        raise Conflict("Only a closed case can be reopened.", code="case_not_closed")
    if now(session) > case.closed_at + timedelta(days=settings.support_reopen_days):
        raise Conflict(
            f"Cases can be reopened within {settings.support_reopen_days} days of closing; "
            "open a new case.",
            code="reopen_window_passed",
        )
    case.state = CaseState.in_progress if case.first_response_at else CaseState.new
    case.closed_at = None
    case.close_reason = None
    case.excluded_category = None
    await _event(session, case, "reopened", actor)
    return case


# --- support staff ------------------------------------------------------------------------


def _require_staff(actor: Actor) -> None:
    if not is_staff(actor):
        raise PermissionDenied()


async def assign(
    session: AsyncSession, actor: Actor, case_id: uuid.UUID, assignee_id: uuid.UUID | None
) -> SupportCase:
    _require_staff(actor)
    case = await get_case(session, actor, case_id)
    target = assignee_id or actor.user_id
    user = await session.get(User, target) if target else None
    if user is None or user.role not in STAFF or not user.is_active:
        raise ValidationFailed(
            "Cases are assigned to support staff.", code="assignee_not_staff", field="assignee_id"
        )
    case.assignee_id = user.id
    await _event(session, case, "assigned", actor, assignee_id=str(user.id))
    return case


async def set_state(
    session: AsyncSession, actor: Actor, case_id: uuid.UUID, state: str
) -> SupportCase:
    _require_staff(actor)
    case = await get_case(session, actor, case_id)
    if case.state is CaseState.closed:
        raise Conflict("The case is closed; reopen it first.", code="case_closed")
    target = CaseState(state)
    if target is CaseState.waiting_on_customer and case.first_response_at is None:
        raise Conflict("Answer the customer before waiting on them.", code="first_response_missing")
    before = case.state
    case.state = target
    await _event(session, case, "state", actor, before=before.value, after=target.value)
    return case


async def change_severity(
    session: AsyncSession, actor: Actor, case_id: uuid.UUID, severity: str, reason: str
) -> SupportCase:
    """Support corrects the severity with a reason; the due time is recomputed from the
    opening time with the new target."""
    _require_staff(actor)
    case = await get_case(session, actor, case_id)
    if case.severity == severity:
        raise ValidationFailed("The severity is already that.", code="no_change")
    before = case.severity
    case.severity = severity
    case.due_at = sla.due_at(
        case.opened_at, sla.Severity(severity), sla.Plan(case.plan)
    ).astimezone(UTC)
    case.at_risk_notified_at = None
    case.breach_notified_at = None
    await _event(
        session,
        case,
        "severity",
        actor,
        before=before,
        after=severity,
        reason=reason,
        due_at=case.due_at.isoformat(),
    )
    await audit.record(
        session,
        actor,
        "helpdesk.case.severity",
        resource_type="support_case",
        resource_id=case.id,
        tenant_id=None,
        before={"severity": before},
        after={"severity": severity, "reason": reason},
    )
    return case


async def watch_sla(session: AsyncSession, *, settings: Settings) -> dict[str, int]:
    """Tell the support team, once each, when an unanswered case reaches the at-risk share
    of its SLA and when it is breached."""
    instant = now(session)
    counts = {"at_risk": 0, "breached": 0}
    open_cases = (
        await session.scalars(
            select(SupportCase).where(
                SupportCase.state != CaseState.closed,
                SupportCase.first_response_at.is_(None),
                SupportCase.breach_notified_at.is_(None),
            )
        )
    ).all()
    for case in open_cases:
        state = sla_of(case, instant, at_risk_fraction=settings.support_at_risk_fraction)
        kind = None
        if state.breached:
            case.breach_notified_at = instant
            kind = "breached"
        elif state.at_risk and case.at_risk_notified_at is None:
            case.at_risk_notified_at = instant
            kind = "at_risk"
        if kind is None:
            continue
        counts[kind] += 1
        await _event(session, case, f"sla_{kind}", Actor.system())
        await mail.queue_mail(
            session,
            to=settings.support_team_email,
            subject=f"SLA {kind.replace('_', ' ')}: #{case.number} ({case.severity}) {case.title}",
            text=(
                f"Case #{case.number} ({case.severity}, plan {case.plan}) has no answer.\n"
                f"Due: {_local(case.due_at)}.\n{_link(settings, case)}\n"
            ),
            kind=f"helpdesk.sla_{kind}",
        )
    await session.flush()
    return counts


async def compliance(session: AsyncSession, actor: Actor, month: str) -> ComplianceOut:
    """First-response compliance of the cases opened in a month (Mexico City), by severity."""
    _require_staff(actor)
    try:
        start_local = datetime.strptime(month + "-01", "%Y-%m-%d").replace(tzinfo=MEXICO_CITY)
    except ValueError as error:
        raise ValidationFailed("Give the month as YYYY-MM.", code="invalid_month") from error
    end_local = (start_local + timedelta(days=32)).replace(day=1)
    instant = now(session)
    cases = (
        await session.scalars(
            select(SupportCase).where(
                SupportCase.opened_at >= start_local.astimezone(UTC),
                SupportCase.opened_at < end_local.astimezone(UTC),
            )
        )
    ).all()
    rows = []
    for severity in ("critical", "moderate", "consultation"):
        mine = [c for c in cases if c.severity == severity]
        in_time = sum(1 for c in mine if c.first_response_at and c.first_response_at <= c.due_at)
        late = sum(1 for c in mine if c.first_response_at and c.first_response_at > c.due_at)
        unanswered_breached = sum(
            1 for c in mine if c.first_response_at is None and instant > c.due_at
        )
        decided = in_time + late + unanswered_breached
        rows.append(
            ComplianceRow(
                severity=severity,
                opened=len(mine),
                answered_in_time=in_time,
                answered_late=late,
                unanswered_breached=unanswered_breached,
                open_in_time=len(mine) - decided,
                compliance_percent=round(100 * in_time / decided, 1) if decided else None,
            )
        )
    return ComplianceOut(month=month, rows=rows)
