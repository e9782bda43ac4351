"""``atiende license``: the vendor's keygen and issue, and an installation's verify and install."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.core.errors import AtiendeError
from atiende.identity.actor import Actor
from atiende.licensing import service, signing
from atiende.licensing.signing import LicenceInvalid, LicenceTerms

PRIVATE_KEY_FILE = "atiende-licence-private.pem"
PUBLIC_KEY_FILE = "atiende-licence-public.pem"

license_app = typer.Typer(
    help="Signed licences for on-premise installations.", no_args_is_help=True
)

ExistingFile = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, readable=True, show_default=False)
]


def _error(code: str, message: str, exit_code: int = 1) -> NoReturn:
    typer.secho(f"error ({code}): {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=exit_code)


def _today() -> date:
    return datetime.now(UTC).date()


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        _error("file_unreadable", f"cannot read the {what} {path}: {error.strerror}", 2)


def _print_terms(payload: dict[str, Any]) -> None:
    rows = [
        ("licence_id", payload["licence_id"]),
        ("customer", payload["customer"]),
        ("deployment", payload["deployment"]),
        ("license", payload["license"]),
        ("agents", str(payload["agents"])),
        ("addons", ", ".join(payload["addons"]) or "none"),
        ("issued_at", payload["issued_at"]),
        ("valid_until", f"{payload['valid_until']} (through the end of that day, UTC)"),
    ]
    for label, value in rows:
        typer.echo(f"  {label:<12} {value}")


@license_app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Option(help="Directory for the two key files")],
) -> None:
    """Create the vendor's Ed25519 key pair.

    The private key (mode 0600) stays with the vendor; installations get the public key.
    """
    private_path, public_path = out / PRIVATE_KEY_FILE, out / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists():
            _error("key_exists", f"{path} exists; refusing to overwrite a key")
    private_pem, public_pem = signing.generate_keypair()
    out.mkdir(parents=True, exist_ok=True)
    # Created with 0600 from the start: the private key is never readable by others.
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_pem)
    private_path.chmod(0o600)  # in case a umask or ACL widened it
    with public_path.open("xb") as handle:
        handle.write(public_pem)
    typer.echo(f"private key: {private_path} (keep it secret; mode 0600)")
    typer.echo(f"public key:  {public_path} (give it to installations)")


@license_app.command("issue")
def issue(  # noqa: PLR0917 - one parameter per command-line option
    private_key: Annotated[Path, typer.Option("--private-key", help="The vendor's private key")],
    customer: Annotated[str, typer.Option(help="The customer's e-mail address")],
    deployment: Annotated[str, typer.Option(help="on_premise (cloud is not licensed)")],
    license: Annotated[str, typer.Option("--license", help="voice or omnichannel")],
    agents: Annotated[int, typer.Option(help="Agent seats: 10, 15, 20, …")],
    valid_until: Annotated[
        str, typer.Option("--valid-until", help="Last valid day, YYYY-MM-DD (UTC)")
    ],
    out: Annotated[Path, typer.Option(help="Where to write the licence file")],
    addon: Annotated[
        list[str] | None, typer.Option(help="reports, openai or support_24x7; repeatable")
    ] = None,
) -> None:
    """Sign a licence file for an on-premise installation."""
    try:
        last_day = date.fromisoformat(valid_until)
    except ValueError:
        _error("licence_terms_invalid", f"--valid-until {valid_until!r} is not a date YYYY-MM-DD")
    if out.exists():
        _error("file_exists", f"{out} exists; refusing to overwrite a licence file")
    private_pem = _read(private_key, "private key")
    terms = LicenceTerms(
        customer=customer,
        deployment=deployment,
        license=license,
        agents=agents,
        addons=tuple(addon or ()),
        valid_until=last_day,
    )
    try:
        document = signing.issue(
            private_pem, terms, issued_at=datetime.now(UTC).replace(microsecond=0)
        )
    except AtiendeError as error:
        _error(error.error_code, error.message)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(signing.dumps(document), encoding="utf-8")
    typer.echo(f"licence {document['payload']['licence_id']} written to {out}")
    _print_terms(document["payload"])


@license_app.command("verify")
def verify(
    file: ExistingFile,
    public_key: Annotated[
        Path, typer.Option("--public-key", help="The vendor's public key this check trusts")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Check a licence file's signature and dates, and print its terms."""
    document = _read(file, "licence file")
    public_pem = _read(public_key, "public key")
    try:
        signing.verify(document, public_pem, today=_today())
    except LicenceInvalid as error:
        if as_json:
            body = {"valid": False, "reason": error.reason, "message": error.message}
            typer.echo(json.dumps(body, ensure_ascii=False))
            raise typer.Exit(code=1) from error
        _error(error.reason, error.message)
    except AtiendeError as error:  # the key, not the file
        _error(error.error_code, error.message, 2)
    payload = dict(signing.load(document))["payload"]
    if as_json:
        typer.echo(json.dumps({"valid": True, "payload": payload}, ensure_ascii=False))
        return
    typer.echo("valid licence")
    _print_terms(payload)


@license_app.command("install")
def install(file: ExistingFile) -> None:
    """Verify a licence file and install it in this installation's database.

    The file is checked with the public key at ATIENDE_LICENCE_PUBLIC_KEY.
    """
    from atiende.cli import _settings, _with_db

    settings = _settings()
    if settings.licence_public_key is None:
        _error(
            "licence_public_key_missing",
            "set ATIENDE_LICENCE_PUBLIC_KEY to the vendor's public key file",
            2,
        )
    public_pem = _read(settings.licence_public_key, "public key")
    document = _read(file, "licence file")

    async def work(session: AsyncSession) -> LicenceTerms:
        return await service.install(session, Actor.system(), document, public_pem, today=_today())

    try:
        terms = _with_db(settings, work)
    except AtiendeError as error:
        _error(error.error_code, error.message)
    typer.echo(f"licence {terms.licence_id} installed")
    _print_terms(terms.to_payload())
