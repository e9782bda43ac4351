"""Billing periods, proration, and increases versus decreases in a change of terms."""

from __future__ import annotations

from calendar import monthrange
from datetime import date, timedelta
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atiende.billing.periods import (
    Change,
    ChangeKind,
    ChargeLine,
    add_months,
    apply_increases,
    classify_change,
    increase_charge,
    period_bounds,
    period_containing,
    prorate,
)
from atiende.billing.pricing import QuoteRuleBroken, Terms, price_list_at, quote

PRICES = price_list_at(date(2026, 1, 1))
ADDONS = ("reports", "openai", "support_24x7")


def terms(
    deployment: str, license: str, agents: int, pbx_users: int | None = None, *addons: str
) -> Terms:
    return Terms(deployment, license, agents, pbx_users, frozenset(addons))


# --- periods ---------------------------------------------------------------------------------


def test_an_anchor_on_the_31st_clamps_each_month_without_sticking() -> None:
    anchor = date(2026, 1, 31)
    starts = [period_bounds(anchor, index)[0] for index in range(5)]
    assert starts == [
        date(2026, 1, 31),
        date(2026, 2, 28),
        date(2026, 3, 31),
        date(2026, 4, 30),
        date(2026, 5, 31),
    ]
    assert period_bounds(anchor, 1) == (date(2026, 2, 28), date(2026, 3, 31))


def test_a_leap_february_ends_on_the_29th() -> None:
    assert period_bounds(date(2028, 1, 31), 0) == (date(2028, 1, 31), date(2028, 2, 29))
    assert period_bounds(date(2028, 1, 30), 1) == (date(2028, 2, 29), date(2028, 3, 30))


def test_an_anchor_on_29_february_comes_back_in_leap_years() -> None:
    anchor = date(2028, 2, 29)
    assert period_bounds(anchor, 1)[0] == date(2028, 3, 29)
    assert period_bounds(anchor, 12)[0] == date(2029, 2, 28)
    assert period_bounds(anchor, 13)[0] == date(2029, 3, 29)
    assert period_bounds(anchor, 48)[0] == date(2032, 2, 29)


def test_periods_cross_the_year() -> None:
    assert period_bounds(date(2026, 11, 30), 1) == (date(2026, 12, 30), date(2027, 1, 30))
    assert add_months(date(2026, 12, 15), 1) == date(2027, 1, 15)
    assert add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)


def test_period_containing_a_day() -> None:
    anchor = date(2026, 1, 31)
    assert period_containing(anchor, date(2026, 1, 31)) == (0, date(2026, 1, 31), date(2026, 2, 28))
    assert period_containing(anchor, date(2026, 2, 27)) == (0, date(2026, 1, 31), date(2026, 2, 28))
    assert period_containing(anchor, date(2026, 2, 28)) == (1, date(2026, 2, 28), date(2026, 3, 31))
    assert period_containing(anchor, date(2026, 3, 30)) == (1, date(2026, 2, 28), date(2026, 3, 31))
    assert period_containing(anchor, date(2026, 3, 31)) == (2, date(2026, 3, 31), date(2026, 4, 30))


def test_no_period_before_the_anchor() -> None:
    with pytest.raises(ValueError, match="before the first period"):
        period_containing(date(2026, 1, 31), date(2026, 1, 30))
    with pytest.raises(ValueError, match="index"):
        period_bounds(date(2026, 1, 31), -1)


anchors = st.one_of(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)),
    st.builds(
        lambda year, month, day: date(year, month, min(day, monthrange(year, month)[1])),
        st.integers(2000, 2100),
        st.integers(1, 12),
        st.sampled_from([28, 29, 30, 31]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(anchor=anchors, first=st.integers(0, 1200))
def test_periods_tile_the_calendar(anchor: date, first: int) -> None:
    bounds = [period_bounds(anchor, index) for index in range(first, first + 14)]
    for (_, end), (next_start, _) in pairwise(bounds):
        assert end == next_start, "a gap or an overlap"
    for start, end in bounds:
        assert 28 <= (end - start).days <= 31
        assert start.day == min(anchor.day, monthrange(start.year, start.month)[1])
    months = [start.year * 12 + start.month for start, _ in bounds]
    assert all(later == earlier + 1 for earlier, later in pairwise(months)), "one per month"


@settings(max_examples=300, deadline=None)
@given(anchor=anchors, offset=st.integers(0, 40_000))
def test_period_containing_agrees_with_period_bounds(anchor: date, offset: int) -> None:
    day = anchor + timedelta(days=offset)
    index, start, end = period_containing(anchor, day)
    assert start <= day < end
    assert period_bounds(anchor, index) == (start, end)
    assert period_containing(anchor, start)[0] == index
    assert period_containing(anchor, end - timedelta(days=1))[0] == index


# --- proration -------------------------------------------------------------------------------


def test_a_change_on_the_first_day_charges_the_whole_amount_and_on_the_end_nothing() -> None:
    start, end = date(2026, 1, 31), date(2026, 2, 28)
    assert prorate(2900, start, end, start) == 2900
    assert prorate(2900, start, end, end) == 0


def test_prorate_worked_examples() -> None:
    # 28-day period, 14 days left: half.
    assert prorate(2900, date(2026, 1, 31), date(2026, 2, 28), date(2026, 2, 14)) == 1450
    # 30-day period, 20 days left: 6666.67 → 6667.
    assert prorate(10000, date(2026, 3, 31), date(2026, 4, 30), date(2026, 4, 10)) == 6667
    # 31-day period, 26 days left: 2432.26 → 2432.
    assert prorate(2900, date(2026, 1, 15), date(2026, 2, 15), date(2026, 1, 20)) == 2432


def test_prorate_rounds_half_a_cent_up() -> None:
    assert prorate(1, date(2026, 1, 1), date(2026, 1, 3), date(2026, 1, 2)) == 1  # 0.5
    assert prorate(3, date(2026, 1, 1), date(2026, 1, 5), date(2026, 1, 4)) == 1  # 0.75
    assert prorate(1, date(2026, 1, 1), date(2026, 1, 4), date(2026, 1, 3)) == 0  # 0.33


def test_prorate_refuses_a_day_outside_the_period_and_a_negative_amount() -> None:
    start, end = date(2026, 1, 31), date(2026, 2, 28)
    with pytest.raises(ValueError, match="outside the period"):
        prorate(2900, start, end, date(2026, 1, 30))
    with pytest.raises(ValueError, match="outside the period"):
        prorate(2900, start, end, date(2026, 3, 1))
    with pytest.raises(ValueError, match="negative"):
        prorate(-1, start, end, start)
    with pytest.raises(ValueError, match="empty period"):
        prorate(1, start, start, start)


amounts = st.integers(min_value=0, max_value=10_000_000)


@st.composite
def period_and_days(draw: st.DrawFn, count: int = 2) -> tuple[date, date, list[date]]:
    anchor = draw(anchors)
    start, end = period_bounds(anchor, draw(st.integers(0, 24)))
    length = (end - start).days
    offsets = sorted(draw(st.lists(st.integers(0, length), min_size=count, max_size=count)))
    return start, end, [start + timedelta(days=offset) for offset in offsets]


@settings(max_examples=400, deadline=None)
@given(amount=amounts, period=period_and_days())
def test_prorate_is_exact_half_up_bounded_and_monotone(
    amount: int, period: tuple[date, date, list[date]]
) -> None:
    start, end, (earlier, later) = period
    exact = Fraction(amount * (end - earlier).days, (end - start).days)
    charged = prorate(amount, start, end, earlier)
    assert charged == int(exact + Fraction(1, 2))  # floor(x + ½): half up
    assert 0 <= charged <= amount
    assert prorate(amount, start, end, later) <= charged, "a later change never costs more"


@settings(max_examples=300, deadline=None)
@given(amount=amounts, period=period_and_days(count=5))
def test_charges_over_a_split_of_the_days_left_never_exceed_the_whole(
    amount: int, period: tuple[date, date, list[date]]
) -> None:
    start, end, days = period
    pieces = [prorate(amount, start, end, a) - prorate(amount, start, end, b)
              for a, b in pairwise([*days, end])]  # fmt: skip
    assert all(piece >= 0 for piece in pieces)
    assert sum(pieces) == prorate(amount, start, end, days[0]) <= amount


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(amounts, min_size=1, max_size=6), period=period_and_days(count=1))
def test_prorating_an_amount_in_parts_never_exceeds_the_whole(
    parts: list[int], period: tuple[date, date, list[date]]
) -> None:
    start, end, (on,) = period
    charged = [prorate(part, start, end, on) for part in parts]
    assert sum(charged) <= sum(parts)
    # Each part is rounded on its own: at most half a cent each way per part.
    assert abs(sum(charged) - prorate(sum(parts), start, end, on)) <= len(parts)


# --- increases and decreases -----------------------------------------------------------------


def test_more_agents_pbx_users_and_an_addon_are_increases() -> None:
    increases, decreases = classify_change(
        terms("cloud", "voice", 5, 7), terms("cloud", "voice", 6, 8, "reports"), PRICES
    )
    assert increases == (
        Change(ChangeKind.agents, "voice", 1),
        Change(ChangeKind.pbx_users, "pbx_user", 1),
        Change(ChangeKind.addon, "reports", 1),
    )
    assert decreases == ()


def test_the_upgrade_covers_the_agents_held_and_fewer_agents_wait_for_renewal() -> None:
    increases, decreases = classify_change(
        terms("on_premise", "voice", 15), terms("on_premise", "omnichannel", 10), PRICES
    )
    assert increases == (Change(ChangeKind.license_upgrade, "omnichannel", 15),)
    assert decreases == (Change(ChangeKind.agents, "omnichannel", 5),)


def test_a_mixed_change_splits_into_both() -> None:
    increases, decreases = classify_change(
        terms("cloud", "voice", 8, 12, "reports", "openai"),
        terms("cloud", "voice", 10, 10, "openai", "support_24x7"),
        PRICES,
    )
    assert increases == (
        Change(ChangeKind.agents, "voice", 2),
        Change(ChangeKind.addon, "support_24x7", 1),
    )
    assert decreases == (
        Change(ChangeKind.pbx_users, "pbx_user", 2),
        Change(ChangeKind.addon, "reports", 1),
    )


def test_no_change_is_neither() -> None:
    same = terms("cloud", "omnichannel", 5, 5, "openai")
    assert classify_change(same, same, PRICES) == ((), ())


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        (terms("cloud", "omnichannel", 5, 5), terms("cloud", "voice", 5, 5),
         "license_downgrade_refused"),
        (terms("on_premise", "voice", 15), terms("on_premise", "voice", 12),
         "agents_not_in_step"),
        (terms("cloud", "voice", 5, 5), terms("cloud", "voice", 4, 5), "agents_below_minimum"),
        (terms("cloud", "voice", 6, 6), terms("cloud", "voice", 6, 5), "pbx_users_below_agents"),
        (terms("cloud", "voice", 10, 10), terms("on_premise", "voice", 10),
         "deployment_change_refused"),
        (terms("cloud", "voice", 5, 5), terms("cloud", "voice", 5, 5, "fax"), "unknown_addon"),
    ],
)  # fmt: skip
def test_refused_changes(old: Terms, new: Terms, code: str) -> None:
    with pytest.raises(QuoteRuleBroken) as caught:
        classify_change(old, new, PRICES)
    assert caught.value.error_code == code
    assert caught.value.status_code == 422


def test_downgrade_refusal_names_the_rule() -> None:
    with pytest.raises(QuoteRuleBroken, match="only the upgrade to a dearer licence"):
        increase_charge(
            terms("on_premise", "omnichannel", 10),
            terms("on_premise", "voice", 10),
            PRICES,
            date(2026, 1, 1),
            date(2026, 2, 1),
            date(2026, 1, 1),
        )


def test_terms_until_renewal_take_the_increases_and_keep_what_decreases() -> None:
    now = apply_increases(
        terms("cloud", "voice", 8, 12, "reports"),
        terms("cloud", "omnichannel", 6, 14, "openai"),
        PRICES,
    )
    assert now == terms("cloud", "omnichannel", 8, 14, "reports", "openai")


def test_increase_charge_worked_example_cloud() -> None:
    # Bought 2026-01-31; on 2026-02-14, 14 of the 28 days of [31 Jan, 28 Feb) are left.
    charge = increase_charge(
        terms("cloud", "voice", 5, 7),
        terms("cloud", "voice", 6, 8, "reports"),
        PRICES,
        date(2026, 1, 31),
        date(2026, 2, 28),
        date(2026, 2, 14),
    )
    assert (charge.days_left, charge.days_in_period) == (14, 28)
    assert charge.lines == (
        ChargeLine(ChangeKind.agents, "voice", 1, 2900, 2900, 1450),
        ChargeLine(ChangeKind.pbx_users, "pbx_user", 1, 500, 500, 250),
        ChargeLine(ChangeKind.addon, "reports", 1, 2000, 2000, 1000),
    )
    assert charge.total_cents == 2700
    assert charge.currency == "USD"


def test_increase_charge_worked_example_upgrade() -> None:
    # on_premise voice 10 → omnichannel 15 on 2026-04-10 in [31 Mar, 30 Apr): 20 of 30 days.
    charge = increase_charge(
        terms("on_premise", "voice", 10),
        terms("on_premise", "omnichannel", 15),
        PRICES,
        date(2026, 3, 31),
        date(2026, 4, 30),
        date(2026, 4, 10),
    )
    assert charge.lines == (
        ChargeLine(ChangeKind.license_upgrade, "omnichannel", 10, 1000, 10000, 6667),
        ChargeLine(ChangeKind.agents, "omnichannel", 5, 3900, 19500, 13000),
    )
    assert charge.total_cents == 19667
    assert charge.to_json_dict()["lines"][0] == {
        "kind": "license_upgrade",
        "code": "omnichannel",
        "quantity": 10,
        "unit_cents": 1000,
        "full_cents": 10000,
        "amount_cents": 6667,
    }


def test_a_decrease_alone_costs_nothing_now() -> None:
    charge = increase_charge(
        terms("cloud", "voice", 8, 8, "reports"),
        terms("cloud", "voice", 5, 5),
        PRICES,
        date(2026, 1, 31),
        date(2026, 2, 28),
        date(2026, 2, 1),
    )
    assert charge.lines == ()
    assert charge.total_cents == 0


def test_increase_charge_refuses_a_day_outside_the_period() -> None:
    with pytest.raises(ValueError, match="outside the period"):
        increase_charge(
            terms("cloud", "voice", 5, 5),
            terms("cloud", "voice", 6, 6),
            PRICES,
            date(2026, 1, 31),
            date(2026, 2, 28),
            date(2026, 3, 1),
        )


@st.composite
def valid_terms_in(draw: st.DrawFn, deployment: str) -> Terms:
    minimum, step = (5, 1) if deployment == "cloud" else (10, 5)
    agents = minimum + step * draw(st.integers(0, 30))
    pbx_users = agents + draw(st.integers(0, 20)) if deployment == "cloud" else None
    return Terms(
        deployment,
        draw(st.sampled_from(["voice", "omnichannel"])),
        agents,
        pbx_users,
        draw(st.frozensets(st.sampled_from(ADDONS))),
    )


@st.composite
def allowed_changes(draw: st.DrawFn) -> tuple[Terms, Terms]:
    deployment = draw(st.sampled_from(["cloud", "on_premise"]))
    old, new = draw(valid_terms_in(deployment)), draw(valid_terms_in(deployment))
    if old.license == "omnichannel" and new.license == "voice":
        new = Terms(new.deployment, "omnichannel", new.agents, new.pbx_users, new.addons)
    return old, new


@settings(max_examples=300, deadline=None)
@given(change=allowed_changes(), period=period_and_days(count=1))
def test_an_increase_costs_the_quote_difference_prorated_line_by_line(
    change: tuple[Terms, Terms], period: tuple[date, date, list[date]]
) -> None:
    old, new = change
    start, end, (on,) = period
    charge = increase_charge(old, new, PRICES, start, end, on)
    until_renewal = apply_increases(old, new, PRICES)
    whole_difference = quote(until_renewal, PRICES).total_cents - quote(old, PRICES).total_cents
    assert sum(line.full_cents for line in charge.lines) == whole_difference
    for line in charge.lines:
        assert line.full_cents == line.quantity * line.unit_cents
        assert line.amount_cents == prorate(line.full_cents, start, end, on)
    assert charge.total_cents == sum(line.amount_cents for line in charge.lines)
    assert 0 <= charge.total_cents <= whole_difference
    if on == start:
        assert charge.total_cents == whole_difference
    increases, decreases = classify_change(old, new, PRICES)
    assert len(charge.lines) == len(increases)
    # Agents and PBX users move one way; only different add-ons can come and go together.
    assert {c.kind for c in increases} & {c.kind for c in decreases} <= {ChangeKind.addon}


@settings(max_examples=200, deadline=None)
@given(change=allowed_changes())
def test_terms_until_renewal_are_valid_and_cover_both(change: tuple[Terms, Terms]) -> None:
    old, new = change
    now = apply_increases(old, new, PRICES)
    quote(now, PRICES)  # valid: raises otherwise
    assert now.agents == max(old.agents, new.agents)
    assert now.addons == old.addons | new.addons
    assert now.license == new.license
