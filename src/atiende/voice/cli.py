"""``atiende pbx``: register a tenant's PBX, route its numbers to queues and print the
Asterisk configuration it needs."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.core.db import in_tenant
from atiende.core.errors import AtiendeError, NotFound
from atiende.identity.actor import Actor
from atiende.routing.models import Queue
from atiende.tenancy import service as tenancy
from atiende.tenancy.models import Tenant
from atiende.voice import numbers, phones, service
from atiende.voice.models import DEFAULT_APP_NAME, Pbx

pbx_app = typer.Typer(help="PBXs (Asterisk) and their configuration.", no_args_is_help=True)
number_app = typer.Typer(
    help="The tenant's phone numbers (DIDs) and the queue each one's calls wait in.",
    no_args_is_help=True,
)
pbx_app.add_typer(number_app, name="number")


def _fail(error: AtiendeError) -> NoReturn:
    typer.secho(f"error ({error.error_code}): {error.message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


async def _tenant(session: AsyncSession, slug: str) -> Tenant:
    tenant = await tenancy.get_tenant_by_slug(session, slug)
    if tenant is None:
        raise NotFound("tenant", f"No tenant with slug {slug!r}.")
    return tenant


@pbx_app.command("add")
def add(  # noqa: PLR0917 - one parameter per command-line option
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    name: Annotated[str, typer.Option(help="A name for this PBX, e.g. main")],
    ari_url: Annotated[str, typer.Option("--ari-url", help="e.g. http://10.0.0.5:8088/ari")],
    ari_username: Annotated[str, typer.Option("--ari-username")] = "atiende",
    ari_password: Annotated[
        str,
        typer.Option(
            "--ari-password", prompt=True, hide_input=True, help="Stored sealed; never shown"
        ),
    ] = "",
    app_name: Annotated[str, typer.Option("--app", help="Stasis application")] = DEFAULT_APP_NAME,
) -> None:
    """Register a tenant's PBX: where its ARI is and the user Atiende logs in as."""
    from atiende.cli import _settings, _with_db

    settings = _settings()
    try:
        data = service.PbxCreate(
            name=name,
            ari_url=ari_url,
            ari_username=ari_username,
            ari_password=ari_password,
            app_name=app_name,
        )
    except ValidationError as error:
        typer.secho(f"error (validation_error): {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from error

    async def work(session: AsyncSession) -> Pbx:
        found = await _tenant(session, tenant)
        async with in_tenant(session, found.id):
            return await service.add_pbx(session, Actor.system(), data, settings=settings)

    try:
        pbx = _with_db(settings, work)
    except AtiendeError as error:
        _fail(error)
    typer.echo(f"pbx {pbx.name} of {tenant} added: {pbx.ari_url} as {pbx.ari_username}")


@pbx_app.command("config")
def config(  # noqa: PLR0917 - one parameter per command-line option
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    pbx: Annotated[
        str | None, typer.Option(help="Which PBX (needed when the tenant has several)")
    ] = None,
    did: Annotated[
        list[str] | None,
        typer.Option(
            help="An inbound number routed to Atiende; repeatable. Default: the tenant's "
            "numbers (atiende pbx number list)"
        ),
    ] = None,
    show_secrets: Annotated[
        bool, typer.Option("--show-secrets", help="Print the stored ARI password")
    ] = False,
    generate_secrets: Annotated[
        bool,
        typer.Option(
            "--generate-secrets",
            help="Fresh random SIP passwords for the extensions instead of placeholders",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Print the Asterisk files a PBX needs (ari, http, pjsip and extensions.conf).

    pjsip.conf has an endpoint per extension of the tenant; extensions.conf sends each DID
    into Stasis(<app>,<tenant>,<did>). Stored secrets are shown only with --show-secrets.
    """
    from atiende.cli import _settings, _with_db

    settings = _settings()

    async def work(session: AsyncSession) -> service.PbxConfig:
        found = await _tenant(session, tenant)
        async with in_tenant(session, found.id):
            return await service.pbx_config(
                session,
                found,
                settings=settings,
                pbx_name=pbx,
                dids=did or (),
                show_secrets=show_secrets,
                generate_secrets=generate_secrets,
            )

    try:
        result = _with_db(settings, work)
    except AtiendeError as error:
        _fail(error)
    if as_json:
        body = {
            "tenant": result.tenant_slug,
            "pbx": result.pbx_name,
            "secrets_shown": result.secrets_shown,
            "files": result.files,
        }
        typer.echo(json.dumps(body, indent=2))
        return
    if result.pbx_name is None:
        typer.secho(
            f"note: tenant {tenant} has no PBX registered (atiende pbx add); defaults are shown",
            err=True,
        )
    for index, (name, text) in enumerate(result.files.items()):
        if index:
            typer.echo("")
        typer.echo(f";;; ---- {name} ----")
        typer.echo(text, nl=False)


@pbx_app.command("connect")
def connect() -> None:
    """Run call control: connect to every registered PBX and drive its calls through the
    routing engine. Run exactly one per installation when the web nodes run with
    ATIENDE_EMBEDDED_WORKER=false or ATIENDE_VOICE_CONTROL=false."""
    import asyncio
    import logging
    import signal

    from atiende.cli import _settings
    from atiende.core.bus import create_bus
    from atiende.core.db import Database
    from atiende.voice.calls import CallControl

    settings = _settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s %(message)s"
    )

    async def main() -> None:
        bus = create_bus(settings.redis_url)
        db = Database(settings.resolved_database_url, publisher=bus)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await bus.start()
        try:
            await CallControl(db, bus, settings).run(stop)
        finally:
            await bus.stop()
            await db.dispose()

    asyncio.run(main())


# --- numbers ---------------------------------------------------------------------------------


@number_app.command("add")
def number_add(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    number: Annotated[str, typer.Option(help="The DID, e.g. +525512345678")],
    queue: Annotated[str, typer.Option(help="The name of a queue that serves voice")],
) -> None:
    """Route calls to a number into a queue (run `atiende pbx config` again afterwards)."""
    from atiende.cli import _settings, _with_db

    settings = _settings()

    async def work(session: AsyncSession) -> tuple[str, str]:
        found = await _tenant(session, tenant)
        async with in_tenant(session, found.id):
            target = await session.scalar(
                select(Queue).where(func.lower(Queue.name) == queue.strip().lower())
            )
            if target is None:
                raise NotFound("queue", f"Tenant {tenant} has no queue called {queue!r}.")
            data = numbers.NumberCreate(number=number, queue_id=target.id)
            row = await numbers.create_number(session, Actor.system(), data)
            return row.number, target.name

    try:
        stored, queue_name = _with_db(settings, work)
    except ValidationError as error:
        typer.secho(f"error (validation_error): {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from error
    except AtiendeError as error:
        _fail(error)
    typer.echo(f"number {stored} of {tenant} added: calls wait in queue {queue_name}")


@number_app.command("list")
def number_list(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list")] = False,
) -> None:
    """The tenant's numbers and their queues, one per line."""
    from atiende.cli import _settings, _with_db

    settings = _settings()

    async def work(session: AsyncSession) -> list[tuple[str, str]]:
        found = await _tenant(session, tenant)
        async with in_tenant(session, found.id):
            rows = await numbers.list_numbers(session, Actor.system())
            queues = await session.execute(select(Queue.id, Queue.name))
            names: dict[uuid.UUID, str] = {row.id: row.name for row in queues}
            return [(row.number, names.get(row.queue_id, "?")) for row in rows]

    try:
        rows = _with_db(settings, work)
    except AtiendeError as error:
        _fail(error)
    if as_json:
        body = [{"number": number, "queue": queue} for number, queue in rows]
        typer.echo(json.dumps(body, indent=2))
        return
    if not rows:
        typer.secho(f"tenant {tenant} has no numbers (atiende pbx number add)", err=True)
        return
    width = max(len(number) for number, _ in rows)
    for number, queue in rows:
        typer.echo(f"{number.ljust(width)}  {queue}")


extension_app = typer.Typer(
    help="The tenant's extensions (PBX users) and who holds each.", no_args_is_help=True
)
pbx_app.add_typer(extension_app, name="extension")


@extension_app.command("add")
def extension_add(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    number: Annotated[str, typer.Option(help="The extension, e.g. 1001")],
    user: Annotated[
        str | None, typer.Option(help="E-mail of the user who holds it (agent, supervisor…)")
    ] = None,
) -> None:
    """Add an extension by hand (on premise; cloud tenants get theirs with their
    subscription). Run `atiende pbx config` again afterwards."""
    from atiende.cli import _settings, _with_db
    from atiende.identity.models import User

    settings = _settings()

    async def work(session: AsyncSession) -> str:
        found = await _tenant(session, tenant)
        async with in_tenant(session, found.id):
            holder = None
            if user is not None:
                holder = await session.scalar(
                    select(User).where(func.lower(User.email) == user.strip().lower())
                )
                if holder is None:
                    raise NotFound("user", f"Tenant {tenant} has no user {user!r}.")
            data = phones.ExtensionCreate(number=number, user_id=holder.id if holder else None)
            row = await phones.add_extension(session, Actor.system(), data)
            return f"{row.number} ({holder.email})" if holder else row.number

    try:
        shown = _with_db(settings, work)
    except ValidationError as error:
        typer.secho(f"error (validation_error): {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from error
    except AtiendeError as error:
        _fail(error)
    typer.echo(f"extension {shown} of {tenant} added")


@extension_app.command("list")
def extension_list(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list")] = False,
) -> None:
    """The tenant's extensions and their holders, one per line."""
    from atiende.cli import _settings, _with_db
    from atiende.identity.models import User
    from atiende.voice.models import Extension

    settings = _settings()

    async def work(session: AsyncSession) -> list[tuple[str, str | None]]:
        found = await _tenant(session, tenant)
        async with in_tenant(session, found.id):
            rows = await session.execute(
                select(Extension.number, User.email)
                .outerjoin(User, User.id == Extension.user_id)
                .order_by(Extension.number)
            )
            return [(number, email) for number, email in rows]

    try:
        rows = _with_db(settings, work)
    except AtiendeError as error:
        _fail(error)
    if as_json:
        typer.echo(json.dumps([{"number": n, "user": e} for n, e in rows], indent=2))
        return
    for number, email in rows:
        typer.echo(f"{number}  {email or '-'}")
