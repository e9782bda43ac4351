"""The helpdesk SLA: calendars, targets, due times and the time counted towards them.

Calendar facts used below: 2026-11-01 is a Sunday, so November 2026 has its Mondays on the
2nd, 9th, 16th (the third Monday: Revolution Day, a rest day), 23rd and 30th; 2026-12-25 and
2027-01-01 are Fridays. Mexico City is UTC-6 all year since 2022.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from itertools import islice, pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from atiende.helpdesk import sla
from atiende.helpdesk.sla import (
    AT_RISK_FRACTION,
    ZONE,
    Calendar,
    Plan,
    Severity,
    breached,
    calendar_for,
    due_at,
    elapsed,
    fraction_elapsed,
    is_open,
    next_opening,
    open_intervals,
    remaining,
    rest_days,
    target_for,
)

STANDARD, H24 = Plan.standard, Plan.around_the_clock
CRITICAL, MODERATE, CONSULTATION = Severity.critical, Severity.moderate, Severity.consultation


def mx(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A wall-clock time in Mexico City."""
    return datetime(year, month, day, hour, minute, tzinfo=ZONE)


SECOND = timedelta(seconds=1)


# --- calendars and targets --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "plan", "calendar"),
    [
        (CRITICAL, STANDARD, Calendar.critical_standard),
        (CRITICAL, H24, Calendar.always),
        (MODERATE, STANDARD, Calendar.business),
        (MODERATE, H24, Calendar.business),
        (CONSULTATION, STANDARD, Calendar.business),
        (CONSULTATION, H24, Calendar.business),
    ],
)
def test_each_severity_and_plan_counts_in_its_calendar(
    severity: Severity, plan: Plan, calendar: Calendar
) -> None:
    assert calendar_for(severity, plan) is calendar


def test_targets_are_four_eight_and_twenty_four_hours() -> None:
    assert target_for(CRITICAL) == timedelta(hours=4)
    assert target_for(MODERATE) == timedelta(hours=8)
    assert target_for(CONSULTATION) == timedelta(hours=24)


def test_plain_names_are_accepted_and_unknown_names_refused() -> None:
    assert Plan("24x7") is Plan.around_the_clock
    assert calendar_for("critical", "24x7") is Calendar.always
    assert due_at(mx(2026, 11, 25, 10), "moderate", "standard") == mx(2026, 11, 26, 10)
    with pytest.raises(ValueError, match="urgent"):
        calendar_for("urgent", "standard")
    with pytest.raises(ValueError, match="8x5"):
        due_at(mx(2026, 11, 25, 10), "moderate", "8x5")


def test_the_library_yields_these_rest_days_in_2026() -> None:
    # Pinned so that a change in the holidays library is noticed. They are exactly LFT
    # art. 74: 1 Jan, first Monday of Feb, third Monday of Mar, 1 May, 16 Sep, third Monday
    # of Nov, 25 Dec (no inauguration in 2026).
    assert rest_days(2026) == {
        date(2026, 1, 1),
        date(2026, 2, 2),
        date(2026, 3, 16),
        date(2026, 5, 1),
        date(2026, 9, 16),
        date(2026, 11, 16),
        date(2026, 12, 25),
    }


def test_the_library_yields_these_rest_days_in_2027() -> None:
    assert rest_days(2027) == {
        date(2027, 1, 1),
        date(2027, 2, 1),
        date(2027, 3, 15),
        date(2027, 5, 1),
        date(2027, 9, 16),
        date(2027, 11, 15),
        date(2027, 12, 25),
    }


def test_inauguration_day_is_a_rest_day_every_six_years() -> None:
    assert date(2024, 10, 1) in rest_days(2024)
    assert date(2030, 10, 1) in rest_days(2030)
    assert date(2026, 10, 1) not in rest_days(2026)
    assert date(2027, 10, 1) not in rest_days(2027)


def test_business_hours_are_weekdays_nine_to_five_without_rest_days() -> None:
    assert is_open(Calendar.business, mx(2026, 11, 25, 9))
    assert is_open(Calendar.business, mx(2026, 11, 25, 17) - SECOND)
    assert not is_open(Calendar.business, mx(2026, 11, 25, 17))  # the end is exclusive
    assert not is_open(Calendar.business, mx(2026, 11, 25, 9) - SECOND)
    assert not is_open(Calendar.business, mx(2026, 11, 28, 12))  # Saturday
    assert not is_open(Calendar.business, mx(2026, 11, 16, 12))  # Revolution Day


def test_critical_standard_hours_include_weekends_and_holidays() -> None:
    assert is_open(Calendar.critical_standard, mx(2026, 11, 28, 12))  # Saturday
    assert is_open(Calendar.critical_standard, mx(2026, 12, 25, 9))  # Christmas
    assert not is_open(Calendar.critical_standard, mx(2026, 11, 28, 20))
    assert not is_open(Calendar.critical_standard, mx(2026, 11, 28, 17))


def test_always_is_open_at_any_instant() -> None:
    for hour in range(24):
        assert is_open(Calendar.always, mx(2026, 12, 25, hour))


def test_next_opening_is_the_instant_itself_when_open() -> None:
    assert next_opening(Calendar.business, mx(2026, 11, 25, 10, 30)) == mx(2026, 11, 25, 10, 30)
    # Friday 17:00 is closed; Monday 09:00 opens.
    assert next_opening(Calendar.business, mx(2026, 11, 20, 17)) == mx(2026, 11, 23, 9)


# --- worked examples --------------------------------------------------------------------------

EXAMPLES = [
    # The three examples of the commercial terms.
    # Wed 10:00-17:00 counts 7 h; the last hour is Thu 09:00-10:00.
    pytest.param(MODERATE, STANDARD, mx(2026, 11, 25, 10), mx(2026, 11, 26, 10), id="terms-1"),
    # Saturday 20:00 is after the critical day's 17:00 close; counting starts Sun 09:00.
    pytest.param(CRITICAL, STANDARD, mx(2026, 11, 28, 20), mx(2026, 11, 29, 13), id="terms-2"),
    # Around the clock: 20:00 + 4 h is midnight.
    pytest.param(CRITICAL, H24, mx(2026, 11, 28, 20), mx(2026, 11, 29, 0), id="terms-3"),
    # The 17:00 edge. At 17:00 the day is already closed (the end is exclusive), so the
    # 8 hours are the whole of Thursday.
    pytest.param(MODERATE, STANDARD, mx(2026, 11, 25, 17), mx(2026, 11, 26, 17), id="at-17:00"),
    # 16:59 counts one minute on Wednesday; 7 h 59 min are left for Thursday.
    pytest.param(
        MODERATE, STANDARD, mx(2026, 11, 25, 16, 59), mx(2026, 11, 26, 16, 59), id="at-16:59"
    ),
    # 09:00 is open: eight hours use up Wednesday exactly, so it is due at Wednesday's close
    # (not at Thursday's opening).
    pytest.param(MODERATE, STANDARD, mx(2026, 11, 25, 9), mx(2026, 11, 25, 17), id="at-09:00"),
    # 08:59 waits for 09:00, then the same as above.
    pytest.param(MODERATE, STANDARD, mx(2026, 11, 25, 8, 59), mx(2026, 11, 25, 17), id="at-08:59"),
    # A critical case at 16:00 counts 1 h on Wednesday and 3 h from Thursday 09:00.
    pytest.param(
        CRITICAL, STANDARD, mx(2026, 11, 25, 16), mx(2026, 11, 26, 12), id="critical-16:00"
    ),
    # Friday afternoon: 15:00-17:00 is 2 h, the weekend is closed, 6 h more on Monday 23rd.
    pytest.param(
        MODERATE, STANDARD, mx(2026, 11, 20, 15), mx(2026, 11, 23, 15), id="friday-to-monday"
    ),
    # Before the third Monday of November: Friday 13th 14:00-17:00 is 3 h, the weekend and
    # Monday 16th (Revolution Day) are closed, 5 h more on Tuesday 17th: 09:00 + 5 h.
    pytest.param(
        MODERATE, STANDARD, mx(2026, 11, 13, 14), mx(2026, 11, 17, 14), id="before-revolution"
    ),
    # A consultation (3 business days) over a weekend and the holiday: Thu 12th 12:00-17:00
    # 5 h, Fri 13th 8 h (13), Mon 16th closed, Tue 17th 8 h (21), Wed 18th 3 h: 12:00.
    pytest.param(
        CONSULTATION,
        STANDARD,
        mx(2026, 11, 12, 12),
        mx(2026, 11, 18, 12),
        id="consultation-weekend-and-holiday",
    ),
    # Christmas: Thu 24 Dec 10:00-17:00 7 h, Fri 25 (Christmas) and the weekend closed,
    # Mon 28 8 h (15), Tue 29 8 h (23), Wed 30 the last hour: 10:00.
    pytest.param(
        CONSULTATION, STANDARD, mx(2026, 12, 24, 10), mx(2026, 12, 30, 10), id="christmas"
    ),
    # New Year, across a change of year: Thu 31 Dec 15:00-17:00 2 h, Fri 1 Jan (New Year's
    # Day) and the weekend closed, 6 h from Mon 4 Jan 09:00.
    pytest.param(MODERATE, STANDARD, mx(2026, 12, 31, 15), mx(2027, 1, 4, 15), id="new-year"),
    # Opened on a holiday: Revolution Day counts nothing in business hours; all of Tuesday.
    pytest.param(
        MODERATE, STANDARD, mx(2026, 11, 16, 11), mx(2026, 11, 17, 17), id="holiday-moderate"
    ),
    # ...but critical cases are looked at on holidays: 11:00 + 4 h the same day.
    pytest.param(
        CRITICAL, STANDARD, mx(2026, 11, 16, 11), mx(2026, 11, 16, 15), id="holiday-critical"
    ),
    # Christmas Day is a Friday: a critical case at 15:00 counts 2 h, then 2 h from Sat 09:00.
    pytest.param(
        CRITICAL, STANDARD, mx(2026, 12, 25, 15), mx(2026, 12, 26, 11), id="christmas-critical"
    ),
    # Opened at night: 23:30 waits for 09:00 the next working day.
    pytest.param(
        MODERATE, STANDARD, mx(2026, 11, 24, 23, 30), mx(2026, 11, 25, 17), id="night-moderate"
    ),
    pytest.param(
        CRITICAL, STANDARD, mx(2026, 11, 24, 23, 30), mx(2026, 11, 25, 13), id="night-critical"
    ),
    # After midnight it is the same day's 09:00 that opens.
    pytest.param(
        CRITICAL, STANDARD, mx(2026, 11, 25, 2), mx(2026, 11, 25, 13), id="small-hours-critical"
    ),
    # 24x7 critical at 03:00: four wall-clock hours, 07:00.
    pytest.param(CRITICAL, H24, mx(2026, 11, 25, 3), mx(2026, 11, 25, 7), id="24x7-at-03:00"),
    # 24x7 changes nothing for moderate cases: the Saturday night case waits for Monday
    # 09:00 and is due at Monday's close.
    pytest.param(MODERATE, H24, mx(2026, 11, 28, 20), mx(2026, 11, 30, 17), id="24x7-moderate"),
    # Saturday night on the standard plan, a consultation: Mon 30 Nov, Tue 1 Dec, Wed 2 Dec
    # are three whole business days, due at Wednesday's close.
    pytest.param(
        CONSULTATION,
        STANDARD,
        mx(2026, 11, 28, 20),
        mx(2026, 12, 2, 17),
        id="consultation-three-whole-days",
    ),
]


@pytest.mark.parametrize(("severity", "plan", "opened", "due"), EXAMPLES)
def test_worked_example(severity: Severity, plan: Plan, opened: datetime, due: datetime) -> None:
    assert due_at(opened, severity, plan) == due


@pytest.mark.parametrize(("severity", "plan", "opened", "due"), EXAMPLES)
def test_a_worked_example_counts_exactly_its_target(
    severity: Severity, plan: Plan, opened: datetime, due: datetime
) -> None:
    assert elapsed(opened, due, severity, plan) == target_for(severity)


def test_due_is_given_in_mexico_city_time() -> None:
    # 15:00 UTC in July is 09:00 in Mexico City (no summer time since 2022): a whole day.
    due = due_at(datetime(2026, 7, 1, 15, tzinfo=UTC), MODERATE, STANDARD)
    assert due.tzinfo is ZONE
    assert due.utcoffset() == timedelta(hours=-6)
    assert due.isoformat() == "2026-07-01T17:00:00-06:00"


def test_utc_input_is_the_same_instant_as_mexico_city_input() -> None:
    # 16:00 UTC is 10:00 in Mexico City: the first worked example.
    opened = datetime.fromisoformat("2026-11-25T16:00:00Z")
    assert opened == mx(2026, 11, 25, 10)
    assert due_at(opened, MODERATE, STANDARD) == mx(2026, 11, 26, 10)


def test_input_with_another_offset_is_read_as_its_instant() -> None:
    # 17:00+01:00 is 16:00 UTC, 10:00 in Mexico City.
    opened = datetime.fromisoformat("2026-11-25T17:00:00+01:00")
    assert due_at(opened, MODERATE, STANDARD).isoformat() == "2026-11-26T10:00:00-06:00"
    # 08:00 in Tokyo (+09:00) on Thursday is still Wednesday 17:00 in Mexico City: closed.
    tokyo = datetime(2026, 11, 26, 8, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert due_at(tokyo, MODERATE, STANDARD) == mx(2026, 11, 26, 17)


def test_around_the_clock_counts_real_hours_across_a_clock_change() -> None:
    # Before 2022 Mexico City had summer time: on 31 Oct 2021 the clocks went back from
    # 02:00 (UTC-5) to 01:00 (UTC-6). From midnight (05:00 UTC), four real hours end at
    # 09:00 UTC, 03:00 on the wall clock; the offsets come from zoneinfo, not a constant.
    opened = mx(2021, 10, 31, 0)
    due = due_at(opened, CRITICAL, H24)
    assert due.astimezone(UTC) == datetime(2021, 10, 31, 9, tzinfo=UTC)
    assert due.isoformat() == "2021-10-31T03:00:00-06:00"
    assert opened.isoformat() == "2021-10-31T00:00:00-05:00"
    assert elapsed(opened, due, CRITICAL, H24) == timedelta(hours=4)


def test_a_breach_is_judged_on_the_instant_in_the_repeated_hour() -> None:
    # 22:00 on 30 Oct 2021 (UTC-5) is 03:00 UTC; four hours later is 07:00 UTC, the second
    # 01:00 of the night the clocks went back. The first 01:30 (06:30 UTC) reads later on
    # the wall clock but comes before the due time.
    opened = mx(2021, 10, 30, 22)
    due = due_at(opened, CRITICAL, H24)
    assert due.astimezone(UTC) == datetime(2021, 10, 31, 7, tzinfo=UTC)
    first_one_thirty = mx(2021, 10, 31, 1, 30)
    assert first_one_thirty.astimezone(UTC) == datetime(2021, 10, 31, 6, 30, tzinfo=UTC)
    assert not breached(opened, first_one_thirty, CRITICAL, H24)
    assert not sla.state(opened, first_one_thirty, CRITICAL, H24).breached
    assert remaining(opened, first_one_thirty, CRITICAL, H24) == timedelta(minutes=30)


def test_business_hours_stay_nine_to_five_on_the_wall_clock_in_summer_time() -> None:
    # July 2021, UTC-5: a moderate case at 09:00 local is due at 17:00 local (22:00 UTC).
    due = due_at(mx(2021, 7, 14, 9), MODERATE, STANDARD)
    assert due == mx(2021, 7, 14, 17)
    assert due == datetime(2021, 7, 14, 22, tzinfo=UTC)


def test_naive_times_are_refused() -> None:
    naive = datetime(2026, 11, 25, 10)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        due_at(naive, MODERATE, STANDARD)
    with pytest.raises(ValueError, match="timezone-aware"):
        elapsed(mx(2026, 11, 25, 10), naive, MODERATE, STANDARD)
    with pytest.raises(ValueError, match="timezone-aware"):
        elapsed(naive, mx(2026, 11, 25, 10), MODERATE, STANDARD)
    with pytest.raises(ValueError, match="timezone-aware"):
        breached(mx(2026, 11, 25, 10), naive, MODERATE, STANDARD)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_open(Calendar.business, naive)


def test_a_consultation_over_years_of_rest_days_is_counted_day_by_day() -> None:
    # Ten years of business time equals eight hours per weekday that is not a rest day,
    # counted independently here; the engine walks days, so this is quick.
    opened, at = mx(2026, 1, 1, 0), mx(2036, 1, 1, 0)
    days = (at.date() - opened.date()).days
    working = [
        day
        for day in (opened.date() + timedelta(days=n) for n in range(days))
        if day.weekday() < 5 and day not in rest_days(day.year)
    ]
    assert elapsed(opened, at, CONSULTATION, STANDARD) == timedelta(hours=8) * len(working)


# --- elapsed, remaining, breach ---------------------------------------------------------------

# The first worked example: moderate, opened Wed 25 Nov 2026 10:00, due Thu 26 10:00.
OPENED = mx(2026, 11, 25, 10)


@pytest.mark.parametrize(
    ("at", "counted"),
    [
        # Before opening nothing counts, and at opening nothing yet.
        (mx(2026, 11, 25, 9), timedelta(0)),
        (OPENED, timedelta(0)),
        # 10:00 to 12:00.
        (mx(2026, 11, 25, 12), timedelta(hours=2)),
        # 10:00 to the 17:00 close is 7 h...
        (mx(2026, 11, 25, 17), timedelta(hours=7)),
        # ...and the night adds nothing,
        (mx(2026, 11, 25, 23), timedelta(hours=7)),
        (mx(2026, 11, 26, 8, 59), timedelta(hours=7)),
        # until Thursday 09:00: 7 h + 30 min.
        (mx(2026, 11, 26, 9, 30), timedelta(hours=7, minutes=30)),
        # At the due time, exactly the target.
        (mx(2026, 11, 26, 10), timedelta(hours=8)),
        # The count goes on after the due time: Thursday 10:00-17:00 adds 7 h.
        (mx(2026, 11, 27, 9), timedelta(hours=15)),
    ],
)
def test_elapsed_counts_business_time_only(at: datetime, counted: timedelta) -> None:
    assert elapsed(OPENED, at, MODERATE, STANDARD) == counted
    assert remaining(OPENED, at, MODERATE, STANDARD) == max(
        timedelta(hours=8) - counted, timedelta(0)
    )


def test_remaining_at_night_stays_where_the_day_left_it() -> None:
    assert remaining(OPENED, mx(2026, 11, 25, 20), MODERATE, STANDARD) == timedelta(hours=1)
    assert remaining(OPENED, mx(2026, 11, 26, 3), MODERATE, STANDARD) == timedelta(hours=1)


def test_remaining_is_zero_after_the_due_time() -> None:
    assert remaining(OPENED, mx(2026, 11, 30, 12), MODERATE, STANDARD) == timedelta(0)


def test_not_breached_exactly_at_the_due_time_and_breached_just_after() -> None:
    due = mx(2026, 11, 26, 10)
    assert not breached(OPENED, due - timedelta(microseconds=1), MODERATE, STANDARD)
    assert not breached(OPENED, due, MODERATE, STANDARD)
    assert breached(OPENED, due + timedelta(microseconds=1), MODERATE, STANDARD)


def test_a_due_time_at_the_close_is_breached_during_the_night_after_it() -> None:
    # Moderate at 09:00 is due at 17:00 the same day; at 20:00 the count is still 8 h,
    # but the due time has passed.
    opened = mx(2026, 11, 25, 9)
    at = mx(2026, 11, 25, 20)
    assert elapsed(opened, at, MODERATE, STANDARD) == timedelta(hours=8)
    assert breached(opened, at, MODERATE, STANDARD)


def test_fraction_elapsed_reaches_the_at_risk_threshold() -> None:
    # 10:00 to 16:00 is 6 of 8 hours.
    assert fraction_elapsed(OPENED, mx(2026, 11, 25, 16), MODERATE, STANDARD) == 0.75
    assert fraction_elapsed(OPENED, mx(2026, 11, 26, 10), MODERATE, STANDARD) == 1.0
    assert fraction_elapsed(OPENED, mx(2026, 11, 26, 14), MODERATE, STANDARD) == 1.5


def test_state_bundles_the_figures_at_one_instant() -> None:
    at = mx(2026, 11, 25, 16)
    result = sla.state(OPENED, at, MODERATE, STANDARD)
    assert result == sla.SlaState(
        calendar=Calendar.business,
        target=timedelta(hours=8),
        due_at=mx(2026, 11, 26, 10),
        elapsed=timedelta(hours=6),
        remaining=timedelta(hours=2),
        breached=False,
        fraction=0.75,
    )
    assert result.at_risk


def test_a_state_is_at_risk_only_from_the_threshold_until_the_breach() -> None:
    early = sla.state(OPENED, mx(2026, 11, 25, 15, 59), MODERATE, STANDARD)
    assert early.fraction < AT_RISK_FRACTION
    assert not early.at_risk
    late = sla.state(OPENED, mx(2026, 11, 26, 11), MODERATE, STANDARD)
    assert late.breached
    assert late.remaining == timedelta(0)
    assert not late.at_risk


# --- properties -------------------------------------------------------------------------------

ZONES = st.sampled_from(
    [ZONE, UTC, timezone(timedelta(hours=1)), ZoneInfo("Asia/Tokyo"), ZoneInfo("Europe/Madrid")]
)
INSTANTS = st.datetimes(
    min_value=datetime(2019, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(2031, 12, 31),  # noqa: DTZ001
    timezones=ZONES,
    allow_imaginary=False,
)
SEVERITIES = st.sampled_from(list(Severity))
PLANS = st.sampled_from(list(Plan))
GAPS = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20))


@settings(max_examples=300)
@given(opened=INSTANTS, severity=SEVERITIES, plan=PLANS)
def test_due_is_open_or_at_a_closing_edge(opened: datetime, severity: Severity, plan: Plan) -> None:
    calendar = calendar_for(severity, plan)
    due = due_at(opened, severity, plan)
    assert due.tzinfo is ZONE
    # Ordering and arithmetic in UTC: datetimes sharing a ZoneInfo compare by wall clock.
    assert due.astimezone(UTC) > opened.astimezone(UTC)
    # The instant just before the due time is always counted time; the due time itself is
    # either still open or the closing instant of that period.
    assert is_open(calendar, due.astimezone(UTC) - timedelta(microseconds=1))
    if calendar is not Calendar.always:
        assert time(9) < due.time() <= time(17)
    if calendar is Calendar.business:
        assert due.weekday() < 5
        assert due.date() not in rest_days(due.year)


@settings(max_examples=300)
@given(opened=INSTANTS, severity=SEVERITIES, plan=PLANS)
def test_elapsed_up_to_due_is_the_target(opened: datetime, severity: Severity, plan: Plan) -> None:
    due = due_at(opened, severity, plan)
    assert elapsed(opened, due, severity, plan) == target_for(severity)
    assert remaining(opened, due, severity, plan) == timedelta(0)
    assert not breached(opened, due, severity, plan)
    assert breached(opened, due.astimezone(UTC) + timedelta(microseconds=1), severity, plan)


@settings(max_examples=300)
@given(opened=INSTANTS, severity=SEVERITIES, plan=PLANS, first=GAPS, second=GAPS)
def test_elapsed_is_monotone_and_never_faster_than_the_clock(
    opened: datetime, severity: Severity, plan: Plan, first: timedelta, second: timedelta
) -> None:
    # In UTC: adding to a datetime in a zone with summer time would add wall-clock time.
    earlier = opened.astimezone(UTC) + first
    later = earlier + second
    before = elapsed(opened, earlier, severity, plan)
    after = elapsed(opened, later, severity, plan)
    assert before <= after
    assert after - before <= second


@settings(max_examples=300)
@given(opened=INSTANTS, severity=SEVERITIES, plan=PLANS)
def test_a_case_opened_while_closed_is_due_as_if_opened_at_the_next_opening(
    opened: datetime, severity: Severity, plan: Plan
) -> None:
    calendar = calendar_for(severity, plan)
    assume(not is_open(calendar, opened))
    opening = next_opening(calendar, opened).astimezone(UTC)
    assert opening > opened
    assert is_open(calendar, opening)
    assert not is_open(calendar, opening - timedelta(microseconds=1))
    assert due_at(opened, severity, plan) == due_at(opening, severity, plan)
    assert elapsed(opened, opening, severity, plan) == timedelta(0)


@settings(max_examples=100)
@given(since=INSTANTS, calendar=st.sampled_from(list(Calendar)))
def test_open_intervals_are_ordered_open_and_start_no_earlier_than_asked(
    since: datetime, calendar: Calendar
) -> None:
    intervals = list(islice(open_intervals(calendar, since), 30))
    assert intervals[0][0] >= since
    for start, end in intervals:
        assert start < end
        assert is_open(calendar, start)
        assert is_open(calendar, end - timedelta(microseconds=1))
    for (_, end), (start, _) in pairwise(intervals):
        assert end <= start
