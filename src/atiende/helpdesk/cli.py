"""``atiende support``: the helpdesk's SLA on the command line."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated

import typer

from atiende.helpdesk import sla
from atiende.helpdesk.sla import Plan, Severity

support_app = typer.Typer(help="Support (helpdesk).", no_args_is_help=True)


def _parse_opened(value: str) -> datetime:
    try:
        opened = datetime.fromisoformat(value)
    except ValueError as error:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time; use e.g. 2026-11-25T10:00:00-06:00",
            param_hint="--opened",
        ) from error
    if opened.tzinfo is None or opened.utcoffset() is None:
        raise typer.BadParameter(
            f"{value!r} has no UTC offset, so the instant is unknown; add one, "
            "e.g. 2026-11-25T10:00:00-06:00 or 2026-11-25T16:00:00Z",
            param_hint="--opened",
        )
    return opened


@support_app.command("sla-due")
def sla_due(
    *,
    severity: Annotated[Severity, typer.Option(help="The case's severity.")],
    plan: Annotated[Plan, typer.Option(help="The support plan: standard (8x5) or 24x7.")],
    opened: Annotated[
        str, typer.Option(help="When the case was opened: ISO 8601 with an offset (or Z).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """When the first response to a case is due (times in America/Mexico_City)."""
    try:
        opened_at = _parse_opened(opened).astimezone(sla.ZONE)
        due = sla.due_at(opened_at, severity, plan)
    except OverflowError as error:
        raise typer.BadParameter(
            f"{opened!r} is too close to the ends of the calendar (years 1 and 9999)",
            param_hint="--opened",
        ) from error
    calendar = sla.calendar_for(severity, plan)
    target_hours = sla.target_for(severity) // timedelta(hours=1)
    if as_json:
        result = {
            "severity": severity.value,
            "plan": plan.value,
            "opened": opened_at.isoformat(),
            "calendar": calendar.value,
            "target_hours": target_hours,
            "due_at": due.isoformat(),
        }
        typer.echo(json.dumps(result))
        return
    rows = [
        ("severity", severity.value),
        ("plan", plan.value),
        ("calendar", f"{calendar.value} ({sla.DESCRIPTIONS[calendar]})"),
        ("target", f"{target_hours} h"),
        ("opened", f"{opened_at.isoformat()} ({opened_at:%a})"),
        ("due_at", f"{due.isoformat()} ({due:%a})"),
    ]
    typer.echo(f"Times in {sla.ZONE.key}")
    for label, value in rows:
        typer.echo(f"  {label:<9} {value}")
