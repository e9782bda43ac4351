"""The web interface in a real browser: signing in, the language switch, the users page and
the live activity panel."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, WebSocket, expect

if TYPE_CHECKING:  # only for annotations: two conftest modules make `import conftest` ambiguous
    from conftest import LiveServer, Login, NewContext

    SignIn = Callable[[Page, Login], None]

pytestmark = pytest.mark.browser
# The live panel must stay on one socket across this many heartbeats (the hub drops a client
# that stays silent for three).
HEARTBEATS_TO_WAIT = 5


def _csrf(page: Page) -> str:
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    return token


def test_sign_in_then_switch_language_and_keep_it(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    login = live_server.logins["language"]
    page = new_context(locale="es-MX").new_page()
    sign_in(page, login)

    expect(page.get_by_test_id("who")).to_contain_text(login.name)
    nav = page.locator("#sidenav")
    expect(nav).to_contain_text("Usuarios")
    expect(nav).to_contain_text("Bitácora de auditoría")
    expect(page.get_by_role("button", name="Cerrar sesión")).to_be_visible()

    page.get_by_test_id("language").select_option("en")

    # The page reloads in English: navigation, frame and the <html lang>.
    expect(nav).to_contain_text("Audit log")
    expect(nav).to_contain_text("My account")
    expect(nav).not_to_contain_text("Usuarios")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_test_id("language")).to_have_value("en")

    page.reload()
    expect(nav).to_contain_text("Users")
    expect(page.get_by_test_id("language")).to_have_value("en")

    # Saved on the profile, not only in this browser: a fresh browser that asks for Spanish
    # still gets English once this user signs in.
    other = new_context(locale="es-MX").new_page()
    sign_in(other, login)
    expect(other.locator("#sidenav")).to_contain_text("Audit log")
    assert other.request.get("/api/v1/auth/me").json()["locale"] == "en"


def test_wrong_password_is_reported_in_the_current_language(
    live_server: LiveServer, page: Page
) -> None:
    login = live_server.logins["agent"]
    page.goto("/login")
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.get_by_test_id("login-error")).to_have_count(0)

    page.locator("input[name=email]").fill(login.email)
    page.locator("input[name=password]").fill("no-es-la-clave")
    page.get_by_role("button", name="Iniciar sesión").click()
    expect(page.get_by_test_id("login-error")).to_have_text(
        "El correo o la contraseña son incorrectos."
    )
    # The e-mail is kept, the password is not.
    expect(page.locator("input[name=email]")).to_have_value(login.email)
    expect(page.locator("input[name=password]")).to_have_value("")

    # Anonymous visitors switch through the language form; the login page comes back in English.
    page.get_by_test_id("language").select_option("en")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")

    page.locator("input[name=email]").fill(login.email)
    page.locator("input[name=password]").fill("still-not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("login-error")).to_have_text("E-mail or password is wrong.")
    assert page.url.endswith("/login")


def test_admin_creates_a_user_from_the_users_page(
    live_server: LiveServer, page: Page, sign_in: SignIn
) -> None:
    sign_in(page, live_server.logins["admin"])
    page.locator("#sidenav").get_by_role("link", name="Usuarios").click()
    page.wait_for_url("**/users")

    table = page.get_by_test_id("users-table")
    expect(table).to_contain_text("alicia@browser.example.com")  # loaded from the API

    email = f"rosa-{uuid.uuid4().hex[:8]}@browser.example.com"
    form = page.get_by_test_id("user-form")
    form.get_by_label("Nombre").fill("Rosa Nueva")
    form.get_by_label("Correo electrónico").fill(email)
    form.get_by_label("Rol").select_option("supervisor")
    form.get_by_label("Contraseña inicial").fill("corta")
    form.get_by_role("button", name="Crear usuario").click()
    # Too short: caught in the page, in Spanish, before anything is sent.
    expect(form.locator(".field-error")).to_have_text("Usa al menos 10 caracteres.")

    form.get_by_label("Contraseña inicial").fill("una-clave-larga-y-segura")
    form.get_by_role("button", name="Crear usuario").click()
    expect(form.get_by_test_id("message-success")).to_contain_text("Rosa Nueva")

    row = table.locator("tr", has_text=email)
    expect(row).to_contain_text("Rosa Nueva")
    expect(row).to_contain_text("Supervisor")
    expect(row).to_contain_text("Activo")
    created = [u for u in page.request.get("/api/v1/users").json() if u["email"] == email]
    assert len(created) == 1
    assert created[0]["role"] == "supervisor"

    # The same e-mail again: the API's conflict is shown inline, in Spanish, on the field.
    form.get_by_label("Nombre").fill("Rosa Repetida")
    form.get_by_label("Correo electrónico").fill(email)
    form.get_by_label("Contraseña inicial").fill("una-clave-larga-y-segura")
    form.get_by_role("button", name="Crear usuario").click()
    expect(form.get_by_test_id("message-error")).to_have_text(
        "Ya existe un usuario con este correo electrónico."
    )
    expect(form.get_by_label("Correo electrónico")).to_have_attribute("aria-invalid", "true")
    expect(table.locator("tr", has_text=email)).to_have_count(1)


def _resumed_from(socket: WebSocket) -> int:
    found = re.search(r"[?&]last_event_id=(\d+)", socket.url)
    assert found, f"the socket did not resume: {socket.url}"
    return int(found.group(1))


def test_live_activity_shows_events_resumes_after_a_drop_and_ends_with_the_session(
    live_server: LiveServer, page: Page, sign_in: SignIn
) -> None:
    sockets: list[WebSocket] = []

    def opened(socket: WebSocket) -> None:  # Playwright cannot wrap a bound builtin
        sockets.append(socket)

    page.on("websocket", opened)
    # Keeps the page's sockets reachable, so the test can cut the connection from the client.
    page.add_init_script(
        """
        window.__sockets = [];
        const NativeWebSocket = window.WebSocket;
        window.WebSocket = class extends NativeWebSocket {
          constructor(...args) { super(...args); window.__sockets.push(this); }
        };
        """
    )
    sign_in(page, live_server.logins["live"])

    status = page.get_by_test_id("realtime-status")
    expect(status).to_have_attribute("data-state", "connected")
    expect(status).to_have_text("Conectado")

    def create_user(name: str) -> None:
        response = page.request.post(
            "/api/v1/users",
            headers={"X-CSRF-Token": _csrf(page)},
            data={
                "email": f"{uuid.uuid4().hex[:10]}@browser.example.com",
                "name": name,
                "role": "agent",
                "password": "otra-clave-segura",
            },
        )
        assert response.status == 201, response.text()

    events = page.get_by_test_id("realtime-log").locator("li[data-event-type='user.created']")
    create_user("Evento Uno")
    expect(events).to_have_count(1)
    expect(events).to_contain_text("user.created")
    expect(events).to_contain_text("Usuario creado")
    first_id = int(events.get_attribute("data-event-id") or 0)
    assert first_id > 0

    # Several heartbeats later the same socket is still open: the page answers with pongs.
    page.wait_for_timeout(
        HEARTBEATS_TO_WAIT * 1000 * live_server.settings.websocket_heartbeat_seconds
    )
    expect(status).to_have_attribute("data-state", "connected")
    assert len(sockets) == 1
    assert not sockets[0].is_closed()

    # The connection drops: the page says so, waits, and reconnects from the last event id.
    page.evaluate("() => window.__sockets.at(-1).close()")
    expect(status).to_have_attribute("data-state", "reconnecting")
    expect(status).to_contain_text("Reconectando")
    expect(status).to_have_attribute("data-state", "connected")
    assert len(sockets) == 2
    assert _resumed_from(sockets[-1]) >= first_id
    create_user("Evento Dos")
    expect(events).to_have_count(2)
    second_id = int(events.first.get_attribute("data-event-id") or 0)  # newest on top
    assert second_id > first_id

    # Away from the page an event happens; back on it (same tab), the page resumes from the
    # last id it saw and receives what it missed, and nothing twice.
    page.locator("#sidenav").get_by_role("link", name="Mi cuenta").click()
    page.wait_for_url("**/account")
    create_user("Evento Tres")
    page.locator("#sidenav").get_by_role("link", name="Inicio").click()
    page.wait_for_url(re.compile(r".*/$"))
    expect(status).to_have_attribute("data-state", "connected")
    assert _resumed_from(sockets[-1]) >= second_id
    expect(events).to_have_count(1)
    assert int(events.get_attribute("data-event-id") or 0) > second_id

    # Signed out elsewhere: the hub ends the socket and the page goes to the login page.
    response = page.request.post("/api/v1/auth/logout", headers={"X-CSRF-Token": _csrf(page)})
    assert response.status == 204
    page.wait_for_url(re.compile(r".*/login\?next=(/|%2F)$"))
    expect(page.get_by_role("button", name="Iniciar sesión")).to_be_visible()
