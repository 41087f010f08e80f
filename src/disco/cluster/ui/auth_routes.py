"""/ui/, sign in and sign out, and the dashboard's static files."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response

from disco.cluster.api.throttle import client_address
from disco.cluster.auth import authenticate
from disco.cluster.ui import csrf, pages
from disco.cluster.ui.session import COOKIE, SIGNIN_COOKIE, clear_cookie, current, require, sessions, set_cookie
from disco.errors import DiscoError, NotFound

router = APIRouter(prefix="/ui", include_in_schema=False)
STATIC = {"disco.css": "text/css", "disco.js": "text/javascript"}


@router.get("")
@router.get("/")
def index(request: Request) -> Response:
    return pages.redirect("/ui/clusters" if current(request) else "/ui/signin")


@router.get("/signin")
def signin_form(request: Request, next: str = "") -> Response:
    if current(request):
        return pages.redirect(safe_next(next))
    return _signin_page(request, next_url=safe_next(next))


def safe_next(target: str) -> str:
    """Where to go after signing in: a dashboard page of this origin, nothing else (no open
    redirect); the cluster list otherwise."""
    if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target and \
            all(ord(c) > 32 and ord(c) != 127 for c in target):
        return target
    return "/ui/clusters"


def _signin_page(request: Request, error: str = "", status: int = 200,
                 headers: dict[str, str] | None = None, next_url: str = "/ui/clusters") -> Response:
    # A fresh double-submit value with every form shown (the token field is never filled in).
    value = secrets.token_urlsafe(32)
    response = pages.render(request, "signin.html", None, status=status, signin_csrf=value, error=error,
                            next_url=next_url)
    response.headers.update(headers or {})
    set_cookie(request, response, SIGNIN_COOKIE, value)
    return response


@router.post("/signin")
async def signin(request: Request) -> Response:
    form = await csrf.read_form(request)
    csrf.check(request.cookies.get(SIGNIN_COOKIE, ""), form)
    mgr = request.app.state.manager
    token = form.get("token").strip()
    try:
        tenant = authenticate(mgr.store, token, throttle=mgr.throttle, client=client_address(request))
    except DiscoError as exc:
        # Never the token in the answer: the message names what went wrong, not what was sent.
        message = {"missing_token": "Enter your token.", "invalid_token": "This token is not valid."}.get(
            exc.code, exc.message)
        return _signin_page(request, message, exc.status, getattr(exc, "headers", None),
                            safe_next(form.get("next")))
    identity = mgr.store.token_identity(token)
    sid = sessions(request).open(tenant, bool(identity and identity[1]), token)
    response = pages.redirect(safe_next(form.get("next")))
    set_cookie(request, response, COOKIE, sid)
    clear_cookie(request, response, SIGNIN_COOKIE)
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    session = require(request)
    csrf.check(session.csrf, await csrf.read_form(request))
    sessions(request).close(request.cookies.get(COOKIE))
    response = pages.redirect("/ui/signin")
    clear_cookie(request, response, COOKIE)
    return response


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        raise NotFound(f"no such file: {name}")
    return FileResponse(pages.HERE / "static" / name, media_type=STATIC[name],
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
