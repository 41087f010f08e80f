"""Whether an HTTP Authorization header carries a cluster's token, the one rule that every
guarded endpoint of ours applies (the Map/Reduce master and nodes, Dask's dashboards, a
node's log server): `Bearer <token>`, or, where browsers come, HTTP Basic with any user name
and the token as password. Compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac


def presented_token(header: bytes, *, basic: bool) -> bytes | None:
    """The token an Authorization header presents, if it has the form of one."""
    kind, _space, credential = header.strip().partition(b" ")
    kind = kind.lower()
    if kind == b"bearer":
        return credential.strip()
    if kind == b"basic" and basic:
        try:
            decoded = base64.b64decode(credential.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        _user, colon, password = decoded.partition(b":")
        return password if colon else None
    return None


def carries_token(header: bytes, token: bytes, *, basic: bool) -> bool:
    presented = presented_token(header, basic=basic)
    return presented is not None and hmac.compare_digest(presented, token)


def carries_token_hash(header: bytes, token_sha256: str, *, basic: bool) -> bool:
    """Like carries_token, for a server that keeps only the token's SHA-256 (hex)."""
    presented = presented_token(header, basic=basic)
    if presented is None:
        return False
    return hmac.compare_digest(hashlib.sha256(presented).hexdigest(), token_sha256.lower())
