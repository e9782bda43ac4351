"""Browser tests: a real uvicorn server in a thread, and headless Chromium driven by Playwright.

The server runs the real app on SQLite in a temporary directory, seeded through the services
with one tenant and its users. Chromium is the system package (``apt-get install chromium``);
Playwright's own browser downloads are never used. Without Chromium the tests are skipped, or
fail when ``ATIENDE_REQUIRE_BROWSER=1`` (CI).

The tests use Playwright's sync API in plain (non-async) tests, so they never share an event
loop with pytest-asyncio; the server has its own loop in its own thread. The fixtures are
module-scoped: while Playwright's sync API is open its loop counts as running in this thread,
so it must be closed before the async tests of other modules run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from atiende.core import migrate
from atiende.core.config import Settings
from atiende.core.db import Database, Scope
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.identity.schemas import UserCreate
from atiende.tenancy import service as tenancy
from atiende.tenancy.schemas import TenantCreate
from atiende.web.app import create_app

PASSWORD = "una-clave-de-prueba"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Short, so the tests also see the client answer heartbeats (silent clients are dropped at 3x).
HEARTBEAT_SECONDS = 0.5
T = TypeVar("T")


@dataclass(frozen=True)
class Login:
    email: str
    name: str
    role: Role
    password: str = PASSWORD


@dataclass
class LiveServer:
    url: str
    settings: Settings
    logins: dict[str, Login] = field(default_factory=dict)
    app: FastAPI | None = None
    loop: asyncio.AbstractEventLoop | None = None

    def run(self, work: Callable[[Database], Coroutine[Any, Any, T]], timeout: float = 20) -> T:
        """Runs ``work(db)`` on the server's own event loop and database, so what it does
        reaches the server's bus (and the browsers' websockets) at once; waits for it."""
        assert self.app is not None
        assert self.loop is not None
        db: Database = self.app.state.atiende.db
        return asyncio.run_coroutine_threadsafe(work(db), self.loop).result(timeout)


SEED_USERS = {
    # Each test signs in as its own user, so one test's changes (the language) never leak.
    "language": Login("lucia@browser.example.com", "Lucía Idioma", Role.admin),
    "admin": Login("ana@browser.example.com", "Ana Admin", Role.admin),
    "live": Login("luis@browser.example.com", "Luis En Vivo", Role.admin),
    "agent": Login("alicia@browser.example.com", "Alicia Agente", Role.agent),
}


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = "Chromium is not installed (apt-get install -y chromium chromium-driver)"
        if os.environ.get("ATIENDE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _seed(settings: Settings) -> None:
    db = Database(settings.resolved_database_url)
    try:
        async with db.session(Scope.system()) as session:
            tenant = await tenancy.create_tenant(
                session,
                Actor.system(),
                TenantCreate(slug="navegador", name="Navegador", time_zone="America/Mexico_City"),
            )
            for login in SEED_USERS.values():
                await identity.create_user(
                    session,
                    Actor.system(),
                    UserCreate(
                        email=login.email,
                        name=login.name,
                        role=login.role,
                        password=login.password,
                        tenant_id=tenant.id,
                    ),
                )
    finally:
        await db.dispose()


def _prepare(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.resolved_database_url)
    asyncio.run(_seed(settings))


@pytest.fixture(scope="module")
def chromium_path() -> str:
    return _chromium()


@pytest.fixture(scope="module")
def live_server(
    chromium_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("browser")
    settings = Settings(
        data_dir=data_dir,
        environment="test",
        secret_key="browser-test-secret",
        embedded_worker=False,
        websocket_heartbeat_seconds=HEARTBEAT_SECONDS,
    )
    # Migrate and seed off this thread: asyncio.run must not meet a running loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(_prepare, settings).result()

    port = _free_port()
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="browser-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the test server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(
            url=f"http://127.0.0.1:{port}",
            settings=settings,
            logins=SEED_USERS,
            app=app,
            loop=server.servers[0].get_loop(),
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_instance: Playwright, chromium_path: str) -> Iterator[Browser]:
    browser = playwright_instance.chromium.launch(
        executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


NewContext = Callable[..., BrowserContext]


@pytest.fixture
def new_context(browser: Browser, live_server: LiveServer) -> Iterator[NewContext]:
    """Makes browser contexts (fresh cookies and storage) that speak Mexican Spanish by
    default, closed after the test."""
    contexts: list[BrowserContext] = []

    def make(locale: str = "es-MX", width: int = 1280, height: int = 800) -> BrowserContext:
        context = browser.new_context(
            base_url=live_server.url,
            locale=locale,
            viewport={"width": width, "height": height},
        )
        context.set_default_timeout(5000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_context: NewContext) -> Page:
    return new_context().new_page()


def _sign_in(page: Page, login: Login) -> None:
    page.goto("/login")
    page.locator("input[name=email]").fill(login.email)
    page.locator("input[name=password]").fill(login.password)
    page.locator("form[action='/login'] button[type=submit]").click()
    page.wait_for_url("**/")


@pytest.fixture
def sign_in() -> Callable[[Page, Login], None]:
    """Signs in through the login form and waits for the home page."""
    return _sign_in
