"""HTTP routes for login, logout, the current user, users and API tokens."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from atiende.core.db import Scope
from atiende.identity import service
from atiende.identity.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenOut,
    LoginRequest,
    LoginResponse,
    PasswordChange,
    PreferencesUpdate,
    UserCreate,
    UserOut,
    UserUpdate,
)
from atiende.web.deps import (
    LANG_COOKIE,
    SESSION_COOKIE,
    CurrentPrincipal,
    Principal,
    Session,
    app_state,
    optional_principal,
)

router = APIRouter(prefix="/api/v1", tags=["identity"])


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def login(request: Request, response: Response, email: str, password: str) -> LoginResponse:
    """Shared by the JSON endpoint and the login page: checks, then sets the session cookie."""
    state = app_state(request)
    async with state.db.session(Scope.system()) as session:
        outcome = await service.authenticate(
            session,
            email,
            password,
            client_ip=client_ip(request),
            max_failures=state.settings.login_max_failures,
            window_seconds=state.settings.login_window_seconds,
            licence_grace_days=state.settings.licence_grace_days,
        )
        token = web_session = None
        if outcome.user is not None:
            token, web_session = await service.start_web_session(
                session, outcome.user, days=state.settings.session_days
            )
    # Raised after the commit, so a failed attempt is counted even though the login fails.
    user = service.raise_for(outcome, window_seconds=state.settings.login_window_seconds)
    if token is None or web_session is None:
        raise RuntimeError("a successful login always starts a session")
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=state.settings.session_days * 86400,
        httponly=True,
        secure=state.settings.cookie_secure,
        samesite="lax",
        path="/",
    )
    if user.locale:
        response.set_cookie(LANG_COOKIE, user.locale, max_age=365 * 86400, samesite="lax")
    return LoginResponse(user=UserOut.model_validate(user), csrf_token=web_session.csrf_token)


@router.post("/auth/login", response_model=LoginResponse)
async def login_json(request: Request, response: Response, body: LoginRequest) -> LoginResponse:
    return await login(request, response, body.email, body.password)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    request: Request, response: Response, principal: CurrentPrincipal, session: Session
) -> None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and principal.actor.via == "session":
        await service.end_web_session(session, cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/auth/me", response_model=UserOut)
async def me(principal: CurrentPrincipal, session: Session) -> UserOut:
    return UserOut.model_validate(
        await service.get_user(session, principal.actor, principal.user_id)
    )


@router.get("/auth/csrf")
async def csrf(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> dict[str, str | None]:
    """The CSRF token browser code sends back in ``X-CSRF-Token`` on unsafe requests."""
    return {"csrf_token": principal.csrf_token if principal else None}


@router.post("/auth/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    principal: CurrentPrincipal, session: Session, body: PasswordChange
) -> None:
    await service.change_password(
        session, principal.actor, body, current_session_id=principal.web_session_id
    )


@router.put("/auth/preferences", response_model=UserOut)
async def preferences(
    principal: CurrentPrincipal, session: Session, body: PreferencesUpdate, response: Response
) -> UserOut:
    user = await service.set_locale(session, principal.actor, body.locale)
    response.set_cookie(LANG_COOKIE, body.locale, max_age=365 * 86400, samesite="lax")
    return UserOut.model_validate(user)


@router.get("/users", response_model=list[UserOut])
async def list_users(principal: CurrentPrincipal, session: Session) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in await service.list_users(session, principal.actor)]


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED)
async def create_user(principal: CurrentPrincipal, session: Session, body: UserCreate) -> UserOut:
    return UserOut.model_validate(await service.create_user(session, principal.actor, body))


@router.get("/users/{user_id}", response_model=UserOut)
async def get_user(principal: CurrentPrincipal, session: Session, user_id: uuid.UUID) -> UserOut:
    return UserOut.model_validate(await service.get_user(session, principal.actor, user_id))


@router.patch("/users/{user_id}", response_model=UserOut)
async def update_user(
    principal: CurrentPrincipal, session: Session, user_id: uuid.UUID, body: UserUpdate
) -> UserOut:
    return UserOut.model_validate(
        await service.update_user(session, principal.actor, user_id, body)
    )


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_user(principal: CurrentPrincipal, session: Session, user_id: uuid.UUID) -> None:
    await service.delete_user(session, principal.actor, user_id)


@router.get("/tokens", response_model=list[ApiTokenOut])
async def list_tokens(principal: CurrentPrincipal, session: Session) -> list[ApiTokenOut]:
    tokens = await service.list_api_tokens(session, principal.actor)
    return [ApiTokenOut.model_validate(t) for t in tokens]


@router.post("/tokens", response_model=ApiTokenCreated, status_code=status.HTTP_201_CREATED)
async def create_token(
    principal: CurrentPrincipal, session: Session, body: ApiTokenCreate
) -> ApiTokenCreated:
    token, api_token = await service.create_api_token(session, principal.actor, body.name)
    return ApiTokenCreated(**ApiTokenOut.model_validate(api_token).model_dump(), token=token)


@router.get("/tokens/{token_id}", response_model=ApiTokenOut)
async def get_token(
    principal: CurrentPrincipal, session: Session, token_id: uuid.UUID
) -> ApiTokenOut:
    return ApiTokenOut.model_validate(
        await service.get_api_token(session, principal.actor, token_id)
    )


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_token(principal: CurrentPrincipal, session: Session, token_id: uuid.UUID) -> None:
    await service.revoke_api_token(session, principal.actor, token_id)
