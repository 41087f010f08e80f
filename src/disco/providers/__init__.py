"""Infrastructure providers: where a cluster's nodes live and how processes run on them.

Each provider module stands alone; the registry maps a name to a lazy import so that a
provider's dependencies (asyncssh, openstacksdk) load only when it is used.
"""

from __future__ import annotations

import copy
import importlib
from typing import Any

from disco.providers.base import Provider, ProviderResources

_REGISTRY = {
    "local": "disco.providers.local:LocalProvider",
    "ssh": "disco.providers.ssh:SSHProvider",
    "openstack": "disco.providers.openstack.provider:OpenStackProvider",
}


def available() -> list[str]:
    return sorted(_REGISTRY)


def provider_class(name: str) -> type[Provider]:
    module_name, _, class_name = _REGISTRY[name].partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return cls


def load_provider(name: str, resources: ProviderResources) -> Provider:
    return provider_class(name).from_resources(resources)


def options_schema(name: str) -> dict[str, Any]:
    """The JSON schema of the provider_options this provider takes (its check_options), read
    from its class: no provider is made, nothing it needs is lent."""
    return copy.deepcopy(provider_class(name).options_schema)
