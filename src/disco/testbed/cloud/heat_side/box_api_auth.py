"""The gate in front of Heat's API. Heat runs with the noauth paste flavor (there is no
Keystone): every request it sees is an admin of project `admin`. So before Heat sees it, a
request must carry `X-Auth-Token`: the cloud's admin token (compared by hash), or a signal
token (box_keystone) on a POST to a resource's `…/signal` URL and nothing else. Version
discovery (`GET /`) is open, as on any OpenStack endpoint.
With a Keystone (`keystone_app`, Heat's auth_token pipeline), every other request goes there:
Keystone decides whether its token is good, and Heat sees the token's own user and project."""

from __future__ import annotations

import hashlib
import hmac
import json
import re

from box_config import secret_file
from box_keystone import is_signal_token

_SIGNAL_PATH = re.compile(r"^/v1/[^/]+/stacks/[^/]+/[^/]+/resources/[^/]+/signal/?$")


class TokenGate:
    def __init__(self, app, keystone_app=None):
        self.app = app
        self.keystone_app = keystone_app
        self.admin_sha256 = secret_file("api-token.sha256").decode()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        token = environ.get("HTTP_X_AUTH_TOKEN", "")
        if path in ("", "/") and environ.get("REQUEST_METHOD") == "GET":
            return self.app(environ, start_response)
        presented = hashlib.sha256(token.encode()).hexdigest()
        if token and hmac.compare_digest(presented, self.admin_sha256):
            return self.app(environ, start_response)
        if (token and environ.get("REQUEST_METHOD") == "POST" and _SIGNAL_PATH.match(path)
                and is_signal_token(token)):
            return self.app(environ, start_response)
        if self.keystone_app is not None:
            return self.keystone_app(environ, start_response)
        body = json.dumps({"error": {"code": 401, "title": "Unauthorized",
                                     "message": "X-Auth-Token missing or not valid here"}}).encode()
        start_response("401 Unauthorized", [("Content-Type", "application/json"),
                                            ("Content-Length", str(len(body)))])
        return [body]
