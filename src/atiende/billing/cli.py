"""``atiende pricing``: quotes from the price list, on the command line."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, NoReturn

import typer

from atiende.billing.pricing import (
    PriceList,
    Quote,
    format_cents,
    make_terms,
    price_list_at,
    quote,
)
from atiende.core.clock import SystemClock
from atiende.core.errors import AtiendeError

pricing_app = typer.Typer(help="Price list and quotes.", no_args_is_help=True)


def _fail(error: AtiendeError) -> NoReturn:
    typer.secho(f"error ({error.error_code}): {error.message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def _parse_day(value: str | None) -> date:
    if value is None:
        return SystemClock().now().date()
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise typer.BadParameter(
            f"{value!r} is not a date; use YYYY-MM-DD", param_hint="--on"
        ) from error


def _table(result: Quote, price_list: PriceList) -> str:
    rows = [("item", "code", "quantity", "unit", "amount")]
    for line in result.lines:
        item = price_list.item(line.code)
        rows.append(
            (
                item.name_en if item is not None else line.code,
                line.code,
                str(line.quantity),
                format_cents(line.unit_cents),
                format_cents(line.amount_cents),
            )
        )
    rows.append(("total per month", "", "", "", format_cents(result.total_cents)))
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    out = [
        f"Price list {price_list.version} (from {price_list.effective_from.isoformat()}), "
        f"amounts in {result.currency}"
    ]
    for number, row in enumerate(rows):
        if number == len(rows) - 1:
            out.append("-" * (sum(widths) + 2 * 4))
        out.append(
            "  ".join(
                cell.ljust(width) if column < 2 else cell.rjust(width)
                for column, (cell, width) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    return "\n".join(out)


@pricing_app.command("quote")
def quote_command(
    *,
    deployment: Annotated[
        str, typer.Option(help="cloud (vendor-hosted) or on_premise (the customer's server)")
    ],
    license: Annotated[  # the licence type's name in the commercial terms
        str, typer.Option("--license", help="voice or omnichannel, for every agent")
    ],
    agents: Annotated[int, typer.Option(help="Number of agents (named seats)")],
    pbx_users: Annotated[
        int | None,
        typer.Option(
            "--pbx-users",
            help="Cloud only: PBX users (agents, supervisors, administrators); "
            "default: one per agent",
        ),
    ] = None,
    addon: Annotated[
        list[str] | None,
        typer.Option("--addon", help="An add-on code (reports, openai, support_24x7); repeat"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the quote as JSON")] = False,
    on: Annotated[
        str | None,
        typer.Option(help="Price with the list in force on this day (YYYY-MM-DD); default today"),
    ] = None,
) -> None:
    """Quote the monthly price of a subscription, or name the commercial rule it breaks."""
    day = _parse_day(on)
    try:
        price_list = price_list_at(day)
        terms = make_terms(
            price_list,
            deployment=deployment,
            license=license,
            agents=agents,
            pbx_users=pbx_users,
            addons=addon or (),
        )
        result = quote(terms, price_list)
    except AtiendeError as error:
        _fail(error)
    if as_json:
        typer.echo(json.dumps(result.to_json_dict()))
    else:
        typer.echo(_table(result, price_list))
