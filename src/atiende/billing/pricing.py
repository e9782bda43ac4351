"""The price list and quotes: what a set of commercial terms costs per month.

Pure: no clock and no I/O besides reading the packaged ``price_lists.json`` once. The price
list is data, versioned by the day it takes effect; every figure here comes from it, never
from constants in code. Money is integer cents.

Commercial rules every quote obeys (each broken rule raises ``QuoteRuleBroken`` with a
stable code that names it, see ``docs/billing.md``):

- a subscription holds one licence type (an ``agent`` item) for all its agents;
- the deployment sets the minimum number of agents and the step above it (cloud: 5, 6, 7…;
  on premise: 10, 15, 20…);
- a deployment that bills PBX users (cloud) needs at least as many PBX users as agents; one
  that does not (on premise) takes no PBX user count;
- add-ons are the ``flat`` items, each bought at most once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from typing import Any, Final, Literal, cast

from atiende.core.errors import ValidationFailed

Unit = Literal["agent", "flat", "pbx_user"]
UNITS: Final[tuple[Unit, ...]] = ("agent", "flat", "pbx_user")
PRICE_LISTS_FILE: Final = "price_lists.json"


class QuoteRuleBroken(ValidationFailed):
    """Terms that break a commercial rule; the error's code names the rule."""

    code = "quote_rule_broken"
    default_message = "The terms break a commercial rule."


class PriceListMissing(ValidationFailed):
    code = "price_list_missing"
    default_message = "No price list is in force on that day."


@dataclass(frozen=True)
class PriceItem:
    code: str
    name_en: str
    name_es: str
    unit_cents: int
    unit: Unit

    def name(self, locale: str) -> str:
        return self.name_es if locale == "es" else self.name_en


@dataclass(frozen=True)
class DeploymentRule:
    name: str
    min_agents: int
    step: int
    pbx_users_billed: bool

    def allows_agents(self, agents: int) -> bool:
        return agents >= self.min_agents and (agents - self.min_agents) % self.step == 0

    def describe_counts(self) -> str:
        """The first allowed agent counts, e.g. ``10, 15, 20…``."""
        return ", ".join(str(self.min_agents + n * self.step) for n in range(3)) + "…"


@dataclass(frozen=True)
class PriceList:
    version: str
    effective_from: date
    currency: str
    items: tuple[PriceItem, ...]
    deployments: tuple[DeploymentRule, ...]

    def item(self, code: str) -> PriceItem | None:
        return next((item for item in self.items if item.code == code), None)

    def deployment(self, name: str) -> DeploymentRule | None:
        return next((rule for rule in self.deployments if rule.name == name), None)

    @property
    def licences(self) -> tuple[PriceItem, ...]:
        return tuple(item for item in self.items if item.unit == "agent")

    @property
    def addons(self) -> tuple[PriceItem, ...]:
        return tuple(item for item in self.items if item.unit == "flat")

    @property
    def pbx_user(self) -> PriceItem:
        return next(item for item in self.items if item.unit == "pbx_user")

    def licence(self, code: str) -> PriceItem | None:
        item = self.item(code)
        return item if item is not None and item.unit == "agent" else None


@dataclass(frozen=True)
class Terms:
    """What a customer buys: one deployment, one licence type for all agents, add-ons.

    ``pbx_users`` is set for a deployment that bills PBX users and ``None`` otherwise;
    ``make_terms`` fills it in from the agent count when a request leaves it out.
    """

    deployment: str
    license: str
    agents: int
    pbx_users: int | None = None
    addons: frozenset[str] = frozenset()


@dataclass(frozen=True)
class QuoteLine:
    code: str
    quantity: int
    unit_cents: int
    amount_cents: int

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "quantity": self.quantity,
            "unit_cents": self.unit_cents,
            "amount_cents": self.amount_cents,
        }


@dataclass(frozen=True)
class Quote:
    """The monthly price of a set of terms, one line per item."""

    currency: str
    total_cents: int
    lines: tuple[QuoteLine, ...]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "total_cents": self.total_cents,
            "lines": [line.to_json_dict() for line in self.lines],
        }


# -- the price list ------------------------------------------------------------------------


def _int(value: Any, where: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _parse_item(raw: Any, where: str) -> PriceItem:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object")
    unit = raw.get("unit")
    if unit not in UNITS:
        raise ValueError(f"{where}: unit must be one of {', '.join(UNITS)}, got {unit!r}")
    return PriceItem(
        code=_str(raw.get("code"), f"{where}.code"),
        name_en=_str(raw.get("name_en"), f"{where}.name_en"),
        name_es=_str(raw.get("name_es"), f"{where}.name_es"),
        unit_cents=_int(raw.get("unit_cents"), f"{where}.unit_cents", minimum=0),
        unit=cast(Unit, unit),
    )


def _parse_price_list(raw: Any, where: str) -> PriceList:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object")
    version = _str(raw.get("version"), f"{where}.version")
    try:
        effective_from = date.fromisoformat(_str(raw.get("effective_from"), where))
    except ValueError as error:
        raise ValueError(f"{where}.effective_from: {error}") from error
    raw_items = raw.get("items")
    if not isinstance(raw_items, list):
        raise ValueError(f"{where}.items: expected a list")
    items = tuple(_parse_item(item, f"{where}.items[{n}]") for n, item in enumerate(raw_items))
    codes = [item.code for item in items]
    if len(set(codes)) != len(codes):
        raise ValueError(f"{where}.items: item codes must be unique")
    if not any(item.unit == "agent" for item in items):
        raise ValueError(f"{where}.items: needs at least one agent licence")
    if sum(item.unit == "pbx_user" for item in items) != 1:
        raise ValueError(f"{where}.items: needs exactly one pbx_user item")
    raw_deployments = raw.get("deployments")
    if not isinstance(raw_deployments, dict) or not raw_deployments:
        raise ValueError(f"{where}.deployments: expected a non-empty object")
    deployments = []
    for name, rule in raw_deployments.items():
        at = f"{where}.deployments.{name}"
        if not isinstance(rule, dict) or not isinstance(rule.get("pbx_users_billed"), bool):
            raise ValueError(f"{at}: expected min_agents, step and pbx_users_billed")
        deployments.append(
            DeploymentRule(
                name=name,
                min_agents=_int(rule.get("min_agents"), f"{at}.min_agents", minimum=1),
                step=_int(rule.get("step"), f"{at}.step", minimum=1),
                pbx_users_billed=rule["pbx_users_billed"],
            )
        )
    return PriceList(
        version=version,
        effective_from=effective_from,
        currency=_str(raw.get("currency"), f"{where}.currency"),
        items=items,
        deployments=tuple(deployments),
    )


def parse_price_lists(raw: Any) -> tuple[PriceList, ...]:
    """Check the price-list data and return its versions, oldest first.

    Raises ``ValueError`` naming the first problem: the data ships with the package, so a bad
    file is a defect, not a user error.
    """
    if not isinstance(raw, list) or not raw:
        raise ValueError("price lists: expected a non-empty list of versions")
    lists = sorted(
        (_parse_price_list(entry, f"price lists[{n}]") for n, entry in enumerate(raw)),
        key=lambda price_list: price_list.effective_from,
    )
    if len({price_list.version for price_list in lists}) != len(lists):
        raise ValueError("price lists: versions must be unique")
    if len({price_list.effective_from for price_list in lists}) != len(lists):
        raise ValueError("price lists: two versions take effect on the same day")
    return tuple(lists)


@cache
def load_price_lists() -> tuple[PriceList, ...]:
    """Every version of the packaged price list, oldest first."""
    text = resources.files("atiende.billing").joinpath(PRICE_LISTS_FILE).read_text("utf-8")
    return parse_price_lists(json.loads(text))


def price_list_at(day: date, price_lists: Sequence[PriceList] | None = None) -> PriceList:
    """The newest price list in force on ``day`` (its ``effective_from`` is on or before it)."""
    lists = load_price_lists() if price_lists is None else price_lists
    in_force = [price_list for price_list in lists if price_list.effective_from <= day]
    if not in_force:
        raise PriceListMissing(f"No price list is in force on {day.isoformat()}.", day=str(day))
    return max(in_force, key=lambda price_list: price_list.effective_from)


# -- terms and quotes ----------------------------------------------------------------------


def _broken(code: str, message: str, **details: Any) -> QuoteRuleBroken:
    return QuoteRuleBroken(message, code=code, **details)


def make_terms(
    price_list: PriceList,
    *,
    deployment: str,
    license: str,
    agents: int,
    pbx_users: int | None = None,
    addons: Iterable[str] = (),
) -> Terms:
    """Terms from a request, as the CLI and API take them.

    Two conveniences happen here and only here: a deployment that bills PBX users gets one
    PBX user per agent when the count is left out (the least it allows), and an add-on named
    twice is refused (``duplicate_addon``) rather than silently bought once. The result is
    not validated; ``quote`` and ``validate_terms`` do that.
    """
    addon_list = list(addons)
    for code in addon_list:
        if addon_list.count(code) > 1:
            raise _broken(
                "duplicate_addon",
                f"Add-on {code!r} is given twice; each add-on is bought once.",
                addon=code,
            )
    rule = price_list.deployment(deployment)
    if pbx_users is None and rule is not None and rule.pbx_users_billed:
        pbx_users = agents
    return Terms(
        deployment=deployment,
        license=license,
        agents=agents,
        pbx_users=pbx_users,
        addons=frozenset(addon_list),
    )


def _checked(terms: Terms, price_list: PriceList) -> tuple[DeploymentRule, PriceItem]:
    rule = price_list.deployment(terms.deployment)
    if rule is None:
        known = ", ".join(known_rule.name for known_rule in price_list.deployments)
        raise _broken(
            "unknown_deployment",
            f"Unknown deployment {terms.deployment!r}; the deployments are {known}.",
        )
    licence = price_list.licence(terms.license)
    if licence is None:
        known = ", ".join(item.code for item in price_list.licences)
        raise _broken(
            "unknown_license", f"Unknown licence {terms.license!r}; the licences are {known}."
        )
    if terms.agents <= 0:
        raise _broken(
            "agents_not_positive",
            f"The number of agents must be positive (got {terms.agents}).",
        )
    if terms.agents < rule.min_agents:
        raise _broken(
            "agents_below_minimum",
            f"{rule.name} needs at least {rule.min_agents} agents (got {terms.agents}).",
            minimum=rule.min_agents,
        )
    if not rule.allows_agents(terms.agents):
        raise _broken(
            "agents_not_in_step",
            f"{rule.name} agents come in steps of {rule.step} from {rule.min_agents}: "
            f"{rule.describe_counts()} (got {terms.agents}).",
            minimum=rule.min_agents,
            step=rule.step,
        )
    if rule.pbx_users_billed:
        if terms.pbx_users is None:
            raise _broken(
                "pbx_users_required",
                f"{rule.name} bills PBX users: give their number (at least the number of agents).",
            )
        if terms.pbx_users <= 0:
            raise _broken(
                "pbx_users_not_positive",
                f"The number of PBX users must be positive (got {terms.pbx_users}).",
            )
        if terms.pbx_users < terms.agents:
            raise _broken(
                "pbx_users_below_agents",
                f"{rule.name} needs at least as many PBX users as agents, since every agent "
                f"is a PBX user ({terms.agents} agents, {terms.pbx_users} PBX users).",
            )
    elif terms.pbx_users is not None:
        raise _broken(
            "pbx_users_on_premise",
            f"{rule.name} bills no PBX users (the customer runs its own PBX); "
            "leave the number of PBX users out.",
        )
    addon_codes = {item.code for item in price_list.addons}
    unknown = sorted(terms.addons - addon_codes)
    if unknown:
        known = ", ".join(item.code for item in price_list.addons)
        raise _broken(
            "unknown_addon",
            f"Unknown add-on {unknown[0]!r}; the add-ons are {known}.",
            addon=unknown[0],
        )
    return rule, licence


def validate_terms(terms: Terms, price_list: PriceList) -> None:
    """Raise ``QuoteRuleBroken`` naming the first commercial rule the terms break."""
    _checked(terms, price_list)


def _line(item: PriceItem, quantity: int) -> QuoteLine:
    return QuoteLine(
        code=item.code,
        quantity=quantity,
        unit_cents=item.unit_cents,
        amount_cents=quantity * item.unit_cents,
    )


def quote(terms: Terms, price_list: PriceList) -> Quote:
    """The monthly price of valid terms: the licence line, then PBX users (when billed),
    then the add-ons in price-list order."""
    rule, licence = _checked(terms, price_list)
    lines = [_line(licence, terms.agents)]
    if rule.pbx_users_billed and terms.pbx_users is not None:
        lines.append(_line(price_list.pbx_user, terms.pbx_users))
    lines.extend(_line(item, 1) for item in price_list.addons if item.code in terms.addons)
    return Quote(
        currency=price_list.currency,
        total_cents=sum(line.amount_cents for line in lines),
        lines=tuple(lines),
    )


def format_cents(cents: int) -> str:
    """``18000`` → ``180.00``, in integer arithmetic."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{units}.{rest:02d}"
