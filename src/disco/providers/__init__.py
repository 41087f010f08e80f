"""Infrastructure providers: where a cluster's nodes live and how processes run on them.

Each provider module stands alone; the registry maps a name to a lazy import so that a
provider's dependencies (asyncssh, openstacksdk) load only when it is used.
"""

from __future__ import annotations

import importlib
from disco.providers.base import Provider, ProviderResources

_REGISTRY = {
    "local": "disco.providers.local:LocalProvider",
    "ssh": "disco.providers.ssh:SSHProvider",
    "openstack": "disco.providers.openstack.provider:OpenStackProvider",
}


def available() -> list[str]:
    return sorted(_REGISTRY)


def load_provider(name: str, resources: ProviderResources) -> Provider:
    module_name, _, class_name = _REGISTRY[name].partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return cls.from_resources(resources)
