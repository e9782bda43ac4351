"""``atiende support sla-due``: the SLA due time on the command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from atiende.cli import app

runner = CliRunner()


def sla_due(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["support", "sla-due", *args])
    return result.exit_code, result.output


def message(output: str) -> str:
    """An error's words on one line, without the frame the terminal wraps them in."""
    return " ".join(output.replace("│", " ").split())


WORKED = [
    # The three worked examples of the commercial terms.
    {
        "severity": "moderate",
        "plan": "standard",
        "opened": "2026-11-25T10:00:00-06:00",
        "calendar": "business",
        "target_hours": 8,
        "due_at": "2026-11-26T10:00:00-06:00",
    },
    {
        "severity": "critical",
        "plan": "standard",
        "opened": "2026-11-28T20:00:00-06:00",
        "calendar": "critical_standard",
        "target_hours": 4,
        "due_at": "2026-11-29T13:00:00-06:00",
    },
    {
        "severity": "critical",
        "plan": "24x7",
        "opened": "2026-11-28T20:00:00-06:00",
        "calendar": "always",
        "target_hours": 4,
        "due_at": "2026-11-29T00:00:00-06:00",
    },
    # A consultation before Revolution Day (Mon 16 Nov 2026): Thu 12th 5 h, Fri 8 h, Tue 8 h,
    # Wed 18th 3 h.
    {
        "severity": "consultation",
        "plan": "standard",
        "opened": "2026-11-12T12:00:00-06:00",
        "calendar": "business",
        "target_hours": 24,
        "due_at": "2026-11-18T12:00:00-06:00",
    },
]


@pytest.mark.parametrize("expected", WORKED, ids=lambda case: f"{case['severity']}-{case['plan']}")
def test_json_gives_the_due_time_and_how_it_was_counted(expected: dict[str, object]) -> None:
    code, output = sla_due(
        "--severity",
        str(expected["severity"]),
        "--plan",
        str(expected["plan"]),
        "--opened",
        str(expected["opened"]),
        "--json",
    )
    assert code == 0, output
    assert json.loads(output) == expected


def test_a_utc_time_is_read_as_its_instant_and_shown_in_mexico_city() -> None:
    code, output = sla_due(
        "--severity",
        "moderate",
        "--plan",
        "standard",
        "--opened",
        "2026-11-25T16:00:00Z",
        "--json",
    )
    assert code == 0, output
    result = json.loads(output)
    assert result["opened"] == "2026-11-25T10:00:00-06:00"
    assert result["due_at"] == "2026-11-26T10:00:00-06:00"


def test_any_offset_is_accepted() -> None:
    # 17:00 at +01:00 is 10:00 in Mexico City.
    code, output = sla_due(
        "--severity",
        "moderate",
        "--plan",
        "24x7",
        "--opened",
        "2026-11-25T17:00:00+01:00",
        "--json",
    )
    assert code == 0, output
    assert json.loads(output)["due_at"] == "2026-11-26T10:00:00-06:00"


def test_plain_output_is_readable_lines() -> None:
    code, output = sla_due(
        "--severity", "critical", "--plan", "standard", "--opened", "2026-11-28T20:00:00-06:00"
    )
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == "Times in America/Mexico_City"
    assert (
        "  calendar  critical_standard (every day 09:00-17:00, weekends and holidays included)"
        in lines
    )
    assert "  target    4 h" in lines
    assert "  opened    2026-11-28T20:00:00-06:00 (Sat)" in lines
    assert "  due_at    2026-11-29T13:00:00-06:00 (Sun)" in lines


def test_a_time_without_an_offset_is_refused() -> None:
    code, output = sla_due(
        "--severity", "moderate", "--plan", "standard", "--opened", "2026-11-25T10:00:00"
    )
    assert code == 2
    assert "no UTC offset" in message(output)
    assert "due_at" not in output


def test_a_date_alone_is_refused_as_it_has_no_offset() -> None:
    code, output = sla_due("--severity", "moderate", "--plan", "standard", "--opened", "2026-11-25")
    assert code == 2
    assert "no UTC offset" in message(output)


def test_an_unparsable_time_is_refused() -> None:
    code, output = sla_due(
        "--severity", "moderate", "--plan", "standard", "--opened", "next tuesday"
    )
    assert code == 2
    assert "not an ISO 8601 time" in message(output)


def test_a_time_at_the_end_of_the_calendar_is_refused() -> None:
    code, output = sla_due(
        "--severity", "consultation", "--plan", "standard", "--opened", "9999-12-31T20:00:00Z"
    )
    assert code == 2
    assert "too close to the ends of the calendar" in message(output)


@pytest.mark.parametrize(
    "args",
    [
        ("--severity", "urgent", "--plan", "standard"),
        ("--severity", "moderate", "--plan", "8x5"),
        ("--plan", "standard"),
        ("--severity", "moderate"),
    ],
)
def test_an_unknown_or_missing_severity_or_plan_is_refused(args: tuple[str, ...]) -> None:
    code, output = sla_due(*args, "--opened", "2026-11-25T10:00:00-06:00", "--json")
    assert code == 2
    assert "due_at" not in output
