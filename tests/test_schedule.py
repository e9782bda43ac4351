"""Opening hours: weekly intervals in a zone, holidays, daylight saving, the next opening."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from atiende.routing.schedule import (
    DAYS,
    SEARCH_DAYS,
    Calendar,
    is_open,
    next_opening,
    validate_weekly,
)

MEXICO = "America/Mexico_City"
NEW_YORK = "America/New_York"
OFFICE = {
    **{day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    "sat": [["10:00", "14:00"]],
}


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))  # type: ignore[misc]


# --- is_open ---------------------------------------------------------------------------------


def test_open_inside_an_interval_and_closed_outside() -> None:
    # 2026-01-05 is a Monday.
    assert is_open(OFFICE, MEXICO, [], local(MEXICO, 2026, 1, 5, 9, 0))
    assert is_open(OFFICE, MEXICO, [], local(MEXICO, 2026, 1, 5, 17, 59, 59))
    assert not is_open(OFFICE, MEXICO, [], local(MEXICO, 2026, 1, 5, 8, 59, 59))


def test_the_end_of_an_interval_is_exclusive() -> None:
    assert not is_open(OFFICE, MEXICO, [], local(MEXICO, 2026, 1, 5, 18, 0))


def test_weekends_follow_their_own_rows() -> None:
    saturday, sunday = local(MEXICO, 2026, 1, 10, 11, 0), local(MEXICO, 2026, 1, 11, 11, 0)
    assert is_open(OFFICE, MEXICO, [], saturday)
    assert not is_open(OFFICE, MEXICO, [], saturday.replace(hour=14))
    assert not is_open(OFFICE, MEXICO, [], sunday)


def test_a_missing_or_empty_day_is_closed() -> None:
    assert not is_open({"mon": []}, MEXICO, [], local(MEXICO, 2026, 1, 5, 12, 0))
    assert not is_open({}, MEXICO, [], local(MEXICO, 2026, 1, 5, 12, 0))


def test_several_intervals_a_day_leave_the_gap_closed() -> None:
    split = {"mon": [["15:00", "18:00"], ["09:00", "14:00"]]}
    assert is_open(split, MEXICO, [], local(MEXICO, 2026, 1, 5, 13, 59))
    assert not is_open(split, MEXICO, [], local(MEXICO, 2026, 1, 5, 14, 30))
    assert is_open(split, MEXICO, [], local(MEXICO, 2026, 1, 5, 15, 0))


def test_24_00_runs_to_the_end_of_the_local_day() -> None:
    late = {"fri": [["20:00", "24:00"]], "sat": [["00:00", "02:00"]]}
    assert is_open(late, MEXICO, [], local(MEXICO, 2026, 1, 9, 23, 59, 59))
    assert is_open(late, MEXICO, [], local(MEXICO, 2026, 1, 10, 0, 0))
    assert is_open(late, MEXICO, [], local(MEXICO, 2026, 1, 10, 1, 59))
    assert not is_open(late, MEXICO, [], local(MEXICO, 2026, 1, 10, 2, 0))


def test_a_holiday_closes_the_whole_local_day() -> None:
    christmas = date(2026, 12, 25)  # a Friday
    always = {day: [["00:00", "24:00"]] for day in DAYS}
    assert not is_open(always, MEXICO, [christmas], local(MEXICO, 2026, 12, 25, 0, 0))
    assert not is_open(always, MEXICO, [christmas], local(MEXICO, 2026, 12, 25, 23, 59))
    assert is_open(always, MEXICO, [christmas], local(MEXICO, 2026, 12, 26, 0, 0))
    assert is_open(always, MEXICO, [christmas], local(MEXICO, 2026, 12, 24, 23, 59))


def test_holidays_are_local_dates_not_utc_dates() -> None:
    # 2026-12-25 01:00 UTC is still Christmas Eve, 19:00, in Mexico City.
    evening = {"thu": [["18:00", "22:00"]]}
    at = datetime(2026, 12, 25, 1, 0, tzinfo=UTC)
    assert is_open(evening, MEXICO, [date(2026, 12, 25)], at)
    assert not is_open(evening, MEXICO, [date(2026, 12, 24)], at)


def test_the_instant_may_come_in_any_zone() -> None:
    # Monday 09:30 in Mexico City (UTC-6, no daylight saving since 2022).
    in_utc = datetime(2026, 1, 5, 15, 30, tzinfo=UTC)
    in_madrid = in_utc.astimezone(ZoneInfo("Europe/Madrid"))
    assert is_open(OFFICE, MEXICO, [], in_utc)
    assert is_open(OFFICE, MEXICO, [], in_madrid)
    assert not is_open(OFFICE, MEXICO, [], datetime(2026, 1, 5, 14, 59, tzinfo=UTC))


def test_mexico_city_keeps_utc_minus_6_all_year_since_2022() -> None:
    # The first Sunday of April was a clock change until 2022; now 09:00 is 15:00 UTC all year.
    for month in (1, 4, 7, 10):
        first_monday = next(
            day for day in (date(2026, month, d) for d in range(1, 8)) if day.weekday() == 0
        )
        opening = datetime(first_monday.year, month, first_monday.day, 15, 0, tzinfo=UTC)
        assert is_open(OFFICE, MEXICO, [], opening)
        assert not is_open(OFFICE, MEXICO, [], opening - timedelta(seconds=1))


def test_new_york_opening_follows_daylight_saving() -> None:
    weekdays = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    winter = datetime(2026, 3, 6, 14, 0, tzinfo=UTC)  # Friday 09:00 EST (UTC-5)
    summer = datetime(2026, 3, 9, 13, 0, tzinfo=UTC)  # Monday 09:00 EDT (UTC-4)
    assert is_open(weekdays, NEW_YORK, [], winter)
    assert not is_open(weekdays, NEW_YORK, [], winter - timedelta(minutes=1))
    assert is_open(weekdays, NEW_YORK, [], summer)
    assert not is_open(weekdays, NEW_YORK, [], summer - timedelta(minutes=1))


def test_an_interval_in_the_spring_forward_gap_does_not_happen() -> None:
    # 2026-03-08 (Sunday): New York clocks jump from 02:00 to 03:00.
    night = {"sun": [["02:00", "03:00"]]}
    start = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST
    minutes = [start + timedelta(minutes=m) for m in range(6 * 60)]
    assert not any(is_open(night, NEW_YORK, [], m) for m in minutes)


def test_an_interval_in_the_fall_back_overlap_lasts_both_hours() -> None:
    # 2026-11-01 (Sunday): New York clocks go back from 02:00 EDT to 01:00 EST.
    night = {"sun": [["01:00", "02:00"]]}
    start = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 EDT
    open_minutes = [
        m
        for m in (start + timedelta(minutes=i) for i in range(6 * 60))
        if is_open(night, NEW_YORK, [], m)
    ]
    assert len(open_minutes) == 120
    assert open_minutes[0] == datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
    assert open_minutes[-1] == datetime(2026, 11, 1, 6, 59, tzinfo=UTC)


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_open(OFFICE, MEXICO, [], datetime(2026, 1, 5, 12, 0))  # noqa: DTZ001


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        is_open(OFFICE, "Mars/Olympus_Mons", [], datetime(2026, 1, 5, tzinfo=UTC))


# --- next_opening ----------------------------------------------------------------------------


def test_next_opening_is_now_when_open() -> None:
    at = local(MEXICO, 2026, 1, 5, 10, 15)
    assert next_opening(OFFICE, MEXICO, [], at) == at
    assert next_opening(OFFICE, MEXICO, [], at).tzinfo is UTC  # type: ignore[union-attr]


def test_next_opening_later_the_same_day_and_the_next_morning() -> None:
    assert next_opening(OFFICE, MEXICO, [], local(MEXICO, 2026, 1, 5, 7, 0)) == local(
        MEXICO, 2026, 1, 5, 9, 0
    )
    assert next_opening(OFFICE, MEXICO, [], local(MEXICO, 2026, 1, 5, 18, 0)) == local(
        MEXICO, 2026, 1, 6, 9, 0
    )


def test_next_opening_after_saturday_is_monday() -> None:
    assert next_opening(OFFICE, MEXICO, [], local(MEXICO, 2026, 1, 10, 14, 0)) == local(
        MEXICO, 2026, 1, 12, 9, 0
    )


def test_next_opening_skips_a_holiday_weekend() -> None:
    # Friday 2026-03-13 and Monday 2026-03-16 (Benito Juárez's day) are holidays: closed from
    # Thursday 18:00 until Saturday 10:00, then again until Tuesday 09:00.
    holidays = [date(2026, 3, 13), date(2026, 3, 16)]
    thursday_evening = local(MEXICO, 2026, 3, 12, 18, 0)
    assert next_opening(OFFICE, MEXICO, holidays, thursday_evening) == local(
        MEXICO, 2026, 3, 14, 10, 0
    )
    saturday_close = local(MEXICO, 2026, 3, 14, 14, 0)
    assert next_opening(OFFICE, MEXICO, holidays, saturday_close) == local(
        MEXICO, 2026, 3, 17, 9, 0
    )


def test_next_opening_from_a_utc_instant() -> None:
    # Sunday 2026-01-11 23:00 UTC is Sunday 17:00 in Mexico City: Monday 09:00 is 15:00 UTC.
    at = datetime(2026, 1, 11, 23, 0, tzinfo=UTC)
    assert next_opening(OFFICE, MEXICO, [], at) == datetime(2026, 1, 12, 15, 0, tzinfo=UTC)


def test_next_opening_across_the_new_york_clock_change() -> None:
    weekdays = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    friday_close = datetime(2026, 3, 6, 22, 0, tzinfo=UTC)  # 17:00 EST
    assert next_opening(weekdays, NEW_YORK, [], friday_close) == datetime(
        2026, 3, 9, 13, 0, tzinfo=UTC
    )  # 09:00 EDT


def test_next_opening_when_the_clock_jumps_into_an_interval() -> None:
    # 02:30 does not exist on 2026-03-08 in New York; the interval opens when 03:00 EDT begins.
    night = {"sun": [["02:30", "04:00"]]}
    at = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
    assert next_opening(night, NEW_YORK, [], at) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def test_next_opening_in_the_fall_back_overlap_takes_the_first_reading() -> None:
    night = {"sun": [["01:30", "03:00"]]}
    at = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 EDT
    assert next_opening(night, NEW_YORK, [], at) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_next_opening_is_none_without_any_interval() -> None:
    assert next_opening({}, MEXICO, [], datetime(2026, 1, 5, tzinfo=UTC)) is None
    assert next_opening({"mon": []}, MEXICO, [], datetime(2026, 1, 5, tzinfo=UTC)) is None


def test_next_opening_searches_400_days_and_no_further() -> None:
    mondays_only = {"mon": [["09:00", "10:00"]]}
    start = local(MEXICO, 2026, 1, 5, 12, 0)
    every_monday = [date(2026, 1, 5) + timedelta(weeks=w) for w in range(80)]
    assert next_opening(mondays_only, MEXICO, every_monday, start) is None
    all_but_last = every_monday[:-30]  # leaves a Monday open about 350 days ahead
    found = next_opening(mondays_only, MEXICO, all_but_last, start)
    assert found is not None
    assert timedelta(days=300) < found - start < timedelta(days=SEARCH_DAYS)


# --- validate_weekly -------------------------------------------------------------------------


def test_validate_weekly_normalises_the_order() -> None:
    assert validate_weekly({"tue": [["15:00", "18:00"], ["09:00", "14:00"]], "mon": []}) == {
        "mon": [],
        "tue": [["09:00", "14:00"], ["15:00", "18:00"]],
    }


@pytest.mark.parametrize(
    ("weekly", "message"),
    [
        ([], "object keyed by day"),
        ({"monday": []}, "unknown day 'monday'"),
        ({"mon": "09:00-18:00"}, "list of \\[start, end\\] pairs"),
        ({"mon": [["09:00"]]}, "pair"),
        ({"mon": [["09:00", "18:00", "20:00"]]}, "pair"),
        ({"mon": [["9:00", "18:00"]]}, "bad time '9:00'"),
        ({"mon": [["09:60", "18:00"]]}, "bad time '09:60'"),
        ({"mon": [["24:00", "24:00"]]}, "bad time '24:00'"),
        ({"mon": [["09:00", "24:30"]]}, "bad time '24:30'"),
        ({"mon": [[9, 18]]}, "bad time 9"),
        ({"mon": [["18:00", "09:00"]]}, "may not cross midnight"),
        ({"mon": [["09:00", "09:00"]]}, "must start before it ends"),
        ({"mon": [["09:00", "13:00"], ["12:00", "18:00"]]}, "09:00-13:00 and 12:00-18:00 overlap"),
    ],
)
def test_validate_weekly_explains_what_is_wrong(weekly: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_weekly(weekly)


def test_touching_intervals_do_not_overlap() -> None:
    assert validate_weekly({"mon": [["09:00", "12:00"], ["12:00", "18:00"]]})


# --- properties ------------------------------------------------------------------------------

ZONES = [MEXICO, NEW_YORK, "UTC", "Asia/Kolkata", "Australia/Lord_Howe", "America/Santiago"]


@st.composite
def weeklies(draw: st.DrawFn) -> dict[str, list[list[str]]]:
    weekly: dict[str, list[list[str]]] = {}
    for day in DAYS:
        # Boundaries on quarter hours, so DST changes (on the hour or half hour) land on them.
        cuts = sorted(draw(st.sets(st.integers(0, 96), max_size=6)))
        pairs = list(zip(cuts[::2], cuts[1::2], strict=False))
        weekly[day] = [
            [f"{s * 15 // 60:02d}:{s * 15 % 60:02d}", f"{e * 15 // 60:02d}:{e * 15 % 60:02d}"]
            for s, e in pairs
            if s < e
        ]
    assume(any(weekly.values()))
    return weekly


instants = st.datetimes(
    min_value=datetime(2025, 1, 1),  # noqa: DTZ001 - hypothesis draws naive, made UTC below
    max_value=datetime(2027, 12, 31),  # noqa: DTZ001
).map(lambda naive: naive.replace(second=0, microsecond=0, tzinfo=UTC))


def _clock_changes(zone: str) -> list[datetime]:
    """The instants of 2026 at which ``zone`` changes its UTC offset (to the hour)."""
    tz, hour = ZoneInfo(zone), timedelta(hours=1)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    hours = [start + hour * h for h in range(366 * 24)]
    return [
        b
        for a, b in pairwise(hours)
        if a.astimezone(tz).utcoffset() != b.astimezone(tz).utcoffset()
    ]


CLOCK_CHANGES = [(zone, change) for zone in ZONES for change in _clock_changes(zone)]


@st.composite
def zones_and_instants(draw: st.DrawFn) -> tuple[str, datetime]:
    """Half of the time an instant in the three days before a clock change, where the
    interesting cases are; otherwise any minute of 2025-2027."""
    if draw(st.booleans()):
        zone, change = draw(st.sampled_from(CLOCK_CHANGES))
        return zone, change - timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
    return draw(st.sampled_from(ZONES)), draw(instants)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    weekly=weeklies(),
    zone_and_at=zones_and_instants(),
    holidays=st.sets(st.integers(0, 20), max_size=3),
)
def test_next_opening_is_the_first_open_minute(
    weekly: dict[str, list[list[str]]], zone_and_at: tuple[str, datetime], holidays: set[int]
) -> None:
    zone, at = zone_and_at
    days = [at.date() + timedelta(days=d) for d in holidays]
    calendar = Calendar(weekly, zone, days)
    found = calendar.next_opening(at)
    assert found is not None  # every zone shows every weekday within a few weeks
    assert calendar.is_open(found)
    assert found >= at
    # Nothing opens earlier: step back minute by minute to ``at``. Clock changes in these
    # zones fall on whole minutes, so a minute scan sees every opening.
    minute = found - timedelta(minutes=1)
    while minute >= at and found - minute <= timedelta(days=3):
        assert not calendar.is_open(minute), minute
        minute -= timedelta(minutes=1)


@settings(max_examples=200, deadline=None)
@given(weekly=weeklies(), zone=st.sampled_from(ZONES), at=instants)
def test_is_open_agrees_with_the_local_wall_clock(
    weekly: dict[str, list[list[str]]], zone: str, at: datetime
) -> None:
    wall = at.astimezone(ZoneInfo(zone))
    minute = f"{wall.hour:02d}:{wall.minute:02d}"
    expected = any(
        start <= minute < ("24:00" if end == "24:00" else end)
        for start, end in weekly[DAYS[wall.weekday()]]
    )
    assert is_open(weekly, zone, [], at) is expected
    assert is_open(weekly, zone, [wall.date()], at) is False


@given(weekly=weeklies())
def test_validate_weekly_accepts_its_own_output(weekly: dict[str, list[list[str]]]) -> None:
    normalised = validate_weekly(weekly)
    assert validate_weekly(normalised) == normalised
