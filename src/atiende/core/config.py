"""One typed settings object, read from ``ATIENDE_*`` environment variables."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
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
    # Webchat: a visitor with no widget open (no socket, no request) for this long while their
    # conversation still waits for an agent has left; the conversation is abandoned.
    webchat_leave_grace_seconds: int = Field(default=120, ge=1)
    # Voice: run call control (the PBXs' ARI connections) inside the embedded worker. With
    # separate workers, run exactly one `atiende pbx connect` process instead.
    voice_control: bool = True
    default_locale: Literal["es", "en"] = "es"
    cookie_secure: bool = False
    # Proxies whose X-Forwarded-For is trusted (comma-separated addresses, or "*"), so login
    # rate limits count real client addresses behind a load balancer.
    forwarded_allow_ips: str = "127.0.0.1"
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    job_lease_seconds: int = Field(default=60, ge=1)
    # Outbound e-mail: "file" writes each message as an .eml under data_dir/mail (development),
    # "log" only logs that it was sent, "smtp" hands it to the relay below.
    mail_backend: Literal["smtp", "file", "log"] = "file"
    mail_from: str = "Atiende <no-reply@atiende.localhost>"
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    # STARTTLS after connecting (port 587) or TLS from the first byte (port 465); not both.
    smtp_starttls: bool = False
    smtp_tls: bool = False
    # Short: on SQLite a sending job holds the database write lock (10 s busy timeout).
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    # Where people reach this installation (links in e-mails).
    public_url: str = "http://127.0.0.1:8000"
    # The vendor's books (cloud installation): who issues invoices, when they fall due and
    # how long an overdue account keeps working before it is suspended.
    invoice_issuer: str = Field(default="ATI", pattern=r"^[A-Z0-9]{1,10}$")
    invoice_issuer_name: str = "Atiende Cloud"
    invoice_issuer_address: str = ""
    invoice_issuer_tax_id: str = ""
    invoice_due_days: int = Field(default=5, ge=0)
    billing_grace_days: int = Field(default=7, ge=0)
    bank_transfer_instructions: str = "Bank transfer; quote the invoice number."
    # The vendor's signing key for on-premise licences; generated under data_dir/keys when
    # unset (development).
    licence_private_key: Path | None = None
    # Helpdesk: who hears about cases at risk or breached, when "at risk" starts, and how
    # long a closed case may be reopened.
    support_team_email: str = "support@atiende.example.com"
    support_at_risk_fraction: float = Field(default=0.75, gt=0, lt=1)
    support_reopen_days: int = Field(default=7, ge=0)
    # E-mail domain of the agent users a cloud purchase provisions.
    provisioning_email_domain: str = "agents.example.com"

    # On-premise: the vendor's public key this installation trusts for licence files, and how
    # many days agents may still log in after the installed licence lapses.
    licence_public_key: Path | None = None
    licence_grace_days: int = Field(default=14, ge=0)

    # Where attachment bytes live: "local" under data_dir/attachments (one node), or "s3" in
    # an S3-compatible bucket that every node shares. No endpoint URL means AWS; unset keys
    # mean the default AWS credential chain (environment, instance or task role).
    attachment_store: Literal["local", "s3"] = "local"
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_prefix: str = Field(default="attachments/", pattern=r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*/)*$")
    # SSE-S3 (AES256) on every object; unset means on for AWS, off with an endpoint URL
    # (MinIO refuses it unless it has a KMS configured).
    s3_server_side_encryption: bool | None = None

    @model_validator(mode="after")
    def _one_kind_of_smtp_tls(self) -> Settings:
        if self.smtp_starttls and self.smtp_tls:
            raise ValueError("set ATIENDE_SMTP_STARTTLS or ATIENDE_SMTP_TLS, not both")
        return self

    @model_validator(mode="after")
    def _s3_store_is_complete(self) -> Settings:
        if self.attachment_store == "s3" and not self.s3_bucket:
            raise ValueError("ATIENDE_ATTACHMENT_STORE=s3 needs ATIENDE_S3_BUCKET")
        if bool(self.s3_access_key_id) != bool(self.s3_secret_access_key):
            raise ValueError(
                "set both ATIENDE_S3_ACCESS_KEY_ID and ATIENDE_S3_SECRET_ACCESS_KEY, or neither"
            )
        return self

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
