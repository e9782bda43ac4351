"""The FastAPI application factory and its lifespan-managed resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atiende import __version__
from atiende.attachments.api import router as attachments_router
from atiende.attachments.storage import close_attachment_store
from atiende.audit.api import router as audit_router
from atiende.billing.api import routers as billing_routers
from atiende.channels.api import routers as channel_routers
from atiende.channels.api import webhooks as webhook_router
from atiende.contacts.api import router as contacts_router
from atiende.conversations.api import router as conversations_router
from atiende.core import i18n, migrate
from atiende.core.bus import Bus, create_bus
from atiende.core.clock import Clock, SystemClock
from atiende.core.config import Settings
from atiende.core.db import Database
from atiende.core.errors import AtiendeError
from atiende.core.metrics import HTTP_LATENCY, HTTP_REQUESTS
from atiende.helpdesk.api import router as helpdesk_router
from atiende.identity.api import router as identity_router
from atiende.jobs.service import JobRunner
from atiende.licensing.api import router as licence_router
from atiende.reports.api import router as reports_router
from atiende.routing import service as routing_service
from atiende.routing.admin_api import router as routing_admin_router
from atiende.routing.api import router as routing_router
from atiende.routing.canned_api import router as canned_router
from atiende.tasks import build_registry, ensure_recurring
from atiende.tenancy.api import router as tenancy_router
from atiende.voice.api import router as voice_router
from atiende.voice.calls import CallControl
from atiende.web import hub, pages
from atiende.web.deps import LANG_COOKIE
from atiende.web.health import router as health_router
from atiende.web.state import AppState
from atiende.webchat.api import router as webchat_router

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    bus: Bus | None = None,
    run_worker: bool | None = None,
) -> FastAPI:
    settings = settings or Settings()
    clock = clock or SystemClock()
    bus = bus or create_bus(settings.redis_url)
    db = Database(settings.resolved_database_url, clock=clock, publisher=bus)
    state = AppState(
        settings=settings,
        db=db,
        bus=bus,
        clock=clock,
        jobs=build_registry(),
        node_id=f"node-{uuid.uuid4().hex[:8]}",
    )
    with_worker = settings.embedded_worker if run_worker is None else run_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.auto_migrate:
            await migrate.upgrade_async(settings.resolved_database_url)
        await bus.start()
        stop = asyncio.Event()
        worker: asyncio.Task[None] | None = None
        voice: asyncio.Task[None] | None = None
        settings.resolved_secret_key  # noqa: B018 - created on first start, kept in the data dir
        if with_worker:
            await ensure_recurring(db)
            runner = JobRunner(db, state.jobs, settings, worker_id=f"{state.node_id}-worker")
            worker = asyncio.create_task(runner.run_forever(stop), name="embedded-worker")
            if settings.voice_control:
                control = CallControl(db, bus, settings)
                voice = asyncio.create_task(control.run(stop), name="call-control")
        state.started = True
        try:
            yield
        finally:
            stop.set()
            await routing_service.settle()
            if voice is not None:
                voice.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await voice
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            await bus.stop()
            await close_attachment_store(settings)
            await db.dispose()

    app = FastAPI(
        title="Atiende",
        version=__version__,
        description="Omnichannel contact center API. Authenticate with a session cookie "
        "(browsers, plus `X-CSRF-Token` on writes) or `Authorization: Bearer <API token>`.",
        lifespan=lifespan,
        # Metrics are Prometheus (ObserveMiddleware, /metrics). FastAPI's native OpenTelemetry
        # would look up the global providers on every request (~15 µs) to find none.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.atiende = state
    _install_error_handlers(app)
    app.add_middleware(ObserveMiddleware, default_locale=settings.default_locale)
    # Requests are matched against the routes in this order, one by one (a few µs each):
    # the providers' webhooks and the health probes, the busiest paths, go first. Their
    # paths (/webhooks/…, /healthz, /readyz, /metrics) belong to no other router.
    for router in (
        webhook_router,
        health_router,
        hub.router,
        identity_router,
        tenancy_router,
        audit_router,
        routing_router,
        routing_admin_router,
        contacts_router,
        conversations_router,
        attachments_router,
        canned_router,
        webchat_router,
        *billing_routers,
        reports_router,
        helpdesk_router,
        *(router for router in channel_routers if router is not webhook_router),
        voice_router,
        licence_router,
        pages.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


class ObserveMiddleware:
    """Pure ASGI middleware: request language, security headers and Prometheus metrics.

    It runs on every request, so it reads the raw ASGI headers once instead of building
    Starlette's request objects, parses cookies only when there are any, and keeps the
    metric series it has used (``labels()`` takes a lock and checks the values each time).
    """

    def __init__(self, app: ASGIApp, default_locale: str = i18n.DEFAULT_LOCALE) -> None:
        self.app = app
        self.default_locale = default_locale
        self._requests: dict[tuple[str, str, int], Counter] = {}
        self._latencies: dict[tuple[str, str], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookies: list[bytes] = []
        accept_language: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookies.append(value)
            elif name == b"accept-language" and accept_language is None:
                accept_language = value
        lang_cookie = None
        if cookies:  # as Request.cookies: every Cookie header, the last value wins
            parsed: dict[str, str] = {}
            for header in cookies:
                parsed.update(cookie_parser(header.decode("latin-1")))
            lang_cookie = parsed.get(LANG_COOKIE)
        # The page language for this request; pages refine it once the user is known.
        token = i18n.current_locale.set(
            i18n.negotiate(
                user_locale=None,
                cookie=lang_cookie,
                accept_language=accept_language.decode("latin-1") if accept_language else None,
                default=self.default_locale,
            )
        )
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message["headers"] = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            i18n.current_locale.reset(token)
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            method = scope["method"]
            requests = self._requests.get((method, path, status))
            if requests is None:
                requests = HTTP_REQUESTS.labels(method, path, str(status))
                self._requests[method, path, status] = requests
            requests.inc()
            latency = self._latencies.get((method, path))
            if latency is None:
                latency = self._latencies[method, path] = HTTP_LATENCY.labels(method, path)
            latency.observe(time.perf_counter() - started)


# Raw ASGI response headers (lower-case names), added where the response has not set them.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AtiendeError)
    async def atiende_error(request: Request, error: AtiendeError) -> Response:
        if pages.wants_html(request) and error.status_code == 401:
            return pages.redirect_to_login(request)
        return JSONResponse(error.to_body(), status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"code": "internal_error", "message": "Something went wrong on our side."},
            status_code=500,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        errors = [
            {
                "field": ".".join(str(part) for part in item.get("loc", ())[1:]) or None,
                "location": item.get("loc", ("body",))[0],
                "message": item.get("msg"),
                "type": item.get("type"),
            }
            for item in error.errors()
        ]
        return JSONResponse(
            {
                "code": "validation_error",
                "message": "The request is not valid.",
                "details": {"errors": errors},
            },
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        code = codes.get(error.status_code, f"http_{error.status_code}")
        message = error.detail if isinstance(error.detail, str) else "Request failed."
        return JSONResponse(
            {"code": code, "message": message},
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )
