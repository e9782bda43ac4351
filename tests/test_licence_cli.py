"""``atiende license``: the vendor makes keys and signs licence files; an installation checks
and installs them. Run through the real command line."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from typer.testing import CliRunner

from atiende.cli import app
from atiende.core.db import Database, Scope
from atiende.licensing import service, signing
from atiende.licensing.signing import LicenceState, LicenceTerms

runner = CliRunner()
FAR = "2099-12-31"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    result = runner.invoke(app, ["license", "keygen", "--out", str(tmp_path / "keys")])
    assert result.exit_code == 0, result.output
    return (
        tmp_path / "keys" / "atiende-licence-private.pem",
        tmp_path / "keys" / "atiende-licence-public.pem",
    )


def _issue(private: Path, out: Path, *extra: str, agents: str = "15") -> Result:
    return runner.invoke(
        app,
        [
            "license",
            "issue",
            "--private-key",
            str(private),
            "--customer",
            "it@acme.example",
            "--deployment",
            "on_premise",
            "--license",
            "omnichannel",
            "--agents",
            agents,
            "--valid-until",
            FAR,
            "--out",
            str(out),
            *extra,
        ],
    )


@pytest.fixture
def licence(keys: tuple[Path, Path], tmp_path: Path) -> Path:
    out = tmp_path / "acme.licence"
    result = _issue(keys[0], out, "--addon", "support_24x7", "--addon", "reports")
    assert result.exit_code == 0, result.output
    return out


def _verify(file: Path, public: Path, *, as_json: bool = True) -> Result:
    args = ["license", "verify", str(file), "--public-key", str(public)]
    return runner.invoke(app, [*args, "--json"] if as_json else args)


# -- keygen ----------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_can_read_and_a_public_key(
    keys: tuple[Path, Path],
) -> None:
    private, public = keys
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    private_key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    public_key = serialization.load_pem_public_key(public.read_bytes())
    assert isinstance(private_key, Ed25519PrivateKey)
    assert isinstance(public_key, Ed25519PublicKey)
    assert private_key.public_key().public_bytes_raw() == public_key.public_bytes_raw()


@pytest.mark.parametrize("existing", ["atiende-licence-private.pem", "atiende-licence-public.pem"])
def test_keygen_never_overwrites_a_key(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("precious")
    result = runner.invoke(app, ["license", "keygen", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "refusing to overwrite" in result.output
    assert (tmp_path / existing).read_text() == "precious"
    assert sorted(path.name for path in tmp_path.iterdir()) == [existing]


# -- issue -----------------------------------------------------------------------------------


def test_issue_writes_a_signed_licence_file(licence: Path, keys: tuple[Path, Path]) -> None:
    document = json.loads(licence.read_text())
    assert set(document) == {"format", "payload", "signature"}
    assert document["format"] == "atiende-licence/1"
    payload = document["payload"]
    assert {
        key: value for key, value in payload.items() if key not in {"licence_id", "issued_at"}
    } == {
        "customer": "it@acme.example",
        "deployment": "on_premise",
        "license": "omnichannel",
        "agents": 15,
        "addons": ["reports", "support_24x7"],
        "valid_until": FAR,
    }
    issued_at = datetime.fromisoformat(payload["issued_at"])
    assert issued_at.utcoffset() is not None
    assert abs((datetime.now(UTC) - issued_at).total_seconds()) < 60
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    public_key = serialization.load_pem_public_key(keys[1].read_bytes())
    assert isinstance(public_key, Ed25519PublicKey)
    public_key.verify(base64.b64decode(document["signature"]), canonical.encode())


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (["--agents", "12"], "steps of 5"),
        (["--agents", "5"], "at least 10"),
        (["--deployment", "cloud"], "only on_premise"),
        (["--license", "video"], "Unknown licence"),
        (["--addon", "coffee"], "Unknown add-on"),
        (["--customer", "nobody"], "e-mail"),
        (["--valid-until", "2020-01-31"], "before the issue date"),
        (["--valid-until", "next year"], "not a date"),
    ],
)
def test_issue_refuses_terms_off_the_price_list_and_names_the_rule(
    keys: tuple[Path, Path], tmp_path: Path, change: list[str], words: str
) -> None:
    out = tmp_path / "refused.licence"
    # A later option wins in Click, so the change overrides the defaults given before it.
    result = _issue(keys[0], out, *change)
    assert result.exit_code != 0
    assert words in result.output
    assert not out.exists()


def test_issue_does_not_overwrite_a_licence_file(licence: Path, keys: tuple[Path, Path]) -> None:
    before = licence.read_bytes()
    result = _issue(keys[0], licence)
    assert result.exit_code != 0
    assert "refusing to overwrite" in result.output
    assert licence.read_bytes() == before


def test_issue_needs_a_readable_ed25519_private_key(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    missing = _issue(tmp_path / "nope.pem", tmp_path / "a.licence")
    wrong = _issue(keys[1], tmp_path / "b.licence")
    assert missing.exit_code != 0
    assert "cannot read the private key" in missing.output
    assert wrong.exit_code != 0
    assert "licence_key_invalid" in wrong.output


# -- verify ----------------------------------------------------------------------------------


def test_verify_prints_the_terms_of_a_genuine_licence(
    licence: Path, keys: tuple[Path, Path]
) -> None:
    as_json = _verify(licence, keys[1])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == {
        "valid": True,
        "payload": json.loads(licence.read_text())["payload"],
    }
    plain = _verify(licence, keys[1], as_json=False)
    assert plain.exit_code == 0, plain.output
    assert "valid licence" in plain.stdout
    assert "omnichannel" in plain.stdout
    assert "reports, support_24x7" in plain.stdout
    assert f"{FAR} (through the end of that day, UTC)" in plain.stdout


def _json_failure(result: Result) -> tuple[str, str]:
    assert result.exit_code != 0
    body = json.loads(result.stdout)
    assert body["valid"] is False
    assert set(body) == {"valid", "reason", "message"}
    return body["reason"], body["message"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"agents": 15', b'"agents": 50'),
        (b'"license": "omnichannel"', b'"license": "voice      "'),
        (b'"valid_until": "2099-12-31"', b'"valid_until": "2099-12-30"'),
        (b'"reports",', b'"openai", "reports",'),
    ],
)
def test_verify_calls_an_edited_licence_forged(
    licence: Path, keys: tuple[Path, Path], old: bytes, new: bytes
) -> None:
    original = licence.read_bytes()
    assert original.count(old) == 1
    licence.write_bytes(original.replace(old, new))
    reason, message = _json_failure(_verify(licence, keys[1]))
    assert reason == "licence_forged"
    assert "signature does not match" in message
    plain = _verify(licence, keys[1], as_json=False)
    assert plain.exit_code != 0
    assert "licence_forged" in plain.output


def test_verify_with_another_vendor_key_is_forged(licence: Path, tmp_path: Path) -> None:
    runner.invoke(app, ["license", "keygen", "--out", str(tmp_path / "other")])
    reason, _ = _json_failure(_verify(licence, tmp_path / "other" / "atiende-licence-public.pem"))
    assert reason == "licence_forged"


def test_verify_rejects_every_flipped_byte_of_the_signature(
    licence: Path, keys: tuple[Path, Path]
) -> None:
    original = licence.read_bytes()
    start = original.index(b'"signature": "') + len(b'"signature": "')
    for position in range(start, start + 86, 7):
        tampered = bytearray(original)
        tampered[position] ^= 0x01
        licence.write_bytes(bytes(tampered))
        reason, _ = _json_failure(_verify(licence, keys[1]))
        assert reason in {"licence_forged", "licence_malformed"}


def test_verify_calls_a_lapsed_licence_expired(keys: tuple[Path, Path], tmp_path: Path) -> None:
    terms = LicenceTerms(
        customer="it@acme.example", license="voice", agents=10, valid_until=date(2026, 1, 31)
    )
    document = signing.issue(
        keys[0].read_bytes(), terms, issued_at=datetime(2026, 1, 2, tzinfo=UTC)
    )
    old = tmp_path / "old.licence"
    old.write_text(signing.dumps(document))
    reason, message = _json_failure(_verify(old, keys[1]))
    assert reason == "licence_expired"
    assert "2026-01-31" in message
    plain = _verify(old, keys[1], as_json=False)
    assert plain.exit_code != 0
    assert "licence_expired" in plain.output


@pytest.mark.parametrize(
    "content",
    [
        b"this is not json",
        b'{"format": "atiende-licence/1", "payload": {}}',
        b'{"format": "atiende-licence/9", "payload": {}, "signature": ""}',
    ],
)
def test_verify_calls_a_broken_file_malformed(
    keys: tuple[Path, Path], tmp_path: Path, content: bytes
) -> None:
    broken = tmp_path / "broken.licence"
    broken.write_bytes(content)
    reason, _ = _json_failure(_verify(broken, keys[1]))
    assert reason == "licence_malformed"


def test_verify_calls_a_signature_that_is_not_base64_malformed(
    licence: Path, keys: tuple[Path, Path]
) -> None:
    document = json.loads(licence.read_text())
    document["signature"] = "not base64!"
    licence.write_text(json.dumps(document))
    reason, message = _json_failure(_verify(licence, keys[1]))
    assert reason == "licence_malformed"
    assert "base64" in message


def test_verify_of_a_missing_file_fails(keys: tuple[Path, Path], tmp_path: Path) -> None:
    result = _verify(tmp_path / "nothing.licence", keys[1])
    assert result.exit_code != 0


# -- install ---------------------------------------------------------------------------------


@pytest.fixture
def installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> str:
    monkeypatch.setenv("ATIENDE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ATIENDE_DATABASE_URL", database_url)
    return database_url


def _status(database_url: str) -> signing.LicenceStatus:
    async def read() -> signing.LicenceStatus:
        db = Database(database_url, pool=False)
        try:
            async with db.session(Scope.system(), read_only=True) as session:
                return await service.licence_status(
                    session, today=datetime.now(UTC).date(), grace_days=14
                )
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_install_needs_the_trusted_public_key_setting(
    installation: str, licence: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ATIENDE_LICENCE_PUBLIC_KEY", raising=False)
    result = runner.invoke(app, ["license", "install", str(licence)])
    assert result.exit_code != 0
    assert "ATIENDE_LICENCE_PUBLIC_KEY" in result.output
    assert _status(installation).state is LicenceState.missing


def test_install_stores_a_genuine_licence_once(
    installation: str, licence: Path, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATIENDE_LICENCE_PUBLIC_KEY", str(keys[1]))
    first = runner.invoke(app, ["license", "install", str(licence)])
    assert first.exit_code == 0, first.output
    licence_id = json.loads(licence.read_text())["payload"]["licence_id"]
    assert f"licence {licence_id} installed" in first.output
    assert "omnichannel" in first.output
    again = runner.invoke(app, ["license", "install", str(licence)])
    assert again.exit_code == 0, again.output
    status = _status(installation)
    assert status.state is LicenceState.active
    assert status.terms is not None
    assert (status.terms.licence_id, status.terms.agents) == (licence_id, 15)


def test_install_refuses_a_forged_licence_and_stores_nothing(
    installation: str, licence: Path, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATIENDE_LICENCE_PUBLIC_KEY", str(keys[1]))
    licence.write_bytes(licence.read_bytes().replace(b'"agents": 15', b'"agents": 95'))
    result = runner.invoke(app, ["license", "install", str(licence)])
    assert result.exit_code != 0
    assert "licence_forged" in result.output
    assert _status(installation).state is LicenceState.missing
