"""What every console page shares: the sub-application, sign-in checks, CSRF, rendering and
the security headers. Pages live one module each in `bastion.console.pages`."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.exceptions import HTTPException as StarletteHTTPException

from bastion.console.sessions import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    ConsoleSessions,
    Viewer,
    csrf_matches,
)
from bastion.errors import AuthenticationFailed, BadRequest, BastionError, PermissionDenied

log = logging.getLogger("bastion.console")
T = TypeVar("T")
PREFIX = "/console"

# No inline script or style anywhere: scripts and styles come from /console/static only;
# plots are PNG data URIs.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str
    admin_only: bool = True


# The pages in the order the navigation lists them.
NAVIGATION = (
    NavItem("/", "Overview"),
    NavItem("/models", "Models and apps"),
    NavItem("/audit", "Audit trail"),
    NavItem("/trust", "Trust events"),
    NavItem("/experiments", "Experiments"),
    NavItem("/review", "Review queue", admin_only=False),
    NavItem("/tuning", "Tuning"),
    NavItem("/sources", "Data sources"),
    NavItem("/cost", "Cost and sizing"),
    NavItem("/keys", "API keys"),
)


@dataclass(frozen=True)
class Numbered:
    """Where a table paged by number (`?page=`) stands."""

    page: int
    total: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    @property
    def has_next(self) -> bool:
        return self.page * self.size < self.total


def numbered(items: list[T], page: int, size: int) -> tuple[list[T], Numbered]:
    """One page of a list held in memory; a page past the end is refused."""
    at = Numbered(page, len(items), size)
    if page > at.pages:
        raise BadRequest(f"page {page} does not exist; there are {at.pages}")
    return items[at.offset : at.offset + size], at


def parse_moment(value: str, name: str) -> datetime | None:
    """A typed ISO date or date-time (no zone: UTC) in UTC; empty: None; bad: a 400 BadRequest."""
    if not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
        return moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved across zones
        raise BadRequest(
            f"{name} '{value}' is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None


class SignInNeeded(Exception):
    """No live session: the viewer is sent to the sign-in page."""


def _local_time(value: datetime | str | None) -> Markup:
    """A <time> the viewer's browser shows in its own zone (console.js); UTC without it."""
    if not value:  # None, empty, or a field the record does not have (Undefined)
        return Markup("")
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    iso = moment.astimezone(UTC).isoformat(timespec="seconds")
    shown = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}">{}</time>').format(iso, shown)


class Console:
    """The console's shared state: the platform, sessions and templates."""

    def __init__(self, platform: Any) -> None:
        self.platform = platform
        self.sessions = ConsoleSessions(
            platform.db,
            platform.access,
            timedelta(hours=platform.config.console.session_hours),
        )
        self.templates = Environment(
            loader=PackageLoader("bastion.console"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["localtime"] = _local_time
        self.templates.globals["url"] = url

    # -- who is asking ---------------------------------------------------------------

    def viewer(self, request: Request) -> Viewer:
        try:
            return self.sessions.viewer(request.cookies.get(SESSION_COOKIE))
        except AuthenticationFailed as exc:
            raise SignInNeeded(exc.message) from None

    def admin(self, request: Request) -> Viewer:
        """The viewer, when an admin; the page is refused to everyone else."""
        viewer = self.viewer(request)
        if not viewer.principal.is_admin:
            raise PermissionDenied(
                f"this page is for admins; your role is '{viewer.principal.role}'"
            )
        return viewer

    def reviewer(self, request: Request) -> Viewer:
        viewer = self.viewer(request)
        if not viewer.principal.may_review:
            raise PermissionDenied(
                f"the review queue is for reviewers and admins; your role is "
                f"'{viewer.principal.role}'"
            )
        return viewer

    async def form(self, request: Request, viewer: Viewer) -> dict[str, str]:
        """The posted form's fields, once its CSRF token checks out."""
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not csrf_matches(viewer.csrf, fields.pop("csrf", None)):
            raise PermissionDenied(
                "the form's security token is missing or stale; reload the page and try again"
            )
        return fields

    # -- answers ---------------------------------------------------------------------

    def page(
        self, request: Request, viewer: Viewer | None, template: str, status: int = 200, **data: Any
    ) -> HTMLResponse:
        principal = viewer.principal if viewer else None
        navigation = [
            item
            for item in NAVIGATION
            if principal and (principal.is_admin or (not item.admin_only and principal.may_review))
        ]
        html = self.templates.get_template(template).render(
            viewer=viewer,
            principal=principal,
            navigation=navigation,
            current=request.url.path.removeprefix(PREFIX) or "/",
            request=request,
            **data,
        )
        return HTMLResponse(html, status_code=status)

    def error(self, request: Request, status: int, message: str) -> HTMLResponse:
        try:
            viewer: Viewer | None = self.viewer(request)
        except (SignInNeeded, BastionError):
            viewer = None
        titles = {400: "Bad request", 401: "Sign-in needed", 403: "Refused", 404: "Not found"}
        title = titles.get(status, "Something went wrong" if status >= 500 else "Not possible")
        return self.page(request, viewer, "error.html", status=status, message=message, title=title)


def _admin(request: Request) -> Viewer:
    console: Console = request.app.state.console
    return console.admin(request)


def _reviewer(request: Request) -> Viewer:
    console: Console = request.app.state.console
    return console.reviewer(request)


# What a page handler asks for: the viewer, once their role may see the page.
AdminViewer = Annotated[Viewer, Depends(_admin)]
ReviewerViewer = Annotated[Viewer, Depends(_reviewer)]


def url(path: str, **query: Any) -> str:
    """A console address; empty query values are left out."""
    kept = {k: v for k, v in query.items() if v not in (None, "")}
    return PREFIX + path + (("?" + urlencode(kept)) if kept else "")


def redirect(path: str, **query: Any) -> RedirectResponse:
    return RedirectResponse(url(path, **query), status_code=303)


def create_console(platform: Any) -> FastAPI:
    """The console as an application of its own, mounted by the server at /console."""
    from bastion.console.pages import PAGES

    console = Console(platform)
    web = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    web.state.console = console
    web.mount(
        "/static",
        StaticFiles(directory=Path(__file__).parent / "static"),
        name="static",
    )

    @web.middleware("http")
    async def _headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @web.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, exc: SignInNeeded) -> Response:
        where = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(url("/login", next=where, why=str(exc)), status_code=303)

    @web.exception_handler(BastionError)
    async def _refused(request: Request, exc: BastionError) -> Response:
        return console.error(request, exc.status_code, exc.message)

    @web.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()
        )
        return console.error(request, 400, f"this address has a bad value ({problems})")

    @web.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = "no such console page" if exc.status_code == 404 else str(exc.detail)
        return console.error(request, exc.status_code, message)

    @web.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("console error on %s", request.url.path)
        return console.error(request, 500, "internal error; the server log has the details")

    _sign_in_routes(web, console)
    for register in PAGES:
        register(web, console)
    return web


def _sign_in_routes(web: FastAPI, console: Console) -> None:
    def secure(request: Request) -> bool:
        return request.url.scheme == "https"

    @web.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "", why: str = "") -> Response:
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
        response = console.page(
            request, None, "login.html", csrf=token, next=_safe_next(next), why=why
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure(request),
            path=PREFIX,
        )  # fmt: skip
        return response

    @web.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        expected = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
        if not expected or not csrf_matches(expected, fields.get("csrf")):
            raise PermissionDenied(
                "the sign-in form's security token is missing or stale; reload the page"
            )
        next_page = _safe_next(fields.get("next", ""))
        try:
            principal = console.platform.access.resolve(fields.get("api_key", "").strip())
        except AuthenticationFailed as exc:
            return console.page(
                request, None, "login.html", status=401, csrf=expected, next=next_page,
                why=exc.message,
            )  # fmt: skip
        if not principal.may_review:
            raise PermissionDenied(
                f"the console is for admins and reviewers; this key's role is '{principal.role}'"
            )
        token = console.sessions.start(principal)
        landing = next_page or url("/" if principal.is_admin else "/review")
        response = RedirectResponse(landing, status_code=303)
        response.set_cookie(
            SESSION_COOKIE, token, httponly=True, samesite="strict", secure=secure(request),
            path=PREFIX, max_age=int(console.sessions.lifetime.total_seconds()),
        )  # fmt: skip
        response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
        return response

    @web.post("/logout")
    async def logout(request: Request) -> Response:
        viewer = console.viewer(request)
        await console.form(request, viewer)
        console.sessions.end(request.cookies.get(SESSION_COOKIE))
        response = redirect("/login", why="signed out")
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response


def _safe_next(target: str) -> str:
    """Only a console address: a sign-in link must not send anyone off-site."""
    if target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return quote(target, safe="/?=&%-_.~")
    return ""
