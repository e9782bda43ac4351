"""One typed settings object, read from ``ATIENDE_*`` environment variables."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name


class Settings(BaseSettings):
    """Process-wide configuration; every field maps to ``ATIENDE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ATIENDE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = Path("var")
    database_url: str | None = None
    redis_url: str | None = None
    secret_key: str | None = None
    environment: Literal["development", "production", "test"] = "development"
    log_level: str = "info"
    # The embedded default runs the job worker inside `serve`; with several nodes turn it off
    # and run `atiende worker` processes instead.
    embedded_worker: bool = True
    auto_migrate: bool = True
    session_days: int = Field(default=14, ge=1)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    websocket_heartbeat_seconds: float = Field(default=20.0, gt=0)
    default_locale: Literal["es", "en"] = "es"
    cookie_secure: bool = False
    # Proxies whose X-Forwarded-For is trusted (comma-separated addresses, or "*"), so login
    # rate limits count real client addresses behind a load balancer.
    forwarded_allow_ips: str = "127.0.0.1"
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    job_lease_seconds: int = Field(default=60, ge=1)

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'atiende.db').resolve()}"

    @cached_property
    def resolved_secret_key(self) -> str:
        """The configured key, or one generated once and kept in the data dir."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / SECRET_KEY_FILE
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
