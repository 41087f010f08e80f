"""A Jupyter identity provider that takes the cluster's Jupyter password as a token too, while
knowing only its hash: the server's configuration holds jupyter_server's argon2 hash, never
the clear secret, and programs may still send `Authorization: token <password>` (the REST
API, kernel websockets, DISCO's readiness check) besides the browser's login form.

Set with `IdentityProvider.token = ""` and
`ServerApp.identity_provider_class = "disco.framework_support.jupyter_auth.HashedTokenIdentityProvider"`.
"""

from __future__ import annotations

import hashlib
import hmac
import typing as t

from jupyter_server.auth.identity import PasswordIdentityProvider, User
from jupyter_server.auth.security import passwd_check


class HashedTokenIdentityProvider(PasswordIdentityProvider):
    # Digests of secrets already checked: argon2 is slow on purpose, requests come often.
    _accepted: set[bytes] = set()

    def _matches(self, secret: str) -> bool:
        digest = hashlib.sha256(secret.encode()).digest()
        if any(hmac.compare_digest(digest, known) for known in self._accepted):
            return True
        if self.hashed_password and passwd_check(self.hashed_password, secret):
            self._accepted.add(digest)
            return True
        return False

    async def get_user_token(self, handler: t.Any) -> User | None:
        secret = self.get_token(handler)
        if not secret or not self._matches(secret):
            return None
        user = self.get_user_cookie(handler)
        if isinstance(user, t.Awaitable):
            user = await user
        return user or self.generate_anonymous_user(handler)
