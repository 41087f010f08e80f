"""Rendering: the Jinja2 environment (autoescape on), the headers every page carries, and the
HTML error page that /ui/ answers with instead of the API's JSON envelope."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from disco.cluster.ui import csrf
from disco.cluster.ui.session import Session

HERE = Path(__file__).parent
ENV = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                  trim_blocks=True, lstrip_blocks=True)
ENV.filters["when"] = lambda iso: (iso or "")[:19].replace("T", " ") + (" UTC" if iso else "")
# Epoch seconds (the task farm's times) as the same UTC text.
ENV.filters["epoch"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) if t else ""
# Scripts, styles and connections from this origin only (the JS and CSS are vendored files);
# no inline script, no framing, forms post here only.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors' older spelling
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def render(request: Request, template: str, session: Session | None, *, status: int = 200,
           **context: Any) -> HTMLResponse:
    html = ENV.get_template(template).render(
        session=session, csrf_field=csrf.FIELD, csrf_token=session.csrf if session else "",
        path=request.url.path, **context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def redirect(url: str) -> RedirectResponse:
    """After a POST: see the result with a GET (303), so a reload posts nothing again."""
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def is_ui(request: Request) -> bool:
    path = request.url.path
    return path == "/ui" or path.startswith("/ui/")


def error_page(request: Request, status: int, message: str, code: str = "",
               headers: dict[str, str] | None = None) -> Response:
    from disco.cluster.ui.session import current  # the session, if any, for the header's links
    try:
        session = current(request)
    except Exception:  # noqa: BLE001 - an error page must render even if the store does not answer
        session = None
    response = render(request, "error.html", session, status=status, status_code=status,
                      message=message, code=code)
    response.headers.update(headers or {})
    return response
