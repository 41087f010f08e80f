"""Token authentication: tokens are made by an admin command and stored only as hashes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from disco.cluster.store import Store
from disco.errors import Forbidden, Unauthorized

if TYPE_CHECKING:
    from disco.cluster.api.throttle import FailedAuthThrottle


def authenticate(store: Store, token: str | None, tenant_name: str | None = None, *,
                 throttle: FailedAuthThrottle | None = None, client: str = "") -> str:
    """The tenant a token belongs to; with `tenant_name` (OCCI), it must match too.

    With a `throttle`, an unknown token counts as a failure of `client`, and a client over
    the limit is refused before its token is looked at. A missing token or a tenant
    mismatch guesses no secret and is not counted.
    """
    if throttle is not None:
        throttle.check(client)
    if not token:
        raise Unauthorized("missing X-Auth-Token header", code="missing_token")
    tenant = store.tenant_for_token(token)
    if tenant is None:
        if throttle is not None:
            throttle.record_failure(client)
        raise Unauthorized("invalid token", code="invalid_token")
    if tenant_name is not None and tenant_name != tenant:
        raise Unauthorized("the token does not belong to tenant given in X-Tenant-Name",
                           code="tenant_mismatch")
    return tenant


def authenticate_admin(store: Store, token: str | None, *, throttle: FailedAuthThrottle | None = None,
                       client: str = "") -> str:
    """As `authenticate`, and the token must be an admin's (`disco token create --admin`)."""
    authenticate(store, token, throttle=throttle, client=client)
    found = store.token_identity(token or "")
    if found is None or not found[1]:
        raise Forbidden("this needs an admin token (made with `disco token create --admin`)", code="admin_only")
    return found[0]
