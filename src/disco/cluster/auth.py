"""Token authentication: tokens are made by an admin command and stored only as hashes."""

from __future__ import annotations

from disco.cluster.store import Store
from disco.errors import Unauthorized


def authenticate(store: Store, token: str | None, tenant_name: str | None = None) -> str:
    """The tenant a token belongs to; with `tenant_name` (OCCI), it must match too."""
    if not token:
        raise Unauthorized("missing X-Auth-Token header", code="missing_token")
    tenant = store.tenant_for_token(token)
    if tenant is None:
        raise Unauthorized("invalid token", code="invalid_token")
    if tenant_name is not None and tenant_name != tenant:
        raise Unauthorized("the token does not belong to tenant given in X-Tenant-Name",
                           code="tenant_mismatch")
    return tenant
