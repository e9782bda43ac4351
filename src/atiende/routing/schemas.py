"""Typed input and output of the routing API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from atiende.conversations.models import Channel
from atiende.routing.models import (
    ClosedAction,
    LicenceType,
    MaxWaitAction,
    Presence,
    Recording,
    Strategy,
)
from atiende.routing.schedule import validate_weekly
from atiende.tenancy.schemas import TimeZone

# --- configuration ---------------------------------------------------------------------------
# Skills, queues and their members and dispositions, agent profiles, schedules, holidays and
# break reasons: what an administrator sets up (``routing.admin``).

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Level = Annotated[int, Field(ge=1, le=10)]
Code = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9][a-z0-9_-]{0,49}$")
]
Extension = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.+-]{1,32}$")]
MAX_VOICE_CAPACITY = 1
MAX_CHAT_CAPACITY = 50


def _unique_channels(channels: list[Channel]) -> list[Channel]:
    if len(set(channels)) != len(channels):
        raise ValueError("list each channel once")
    return channels


Channels = Annotated[list[Channel], Field(min_length=1), AfterValidator(_unique_channels)]

#: Position announcements: never (0), or every 15 s to 1 h.
MIN_ANNOUNCE_SECONDS = 15
MAX_ANNOUNCE_SECONDS = 3600


def _announce_every(value: int) -> int:
    if 0 < value < MIN_ANNOUNCE_SECONDS:
        raise ValueError(f"0 (never) or {MIN_ANNOUNCE_SECONDS} to {MAX_ANNOUNCE_SECONDS} seconds")
    return value


AnnounceEvery = Annotated[
    int, Field(ge=0, le=MAX_ANNOUNCE_SECONDS), AfterValidator(_announce_every)
]
ForwardNumber = Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)]
MediaText = Annotated[str, StringConstraints(max_length=200)]

_CLOSED_ACTION = (
    "Arrivals while closed: auto_reply (the closed message, then wait for the opening), "
    "keep_queued, transfer (to closed_queue_id), voicemail (calls leave a message; chats as "
    "auto_reply) or forward (calls go to forward_number; chats as auto_reply)."
)
_MAX_WAIT_ACTION = (
    "After max_wait_seconds: overflow (to overflow_queue_id; nothing without one), message "
    "(calls hear message_prompt, then the call ends; needs message_prompt), voicemail or "
    "forward (calls only; chats then overflow when an overflow queue is set)."
)
_FORWARD_NUMBER = (
    "The number the forward actions dial through the PBX's outbound route; stored in E.164 "
    "(national numbers are read as Mexican). Needed by closed_action or max_wait_action forward."
)
_VOICEMAIL_PROMPT = (
    "What a caller hears before the beep, as media separated by commas like IVR prompts "
    '(e.g. "sound:custom/leave-message, digits:123"); null: sound:vm-intro.'
)
_MESSAGE_PROMPT = (
    "What a caller hears before the call ends when the queue answers with a message: closed "
    "hours with closed_action auto_reply, max wait with max_wait_action message; media separated "
    'by commas like IVR prompts (e.g. "sound:custom/closed, digits:123"); null: a caller at a '
    "closed auto_reply queue waits with music."
)
_ANNOUNCE_EVERY = (
    "Every this many seconds a waiting caller hears their position in the queue, then music "
    "again; 0: never, else 15 to 3600."
)


def _weekly(value: Any) -> dict[str, list[list[str]]]:
    return validate_weekly(value)


WeeklyHours = Annotated[
    dict[str, Any],
    AfterValidator(_weekly),
    Field(
        description='Per day (mon..sun) a list of ["HH:MM", "HH:MM"] intervals, end exclusive; '
        '"24:00" allowed as an end; a missing day is closed.',
        examples=[{"mon": [["09:00", "14:00"], ["15:00", "18:00"]], "sat": [["10:00", "14:00"]]}],
    ),
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Patch(_Input):
    """A partial update: fields left out stay as they are; only ``nullable`` fields may be
    set to null."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_nulls(self) -> Any:
        for field in self.model_fields_set:
            if getattr(self, field) is None and field not in self.nullable:
                raise ValueError(f"{field} cannot be null")
        return self


# skills


class SkillCreate(_Input):
    name: Name


class SkillUpdate(_Patch):
    name: Name | None = None


class SkillOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    created_at: datetime


# queues


class _QueueFields(_Input):
    """Every queue setting with its shape rules; rules across fields and rows (ring-all is
    voice-only, referenced rows exist) are the service's, so a patch is checked as merged."""

    name: Name
    channels: Channels
    strategy: Strategy = Strategy.longest_idle
    required_skills: dict[uuid.UUID, Level] = Field(
        default_factory=dict, description="Skill id → minimum level (1-10)."
    )
    priority: int = Field(default=0, ge=-100, le=100)
    service_level_seconds: int = Field(default=20, gt=0, le=86_400)
    service_level_target: int = Field(default=80, ge=1, le=100, description="Percent.")
    schedule_id: uuid.UUID | None = Field(default=None, description="None: always open.")
    closed_action: ClosedAction = Field(default=ClosedAction.auto_reply, description=_CLOSED_ACTION)
    closed_message: str | None = Field(default=None, max_length=1000)
    closed_queue_id: uuid.UUID | None = Field(
        default=None, description="Where to send interactions when closed (closed_action transfer)."
    )
    max_wait_seconds: int | None = Field(default=None, gt=0, le=7 * 86_400)
    overflow_queue_id: uuid.UUID | None = None
    max_wait_action: MaxWaitAction = Field(
        default=MaxWaitAction.overflow, description=_MAX_WAIT_ACTION
    )
    forward_number: ForwardNumber | None = Field(default=None, description=_FORWARD_NUMBER)
    voicemail_prompt: MediaText | None = Field(default=None, description=_VOICEMAIL_PROMPT)
    message_prompt: MediaText | None = Field(default=None, description=_MESSAGE_PROMPT)
    announce_every_seconds: AnnounceEvery = Field(default=0, description=_ANNOUNCE_EVERY)
    max_queue_length: int | None = Field(default=None, gt=0, le=100_000)
    wrap_up_seconds: int = Field(default=60, ge=0, le=3600, description="0: no wrap-up time.")
    offer_timeout_seconds: int = Field(default=30, gt=0, le=600)
    auto_accept: bool = False
    sticky_seconds: int = Field(default=0, ge=0, le=90 * 86_400, description="0: off.")
    ageing_seconds: int = Field(default=60, gt=0, le=86_400)
    recording: Recording = Field(
        default=Recording.never, description="Calls: never, always, or on_demand from the desktop."
    )


class QueueCreate(_QueueFields):
    pass


class QueueUpdate(_Patch):
    nullable = frozenset(
        {
            "schedule_id",
            "closed_message",
            "closed_queue_id",
            "max_wait_seconds",
            "overflow_queue_id",
            "max_queue_length",
            "forward_number",
            "voicemail_prompt",
            "message_prompt",
        }
    )

    name: Name | None = None
    channels: Channels | None = None
    strategy: Strategy | None = None
    required_skills: dict[uuid.UUID, Level] | None = None
    priority: int | None = Field(default=None, ge=-100, le=100)
    service_level_seconds: int | None = Field(default=None, gt=0, le=86_400)
    service_level_target: int | None = Field(default=None, ge=1, le=100)
    schedule_id: uuid.UUID | None = None
    closed_action: ClosedAction | None = Field(default=None, description=_CLOSED_ACTION)
    closed_message: str | None = Field(default=None, max_length=1000)
    closed_queue_id: uuid.UUID | None = None
    max_wait_seconds: int | None = Field(default=None, gt=0, le=7 * 86_400)
    overflow_queue_id: uuid.UUID | None = None
    max_wait_action: MaxWaitAction | None = Field(default=None, description=_MAX_WAIT_ACTION)
    forward_number: ForwardNumber | None = Field(default=None, description=_FORWARD_NUMBER)
    voicemail_prompt: MediaText | None = Field(default=None, description=_VOICEMAIL_PROMPT)
    message_prompt: MediaText | None = Field(default=None, description=_MESSAGE_PROMPT)
    announce_every_seconds: AnnounceEvery | None = Field(default=None, description=_ANNOUNCE_EVERY)
    max_queue_length: int | None = Field(default=None, gt=0, le=100_000)
    wrap_up_seconds: int | None = Field(default=None, ge=0, le=3600)
    offer_timeout_seconds: int | None = Field(default=None, gt=0, le=600)
    auto_accept: bool | None = None
    sticky_seconds: int | None = Field(default=None, ge=0, le=90 * 86_400)
    ageing_seconds: int | None = Field(default=None, gt=0, le=86_400)
    recording: Recording | None = None


class QueueOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    channels: list[str]
    strategy: Strategy
    required_skills: dict[str, int]
    priority: int
    service_level_seconds: int
    service_level_target: int
    schedule_id: uuid.UUID | None
    closed_action: ClosedAction
    closed_message: str | None
    closed_queue_id: uuid.UUID | None
    max_wait_seconds: int | None
    overflow_queue_id: uuid.UUID | None
    max_wait_action: MaxWaitAction = Field(description=_MAX_WAIT_ACTION)
    forward_number: str | None = Field(description="E.164, e.g. +525512345678.")
    voicemail_prompt: str | None = Field(description=_VOICEMAIL_PROMPT)
    message_prompt: str | None = Field(description=_MESSAGE_PROMPT)
    announce_every_seconds: int = Field(description=_ANNOUNCE_EVERY)
    max_queue_length: int | None
    wrap_up_seconds: int
    offer_timeout_seconds: int
    auto_accept: bool
    sticky_seconds: int
    ageing_seconds: int
    recording: Recording
    created_at: datetime


class QueueMembers(_Input):
    """The whole member list of a queue (``PUT`` replaces it)."""

    agent_ids: list[uuid.UUID] = Field(max_length=10_000)

    @field_validator("agent_ids")
    @classmethod
    def _unique(cls, value: list[uuid.UUID]) -> list[uuid.UUID]:
        return sorted(set(value), key=str)


# dispositions


class DispositionCreate(_Input):
    code: Code
    label: Name


class DispositionUpdate(_Patch):
    code: Code | None = None
    label: Name | None = None


class DispositionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    queue_id: uuid.UUID
    code: str
    label: str


# agents


class AgentCreate(_Input):
    user_id: uuid.UUID
    licence: LicenceType = LicenceType.omnichannel
    voice_capacity: int = Field(default=1, ge=0, le=MAX_VOICE_CAPACITY)
    chat_capacity: int | None = Field(
        default=None,
        ge=0,
        le=MAX_CHAT_CAPACITY,
        description="Defaults to 4 (omnichannel) or 0 (voice licence, which allows only 0).",
    )
    max_no_answer: int = Field(
        default=3, ge=1, le=100, description="Unanswered offers in a row before a break."
    )
    extension: Extension | None = None


class AgentUpdate(_Patch):
    nullable = frozenset({"extension"})

    licence: LicenceType | None = None
    voice_capacity: int | None = Field(default=None, ge=0, le=MAX_VOICE_CAPACITY)
    chat_capacity: int | None = Field(default=None, ge=0, le=MAX_CHAT_CAPACITY)
    max_no_answer: int | None = Field(default=None, ge=1, le=100)
    extension: Extension | None = None


class AgentSkills(_Input):
    """The whole skill set of an agent (``PUT`` replaces it): skill id → level (1-10)."""

    skills: dict[uuid.UUID, Level]


class AgentOut(BaseModel):
    id: uuid.UUID = Field(description="The agent's user id.")
    user_id: uuid.UUID
    name: str
    email: str
    role: str
    licence: LicenceType
    voice_capacity: int
    chat_capacity: int
    max_no_answer: int
    extension: str | None
    presence: Presence = Field(description="Runtime state; read-only here.")
    presence_since: datetime
    skills: dict[str, int]
    queue_ids: list[uuid.UUID]


# schedules and holidays


class ScheduleCreate(_Input):
    name: Name
    time_zone: TimeZone | None = Field(default=None, description="Defaults to the tenant's.")
    weekly: WeeklyHours


class ScheduleUpdate(_Patch):
    name: Name | None = None
    time_zone: TimeZone | None = None
    weekly: WeeklyHours | None = None


class ScheduleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    time_zone: str
    weekly: dict[str, list[list[str]]]
    created_at: datetime


class ScheduleStatus(BaseModel):
    at: datetime
    open: bool
    next_opening: datetime | None = Field(
        description="When it opens next (UTC): ``at`` itself if open; null if not within 400 days."
    )


class HolidayCreate(_Input):
    day: date
    name: Name


class HolidayUpdate(_Patch):
    day: date | None = None
    name: Name | None = None


class HolidayOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    day: date
    name: str


# break reasons


class BreakReasonCreate(_Input):
    name: Name
    is_active: bool = True


class BreakReasonUpdate(_Patch):
    name: Name | None = None
    is_active: bool | None = None


class BreakReasonOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    is_active: bool
    is_no_answer: bool
