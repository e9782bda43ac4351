"""Billing periods, proration, and how a change of terms splits into increases and decreases.

Pure: no clock, no I/O. Dates are calendar days; a period is the half-open range
``[start, end)``.

- Periods are monthly and anchored on the purchase date. Period ``i`` starts ``i`` months after
  the anchor, on the anchor's day of the month, or on the month's last day when it has no such
  day. Every start is computed from the anchor, never from the previous start, so the clamp
  never sticks: anchor 31 Jan → 28/29 Feb → 31 Mar → 30 Apr → 31 May.
- An increase (more agents, more PBX users, an add-on, the licence upgrade) takes effect at
  once and is charged for the days left in the period: ``prorate``. A decrease takes effect at
  the next renewal; nothing is ever refunded.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from atiende.billing.pricing import (
    PriceItem,
    PriceList,
    QuoteRuleBroken,
    Terms,
    validate_terms,
)


def add_months(anchor: date, months: int) -> date:
    """``anchor`` moved by whole months, on the month's last day when its day does not exist."""
    years, month_index = divmod(anchor.month - 1 + months, 12)
    year, month = anchor.year + years, month_index + 1
    return date(year, month, min(anchor.day, monthrange(year, month)[1]))


def period_bounds(anchor: date, index: int) -> tuple[date, date]:
    """Start (inclusive) and end (exclusive) of period ``index`` (0 is the first)."""
    if index < 0:
        raise ValueError(f"period index must be 0 or more, got {index}")
    return add_months(anchor, index), add_months(anchor, index + 1)


def period_containing(anchor: date, day: date) -> tuple[int, date, date]:
    """The period that ``day`` falls in: its index, start and end."""
    if day < anchor:
        raise ValueError(f"{day} is before the first period, which starts on {anchor}")
    # Period starts fall one per calendar month, so the start in ``day``'s month is either
    # on or before ``day`` (that period holds it) or after it (the previous one does).
    index = (day.year - anchor.year) * 12 + day.month - anchor.month
    if add_months(anchor, index) > day:
        index -= 1
    start, end = period_bounds(anchor, index)
    return index, start, end


def _days(period_start: date, period_end: date, on: date) -> tuple[int, int]:
    """Days from ``on`` to the period's end, and days in the period."""
    if not period_start < period_end:
        raise ValueError(f"empty period {period_start} to {period_end}")
    if not period_start <= on <= period_end:
        raise ValueError(f"{on} is outside the period {period_start} to {period_end}")
    return (period_end - on).days, (period_end - period_start).days


def prorate(amount_cents: int, period_start: date, period_end: date, on: date) -> int:
    """The part of a whole period's ``amount_cents`` for the days from ``on`` to the end.

    ``amount * days_left / days_in_period``, rounded half up to a cent in integer arithmetic.
    A change on the period's first day pays the whole amount; on its end, nothing.
    """
    if amount_cents < 0:
        raise ValueError(f"amount must not be negative, got {amount_cents}")
    days_left, days_in_period = _days(period_start, period_end, on)
    # round(a * l / d) half up == floor((2 * a * l + d) / (2 * d)) for non-negative values
    return (2 * amount_cents * days_left + days_in_period) // (2 * days_in_period)


# -- changes of terms ----------------------------------------------------------------------


class ChangeKind(StrEnum):
    license_upgrade = "license_upgrade"
    agents = "agents"
    pbx_users = "pbx_users"
    addon = "addon"


@dataclass(frozen=True)
class Change:
    """One part of a change of terms.

    ``code`` is the price-list item it is about (the new licence for ``license_upgrade`` and
    ``agents``, ``pbx_user``, or the add-on) and ``quantity`` how many units move: agents, PBX
    users, 1 for an add-on, and for the upgrade the agents whose licence changes.
    """

    kind: ChangeKind
    code: str
    quantity: int


@dataclass(frozen=True)
class ChargeLine:
    """One item of an increase, charged for the days left in the period.

    ``unit_cents`` is the price of one unit for a whole period (for the upgrade, the difference
    between the two licences), ``full_cents`` is ``quantity * unit_cents``, and
    ``amount_cents`` is ``full_cents`` prorated: what is invoiced now.
    """

    kind: ChangeKind
    code: str
    quantity: int
    unit_cents: int
    full_cents: int
    amount_cents: int

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "code": self.code,
            "quantity": self.quantity,
            "unit_cents": self.unit_cents,
            "full_cents": self.full_cents,
            "amount_cents": self.amount_cents,
        }


@dataclass(frozen=True)
class IncreaseCharge:
    currency: str
    days_left: int
    days_in_period: int
    total_cents: int
    lines: tuple[ChargeLine, ...]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "days_left": self.days_left,
            "days_in_period": self.days_in_period,
            "total_cents": self.total_cents,
            "lines": [line.to_json_dict() for line in self.lines],
        }


def _licence(price_list: PriceList, code: str) -> PriceItem:
    licence = price_list.licence(code)
    if licence is None:
        known = ", ".join(item.code for item in price_list.licences)
        raise QuoteRuleBroken(
            f"Unknown licence {code!r}; the licences are {known}.", code="unknown_license"
        )
    return licence


def classify_change(
    old: Terms, new: Terms, price_list: PriceList
) -> tuple[tuple[Change, ...], tuple[Change, ...]]:
    """Split the move from ``old`` to ``new`` into increases and decreases.

    The new terms must satisfy every rule of the price list (minimum, step, PBX users…);
    the deployment never changes; a licence may only move to a dearer one (voice →
    omnichannel), the reverse raises ``license_downgrade_refused``. Both parts come in quote
    order: licence, agents, PBX users, add-ons in price-list order.
    """
    if new.deployment != old.deployment:
        raise QuoteRuleBroken(
            f"The deployment cannot change ({old.deployment} → {new.deployment}); "
            "it is fixed at purchase.",
            code="deployment_change_refused",
        )
    validate_terms(new, price_list)
    old_licence, new_licence = _licence(price_list, old.license), _licence(price_list, new.license)
    increases: list[Change] = []
    decreases: list[Change] = []
    if old_licence != new_licence:
        if new_licence.unit_cents <= old_licence.unit_cents:
            raise QuoteRuleBroken(
                f"A licence cannot move from {old.license} to {new.license}; "
                "only the upgrade to a dearer licence is allowed.",
                code="license_downgrade_refused",
            )
        increases.append(Change(ChangeKind.license_upgrade, new.license, old.agents))
    if new.agents > old.agents:
        increases.append(Change(ChangeKind.agents, new.license, new.agents - old.agents))
    elif new.agents < old.agents:
        decreases.append(Change(ChangeKind.agents, new.license, old.agents - new.agents))
    old_pbx, new_pbx = old.pbx_users or 0, new.pbx_users or 0
    if new_pbx > old_pbx:
        increases.append(Change(ChangeKind.pbx_users, price_list.pbx_user.code, new_pbx - old_pbx))
    elif new_pbx < old_pbx:
        decreases.append(Change(ChangeKind.pbx_users, price_list.pbx_user.code, old_pbx - new_pbx))
    for addon in price_list.addons:
        if addon.code in new.addons and addon.code not in old.addons:
            increases.append(Change(ChangeKind.addon, addon.code, 1))
        elif addon.code in old.addons and addon.code not in new.addons:
            decreases.append(Change(ChangeKind.addon, addon.code, 1))
    return tuple(increases), tuple(decreases)


def apply_increases(old: Terms, new: Terms, price_list: PriceList) -> Terms:
    """The terms in force from the change until the next renewal: ``old`` with the increases
    of ``new`` applied and its decreases not yet (they wait for the renewal)."""
    classify_change(old, new, price_list)
    now_pbx = None
    if old.pbx_users is not None or new.pbx_users is not None:
        now_pbx = max(old.pbx_users or 0, new.pbx_users or 0)
    return Terms(
        deployment=new.deployment,
        license=new.license,
        agents=max(old.agents, new.agents),
        pbx_users=now_pbx,
        addons=old.addons | new.addons,
    )


def _unit_cents(change: Change, old: Terms, price_list: PriceList) -> int:
    if change.kind is ChangeKind.license_upgrade:
        upgraded, held = _licence(price_list, change.code), _licence(price_list, old.license)
        return upgraded.unit_cents - held.unit_cents
    item = price_list.item(change.code)
    if item is None:  # classify_change only names items of this price list
        raise ValueError(f"no price for {change.code!r}")
    return item.unit_cents


def increase_charge(  # noqa: PLR0917 - the period and day read as in prorate
    old: Terms,
    new: Terms,
    price_list: PriceList,
    period_start: date,
    period_end: date,
    on: date,
) -> IncreaseCharge:
    """What the increases in the move from ``old`` to ``new`` cost for the rest of the period.

    Each increase is one line, prorated on its own from ``on`` to ``period_end``:

    - the upgrade: (new licence - old licence) * the agents held now (``old.agents``);
    - added agents: the new licence's price * the agents added;
    - added PBX users and add-ons at their price.

    Decreases in the same move are left out: they cost nothing now and apply at renewal.
    """
    days_left, days_in_period = _days(period_start, period_end, on)
    increases, _ = classify_change(old, new, price_list)
    lines = []
    for change in increases:
        unit_cents = _unit_cents(change, old, price_list)
        full_cents = unit_cents * change.quantity
        lines.append(
            ChargeLine(
                kind=change.kind,
                code=change.code,
                quantity=change.quantity,
                unit_cents=unit_cents,
                full_cents=full_cents,
                amount_cents=prorate(full_cents, period_start, period_end, on),
            )
        )
    return IncreaseCharge(
        currency=price_list.currency,
        days_left=days_left,
        days_in_period=days_in_period,
        total_cents=sum(line.amount_cents for line in lines),
        lines=tuple(lines),
    )
