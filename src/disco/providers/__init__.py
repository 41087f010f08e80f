"""Infrastructure providers: where a cluster's nodes live and how processes run on them.

Each provider module stands alone; the registry maps a name to a lazy import so that a
provider's dependencies (asyncssh, openstacksdk) load only when it is used.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from disco.providers.base import Provider

_REGISTRY = {
    "local": "disco.providers.local:LocalProvider",
}


def available() -> list[str]:
    return sorted(_REGISTRY)


def load_provider(name: str, data_dir: Path) -> Provider:
    module_name, _, class_name = _REGISTRY[name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(data_dir)
