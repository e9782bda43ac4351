"""The Asterisk configuration a PBX needs: the pure generator (checked against the kit that
ran on a real Asterisk 22), and ``atiende pbx add`` / ``atiende pbx config`` through the
real command line on each database."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from atiende.audit.models import AuditEntry
from atiende.cli import app
from atiende.core.config import Settings
from atiende.core.db import Database, Scope, in_tenant, now
from atiende.identity.actor import Actor
from atiende.tenancy import service as tenancy
from atiende.tenancy.schemas import TenantCreate
from atiende.voice import pbx, service
from atiende.voice.models import Extension, Pbx
from atiende.voice.pbx import PbxConfigInvalid, PbxSetup, PhoneSecret

runner = CliRunner()

KIT = PbxSetup(
    tenant_slug="acme",
    pbx_name="kit",
    ari_url="http://127.0.0.1:8088/ari",
    ari_username="atiende",
    ari_password="secret",
    dids=("100",),
    phones=(PhoneSecret("1001", "1001pass"), PhoneSecret("1002", "1002pass")),
)

Sections = dict[str, dict[str, str]]


def parse_conf(text: str) -> tuple[Sections, list[str]]:
    """A strict reading of Asterisk's config syntax: every line is a comment, a section
    header, ``key = value`` or a dialplan line; sections with the same name merge (PJSIP
    gives one name to an endpoint, its auth and its AOR). Returns the keys by section and
    the dialplan lines."""
    sections: Sections = {}
    dialplan: list[str] = []
    current: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith(";"):
            continue
        header = re.fullmatch(r"\[([A-Za-z0-9_.-]+)\](\((!|[A-Za-z0-9_-]+)\))?", line)
        if header:
            current = header.group(1)
            sections.setdefault(current, {})
            if header.group(3):
                sections[current].setdefault("(template)", header.group(3))
            continue
        assert current is not None, f"line {number} is outside a section: {line!r}"
        if line.startswith(("exten => ", " same => ")):
            dialplan.append(f"{current}: {line.strip()}")
            continue
        key_value = re.fullmatch(r"([a-z_]+) = ([^;\s]+)", line)
        assert key_value, f"line {number} is not 'key = value': {line!r}"
        key, value = key_value.groups()
        sections[current].setdefault(key, value)
    return sections, dialplan


def test_the_four_files_come_in_a_fixed_order() -> None:
    assert list(pbx.render(KIT)) == ["ari.conf", "http.conf", "pjsip.conf", "extensions.conf"]


def test_ari_and_http_match_the_kit_that_ran_on_a_real_asterisk() -> None:
    files = pbx.render(KIT)
    ari, _ = parse_conf(files["ari.conf"])
    # kit/etc-asterisk/ari.conf, less allowed_origins (browsers only)
    assert ari == {
        "general": {"enabled": "yes", "pretty": "no"},
        "atiende": {
            "type": "user",
            "read_only": "no",
            "password": "secret",
            "password_format": "plain",
        },
    }
    http, _ = parse_conf(files["http.conf"])
    assert http == {"general": {"enabled": "yes", "bindaddr": "127.0.0.1", "bindport": "8088"}}


def test_pjsip_gives_each_extension_an_endpoint_an_auth_and_an_aor() -> None:
    sections, _ = parse_conf(pbx.render(KIT)["pjsip.conf"])
    for number, secret in (("1001", "1001pass"), ("1002", "1002pass")):
        assert sections[number] == {
            "(template)": "atiende-endpoint",
            "auth": number,
            "aors": number,
            "username": number,
            "password": secret,
        }
    assert sections["atiende-endpoint"]["context"] == pbx.AGENTS_CONTEXT
    assert sections["atiende-endpoint"]["transport"] == pbx.TRANSPORT
    assert sections["atiende-auth"]["auth_type"] == "userpass"
    assert sections["atiende-aor"]["max_contacts"] == "1"
    assert sections[pbx.TRANSPORT]["bind"] == "0.0.0.0:5060"


def test_each_did_enters_stasis_with_the_tenant_and_the_did() -> None:
    setup = replace(KIT, dids=("5551000", "+52 55 1234-5678"))
    _, dialplan = parse_conf(pbx.render(setup)["extensions.conf"])
    assert dialplan == [
        "atiende-inbound: exten => 5551000,1,NoOp(Atiende: DID 5551000 of acme)",
        "atiende-inbound: same => n,Stasis(atiende,acme,5551000)",
        "atiende-inbound: same => n,Hangup()",
        "atiende-inbound: exten => +525512345678,1,NoOp(Atiende: DID +525512345678 of acme)",
        "atiende-inbound: same => n,Stasis(atiende,acme,+525512345678)",
        "atiende-inbound: same => n,Hangup()",
        "atiende-agents: exten => 1001,1,Dial(PJSIP/1001,20)",
        "atiende-agents: same => n,Hangup()",
        "atiende-agents: exten => 1002,1,Dial(PJSIP/1002,20)",
        "atiende-agents: same => n,Hangup()",
    ]


def test_the_application_name_is_the_pbxs() -> None:
    setup = replace(KIT, app_name="cc-2", dids=("5551000",))
    assert "Stasis(cc-2,acme,5551000)" in pbx.render(setup)["extensions.conf"]


def test_without_dids_or_extensions_the_files_say_so() -> None:
    files = pbx.render(replace(KIT, dids=(), phones=()))
    assert "; No DIDs given" in files["extensions.conf"]
    assert "; The tenant has no extensions yet." in files["pjsip.conf"]
    _, dialplan = parse_conf(files["extensions.conf"])
    assert dialplan == []


@pytest.mark.parametrize(
    ("url", "bind", "port"),
    [
        ("http://10.0.0.5:8088/ari", "10.0.0.5", "8088"),
        ("http://pbx.acme.example/ari", "0.0.0.0", "8088"),
        ("http://[::1]:8090/ari/", "::1", "8090"),
    ],
)
def test_http_listens_where_the_ari_url_points(url: str, bind: str, port: str) -> None:
    http, _ = parse_conf(pbx.render(replace(KIT, ari_url=url))["http.conf"])
    assert http["general"]["bindaddr"] == bind
    assert http["general"]["bindport"] == port


def test_an_https_ari_url_turns_on_tls_and_keeps_plain_http_on_loopback() -> None:
    setup = replace(KIT, ari_url="https://10.0.0.5:8089/ari")
    http, _ = parse_conf(pbx.render(setup)["http.conf"])
    assert http["general"]["tlsenable"] == "yes"
    assert http["general"]["tlsbindaddr"] == "10.0.0.5:8089"
    assert (http["general"]["bindaddr"], http["general"]["bindport"]) == ("127.0.0.1", "8088")
    clash = replace(KIT, ari_url="https://10.0.0.5:8088/ari")
    with pytest.raises(PbxConfigInvalid, match="clashes"):
        pbx.render(clash)


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("ari_url", "ftp://10.0.0.5/ari", "ari_url_invalid"),
        ("ari_url", "http://10.0.0.5:8088/", "ari_url_invalid"),
        ("ari_url", "http://10.0.0.5:8088/ari?api_key=a:b", "ari_url_invalid"),
        ("ari_url", "http://10.0.0.5:99999/ari", "ari_url_invalid"),
        ("ari_username", "at iende", "pbx_name_invalid"),
        ("app_name", "atiende,evil", "pbx_name_invalid"),
        ("ari_password", "pass;word", "pbx_secret_invalid"),
        ("ari_password", "secret\n[evil]\ntype = user", "pbx_secret_invalid"),
        ("ari_password", "with space", "pbx_secret_invalid"),
        ("ari_password", "", "pbx_secret_invalid"),
        ("ari_password", "back\\slash", "pbx_secret_invalid"),
        ("dids", ("5551000", "5551000"), "did_duplicate"),
        ("dids", ("55a1000",), "did_invalid"),
        ("dids", ("1",), "did_invalid"),
        ("dids", ("5551000,1,Hangup()",), "did_invalid"),
        ("phones", (PhoneSecret("1001", "a]b"),), "pbx_secret_invalid"),
        ("phones", (PhoneSecret("10x1", "ok"),), "extension_invalid"),
        ("phones", (PhoneSecret("1001", "a"), PhoneSecret("1001", "b")), "extension_duplicate"),
        ("sip_bind", "0.0.0.0", "sip_bind_invalid"),
    ],
)
def test_a_value_asterisk_would_misread_is_refused(field: str, value: object, code: str) -> None:
    changes: dict[str, Any] = {field: value}
    with pytest.raises(PbxConfigInvalid) as caught:
        pbx.render(replace(KIT, **changes))
    assert caught.value.error_code == code
    assert caught.value.status_code == 422


def test_every_printable_secret_without_config_syntax_is_written_as_is() -> None:
    secret = "".join(chr(c) for c in range(33, 127) if chr(c) not in ';[],"\\')
    setup = replace(KIT, ari_password=secret[:128])
    sections, _ = parse_conf(pbx.render(setup)["ari.conf"])
    assert sections["atiende"]["password"] == secret[:128]


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> str:
    monkeypatch.setenv("ATIENDE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ATIENDE_DATABASE_URL", database_url)
    monkeypatch.delenv("ATIENDE_SECRET_KEY", raising=False)
    return database_url


def _seed(database_url: str, slug: str, numbers: tuple[str, ...]) -> None:
    """A tenant with PBX extensions (as cloud provisioning leaves them)."""

    async def work() -> None:
        db = Database(database_url, pool=False)
        try:
            async with db.session(Scope.system()) as session:
                tenant = await tenancy.create_tenant(
                    session, Actor.system(), TenantCreate(slug=slug, name=slug.title())
                )
                async with in_tenant(session, tenant.id):
                    for number in numbers:
                        session.add(Extension(number=number, created_at=now(session)))
                    await session.flush()
        finally:
            await db.dispose()

    asyncio.run(work())


def _stored(database_url: str, slug: str) -> list[Pbx]:
    async def read() -> list[Pbx]:
        db = Database(database_url, pool=False)
        try:
            async with db.session(Scope.system(), read_only=True) as session:
                tenant = await tenancy.get_tenant_by_slug(session, slug)
                assert tenant is not None
                async with in_tenant(session, tenant.id):
                    return list(await service.list_pbxs(session))
        finally:
            await db.dispose()

    return asyncio.run(read())


def _audit(database_url: str, action: str) -> list[AuditEntry]:
    async def read() -> list[AuditEntry]:
        db = Database(database_url, pool=False)
        try:
            async with db.session(Scope.system(), read_only=True) as session:
                return list(
                    await session.scalars(select(AuditEntry).where(AuditEntry.action == action))
                )
        finally:
            await db.dispose()

    return asyncio.run(read())


def _add(
    slug: str,
    name: str = "main",
    password: str = "s3cret-Pass",  # noqa: S107 - a test credential
    *extra: str,
) -> Result:
    return runner.invoke(
        app,
        [
            "pbx",
            "add",
            "--tenant",
            slug,
            "--name",
            name,
            "--ari-url",
            "http://10.0.0.5:8088/ari",
            "--ari-password",
            password,
            *extra,
        ],
    )


def _config(slug: str, *extra: str) -> Result:
    return runner.invoke(app, ["pbx", "config", "--tenant", slug, *extra])


def test_pbx_add_stores_the_ari_password_sealed_and_audits_without_it(installation: str) -> None:
    _seed(installation, "acme", ())
    result = _add("acme")
    assert result.exit_code == 0, result.output
    assert "pbx main of acme added: http://10.0.0.5:8088/ari as atiende" in result.stdout
    (stored,) = _stored(installation, "acme")
    assert (stored.name, stored.ari_username, stored.app_name) == ("main", "atiende", "atiende")
    assert "s3cret-Pass" not in stored.sealed_ari_password
    assert service.ari_password(Settings(), stored) == "s3cret-Pass"
    (entry,) = _audit(installation, "pbx.create")
    assert entry.tenant_id == stored.tenant_id
    assert "s3cret-Pass" not in json.dumps(entry.after)


def test_pbx_add_refuses_a_second_pbx_with_the_same_name(installation: str) -> None:
    _seed(installation, "acme", ())
    assert _add("acme").exit_code == 0
    again = _add("acme", "main", "other-pass")
    assert again.exit_code == 1
    assert "error (pbx_name_taken)" in again.output
    assert service.ari_password(Settings(), _stored(installation, "acme")[0]) == "s3cret-Pass"


@pytest.mark.parametrize(
    ("password", "url", "complaint"),
    [
        ("pass;word", "http://10.0.0.5:8088/ari", "cannot be written to an Asterisk file"),
        ("s3cret-Pass", "http://10.0.0.5:8088/", "followed by /ari"),
    ],
)
def test_pbx_add_refuses_what_asterisk_would_misread(
    installation: str, password: str, url: str, complaint: str
) -> None:
    _seed(installation, "acme", ())
    result = _add("acme", "main", password, "--ari-url", url)
    assert result.exit_code == 2
    assert "validation_error" in result.output
    assert complaint in result.output
    assert _stored(installation, "acme") == []


def test_pbx_config_prints_every_file_with_the_secrets_as_placeholders(installation: str) -> None:
    _seed(installation, "acme", ("1001", "1002"))
    assert _add("acme").exit_code == 0
    result = _config("acme", "--did", "5551000", "--did", "5551001")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for name in pbx.FILE_NAMES:
        assert f";;; ---- {name} ----" in out
    assert "Stasis(atiende,acme,5551000)" in out
    assert "Stasis(atiende,acme,5551001)" in out
    assert "password = <ari-password>" in out
    assert "password = <secret-1001>" in out
    assert "password = <secret-1002>" in out
    assert "bindaddr = 10.0.0.5" in out
    assert "s3cret-Pass" not in result.output


def test_pbx_config_shows_the_stored_password_only_when_asked(installation: str) -> None:
    _seed(installation, "acme", ("1001",))
    assert _add("acme").exit_code == 0
    shown = _config("acme", "--show-secrets", "--json")
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.stdout)
    assert body["secrets_shown"] is True
    sections, _ = parse_conf(body["files"]["ari.conf"])
    assert sections["atiende"]["password"] == "s3cret-Pass"


def test_pbx_config_can_generate_fresh_sip_secrets(installation: str) -> None:
    _seed(installation, "acme", ("1001", "1002"))
    first = json.loads(_config("acme", "--generate-secrets", "--json").stdout)
    second = json.loads(_config("acme", "--generate-secrets", "--json").stdout)
    secrets_1 = [
        parse_conf(first["files"]["pjsip.conf"])[0][n]["password"] for n in ("1001", "1002")
    ]
    secrets_2 = [
        parse_conf(second["files"]["pjsip.conf"])[0][n]["password"] for n in ("1001", "1002")
    ]
    for secret in secrets_1 + secrets_2:
        assert re.fullmatch(r"[A-Za-z0-9_-]{24}", secret)
    assert len(set(secrets_1 + secrets_2)) == 4


def test_pbx_config_as_json_holds_the_same_files(installation: str) -> None:
    _seed(installation, "acme", ("1001",))
    assert _add("acme").exit_code == 0
    text = _config("acme", "--did", "5551000").stdout
    body = json.loads(_config("acme", "--did", "5551000", "--json").stdout)
    assert (body["tenant"], body["pbx"], body["secrets_shown"]) == ("acme", "main", False)
    assert list(body["files"]) == list(pbx.FILE_NAMES)
    for name, content in body["files"].items():
        assert f";;; ---- {name} ----\n{content}" in text


def test_without_a_registered_pbx_the_defaults_are_shown_with_a_note(installation: str) -> None:
    _seed(installation, "acme", ("1001",))
    result = _config("acme", "--did", "5551000", "--show-secrets")
    assert result.exit_code == 0, result.output
    assert "has no PBX registered" in result.stderr
    assert "bindaddr = 127.0.0.1" in result.stdout
    assert "password = <ari-password>" in result.stdout  # nothing stored to show


def test_pbx_config_names_the_pbx_when_the_tenant_has_several(installation: str) -> None:
    _seed(installation, "acme", ())
    assert _add("acme", "main").exit_code == 0
    assert _add("acme", "branch", "other-pass", "--app", "acme-branch").exit_code == 0
    unsure = _config("acme")
    assert unsure.exit_code == 1
    assert "error (pbx_choice_needed)" in unsure.output
    chosen = _config("acme", "--pbx", "branch", "--did", "5551000")
    assert chosen.exit_code == 0, chosen.output
    assert "Stasis(acme-branch,acme,5551000)" in chosen.stdout
    missing = _config("acme", "--pbx", "nope")
    assert missing.exit_code == 1
    assert "error (pbx_not_found)" in missing.output


def test_pbx_config_refuses_a_bad_did_and_an_unknown_tenant(installation: str) -> None:
    _seed(installation, "acme", ())
    bad = _config("acme", "--did", "555-CALL-NOW")
    assert bad.exit_code == 1
    assert "error (did_invalid)" in bad.output
    unknown = _config("nobody")
    assert unknown.exit_code == 1
    assert "error (tenant_not_found)" in unknown.output


def test_pbx_config_shows_only_the_tenants_own_pbx_and_extensions(installation: str) -> None:
    _seed(installation, "acme", ("1001",))
    _seed(installation, "globex", ("2001", "2002"))
    assert _add("globex", "main", "globex-pass").exit_code == 0
    result = _config("acme", "--show-secrets", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["pbx"] is None
    text = "".join(body["files"].values())
    assert "1001" in text
    assert "2001" not in text
    assert "globex-pass" not in text
    assert "10.0.0.5" not in text
