"""Opening hours (horarios): is a schedule open at an instant, and when does it open next.

Pure: no I/O and no clock. A schedule is a weekly table of local opening intervals plus the
tenant's holidays, read in one IANA time zone:

- ``weekly`` maps ``mon`` .. ``sun`` to a list of ``["HH:MM", "HH:MM"]`` intervals; the end is
  exclusive and may be ``"24:00"`` (the end of the local day); a missing or empty day is
  closed. An interval never crosses midnight: ``22:00``-``02:00`` is written as ``22:00``-
  ``24:00`` on one day and ``00:00``-``02:00`` on the next.
- ``holidays`` are local dates; a holiday closes the whole day.
- Intervals are wall-clock times, so daylight-saving changes are honoured through ``zoneinfo``:
  an interval that falls in a spring-forward gap does not happen that day, one in a fall-back
  overlap lasts as long as the clock shows those times (an hour more).

A queue with no schedule is always open; that rule lives with the callers, which have no
schedule to pass.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEARCH_DAYS: Final = 400
MINUTES_PER_DAY: Final = 24 * 60
_TIME = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")
# Offsets are probed this often when looking for a daylight-saving change; no zone changes
# its offset twice within this span.
_PROBE = timedelta(hours=3)

Interval = tuple[int, int]  # minutes after local midnight; the end is exclusive
Weekly = Mapping[str, Sequence[Sequence[str]]]


def _minutes(value: object, day: str, *, is_end: bool) -> int:
    if is_end and value == "24:00":
        return MINUTES_PER_DAY
    if not isinstance(value, str) or not _TIME.match(value):
        raise ValueError(
            f"{day}: bad time {value!r}; use HH:MM from 00:00 to 23:59 (24:00 only as an end)"
        )
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_weekly(weekly: Any) -> tuple[tuple[Interval, ...], ...]:
    """Check ``weekly`` and turn it into seven sorted interval tuples, Monday first.

    Raises ``ValueError`` naming the first problem: not a mapping, an unknown day, an interval
    that is not a pair of ``HH:MM`` times, a start not before its end, overlapping intervals.
    """
    if not isinstance(weekly, Mapping):
        raise ValueError("the weekly schedule must be an object keyed by day (mon..sun)")
    days: list[tuple[Interval, ...]] = [() for _ in DAYS]
    for day, intervals in weekly.items():
        if day not in DAYS:
            raise ValueError(f"unknown day {day!r}; use {', '.join(DAYS)}")
        if not isinstance(intervals, Sequence) or isinstance(intervals, str):
            raise ValueError(f"{day}: the intervals must be a list of [start, end] pairs")
        parsed: list[Interval] = []
        for interval in intervals:
            if (
                not isinstance(interval, Sequence)
                or isinstance(interval, str)
                or len(interval) != 2
            ):
                raise ValueError(f'{day}: each interval is a pair ["HH:MM", "HH:MM"]')
            start = _minutes(interval[0], day, is_end=False)
            end = _minutes(interval[1], day, is_end=True)
            if start >= end:
                raise ValueError(
                    f"{day}: interval {interval[0]}-{interval[1]} must start before it ends "
                    "(an interval may not cross midnight; write two)"
                )
            parsed.append((start, end))
        parsed.sort()
        for (start_a, end_a), (start_b, end_b) in pairwise(parsed):
            if start_b < end_a:
                raise ValueError(
                    f"{day}: intervals {_clock(start_a)}-{_clock(end_a)} and "
                    f"{_clock(start_b)}-{_clock(end_b)} overlap"
                )
        days[DAYS.index(day)] = tuple(parsed)
    return tuple(days)


def validate_weekly(weekly: Any) -> dict[str, list[list[str]]]:
    """Check a weekly table (``ValueError`` with a clear message if it is wrong) and return it
    normalised: days in week order, each day's intervals sorted by start."""
    parsed = parse_weekly(weekly)
    return {
        day: [[_clock(start), _clock(end)] for start, end in parsed[index]]
        for index, day in enumerate(DAYS)
        if day in weekly
    }


def zone_of(time_zone: str) -> ZoneInfo:
    """The ``ZoneInfo`` for an IANA name; ``ValueError`` if there is no such zone."""
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as error:
        raise ValueError(f"unknown IANA time zone {time_zone!r}") from error


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("the instant must be timezone-aware")


class Calendar:
    """A parsed schedule: build it once when asking many questions of the same schedule."""

    __slots__ = ("days", "holidays", "zone")

    def __init__(self, weekly: Weekly, time_zone: str, holidays: Collection[date]) -> None:
        self.days = parse_weekly(weekly)
        self.zone = zone_of(time_zone)
        # datetime is a date subclass; keep plain dates so membership compares like with like.
        self.holidays = frozenset(h.date() if isinstance(h, datetime) else h for h in holidays)

    def is_open(self, at: datetime) -> bool:
        _require_aware(at)
        local = at.astimezone(self.zone)
        if local.date() in self.holidays:
            return False
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.days[local.weekday()])

    def next_opening(self, at: datetime) -> datetime | None:
        """The first instant at or after ``at`` (in UTC) when the schedule is open: ``at``
        itself if it is open then, ``None`` if it does not open within ``SEARCH_DAYS``."""
        _require_aware(at)
        if self.is_open(at):
            return at.astimezone(UTC)
        if not any(self.days):
            return None
        horizon = at + timedelta(days=SEARCH_DAYS)
        first_day = at.astimezone(self.zone).date()
        best: datetime | None = None
        for offset in range(SEARCH_DAYS + 2):
            day = first_day + timedelta(days=offset)
            found = [t for t in self._candidates(day) if at < t <= horizon and self.is_open(t)]
            if best is not None:
                # The day after the first hit can only matter where a clock change moves a
                # local date backwards; look at it, then stop.
                return min([best, *found])
            if found:
                best = min(found)
        return best

    def _candidates(self, day: date) -> list[datetime]:
        """Instants at which an open period can begin on local ``day``: each interval start
        (both readings of an ambiguous wall time) and any change of UTC offset near the day
        (opening in the middle of an interval when the clock jumps into it)."""
        candidates: list[datetime] = []
        if day not in self.holidays:
            for start, _ in self.days[day.weekday()]:
                wall = datetime.combine(day, time(start // 60, start % 60))
                for fold in (0, 1):
                    candidates.append(wall.replace(tzinfo=self.zone, fold=fold).astimezone(UTC))
        candidates.extend(self._offset_changes(day))
        return candidates

    def _offset_changes(self, day: date) -> list[datetime]:
        midnight = datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)
        low, end = midnight - _PROBE, midnight + timedelta(days=1) + _PROBE
        changes = []
        while low < end:
            high = low + _PROBE
            if self._offset(low) != self._offset(high):
                changes.append(self._first_instant_of_offset(low, high))
            low = high
        return changes

    def _offset(self, instant: datetime) -> timedelta | None:
        return instant.astimezone(self.zone).utcoffset()

    def _first_instant_of_offset(self, low: datetime, high: datetime) -> datetime:
        """Bisect (to the second) for the first instant after ``low`` showing ``high``'s offset."""
        target = self._offset(high)
        low_s, high_s = int(low.timestamp()), int(high.timestamp())
        while high_s - low_s > 1:
            middle = (low_s + high_s) // 2
            if self._offset(datetime.fromtimestamp(middle, UTC)) == target:
                high_s = middle
            else:
                low_s = middle
        return datetime.fromtimestamp(high_s, UTC)


def is_open(weekly: Weekly, time_zone: str, holidays: Collection[date], at: datetime) -> bool:
    """Whether the schedule is open at the aware instant ``at`` (any zone)."""
    return Calendar(weekly, time_zone, holidays).is_open(at)


def next_opening(
    weekly: Weekly, time_zone: str, holidays: Collection[date], at: datetime
) -> datetime | None:
    """The next instant (aware, UTC) the schedule is open: ``at`` itself when it is open at
    ``at``; ``None`` when it does not open within ``SEARCH_DAYS`` days."""
    return Calendar(weekly, time_zone, holidays).next_opening(at)
