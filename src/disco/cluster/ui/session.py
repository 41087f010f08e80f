"""Dashboard sessions: a token is posted once (sign in), checked as the API checks it, and the
browser gets a random session id in a cookie.

Why a server-side session and not the token sealed into the cookie: the cookie then holds
nothing that is, or decrypts to, the long-lived API token (a stolen cookie is worth one
session, which sign-out and expiry really end, server-side); the token itself is never kept,
only its hash, so that a token removed from the store ends its sessions at the next request.
The price: sessions live in this process's memory, so a restart signs everyone out (the
service manager is one process; signing in again is one form).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from disco.cluster.store import Store, hash_token

COOKIE = "disco_session"
# The sign-in form's own CSRF value (double submit: cookie and hidden field must agree), so
# that another site cannot sign a browser in with the other site's token (login CSRF).
SIGNIN_COOKIE = "disco_signin"
COOKIE_PATH = "/ui"
IDLE_S = 2 * 3600  # a session unused this long ends
MAX_AGE_S = 12 * 3600  # and none lasts longer than this, used or not
MAX_SESSIONS = 10_000  # the oldest are dropped first: memory stays bounded


class SignInNeeded(Exception):
    """No valid session: a page answers with the sign-in form instead."""


@dataclass
class Session:
    tenant: str
    admin: bool
    token_hash: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.monotonic)
    used: float = field(default_factory=time.monotonic)


class SessionStore:
    """Sessions by the SHA-256 of their id (the id itself is only in the browser's cookie)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_sessions: int = MAX_SESSIONS) -> None:
        self._clock = clock
        self._max = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()  # sync routes run in a thread pool

    def open(self, tenant: str, admin: bool, token: str) -> str:
        """A new session for a token already authenticated; its id (for the cookie)."""
        sid = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._sessions[_key(sid)] = Session(tenant, admin, hash_token(token), created=now, used=now)
            while len(self._sessions) > self._max:
                self._sessions.popitem(last=False)
        return sid

    def get(self, sid: str | None, store: Store) -> Session | None:
        if not sid:
            return None
        key = _key(sid)
        now = self._clock()
        with self._lock:
            found = self._sessions.get(key)
            if found is None:
                return None
            if now - found.used > IDLE_S or now - found.created > MAX_AGE_S:
                del self._sessions[key]
                return None
            found.used = now
        # The token may have been removed since: then the session ends with it.
        if store.identity_for_hash(found.token_hash) != (found.tenant, found.admin):
            self.close(sid)
            return None
        return found

    def close(self, sid: str | None) -> None:
        if sid:
            with self._lock:
                self._sessions.pop(_key(sid), None)


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def sessions(request: Request) -> SessionStore:
    return request.app.state.ui_sessions


def current(request: Request) -> Session | None:
    return sessions(request).get(request.cookies.get(COOKIE), request.app.state.manager.store)


def require(request: Request) -> Session:
    """The request's session, or SignInNeeded (answered with the sign-in page)."""
    found = current(request)
    if found is None:
        raise SignInNeeded()
    return found


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    # HttpOnly: no script reads it; SameSite=Strict: no other site's page sends it; Path=/ui:
    # the API never sees it (the API takes tokens only). No Max-Age: gone with the browser.
    response.set_cookie(name, value, httponly=True, samesite="strict", path=COOKIE_PATH, secure=_https(request))


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="strict", secure=_https(request))


def _https(request: Request) -> bool:
    """Secure cookies when the browser speaks HTTPS: to us, or to a proxy at the public URL."""
    public = request.app.state.manager.settings.public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")
