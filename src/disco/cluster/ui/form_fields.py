"""What the create form shows: an input per typed property of each framework (from the
catalogue's models: number inputs with the declared bounds, selects for choices and booleans,
password inputs for secrets), each framework's description and what it also installs, and
each provider's settings (from its published option schema)."""

from __future__ import annotations

import math
from typing import Any

from disco.errors import DiscoError
from disco.frameworks.catalog import Catalog
from disco.frameworks.model import PropertyDef
from disco.providers import options_schema


def property_field(fw: str, name: str, prop: PropertyDef) -> dict[str, Any]:
    """An input for a typed property: its kind, bounds and choices, as the model declares them."""
    entry: dict[str, Any] = {"name": f"prop.{fw}.{name}", "id": f"prop-{fw}-{name}", "label": name,
                             "type": prop.type, "description": prop.description, "default": prop.default,
                             "secret": prop.secret}
    if prop.type in ("int", "float"):
        entry["input"] = "number"
        entry["step"] = "1" if prop.type == "int" else "any"
        low, high = prop.min, prop.max
        if prop.type == "int":
            low = None if low is None else math.ceil(low)
            high = None if high is None else math.floor(high)
        entry["min"], entry["max"] = _num(low), _num(high)
    elif prop.type == "bool":
        entry["input"] = "select"
        entry["choices"] = ["true", "false"]
    elif prop.choices is not None:
        entry["input"] = "select"
        entry["choices"] = list(prop.choices)
    else:
        entry["input"] = "password" if prop.secret else "text"
        entry["pattern"] = prop.pattern
    return entry


def _num(value: float | None) -> str | None:
    if value is None:
        return None
    return str(int(value)) if float(value).is_integer() else repr(value)


def framework_fields(catalog: Catalog) -> list[dict[str, Any]]:
    out = []
    for name in sorted(catalog.frameworks):
        fw = catalog.get(name)
        try:
            adds = [n for n in catalog.resolve([name]) if n != name]
        except DiscoError:
            adds = []
        out.append({"name": name, "description": fw.description, "depends": fw.depends, "adds": adds,
                    "properties": [property_field(name, p, d) for p, d in sorted(fw.properties.items())]})
    return out


def provider_fields(providers: list[str]) -> list[dict[str, Any]]:
    out = []
    for name in providers:
        schema = options_schema(name)
        options = [{"name": f"opt.{name}.{key}", "id": f"opt-{name}-{key}", "label": key,
                    "description": str(spec.get("description", ""))}
                   for key, spec in sorted((schema.get("properties") or {}).items())]
        out.append({"name": name, "options": options, "required": list(schema.get("required") or [])})
    return out
