"""Server-rendered pages: login, and the navigation frame each role works in.

Pages read and write through the same services as the API; the browser-side script
(``static/atiende.js``) calls the JSON API with the CSRF token for anything interactive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from atiende import __version__
from atiende.billing import pricing
from atiende.core import i18n
from atiende.core.db import Scope
from atiende.core.errors import AtiendeError, NotAuthenticated
from atiende.core.security import secrets_equal
from atiende.helpdesk import service as helpdesk
from atiende.helpdesk.models import CloseReason, ExcludedCategory, ProductArea
from atiende.identity import service as identity
from atiende.identity.api import login
from atiende.identity.models import Role
from atiende.routing import service as routing_service
from atiende.tenancy.models import DeploymentMode, Tenant
from atiende.web.deps import (
    LANG_COOKIE,
    SESSION_COOKIE,
    Principal,
    app_state,
    optional_principal,
)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    extensions=["jinja2.ext.i18n"],
)
_environment.install_gettext_callables(  # type: ignore[attr-defined]
    i18n.gettext, i18n.ngettext, newstyle=True
)
templates = Jinja2Templates(env=_environment)

router = APIRouter(include_in_schema=False)
_ = i18n.gettext


SUPERVISING = frozenset({Role.supervisor, Role.admin})
# The helpdesk: the people of a customer account open cases; support staff answer them.
HELPDESK_CUSTOMERS = frozenset({Role.buyer, *helpdesk.CUSTOMER_TENANT_ROLES})


@dataclass(frozen=True, slots=True)
class NavItem:
    path: str
    label: str
    icon: str


def navigation(role: Role, *, agent_profile: bool = False) -> list[NavItem]:
    """The menu of each role; later capabilities add their pages here. Supervisors and
    admins get the agent desktop only when they also work as agents (``agent_profile``)."""
    items = [NavItem("/", _("Home"), "home")]
    if role is Role.agent or (role in SUPERVISING and agent_profile):
        items.append(NavItem("/desktop", _("Desktop"), "desktop"))
    if role in SUPERVISING:
        items.append(NavItem("/wallboard", _("Wallboard"), "wallboard"))
    if role in {Role.admin, Role.supervisor, Role.vendor_admin}:
        items.append(NavItem("/users", _("Users"), "users"))
    if role in SUPERVISING:
        # Contact-center configuration: admins write, supervisors read (admin_*.html).
        items.extend(NavItem(path, label, "audit") for path, label in _admin_pages())
    elif role is Role.agent:
        items.append(NavItem("/admin/canned-responses", _("Canned responses"), "audit"))
    if role is Role.admin:
        # Every tenant admin: the page explains that a cloud tenant needs no licence file.
        items.append(NavItem("/admin/licence", _("Licence"), "audit"))
    if role is Role.buyer:
        items.append(NavItem("/portal", _("Portal"), "tenants"))
    if role in HELPDESK_CUSTOMERS:
        items.append(NavItem("/helpdesk", _("Helpdesk"), "audit"))
    if role in helpdesk.STAFF:
        items.append(NavItem("/support", _("Support queue"), "audit"))
    if role in {Role.vendor_admin, Role.vendor_billing}:
        items.append(NavItem("/billing", _("Billing"), "audit"))
    if role in {Role.admin, Role.vendor_admin}:
        items.append(NavItem("/audit", _("Audit log"), "audit"))
    if role in {Role.vendor_admin, Role.vendor_billing, Role.vendor_support}:
        items.append(NavItem("/tenants", _("Tenants"), "tenants"))
    items.append(NavItem("/account", _("My account"), "account"))
    return items


def _admin_pages() -> list[tuple[str, str]]:
    """The configuration pages, in menu order (labels translated at call time)."""
    return [
        ("/admin/queues", _("Queues")),
        ("/admin/agents", _("Agent profiles")),
        ("/admin/skills", _("Skills")),
        ("/admin/schedules", _("Opening hours")),
        ("/admin/break-reasons", _("Break reasons")),
        ("/admin/canned-responses", _("Canned responses")),
        ("/admin/webchat", _("Web chat")),
        ("/admin/channels", _("Channels")),
        ("/admin/voice", _("Voice")),
    ]


def role_label(role: Role) -> str:
    return {
        Role.admin: _("Administrator"),
        Role.supervisor: _("Supervisor"),
        Role.agent: _("Agent"),
        Role.vendor_admin: _("Vendor administrator"),
        Role.vendor_billing: _("Vendor billing"),
        Role.vendor_support: _("Vendor support"),
        Role.buyer: _("Customer account"),
    }[role]


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/ws")) and "text/html" in request.headers.get(
        "accept", ""
    )


def redirect_to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def _safe_next(value: str | None) -> str:
    """Only same-site paths: never an open redirect."""
    if not value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return "/"
    return value


def _set_page_locale(request: Request, principal: Principal | None) -> str:
    locale = i18n.negotiate(
        user_locale=principal.locale if principal else None,
        cookie=request.cookies.get(LANG_COOKIE),
        accept_language=request.headers.get("accept-language"),
        default=app_state(request).settings.default_locale,
    )
    i18n.current_locale.set(locale)
    return locale


def render(
    request: Request,
    template: str,
    principal: Principal | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    locale = _set_page_locale(request, principal)
    return templates.TemplateResponse(
        request,
        template,
        {
            "principal": principal,
            "locale": locale,
            "locales": i18n.LOCALES,
            "nav": (
                navigation(
                    principal.role, agent_profile=getattr(request.state, "agent_profile", False)
                )
                if principal
                else []
            ),
            "role_label": role_label(principal.role) if principal else "",
            "role_labels": {role.value: role_label(role) for role in Role},
            "version": __version__,
            "current_path": request.url.path,
            **context,
        },
        status_code=status_code,
    )


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


def _signed_in(principal: Principal | None) -> Principal:
    if principal is None:
        raise NotAuthenticated()
    return principal


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, principal: OptionalPrincipal, next: str = "/") -> Response:
    if principal is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", None, next=_safe_next(next), error=None, email="")


@router.post("/login", response_class=HTMLResponse)
async def login_submit(
    request: Request,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    response = RedirectResponse(_safe_next(next), status_code=303)
    try:
        await login(request, response, email, password)
    except AtiendeError as error:
        message = (
            _("Too many failed attempts. Wait a few minutes and try again.")
            if error.status_code == 429
            else _("E-mail or password is wrong.")
        )
        return render(
            request,
            "login.html",
            None,
            status_code=error.status_code,
            next=_safe_next(next),
            error=message,
            email=email,
        )
    return response


@router.post("/language")
async def set_language(
    request: Request,
    principal: OptionalPrincipal,
    locale: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Anonymous visitors keep the choice in a cookie; signed-in users use the API, which
    also saves it on their profile (the page script does that)."""
    chosen = i18n.normalise(locale) or app_state(request).settings.default_locale
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, samesite="lax")
    return response


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, principal: OptionalPrincipal) -> Response:
    signed_in = _signed_in(principal)
    await _note_agent_profile(request, signed_in)
    return render(request, "home.html", signed_in)


def _page(template: str, *roles: Role) -> Any:
    async def page(request: Request, principal: OptionalPrincipal) -> Response:
        signed_in = _signed_in(principal)
        await _note_agent_profile(request, signed_in)
        if roles and signed_in.role not in roles:
            # A page, not the API's JSON: say so in the frame, with the menu to go elsewhere.
            return render(request, "forbidden.html", signed_in, status_code=403)
        return render(request, template, signed_in)

    return page


router.add_api_route(
    "/users",
    _page("users.html", Role.admin, Role.supervisor, Role.vendor_admin),
    response_class=HTMLResponse,
)
router.add_api_route(
    "/audit", _page("audit.html", Role.admin, Role.vendor_admin), response_class=HTMLResponse
)
router.add_api_route(
    "/tenants",
    _page("tenants.html", Role.vendor_admin, Role.vendor_billing, Role.vendor_support),
    response_class=HTMLResponse,
)
router.add_api_route("/account", _page("account.html"), response_class=HTMLResponse)
# Configuration pages: the API decides what each role may change; supervisors read.
for _path, _template in (
    ("/admin/queues", "admin_queues.html"),
    ("/admin/agents", "admin_agents.html"),
    ("/admin/skills", "admin_skills.html"),
    ("/admin/schedules", "admin_schedules.html"),
    ("/admin/holidays", "admin_schedules.html"),
    ("/admin/break-reasons", "admin_break_reasons.html"),
    ("/admin/webchat", "admin_webchat.html"),
    ("/admin/channels", "admin_channels.html"),
    ("/admin/voice", "admin_voice.html"),
):
    router.add_api_route(
        _path, _page(_template, Role.admin, Role.supervisor), response_class=HTMLResponse
    )
# Agents keep their own canned responses here too (and see, not change, the tenant's).
router.add_api_route(
    "/admin/canned-responses",
    _page("admin_canned.html", Role.admin, Role.supervisor, Role.agent),
    response_class=HTMLResponse,
)


# --- sales, the customer portal, the billing back office and the licence --------------------


def _price_list(request: Request) -> pricing.PriceList:
    """The price list in force today (UTC): the calculators show its items and rules."""
    return pricing.price_list_at(app_state(request).clock.now().date())


@router.get("/pricing", response_class=HTMLResponse)
async def pricing_page(request: Request, principal: OptionalPrincipal) -> Response:
    """Public: the quote calculator and the demo / pre-sale request."""
    return render(request, "pricing.html", principal, price_list=_price_list(request))


@router.get("/portal/signup", response_class=HTMLResponse)
async def portal_signup_page(request: Request, principal: OptionalPrincipal) -> Response:
    return render(request, "portal_signup.html", principal)


@router.get("/portal/verify", response_class=HTMLResponse)
async def portal_verify_page(request: Request, principal: OptionalPrincipal) -> Response:
    """The e-mailed link lands here; the page script confirms the token (a POST), so a
    mail scanner that only fetches the link confirms nothing."""
    return render(request, "portal_verify.html", principal)


@router.get("/portal", response_class=HTMLResponse)
async def portal_page(request: Request, principal: OptionalPrincipal) -> Response:
    signed_in = _signed_in(principal)
    if signed_in.role is not Role.buyer:
        return render(request, "forbidden.html", signed_in, status_code=403)
    return render(
        request,
        "portal.html",
        signed_in,
        price_list=_price_list(request),
        grace_days=app_state(request).settings.billing_grace_days,
    )


@router.get("/billing", response_class=HTMLResponse)
async def billing_page(request: Request, principal: OptionalPrincipal) -> Response:
    """The vendor's back office: payments received, subscriptions, accounts, leads."""
    signed_in = _signed_in(principal)
    if signed_in.role not in {Role.vendor_billing, Role.vendor_admin}:
        return render(request, "forbidden.html", signed_in, status_code=403)
    return render(request, "billing_backoffice.html", signed_in, price_list=_price_list(request))


@router.get("/admin/licence", response_class=HTMLResponse)
async def licence_page(request: Request, principal: OptionalPrincipal) -> Response:
    """The installation's licence: tenant admins install it on premise; a cloud tenant is
    told it needs none. Vendor administrators see the installation's state."""
    signed_in = _signed_in(principal)
    await _note_agent_profile(request, signed_in)
    if signed_in.role not in {Role.admin, Role.vendor_admin}:
        return render(request, "forbidden.html", signed_in, status_code=403)
    on_premise = True
    if signed_in.tenant_id is not None:
        async with app_state(request).db.session(signed_in.scope, read_only=True) as session:
            tenant = await session.get(Tenant, signed_in.tenant_id)
        on_premise = tenant is not None and tenant.deployment_mode is DeploymentMode.on_premise
    return render(
        request,
        "admin_licence.html",
        signed_in,
        on_premise=on_premise,
        price_list=_price_list(request),
    )


# --- the helpdesk --------------------------------------------------------------------------


def _helpdesk(
    request: Request, signed_in: Principal, template: str, **context: Any
) -> HTMLResponse:
    """A helpdesk page with the API's choices (so the forms offer exactly what it takes)."""
    return render(
        request,
        template,
        signed_in,
        staff=signed_in.role in helpdesk.STAFF,
        product_areas=[area.value for area in ProductArea],
        close_reasons=[reason.value for reason in CloseReason],
        excluded_categories=[category.value for category in ExcludedCategory],
        reopen_days=app_state(request).settings.support_reopen_days,
        **context,
    )


@router.get("/helpdesk", response_class=HTMLResponse)
async def helpdesk_page(request: Request, principal: OptionalPrincipal) -> Response:
    """Customers: their account's cases, and the form to open one."""
    signed_in = _signed_in(principal)
    await _note_agent_profile(request, signed_in)
    if signed_in.role not in HELPDESK_CUSTOMERS:
        return render(request, "forbidden.html", signed_in, status_code=403)
    return _helpdesk(request, signed_in, "helpdesk.html")


@router.get("/helpdesk/cases/{case_id}", response_class=HTMLResponse)
async def helpdesk_case_page(
    request: Request, principal: OptionalPrincipal, case_id: str
) -> Response:
    """One case, for its customer and for support staff; the API decides who may see it."""
    signed_in = _signed_in(principal)
    await _note_agent_profile(request, signed_in)
    if signed_in.role not in HELPDESK_CUSTOMERS | helpdesk.STAFF:
        return render(request, "forbidden.html", signed_in, status_code=403)
    return _helpdesk(request, signed_in, "helpdesk_case.html", case_id=case_id)


@router.get("/support", response_class=HTMLResponse)
async def support_page(request: Request, principal: OptionalPrincipal) -> Response:
    """Support staff: the open cases by SLA, and the monthly compliance."""
    signed_in = _signed_in(principal)
    if signed_in.role not in helpdesk.STAFF:
        return render(request, "forbidden.html", signed_in, status_code=403)
    return _helpdesk(request, signed_in, "support_queue.html")


# --- the agent desktop and the supervisor wallboard ----------------------------------------


async def _note_agent_profile(request: Request, principal: Principal) -> None:
    """Supervisors and admins who also take conversations see the desktop in the menu."""
    if principal.role not in SUPERVISING or principal.tenant_id is None:
        return
    async with app_state(request).db.session(principal.scope, read_only=True) as session:
        request.state.agent_profile = await routing_service.has_agent_profile(
            session, principal.user_id
        )


@router.get("/desktop", response_class=HTMLResponse)
async def desktop(request: Request, principal: OptionalPrincipal) -> Response:
    """Agents, and supervisors or admins with an agent profile, take conversations here."""
    signed_in = _signed_in(principal)
    allowed = signed_in.role is Role.agent or signed_in.role in SUPERVISING
    if not allowed or signed_in.tenant_id is None:
        return render(request, "forbidden.html", signed_in, status_code=403)
    async with app_state(request).db.session(signed_in.scope, read_only=True) as session:
        profile = await routing_service.has_agent_profile(session, signed_in.user_id)
        directory = await routing_service.directory(session) if profile else {}
    request.state.agent_profile = profile
    if not profile and signed_in.role is not Role.agent:
        return render(request, "forbidden.html", signed_in, status_code=403)
    return render(request, "desktop.html", signed_in, agent_profile=profile, directory=directory)


@router.get("/wallboard", response_class=HTMLResponse)
async def wallboard(request: Request, principal: OptionalPrincipal) -> Response:
    """Supervisors and admins watch queues and agents live, and step in."""
    signed_in = _signed_in(principal)
    if signed_in.role not in SUPERVISING or signed_in.tenant_id is None:
        return render(request, "forbidden.html", signed_in, status_code=403)
    async with app_state(request).db.session(signed_in.scope, read_only=True) as session:
        request.state.agent_profile = await routing_service.has_agent_profile(
            session, signed_in.user_id
        )
        directory = await routing_service.directory(session)
    return render(request, "wallboard.html", signed_in, directory=directory)


@router.post("/logout")
async def logout_page(request: Request, principal: OptionalPrincipal) -> Response:
    response = RedirectResponse("/login", status_code=303)
    cookie = request.cookies.get(SESSION_COOKIE)
    if principal is not None and cookie:
        form = await request.form()
        token = form.get("csrf_token")
        if (
            isinstance(token, str)
            and principal.csrf_token
            and secrets_equal(principal.csrf_token, token)
        ):
            async with app_state(request).db.session(Scope.system()) as session:
                await identity.end_web_session(session, cookie)
            response.delete_cookie(SESSION_COOKIE, path="/")
    return response
