"""Whether an HTTP Authorization header carries a cluster's token, the one rule that every
guarded endpoint of ours applies (the Map/Reduce master and nodes, Dask's dashboards):
`Bearer <token>`, or, where browsers come, HTTP Basic with any user name and the token as
password. Compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac


def carries_token(header: bytes, token: bytes, *, basic: bool) -> bool:
    kind, _space, credential = header.strip().partition(b" ")
    kind = kind.lower()
    if kind == b"bearer":
        return hmac.compare_digest(credential.strip(), token)
    if kind == b"basic" and basic:
        try:
            decoded = base64.b64decode(credential.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        _user, colon, password = decoded.partition(b":")
        return bool(colon) and hmac.compare_digest(password, token)
    return False
