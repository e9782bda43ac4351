"""The price list, commercial rules and quotes; the ``atiende pricing quote`` command."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from atiende.billing.pricing import (
    PriceList,
    PriceListMissing,
    Quote,
    QuoteLine,
    QuoteRuleBroken,
    Terms,
    format_cents,
    load_price_lists,
    make_terms,
    parse_price_lists,
    price_list_at,
    quote,
    validate_terms,
)
from atiende.cli import app
from atiende.core.errors import ValidationFailed

PRICES = price_list_at(date(2026, 1, 1))
ADDONS = ("reports", "openai", "support_24x7")
runner = CliRunner()


def terms(
    deployment: str,
    license: str,
    agents: int,
    pbx_users: int | None = None,
    *addons: str,
) -> Terms:
    return Terms(deployment, license, agents, pbx_users, frozenset(addons))


def refusal(bad: Terms) -> QuoteRuleBroken:
    with pytest.raises(QuoteRuleBroken) as caught:
        quote(bad, PRICES)
    return caught.value


# --- the price list --------------------------------------------------------------------------


def test_the_price_list_holds_the_commercial_figures_in_cents() -> None:
    prices = {item.code: (item.unit_cents, item.unit) for item in PRICES.items}
    assert prices == {
        "voice": (2900, "agent"),
        "omnichannel": (3900, "agent"),
        "pbx_user": (500, "pbx_user"),
        "reports": (2000, "flat"),
        "openai": (5000, "flat"),
        "support_24x7": (25000, "flat"),
    }
    assert PRICES.currency == "USD"
    assert PRICES.version == "2026-01"


def test_addons_are_the_flat_items_in_price_list_order() -> None:
    assert tuple(item.code for item in PRICES.addons) == ADDONS
    assert tuple(item.code for item in PRICES.licences) == ("voice", "omnichannel")


def test_deployment_rules() -> None:
    cloud, on_premise = PRICES.deployment("cloud"), PRICES.deployment("on_premise")
    assert cloud is not None
    assert on_premise is not None
    assert (cloud.min_agents, cloud.step, cloud.pbx_users_billed) == (5, 1, True)
    assert (on_premise.min_agents, on_premise.step, on_premise.pbx_users_billed) == (10, 5, False)
    assert [n for n in range(30) if on_premise.allows_agents(n)] == [10, 15, 20, 25]


def test_every_item_has_an_english_and_a_spanish_name() -> None:
    voice = PRICES.item("voice")
    assert voice is not None
    assert voice.name("en") == "Voice agent licence"
    assert voice.name("es") == "Licencia de agente de voz"


def version(name: str, effective_from: str, voice_cents: int) -> dict[str, Any]:
    return {
        "version": name,
        "effective_from": effective_from,
        "currency": "USD",
        "items": [
            {"code": "voice", "name_en": "V", "name_es": "V", "unit_cents": voice_cents,
             "unit": "agent"},
            {"code": "pbx_user", "name_en": "P", "name_es": "P", "unit_cents": 500,
             "unit": "pbx_user"},
        ],
        "deployments": {"cloud": {"min_agents": 5, "step": 1, "pbx_users_billed": True}},
    }  # fmt: skip


def test_the_newest_version_in_force_on_the_day_prices() -> None:
    lists = parse_price_lists(
        [version("2027-07", "2027-07-01", 3100), version("2026-01", "2026-01-01", 2900)]
    )
    assert [price_list.version for price_list in lists] == ["2026-01", "2027-07"]
    assert price_list_at(date(2027, 6, 30), lists).version == "2026-01"
    assert price_list_at(date(2027, 7, 1), lists).version == "2027-07"
    assert price_list_at(date(2030, 1, 1), lists).version == "2027-07"


def test_no_price_list_before_the_first_version() -> None:
    with pytest.raises(PriceListMissing) as caught:
        price_list_at(date(2025, 12, 31))
    assert caught.value.status_code == 422
    assert caught.value.error_code == "price_list_missing"
    assert price_list_at(date(2026, 1, 1)) is load_price_lists()[0]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda raw: raw[0]["items"][0].update(unit_cents=29.0), "unit_cents"),
        (lambda raw: raw[0]["items"][0].update(unit_cents=-1), "unit_cents"),
        (lambda raw: raw[0]["items"][0].update(unit="seat"), "unit must be"),
        (lambda raw: raw[0]["items"].append(dict(raw[0]["items"][0])), "unique"),
        (lambda raw: raw[0]["items"].pop(1), "exactly one pbx_user"),
        (lambda raw: raw[0]["deployments"]["cloud"].update(step=0), "step"),
        (lambda raw: raw[0].update(effective_from="2026-13-01"), "effective_from"),
        (lambda raw: raw.append(version("2026-01", "2027-01-01", 1)), "versions must be unique"),
        (lambda raw: raw.append(version("other", "2026-01-01", 1)), "same day"),
    ],
)
def test_malformed_price_list_data_is_refused(change: Any, problem: str) -> None:
    raw = [version("2026-01", "2026-01-01", 2900)]
    change(raw)
    with pytest.raises(ValueError, match=problem):
        parse_price_lists(raw)


# --- the worked quotes -----------------------------------------------------------------------


def test_cloud_voice_5_agents_7_pbx_users_costs_180() -> None:
    result = quote(terms("cloud", "voice", 5, 7), PRICES)
    assert result == Quote(
        currency="USD",
        total_cents=18000,
        lines=(QuoteLine("voice", 5, 2900, 14500), QuoteLine("pbx_user", 7, 500, 3500)),
    )


def test_cloud_omnichannel_8_agents_10_pbx_reports_and_openai_costs_432() -> None:
    result = quote(terms("cloud", "omnichannel", 8, 10, "openai", "reports"), PRICES)
    assert result.total_cents == 43200
    assert result.lines == (
        QuoteLine("omnichannel", 8, 3900, 31200),
        QuoteLine("pbx_user", 10, 500, 5000),
        QuoteLine("reports", 1, 2000, 2000),
        QuoteLine("openai", 1, 5000, 5000),
    )


def test_on_premise_voice_10_agents_with_24x7_support_costs_540() -> None:
    result = quote(terms("on_premise", "voice", 10, None, "support_24x7"), PRICES)
    assert result.total_cents == 54000
    assert result.lines == (
        QuoteLine("voice", 10, 2900, 29000),
        QuoteLine("support_24x7", 1, 25000, 25000),
    )


def test_on_premise_omnichannel_12_agents_is_refused_for_the_step() -> None:
    error = refusal(terms("on_premise", "omnichannel", 12))
    assert error.error_code == "agents_not_in_step"
    assert error.message.startswith(
        "on_premise agents come in steps of 5 from 10: 10, 15, 20… (got 12)"
    )


def test_cloud_voice_4_agents_is_refused_for_the_minimum() -> None:
    error = refusal(terms("cloud", "voice", 4, 4))
    assert error.error_code == "agents_below_minimum"
    assert "cloud needs at least 5 agents" in error.message


def test_cloud_voice_6_agents_5_pbx_users_is_refused() -> None:
    error = refusal(terms("cloud", "voice", 6, 5))
    assert error.error_code == "pbx_users_below_agents"
    assert "at least as many PBX users as agents" in error.message


def test_quote_json_has_exactly_the_contract_shape() -> None:
    assert quote(terms("cloud", "voice", 5, 7), PRICES).to_json_dict() == {
        "currency": "USD",
        "total_cents": 18000,
        "lines": [
            {"code": "voice", "quantity": 5, "unit_cents": 2900, "amount_cents": 14500},
            {"code": "pbx_user", "quantity": 7, "unit_cents": 500, "amount_cents": 3500},
        ],
    }


# --- every rule, by its code -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "code", "named"),
    [
        (terms("hosted", "voice", 5, 5), "unknown_deployment", "deployments are cloud, on_premise"),
        (terms("cloud", "video", 5, 5), "unknown_license", "licences are voice, omnichannel"),
        (terms("cloud", "pbx_user", 5, 5), "unknown_license", "licences are voice, omnichannel"),
        (terms("cloud", "voice", 0, 5), "agents_not_positive", "must be positive"),
        (terms("on_premise", "voice", -5), "agents_not_positive", "must be positive"),
        (terms("on_premise", "voice", 5), "agents_below_minimum", "at least 10 agents"),
        (terms("on_premise", "voice", 11), "agents_not_in_step", "steps of 5 from 10"),
        (terms("cloud", "voice", 5), "pbx_users_required", "bills PBX users"),
        (terms("cloud", "voice", 5, 0), "pbx_users_not_positive", "must be positive"),
        (terms("cloud", "voice", 5, 4), "pbx_users_below_agents", "as many PBX users as agents"),
        (terms("on_premise", "voice", 10, 10), "pbx_users_on_premise", "bills no PBX users"),
        (terms("cloud", "voice", 5, 5, "fax"), "unknown_addon", "add-ons are reports, openai"),
        (terms("cloud", "voice", 5, 5, "voice"), "unknown_addon", "add-ons are reports, openai"),
    ],
)
def test_each_broken_rule_has_its_code_and_a_message_naming_it(
    bad: Terms, code: str, named: str
) -> None:
    with pytest.raises(QuoteRuleBroken) as caught:
        validate_terms(bad, PRICES)
    assert caught.value.error_code == code
    assert named in caught.value.message
    assert isinstance(caught.value, ValidationFailed)
    assert caught.value.status_code == 422
    assert caught.value.to_body()["code"] == code


def test_a_request_that_leaves_pbx_users_out_gets_one_per_agent_in_the_cloud() -> None:
    cloud = make_terms(PRICES, deployment="cloud", license="voice", agents=6)
    assert cloud.pbx_users == 6
    assert quote(cloud, PRICES).total_cents == 6 * 2900 + 6 * 500
    on_premise = make_terms(PRICES, deployment="on_premise", license="voice", agents=10)
    assert on_premise.pbx_users is None


def test_a_request_naming_an_addon_twice_is_refused() -> None:
    with pytest.raises(QuoteRuleBroken) as caught:
        make_terms(
            PRICES,
            deployment="cloud",
            license="voice",
            agents=5,
            addons=["reports", "openai", "reports"],
        )
    assert caught.value.error_code == "duplicate_addon"
    assert "'reports' is given twice" in caught.value.message


def test_cents_are_formatted_without_floats() -> None:
    assert [format_cents(c) for c in (0, 5, 18000, 43205, -150)] == [
        "0.00",
        "0.05",
        "180.00",
        "432.05",
        "-1.50",
    ]


# --- properties ------------------------------------------------------------------------------


def rules_broken(candidate: Terms) -> set[str]:
    """An independent reading of the commercial rules: every rule the terms break."""
    minimum, step, pbx_billed = {"cloud": (5, 1, True), "on_premise": (10, 5, False)}.get(
        candidate.deployment, (0, 1, False)
    )
    broken = set()
    if candidate.deployment not in ("cloud", "on_premise"):
        broken.add("unknown_deployment")
    if candidate.license not in ("voice", "omnichannel"):
        broken.add("unknown_license")
    if candidate.agents <= 0:
        broken.add("agents_not_positive")
    elif candidate.agents < minimum:
        broken.add("agents_below_minimum")
    elif (candidate.agents - minimum) % step:
        broken.add("agents_not_in_step")
    if pbx_billed and candidate.pbx_users is None:
        broken.add("pbx_users_required")
    if pbx_billed and candidate.pbx_users is not None:
        if candidate.pbx_users <= 0:
            broken.add("pbx_users_not_positive")
        if candidate.pbx_users < candidate.agents:
            broken.add("pbx_users_below_agents")
    if candidate.deployment == "on_premise" and candidate.pbx_users is not None:
        broken.add("pbx_users_on_premise")
    if not candidate.addons <= set(ADDONS):
        broken.add("unknown_addon")
    return broken


any_terms = st.builds(
    Terms,
    deployment=st.sampled_from(["cloud", "on_premise", "hosted"]),
    license=st.sampled_from(["voice", "omnichannel", "reports", "video"]),
    agents=st.integers(min_value=-3, max_value=60),
    pbx_users=st.none() | st.integers(min_value=-2, max_value=80),
    addons=st.frozensets(st.sampled_from([*ADDONS, "fax"])),
)


@st.composite
def valid_terms(draw: st.DrawFn) -> Terms:
    deployment = draw(st.sampled_from(["cloud", "on_premise"]))
    minimum, step = (5, 1) if deployment == "cloud" else (10, 5)
    agents = minimum + step * draw(st.integers(min_value=0, max_value=200))
    pbx_users = agents + draw(st.integers(0, 50)) if deployment == "cloud" else None
    return Terms(
        deployment,
        draw(st.sampled_from(["voice", "omnichannel"])),
        agents,
        pbx_users,
        draw(st.frozensets(st.sampled_from(ADDONS))),
    )


@settings(max_examples=500, deadline=None)
@given(candidate=any_terms)
def test_terms_are_quoted_exactly_when_no_rule_is_broken(candidate: Terms) -> None:
    broken = rules_broken(candidate)
    if broken:
        with pytest.raises(QuoteRuleBroken) as caught:
            quote(candidate, PRICES)
        assert caught.value.error_code in broken
    else:
        result = quote(candidate, PRICES)
        assert result.total_cents > 0


@settings(max_examples=300, deadline=None)
@given(candidate=valid_terms())
def test_a_quote_adds_up_and_follows_the_price_list(candidate: Terms) -> None:
    result = quote(candidate, PRICES)
    assert result.total_cents == sum(line.amount_cents for line in result.lines)
    for line in result.lines:
        item = PRICES.item(line.code)
        assert item is not None
        assert line.unit_cents == item.unit_cents
        assert line.amount_cents == line.quantity * line.unit_cents
    codes = [line.code for line in result.lines]
    expected = [candidate.license]
    if candidate.deployment == "cloud":
        expected.append("pbx_user")
    expected += [code for code in ADDONS if code in candidate.addons]
    assert codes == expected
    assert result.lines[0].quantity == candidate.agents
    rule = PRICES.deployment(candidate.deployment)
    assert rule is not None
    assert candidate.agents >= rule.min_agents
    assert (candidate.agents - rule.min_agents) % rule.step == 0


@settings(max_examples=100, deadline=None)
@given(candidate=valid_terms())
def test_json_of_a_quote_round_trips(candidate: Terms) -> None:
    result = quote(candidate, PRICES)
    data = json.loads(json.dumps(result.to_json_dict()))
    assert set(data) == {"currency", "total_cents", "lines"}
    assert (
        Quote(
            data["currency"],
            data["total_cents"],
            tuple(QuoteLine(**line) for line in data["lines"]),
        )
        == result
    )


def test_price_lists_are_frozen() -> None:
    with pytest.raises(AttributeError):
        PRICES.currency = "EUR"  # type: ignore[misc]
    assert isinstance(PRICES, PriceList)


# --- the command line ------------------------------------------------------------------------


def run_quote(*args: str) -> Any:
    return runner.invoke(app, ["pricing", "quote", *args, "--on", "2026-03-01"])


@pytest.mark.parametrize(
    ("args", "total", "codes"),
    [
        (
            ["--deployment", "cloud", "--license", "voice", "--agents", "5", "--pbx-users", "7"],
            18000,
            ["voice", "pbx_user"],
        ),
        (
            ["--deployment", "cloud", "--license", "omnichannel", "--agents", "8",
             "--pbx-users", "10", "--addon", "openai", "--addon", "reports"],
            43200,
            ["omnichannel", "pbx_user", "reports", "openai"],
        ),
        (
            ["--deployment", "on_premise", "--license", "voice", "--agents", "10",
             "--addon", "support_24x7"],
            54000,
            ["voice", "support_24x7"],
        ),
    ],
)  # fmt: skip
def test_cli_prints_the_worked_quotes_as_json(
    args: list[str], total: int, codes: list[str]
) -> None:
    result = run_quote(*args, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["currency"] == "USD"
    assert data["total_cents"] == total
    assert [line["code"] for line in data["lines"]] == codes
    assert list(data) == ["currency", "total_cents", "lines"]
    assert all(
        list(line) == ["code", "quantity", "unit_cents", "amount_cents"] for line in data["lines"]
    )


@pytest.mark.parametrize(
    ("args", "code", "named"),
    [
        (
            ["--deployment", "on_premise", "--license", "omnichannel", "--agents", "12"],
            "agents_not_in_step",
            "steps of 5 from 10",
        ),
        (
            ["--deployment", "cloud", "--license", "voice", "--agents", "4"],
            "agents_below_minimum",
            "at least 5 agents",
        ),
        (
            ["--deployment", "cloud", "--license", "voice", "--agents", "6", "--pbx-users", "5"],
            "pbx_users_below_agents",
            "at least as many PBX users as agents",
        ),
        (
            ["--deployment", "on_premise", "--license", "voice", "--agents", "10",
             "--pbx-users", "10"],
            "pbx_users_on_premise",
            "bills no PBX users",
        ),
        (
            ["--deployment", "cloud", "--license", "voice", "--agents", "5", "--addon", "fax"],
            "unknown_addon",
            "add-ons are",
        ),
        (
            ["--deployment", "cloud", "--license", "voice", "--agents", "5",
             "--addon", "reports", "--addon", "reports"],
            "duplicate_addon",
            "given twice",
        ),
        (
            ["--deployment", "hosted", "--license", "voice", "--agents", "5"],
            "unknown_deployment",
            "deployments are cloud, on_premise",
        ),
    ],
)  # fmt: skip
def test_cli_refuses_a_broken_rule_naming_it_on_stderr(
    args: list[str], code: str, named: str
) -> None:
    result = run_quote(*args, "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"error ({code}):" in result.stderr
    assert named in result.stderr


def test_cli_prints_a_readable_table() -> None:
    result = run_quote(
        "--deployment", "cloud", "--license", "omnichannel", "--agents", "8",
        "--pbx-users", "10", "--addon", "reports", "--addon", "openai",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Price list 2026-01 (from 2026-01-01), amounts in USD"
    assert lines[2].split() == ["Omnichannel", "agent", "licence", "omnichannel", "8", "39.00",
                                "312.00"]  # fmt: skip
    assert lines[3].split() == ["PBX", "user", "(cloud)", "pbx_user", "10", "5.00", "50.00"]
    assert lines[-1].split() == ["total", "per", "month", "432.00"]


def test_cli_defaults_pbx_users_to_the_agents_in_the_cloud() -> None:
    result = run_quote("--deployment", "cloud", "--license", "voice", "--agents", "6", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["lines"][1] == {
        "code": "pbx_user",
        "quantity": 6,
        "unit_cents": 500,
        "amount_cents": 3000,
    }


def test_cli_refuses_a_day_without_a_price_list_and_a_malformed_day() -> None:
    args = ["pricing", "quote", "--deployment", "cloud", "--license", "voice", "--agents", "5"]
    early = runner.invoke(app, [*args, "--on", "2025-12-31"])
    assert early.exit_code == 1
    assert "error (price_list_missing)" in early.stderr
    malformed = runner.invoke(app, [*args, "--on", "31/12/2026"])
    assert malformed.exit_code == 2
    assert "YYYY-MM-DD" in malformed.stderr


def test_cli_prices_today_by_default() -> None:
    result = runner.invoke(
        app, ["pricing", "quote", "--deployment", "cloud", "--license", "voice", "--agents", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "total per month" in result.stdout
