"""The ``atiende`` command line: thin wrappers that parse, then call one service."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from atiende import demo as demo_tenant
from atiende.attachments.storage import close_attachment_store
from atiende.billing.cli import pricing_app
from atiende.core import migrate
from atiende.core.config import Settings
from atiende.core.db import Database, Scope
from atiende.core.errors import AtiendeError, NotFound
from atiende.helpdesk.cli import support_app
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.identity.schemas import UserCreate
from atiende.licensing.cli import license_app
from atiende.tenancy import service as tenancy
from atiende.tenancy.models import DeploymentMode, Tenant
from atiende.tenancy.schemas import TenantCreate
from atiende.voice.cli import pbx_app

app = typer.Typer(
    help="Atiende: omnichannel contact center.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants (organisations).", no_args_is_help=True)
user_app = typer.Typer(help="Users.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
app.add_typer(user_app, name="user")
app.add_typer(license_app, name="license")
app.add_typer(pricing_app, name="pricing")
app.add_typer(support_app, name="support")
app.add_typer(pbx_app, name="pbx")

T = TypeVar("T")
DEMO_LOGINS_FILE = "demo-logins.json"


def _settings() -> Settings:
    settings = Settings()
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def _fail(error: AtiendeError) -> NoReturn:
    typer.secho(f"error ({error.error_code}): {error.message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Overrides ATIENDE_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides ATIENDE_PORT.")] = None,
) -> None:
    """Serve the web app, API and websockets (with the embedded job worker by default)."""
    import uvicorn

    from atiende.web.app import create_app

    settings = _settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s %(message)s"
    )
    bind_host, bind_port = host or settings.host, port or settings.port
    typer.echo(f"Atiende on http://{bind_host}:{bind_port}  (data: {settings.data_dir.resolve()})")
    uvicorn.run(
        create_app(settings),
        host=bind_host,
        port=bind_port,
        log_level=settings.log_level,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


@app.command()
def worker(
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port")
    ] = None,
) -> None:
    """Run durable jobs and timers (start several on PostgreSQL; each job runs once)."""
    from prometheus_client import start_http_server

    from atiende.core.bus import create_bus
    from atiende.jobs.service import JobRunner
    from atiende.tasks import build_registry, ensure_recurring

    settings = _settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s %(message)s"
    )
    if metrics_port:
        start_http_server(metrics_port, addr=settings.host)

    async def main() -> None:
        # Events that jobs emit go out on the same bus as the web nodes' events.
        bus = create_bus(settings.redis_url)
        db = Database(settings.resolved_database_url, publisher=bus)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await bus.start()
        try:
            await ensure_recurring(db)
            await JobRunner(db, build_registry(), settings).run_forever(stop)
        finally:
            await bus.stop()
            await close_attachment_store(settings)
            await db.dispose()

    asyncio.run(main())


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    settings = _settings()
    migrate.upgrade(settings.resolved_database_url, revision)
    typer.echo(f"database at {revision}")


def _with_db(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one system-scoped unit of work and return its result."""

    async def main() -> T:
        db = Database(settings.resolved_database_url)
        try:
            async with db.session(Scope.system()) as session:
                return await work(session)
        finally:
            await db.dispose()

    return asyncio.run(main())


@tenant_app.command("create")
def tenant_create(
    slug: Annotated[str, typer.Option(help="Short unique name, e.g. acme")],
    name: Annotated[str, typer.Option(help="Display name")],
    time_zone: Annotated[str, typer.Option("--time-zone")] = "America/Mexico_City",
    locale: Annotated[str, typer.Option()] = "es",
    deployment: Annotated[DeploymentMode, typer.Option()] = DeploymentMode.cloud,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a tenant."""
    settings = _settings()
    try:
        data = TenantCreate.model_validate(
            {
                "slug": slug,
                "name": name,
                "time_zone": time_zone,
                "locale": locale,
                "deployment_mode": deployment,
            }
        )
    except ValidationError as error:
        typer.secho(f"error (validation_error): {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from error

    async def work(session: AsyncSession) -> Tenant:
        return await tenancy.create_tenant(session, Actor.system(), data)

    try:
        tenant = _with_db(settings, work)
    except AtiendeError as error:
        _fail(error)
    if as_json:
        typer.echo(json.dumps({"id": str(tenant.id), "slug": tenant.slug}))
    else:
        typer.echo(f"tenant {tenant.slug} created: {tenant.id}")


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    role: Annotated[Role, typer.Option()],
    tenant: Annotated[str | None, typer.Option(help="Tenant slug; omit for vendor staff")] = None,
    password: Annotated[
        str | None, typer.Option(help="Omit to generate one (printed once)")
    ] = None,
) -> None:
    """Create a user in a tenant (or vendor staff without --tenant)."""
    settings = _settings()
    chosen = password or secrets.token_urlsafe(12)

    async def work(session: AsyncSession) -> User:
        tenant_id = None
        if tenant:
            found = await tenancy.get_tenant_by_slug(session, tenant)
            if found is None:
                raise NotFound("tenant", f"No tenant with slug {tenant!r}.")
            tenant_id = found.id
        data = UserCreate(email=email, name=name, role=role, password=chosen, tenant_id=tenant_id)
        return await identity.create_user(session, Actor.system(), data)

    try:
        user = _with_db(settings, work)
    except ValidationError as error:
        typer.secho(f"error (validation_error): {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from error
    except AtiendeError as error:
        _fail(error)
    typer.echo(f"user {user.email} ({user.role.value}) created: {user.id}")
    if password is None:
        typer.echo(f"password: {chosen}")


@user_app.command("set-password")
def user_set_password(
    email: Annotated[str, typer.Option()],
    password: Annotated[
        str | None, typer.Option(help="Omit to generate one (printed once)")
    ] = None,
) -> None:
    """Reset a user's password (ends all their sessions)."""
    settings = _settings()
    chosen = password or secrets.token_urlsafe(12)

    async def work(session: AsyncSession) -> User:
        user = await identity.get_user_by_email(session, email)
        if user is None:
            raise NotFound("user", f"No user with e-mail {email!r}.")
        return await identity.set_password(session, Actor.system(), user.id, chosen)

    try:
        user = _with_db(settings, work)
    except ValidationError as error:
        typer.secho(f"error (validation_error): {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from error
    except AtiendeError as error:
        _fail(error)
    typer.echo(f"password of {user.email} changed")
    if password is None:
        typer.echo(f"password: {chosen}")


@app.command()
def demo() -> None:
    """Create the demo tenant (an admin, a supervisor, two agents, queues and a webchat
    widget) once, and print the logins and where to try it. Passwords are generated on the
    first run and kept in the data dir."""
    settings = _settings()
    logins_path = settings.data_dir / DEMO_LOGINS_FILE
    result = _with_db(settings, demo_tenant.seed)
    if result.logins is not None:
        logins_path.write_text(json.dumps(result.logins, indent=2))
        logins_path.chmod(0o600)
    _print_demo_logins(logins_path)
    base = f"http://{settings.host}:{settings.port}"
    typer.echo(f"Agent desktop: {base}/desktop   Wallboard: {base}/wallboard")
    typer.echo(f"Demo shop with the chat widget: {base}/demo-site")


def _print_demo_logins(path: Path) -> None:
    if not path.exists():
        typer.echo("demo tenant exists; its generated logins file is gone")
        return
    typer.echo("Demo logins (tenant 'demo'):")
    for login in json.loads(path.read_text()):
        typer.echo(f"  {login['role']:<11} {login['email']:<32} {login['password']}")


if __name__ == "__main__":
    app()
