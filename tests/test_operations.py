"""Health, readiness, metrics, OpenAPI and settings."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import select

from atiende.core.config import Settings
from atiende.core.db import Scope
from atiende.jobs.models import Job
from atiende.tasks import HOUSEKEEPING
from atiende.web.app import create_app
from factories import api_client, running


async def test_healthz_answers_while_the_process_is_up(app) -> None:
    async with api_client(app) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_readyz_is_ready_on_a_migrated_database(app) -> None:
    async with api_client(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "migrations": "ok"}


async def test_readyz_is_not_ready_before_migrations(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, auto_migrate=False, embedded_worker=False)
    app = create_app(settings)
    async with running(app), api_client(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"].startswith("at None")


async def test_readyz_is_not_ready_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        auto_migrate=False,
        embedded_worker=False,
    )
    app = create_app(settings)
    async with running(app), api_client(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("unreachable")


async def test_metrics_count_requests_by_route(app) -> None:
    async with api_client(app) as client:
        await client.get("/healthz")
        text = (await client.get("/metrics")).text
    assert 'atiende_http_requests_total{method="GET",route="/healthz",status="200"}' in text


async def test_openapi_documents_the_api(app) -> None:
    async with api_client(app) as client:
        schema = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    assert "/api/v1/users" in schema["paths"]
    assert docs.status_code == 200


async def test_unknown_routes_give_a_json_404(app) -> None:
    async with api_client(app) as client:
        response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).resolved_secret_key
    second = Settings(data_dir=tmp_path).resolved_secret_key
    assert first == second
    assert len(first) >= 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_settings_come_from_atiende_variables(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATIENDE_PORT", "9123")
    monkeypatch.setenv("ATIENDE_HOST", "0.0.0.0")
    monkeypatch.setenv("ATIENDE_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert (settings.host, settings.port) == ("0.0.0.0", 9123)
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/atiende.db"
    assert settings.redis_url is None


async def test_unexpected_errors_answer_with_a_json_500(app) -> None:
    async def boom() -> None:
        raise RuntimeError("kaboom")

    app.add_api_route("/boom", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {
        "code": "internal_error",
        "message": "Something went wrong on our side.",
    }
    assert "kaboom" not in response.text


async def test_the_embedded_worker_schedules_housekeeping(settings: Settings) -> None:
    app = create_app(settings, run_worker=True)
    async with running(app):
        db = app.state.atiende.db
        async with db.session(Scope.system()) as session:
            kinds = (await session.scalars(select(Job.kind))).all()
    assert HOUSEKEEPING in kinds
