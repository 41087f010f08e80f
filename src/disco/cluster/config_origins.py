"""Where each value of a rendered configuration file comes from, lowest precedence first:
`default` (the framework's literal, a property's default), `derived` (computed from the node's
size or the cluster's shape), `user` (a property the user set), `override` (a raw override).

A value's template is rendered with its inputs watched: if it read a property the user set,
the user's property decided it; else if it read a derived value or the node's size, the node
decided it; else the framework did. Overrides are merged last and win over all (plan.py)."""

from __future__ import annotations

from typing import Any

from disco.cluster import plan
from disco.cluster.models import Cluster, Node
from disco.frameworks.model import FrameworkDef
from disco.frameworks.render import render

_SIZE_KEYS = {"memory_mb", "cpus"}


class _Watched(dict):  # type: ignore[type-arg]
    """A mapping that notes which of its keys a template read."""

    def __init__(self, data: dict[str, Any], label: str, seen: set[tuple[str, str]]) -> None:
        super().__init__(data)
        self._label, self._seen = label, seen

    def __getitem__(self, key: str) -> Any:
        self._seen.add((self._label, key))
        return super().__getitem__(key)


def file_origins(cluster: Cluster, fw: FrameworkDef, node: Node, ctx: dict[str, Any],
                 user_set: set[tuple[str, str]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per configuration file of `fw` on `node` (by path): key -> {"value", "origin"}, the keys
    as the merged file holds them (YAML: dotted paths to the leaves)."""
    if fw.roles.get(node.role) is None:  # type: ignore[call-overload]
        return {}
    seen: set[tuple[str, str]] = set()
    watched = {**ctx,
               "props": _Watched(ctx["props"], f"props:{fw.name}", seen),
               "frameworks": {name: {**entry, "props": _Watched(entry["props"], f"props:{name}", seen)}
                              for name, entry in ctx["frameworks"].items()},
               "derived": _Watched(ctx["derived"], "derived", seen),
               "node": _Watched(ctx["node"], "node", seen)}
    overrides = plan.framework_overrides(cluster, fw.name)
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for name, config in fw.config_files.items():
        if node.role not in config.roles:
            continue
        nested = config.format == "yaml"
        keys: dict[str, dict[str, Any]] = {}
        for key, template in _leaves(config.values, nested):
            seen.clear()
            value = render(template, watched)
            if not nested:
                value = plan._flat_text(value)
                if value == "":
                    continue  # an empty value leaves the key out of the file
            keys[key] = {"value": value, "origin": _origin(seen, user_set)}
        for key, value in _leaves(overrides.get(name, {}), nested):
            keys[key] = {"value": value, "origin": "override"}
        result[config.path] = keys
    return result


def _origin(seen: set[tuple[str, str]], user_set: set[tuple[str, str]]) -> str:
    if any(label.startswith("props:") and (label[6:], key) in user_set for label, key in seen):
        return "user"
    if any(label == "derived" or (label == "node" and key in _SIZE_KEYS) for label, key in seen):
        return "derived"
    return "default"


def _leaves(values: dict[str, Any], nested: bool, prefix: str = "") -> list[tuple[str, Any]]:
    if not nested:
        return list(values.items())
    leaves: list[tuple[str, Any]] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            leaves += _leaves(value, True, path + ".")
        else:
            leaves.append((path, value))
    return leaves
