"""Password login, sessions with CSRF, rate limiting, logout, password change, API tokens."""

from __future__ import annotations

from fastapi import FastAPI

from atiende.core.clock import TestClock
from atiende.core.config import Settings
from atiende.core.db import Database, Scope
from atiende.identity import service as identity
from atiende.identity.models import Role
from factories import PASSWORD, api_client, browser_login, caller, make_tenant, make_user


async def test_login_sets_a_session_cookie_that_identifies_the_user(app, db: Database) -> None:
    tenant = await make_tenant(db)
    user = await make_user(db, tenant, Role.agent)
    async with api_client(app) as client:
        await browser_login(client, user.email)
        assert "atiende_session" in client.cookies
        me = await client.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["email"] == user.email
    assert me.json()["role"] == "agent"


async def test_login_is_case_insensitive_on_the_email(app, db: Database) -> None:
    user = await make_user(db, await make_tenant(db), email="Mixed.Case@Example.com")
    async with api_client(app) as client:
        await browser_login(client, "MIXED.case@example.COM")
        assert (await client.get("/api/v1/auth/me")).json()["id"] == str(user.id)


async def test_wrong_password_is_refused_without_saying_which_part_was_wrong(
    app, db: Database
) -> None:
    user = await make_user(db, await make_tenant(db))
    async with api_client(app) as client:
        wrong = await client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": "not it at all"}
        )
        unknown = await client.post(
            "/api/v1/auth/login", json={"email": "ghost@example.com", "password": PASSWORD}
        )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["code"] == "invalid_credentials"


async def test_repeated_failures_lock_the_email_until_the_window_passes(
    app, db: Database, settings: Settings, clock: TestClock
) -> None:
    user = await make_user(db, await make_tenant(db))
    async with api_client(app) as client:
        for _ in range(settings.login_max_failures):
            response = await client.post(
                "/api/v1/auth/login", json={"email": user.email, "password": "guess-guess"}
            )
            assert response.status_code == 401
        locked = await client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
        )
        assert locked.status_code == 429
        assert locked.json()["code"] == "rate_limited"
        clock.advance(settings.login_window_seconds + 1)
        await browser_login(client, user.email)


async def test_inactive_users_cannot_log_in(app, db: Database) -> None:
    tenant = await make_tenant(db)
    admin = await caller(app, tenant)
    agent = await make_user(db, tenant, Role.agent)
    response = await admin.client.patch(f"/api/v1/users/{agent.id}", json={"is_active": False})
    assert response.status_code == 200
    async with api_client(app) as client:
        refused = await client.post(
            "/api/v1/auth/login", json={"email": agent.email, "password": PASSWORD}
        )
    assert refused.status_code == 401


async def test_cookie_writes_need_the_csrf_token(app, db: Database) -> None:
    user = await make_user(db, await make_tenant(db))
    async with api_client(app) as client:
        csrf = await browser_login(client, user.email)
        body = {"email": "new@example.com", "name": "New", "role": "agent", "password": PASSWORD}
        without = await client.post("/api/v1/users", json=body)
        forged = await client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": "nope"})
        listed = [u["email"] for u in (await client.get("/api/v1/users")).json()]
        assert "new@example.com" not in listed
        with_token = await client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf})
    assert without.status_code == forged.status_code == 403
    assert without.json()["code"] == "csrf_failed"
    assert with_token.status_code == 201


async def test_logout_ends_the_session(app, db: Database) -> None:
    user = await make_user(db, await make_tenant(db))
    async with api_client(app) as client:
        csrf = await browser_login(client, user.email)
        cookie = client.cookies["atiende_session"]
        response = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
        assert response.status_code == 204
    async with api_client(app) as replay:
        replay.cookies.set("atiende_session", cookie)
        assert (await replay.get("/api/v1/auth/me")).status_code == 401


async def test_password_change_keeps_this_session_and_ends_the_others(app, db: Database) -> None:
    user = await make_user(db, await make_tenant(db))
    async with api_client(app) as laptop, api_client(app) as phone:
        csrf = await browser_login(laptop, user.email)
        await browser_login(phone, user.email)
        wrong = await laptop.post(
            "/api/v1/auth/password",
            json={"current_password": "not-the-password", "new_password": "a new long password"},
            headers={"X-CSRF-Token": csrf},
        )
        assert wrong.status_code == 401
        changed = await laptop.post(
            "/api/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": "a new long password"},
            headers={"X-CSRF-Token": csrf},
        )
        assert changed.status_code == 204
        assert (await laptop.get("/api/v1/auth/me")).status_code == 200
        assert (await phone.get("/api/v1/auth/me")).status_code == 401
    async with api_client(app) as fresh:
        old = await fresh.post(
            "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
        )
        assert old.status_code == 401
        await browser_login(fresh, user.email, "a new long password")


async def test_short_new_passwords_are_rejected(app, db: Database) -> None:
    user = await make_user(db, await make_tenant(db))
    async with api_client(app) as client:
        csrf = await browser_login(client, user.email)
        response = await client.post(
            "/api/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": "short"},
            headers={"X-CSRF-Token": csrf},
        )
    assert response.status_code == 422
    assert response.json()["details"]["errors"][0]["field"] == "new_password"


async def test_api_tokens_authenticate_until_revoked(app, db: Database) -> None:
    owner = await caller(app, await make_tenant(db))
    created = await owner.client.post("/api/v1/tokens", json={"name": "crm sync"})
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("atd_")
    listed = (await owner.client.get("/api/v1/tokens")).json()
    assert "token" not in listed[0], "a token is shown only once"
    async with api_client(app, token) as integration:
        assert (await integration.get("/api/v1/auth/me")).json()["id"] == str(owner.id)
        revoked = await owner.client.delete(f"/api/v1/tokens/{created.json()['id']}")
        assert revoked.status_code == 204
        after = await integration.get("/api/v1/auth/me")
    assert after.status_code == 401
    assert after.json()["code"] == "not_authenticated"


async def test_bearer_requests_need_no_csrf_token(app, db: Database) -> None:
    admin = await caller(app, await make_tenant(db))
    response = await admin.client.post(
        "/api/v1/users",
        json={"email": "bot@example.com", "name": "Bot", "role": "agent", "password": PASSWORD},
    )
    assert response.status_code == 201


async def test_anonymous_api_calls_get_401(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.get("/api/v1/users")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


async def test_pages_send_anonymous_browsers_to_the_login_page(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.get("/users", headers={"Accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/users"


async def test_login_page_never_redirects_off_site(app, db: Database) -> None:
    user = await make_user(db, await make_tenant(db))
    async with api_client(app) as client:
        response = await client.post(
            "/login",
            data={"email": user.email, "password": PASSWORD, "next": "//evil.example.com/x"},
        )
    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_login_form_shows_an_error_on_a_wrong_password(app, db: Database) -> None:
    user = await make_user(db, await make_tenant(db))
    async with api_client(app) as client:
        response = await client.post(
            "/login", data={"email": user.email, "password": "wrong-wrong"}
        )
    assert response.status_code == 401
    assert "login-error" in response.text


async def test_a_locked_login_says_when_to_retry(app, db: Database, settings: Settings) -> None:
    user = await make_user(db, await make_tenant(db))
    async with api_client(app) as client:
        for _ in range(settings.login_max_failures):
            await client.post("/api/v1/auth/login", json={"email": user.email, "password": "x"})
        locked = await client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": "x"}
        )
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == str(settings.login_window_seconds)


async def test_an_admin_password_reset_ends_the_users_sessions(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agent = await make_user(db, tenant, Role.agent)
    admin = await make_user(db, tenant)
    async with api_client(app) as browser:
        await browser_login(browser, agent.email)
        async with db.session(Scope.tenant(tenant.id)) as session:
            await identity.set_password(
                session, identity.actor_for(admin), agent.id, "reset by the admin"
            )
        assert (await browser.get("/api/v1/auth/me")).status_code == 401
        await browser_login(browser, agent.email, "reset by the admin")
