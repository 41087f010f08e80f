"""The cluster token: every HTTP request to a master or a node carries it.

A master and its nodes share one secret, read from `--token-file PATH` (so it never shows on a
command line) or else from the environment variable DISCO_CLUSTER_TOKEN. Requests prove it
with `Authorization: Bearer <token>`; the master's web page (`/`, `/ui/...`) also takes HTTP
Basic authentication with any user name and the token as password, which is what browsers
can send. Without a token the runtime is open, as Disco always was, and says so at start.

`TokenGuard` is plain ASGI rather than Starlette middleware: the check is one header lookup
and one constant-time comparison per request, with no per-record cost, and node polls and
task reports go through it as cheaply as anything else.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from disco.token_check import carries_token

TOKEN_ENV = "DISCO_CLUSTER_TOKEN"
REALM = "disco"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)


class TokenError(ValueError):
    """The configured token cannot be used (unreadable file, empty, not a header value)."""


def load_token(token_file: Path | None, environ: MutableMapping[str, str] = os.environ) -> str | None:
    """The token from `token_file`, else from DISCO_CLUSTER_TOKEN, else None (open)."""
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenError(f"cannot read the token file {token_file}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
        return _checked(text.strip(), f"the token file {token_file}")
    value = environ.get(TOKEN_ENV)
    if value is None or not value.strip():
        return None
    return _checked(value.strip(), TOKEN_ENV)


def _checked(token: str, source: str) -> str:
    if not token:
        raise TokenError(f"{source} is empty")
    # It travels in an HTTP header: visible ASCII only (no spaces, no control characters).
    if not all("!" <= ch <= "~" for ch in token):
        raise TokenError(f"{source} must hold printable ASCII without spaces")
    return token


def warn_if_open(token: str | None, what: str) -> None:
    if token is None:
        log.warning("no cluster token (--token-file or %s): this %s takes requests from "
                    "anyone who can reach it", TOKEN_ENV, what)


def bearer_headers(token: str | None) -> dict[str, str]:
    """Headers that prove the token to a master or a node (none when the cluster is open)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def _is_web_page(path: str) -> bool:
    return path == "/" or path.startswith("/ui/")


class TokenGuard:
    """ASGI wrapper: requests without the token get 401 and never reach `app`."""

    def __init__(self, app: ASGIApp, token: str, web_page: Callable[[str], bool] | None = None) -> None:
        self.app = app
        self._expected = token.encode("ascii")
        self._web_page = web_page or (lambda _path: False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        await self._refuse(scope, send)

    def _allowed(self, scope: Scope) -> bool:
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        return carries_token(header, self._expected, basic=self._web_page(scope["path"]))

    async def _refuse(self, scope: Scope, send: Send) -> None:
        if self._web_page(scope["path"]):
            challenge = f'Basic realm="{REALM}"'
            message = ("This Disco master needs the cluster token: log in with any user name "
                       "and the token as password.")
        else:
            challenge = f'Bearer realm="{REALM}"'
            message = (f"This Disco cluster needs its token: send 'Authorization: Bearer "
                       f"<token>' (Disco's clients send {TOKEN_ENV}).")
        body = json.dumps({"error": {"code": "unauthorized", "message": message,
                                     "details": {}}}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", challenge.encode()),
        ]})
        await send({"type": "http.response.body", "body": body})


def guarded(app: ASGIApp, token: str | None, web_page: bool = False) -> ASGIApp:
    """`app` behind the token (the master's web page paths also take Basic), or `app` itself
    when the cluster is open."""
    if token is None:
        return app
    return TokenGuard(app, token, _is_web_page if web_page else None)
