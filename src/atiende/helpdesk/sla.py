"""The helpdesk's first-response SLA: which calendar a case counts in, and when it is due.

Pure: no I/O and no clock; every instant is passed in and must be timezone-aware (a naive
datetime raises ``ValueError``, which the edges answer with a 422). The rules are the
commercial terms' (``docs/helpdesk.md``):

- targets: ``critical`` 4 h, ``moderate`` 8 business hours, ``consultation`` 24 business hours;
- calendars, read in ``America/Mexico_City`` through ``zoneinfo``:
  ``business`` (Monday to Friday 09:00-17:00 without Mexican statutory rest days),
  ``critical_standard`` (09:00-17:00 every day, holidays included) and ``always`` (24x7);
- a critical case counts in ``critical_standard`` on the standard plan and in ``always`` on
  the 24x7 plan; moderate and consultation cases count in ``business`` on either plan;
- a case opened while its calendar is closed starts counting at the next opening, and the
  clock never pauses once it runs.

The calendars are weekly tables in the format of queue schedules (``routing/schedule.py``).
Counting walks the calendar a local day at a time (one interval per day), so a due time
after a long holiday weekend costs a handful of steps, not one per minute.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from typing import Final
from zoneinfo import ZoneInfo

import holidays

from atiende.routing.schedule import DAYS, MINUTES_PER_DAY, Interval, parse_weekly

ZONE: Final = ZoneInfo("America/Mexico_City")
# Share of the target after which an unanswered case is "at risk".
AT_RISK_FRACTION: Final = 0.75


class Severity(StrEnum):
    critical = "critical"  # platform down or no calls
    moderate = "moderate"  # partial failure, or a problem with one user
    consultation = "consultation"  # a usage or configuration question


class Plan(StrEnum):
    standard = "standard"  # 8x5
    around_the_clock = "24x7"  # the support_24x7 add-on


class Calendar(StrEnum):
    business = "business"
    critical_standard = "critical_standard"
    always = "always"


_TARGETS: Final[Mapping[Severity, timedelta]] = {
    Severity.critical: timedelta(hours=4),
    Severity.moderate: timedelta(hours=8),
    Severity.consultation: timedelta(hours=24),
}

_WEEKLY: Final[Mapping[Calendar, tuple[tuple[Interval, ...], ...]]] = {
    Calendar.business: parse_weekly({day: [["09:00", "17:00"]] for day in DAYS[:5]}),
    Calendar.critical_standard: parse_weekly({day: [["09:00", "17:00"]] for day in DAYS}),
    Calendar.always: parse_weekly({day: [["00:00", "24:00"]] for day in DAYS}),
}

# Only business hours skip statutory rest days; critical cases are looked at on holidays too.
_SKIPS_REST_DAYS: Final = frozenset({Calendar.business})

DESCRIPTIONS: Final[Mapping[Calendar, str]] = {
    Calendar.business: "Monday to Friday 09:00-17:00, Mexican statutory rest days excluded",
    Calendar.critical_standard: "every day 09:00-17:00, weekends and holidays included",
    Calendar.always: "around the clock",
}


@cache
def rest_days(year: int) -> frozenset[date]:
    """Mexico's statutory rest days in ``year``, as the ``holidays`` library lists them."""
    return frozenset(holidays.country_holidays("MX", years=year))


def calendar_for(severity: Severity | str, plan: Plan | str) -> Calendar:
    """The calendar a case of ``severity`` counts in under ``plan`` (``ValueError`` if either
    is not a known name)."""
    severity, plan = Severity(severity), Plan(plan)
    if severity is not Severity.critical:
        return Calendar.business
    return Calendar.always if plan is Plan.around_the_clock else Calendar.critical_standard


def target_for(severity: Severity | str) -> timedelta:
    """How much calendar time support has to start on a case of ``severity``."""
    return _TARGETS[Severity(severity)]


def _require_aware(instant: datetime, name: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (give a UTC offset)")


def _wall(day: date, minutes: int) -> datetime:
    """The instant, in UTC, of local ``minutes`` after midnight on ``day`` (24:00 is the next
    day's midnight). Counting is done in UTC: arithmetic on two datetimes that share a
    ``ZoneInfo`` is wall-clock arithmetic, which is wrong across a change of offset."""
    if minutes == MINUTES_PER_DAY:
        day, minutes = day + timedelta(days=1), 0
    return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=ZONE).astimezone(UTC)


def _day_intervals(calendar: Calendar, day: date) -> Iterator[tuple[datetime, datetime]]:
    if calendar in _SKIPS_REST_DAYS and day in rest_days(day.year):
        return
    for start, end in _WEEKLY[calendar][day.weekday()]:
        yield _wall(day, start), _wall(day, end)


def open_intervals(calendar: Calendar, since: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The calendar's open periods from ``since`` on, in order, without end: each a
    ``(start, end)`` pair of UTC instants with the end exclusive, the first one cut to
    begin at ``since`` when ``since`` falls inside it."""
    _require_aware(since, "the start")
    since = since.astimezone(UTC)
    day = since.astimezone(ZONE).date()
    while True:
        for start, end in _day_intervals(calendar, day):
            if end > since:
                yield max(start, since), end
        day += timedelta(days=1)


def is_open(calendar: Calendar, at: datetime) -> bool:
    """Whether the calendar counts time at ``at``."""
    _require_aware(at, "the instant")
    at = at.astimezone(UTC)
    day = at.astimezone(ZONE).date()
    return any(start <= at < end for start, end in _day_intervals(calendar, day))


def next_opening(calendar: Calendar, at: datetime) -> datetime:
    """The first instant at or after ``at`` when the calendar counts time (``at`` itself when
    it is open then), in Mexico City time."""
    start, _ = next(open_intervals(calendar, at))
    return start.astimezone(ZONE)


def due_at(opened: datetime, severity: Severity | str, plan: Plan | str) -> datetime:
    """When the first response to a case opened at ``opened`` is due, in Mexico City time.

    A due time that uses up an open period exactly is that period's closing instant (a
    moderate case opened at 09:00 on a working day is due at 17:00 the same day).
    """
    _require_aware(opened, "the opening time")
    left = target_for(severity)
    for start, end in open_intervals(calendar_for(severity, plan), opened):
        if left <= end - start:
            return (start + left).astimezone(ZONE)
        left -= end - start
    raise AssertionError("open_intervals never ends")  # pragma: no cover


def elapsed(
    opened: datetime, at: datetime, severity: Severity | str, plan: Plan | str
) -> timedelta:
    """Calendar time counted from ``opened`` to ``at`` (zero when ``at`` is not after
    ``opened``). It does not grow while the calendar is closed, and keeps growing after the
    due time."""
    _require_aware(opened, "the opening time")
    _require_aware(at, "the instant")
    counted = timedelta(0)
    at = at.astimezone(UTC)
    if at <= opened:
        return counted
    for start, end in open_intervals(calendar_for(severity, plan), opened):
        if start >= at:
            break
        counted += min(end, at) - start
    return counted


def remaining(
    opened: datetime, at: datetime, severity: Severity | str, plan: Plan | str
) -> timedelta:
    """Calendar time left before the due time at ``at``; zero from the due time on."""
    return max(target_for(severity) - elapsed(opened, at, severity, plan), timedelta(0))


def breached(opened: datetime, at: datetime, severity: Severity | str, plan: Plan | str) -> bool:
    """Whether ``at`` is past the due time (an answer exactly at the due time is in time)."""
    _require_aware(at, "the instant")
    # Compared in UTC: two datetimes sharing a ZoneInfo compare by wall clock.
    return at.astimezone(UTC) > due_at(opened, severity, plan).astimezone(UTC)


def fraction_elapsed(
    opened: datetime, at: datetime, severity: Severity | str, plan: Plan | str
) -> float:
    """Counted time over the target: 0.0 at opening, 1.0 at the due time, more after it."""
    return elapsed(opened, at, severity, plan) / target_for(severity)


@dataclass(frozen=True, slots=True)
class SlaState:
    """A case's SLA seen at one instant."""

    calendar: Calendar
    target: timedelta
    due_at: datetime
    elapsed: timedelta
    remaining: timedelta
    breached: bool
    fraction: float

    @property
    def at_risk(self) -> bool:
        """Not breached yet, but ``AT_RISK_FRACTION`` of the target or more is used up."""
        return not self.breached and self.fraction >= AT_RISK_FRACTION


def state(opened: datetime, at: datetime, severity: Severity | str, plan: Plan | str) -> SlaState:
    """Everything about a case's SLA at ``at``, computed once."""
    target = target_for(severity)
    due = due_at(opened, severity, plan)
    counted = elapsed(opened, at, severity, plan)
    return SlaState(
        calendar=calendar_for(severity, plan),
        target=target,
        due_at=due,
        elapsed=counted,
        remaining=max(target - counted, timedelta(0)),
        breached=at.astimezone(UTC) > due.astimezone(UTC),
        fraction=counted / target,
    )
