"""Request and response bodies of the helpdesk API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from atiende.helpdesk.models import CaseState, CloseReason, ExcludedCategory, ProductArea

SeverityName = Literal["critical", "moderate", "consultation"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CaseIn(_Input):
    severity: SeverityName
    title: str = Field(min_length=5, max_length=200)
    description: str = Field(
        min_length=20,
        max_length=20_000,
        description="What happens, what was expected, since when, steps to reproduce.",
    )
    product_area: ProductArea


class MessageIn(_Input):
    body: str = Field(min_length=1, max_length=20_000)
    internal: bool = Field(
        default=False, description="Support staff only: a note customers never see."
    )
    attachment_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10)


class StateIn(_Input):
    state: Literal["in_progress", "waiting_on_customer"]


class AssignIn(_Input):
    assignee_id: uuid.UUID | None = Field(default=None, description="Omitted: the caller.")


class SeverityIn(_Input):
    severity: SeverityName
    reason: str = Field(min_length=3, max_length=1000)


class CloseIn(_Input):
    reason: CloseReason
    excluded_category: ExcludedCategory | None = None
    note: str | None = Field(default=None, max_length=5000)


class SlaOut(BaseModel):
    due_at: datetime
    met: bool | None = Field(description="Answered in time (true/false), or open (null).")
    breached: bool
    remaining_seconds: int
    elapsed_fraction: float
    at_risk: bool


class CaseOut(BaseModel):
    id: uuid.UUID
    number: int
    account_id: uuid.UUID
    title: str
    description: str
    product_area: ProductArea
    severity: SeverityName
    plan: str
    state: CaseState
    opener_email: str
    assignee_id: uuid.UUID | None
    opened_at: datetime
    first_response_at: datetime | None
    closed_at: datetime | None
    close_reason: CloseReason | None
    excluded_category: ExcludedCategory | None
    sla: SlaOut


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    author_id: uuid.UUID | None
    author_kind: str
    internal: bool
    body: str
    attachment_ids: list[str]
    created_at: datetime


class FileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    content_type: str
    size: int
    created_at: datetime


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    actor_id: uuid.UUID | None
    data: dict[str, object]
    created_at: datetime


class CaseDetailOut(CaseOut):
    messages: list[MessageOut]
    files: list[FileOut]
    events: list[EventOut]


class ComplianceRow(BaseModel):
    severity: SeverityName
    opened: int
    answered_in_time: int
    answered_late: int
    unanswered_breached: int
    open_in_time: int
    compliance_percent: float | None


class ComplianceOut(BaseModel):
    month: str
    rows: list[ComplianceRow]
