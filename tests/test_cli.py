"""The ``atiende`` command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from atiende.cli import app

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Path:
    monkeypatch.setenv("ATIENDE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ATIENDE_DATABASE_URL", database_url)
    return tmp_path


def test_db_upgrade_is_idempotent(data_dir: Path) -> None:
    first = runner.invoke(app, ["db", "upgrade"])
    second = runner.invoke(app, ["db", "upgrade"])
    assert first.exit_code == second.exit_code == 0
    assert "database at head" in second.output


def test_demo_creates_its_logins_once_and_prints_them_every_time(data_dir: Path) -> None:
    first = runner.invoke(app, ["demo"])
    second = runner.invoke(app, ["demo"])
    assert first.exit_code == second.exit_code == 0
    logins = json.loads((data_dir / "demo-logins.json").read_text())
    assert [login["role"] for login in logins] == [
        "admin",
        "supervisor",
        "agent",
        "agent",
        "vendor_billing",
        "buyer",
    ]
    assert first.output == second.output
    for login in logins:
        assert login["email"] in first.output
        assert login["password"] in first.output


def test_tenant_and_user_create(data_dir: Path) -> None:
    tenant = runner.invoke(
        app,
        [
            "tenant",
            "create",
            "--slug",
            "acme",
            "--name",
            "Acme",
            "--deployment",
            "on_premise",
            "--json",
        ],
    )
    assert tenant.exit_code == 0, tenant.output
    assert json.loads(tenant.output)["slug"] == "acme"
    user = runner.invoke(
        app,
        [
            "user",
            "create",
            "--email",
            "ana@acme.com",
            "--name",
            "Ana",
            "--role",
            "admin",
            "--tenant",
            "acme",
        ],
    )
    assert user.exit_code == 0, user.output
    assert "password: " in user.output, "a generated password is printed once"
    vendor = runner.invoke(
        app,
        [
            "user",
            "create",
            "--email",
            "ops@vendor.com",
            "--name",
            "Ops",
            "--role",
            "vendor_support",
            "--password",
            "a long enough password",
        ],
    )
    assert vendor.exit_code == 0, vendor.output
    assert "password: " not in vendor.output


def test_cli_errors_name_the_problem_and_exit_non_zero(data_dir: Path) -> None:
    runner.invoke(app, ["tenant", "create", "--slug", "acme", "--name", "Acme"])
    duplicate = runner.invoke(app, ["tenant", "create", "--slug", "acme", "--name", "Again"])
    bad_zone = runner.invoke(
        app, ["tenant", "create", "--slug", "zone", "--name", "Z", "--time-zone", "Nowhere/City"]
    )
    no_tenant = runner.invoke(
        app,
        [
            "user",
            "create",
            "--email",
            "x@y.com",
            "--name",
            "X",
            "--role",
            "agent",
            "--tenant",
            "nope",
        ],
    )
    assert duplicate.exit_code == 1
    assert "tenant_slug_taken" in duplicate.output
    assert bad_zone.exit_code == 2
    assert "unknown IANA time zone" in bad_zone.output
    assert no_tenant.exit_code == 1
    assert "tenant_not_found" in no_tenant.output


def test_set_password_resets_a_login(data_dir: Path) -> None:
    runner.invoke(app, ["tenant", "create", "--slug", "acme", "--name", "Acme"])
    runner.invoke(
        app,
        [
            "user",
            "create",
            "--email",
            "ana@acme.com",
            "--name",
            "Ana",
            "--role",
            "admin",
            "--tenant",
            "acme",
        ],
    )
    reset = runner.invoke(
        app, ["user", "set-password", "--email", "ANA@acme.com", "--password", "brand new password"]
    )
    short = runner.invoke(
        app, ["user", "set-password", "--email", "ana@acme.com", "--password", "x"]
    )
    unknown = runner.invoke(app, ["user", "set-password", "--email", "nobody@acme.com"])
    assert reset.exit_code == 0, reset.output
    assert short.exit_code == 1
    assert "validation_error" in short.output
    assert unknown.exit_code == 1
    assert "user_not_found" in unknown.output
