"""Configuration files a framework renders from key/value maps, in the format its software
reads: Hadoop's XML (`core-site.xml`, and Zeppelin's `zeppelin-site.xml`, which is the same
format), Java properties (`spark-defaults.conf`) and YAML.

Keeping the values as a map until the very end is what lets a user's raw overrides merge key
by key, in the file's own terms, instead of being pasted after the framework's text:

    values = {"dfs.replication": "2"}
    merged = merge("hadoop-xml", values, {"dfs.blocksize": "268435456"})
    text = serialise("hadoop-xml", merged)

Precedence (framework defaults < values derived from the node < user properties < raw
overrides) is settled before `merge`: the framework's value templates pick between the first
three (docs/hadoop-zeppelin.md), and the overrides win over all of them here.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from xml.sax.saxutils import escape

import yaml

Format = Literal["hadoop-xml", "properties", "yaml"]
FORMATS: tuple[str, ...] = ("hadoop-xml", "properties", "yaml")

# Keys of Hadoop and Java properties: dotted names. Nothing that could close an XML element,
# start a comment or split a properties line.
KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_VALUE_CHARS = 4096


class OverrideError(ValueError):
    """An override that cannot go into its file; the message says which key and why."""


def check_override(fmt: str, key: str, value: Any) -> Any:
    """The override as it will be written, or OverrideError. Flat formats take scalars only
    (a bool becomes "true"/"false", as Hadoop and Spark spell it); YAML takes any JSON value."""
    if fmt == "yaml":
        _check_yaml(key, value, key)
        return value
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise OverrideError(f"key {key!r} must be a dotted name of letters, digits, '_', '-' and '.'")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise OverrideError(f"{key}: the value must be a string, number or boolean, got {type(value).__name__}")
    if _CONTROL.search(value):
        raise OverrideError(f"{key}: the value may not hold control characters "
                            "(a new line would start another setting)")
    if len(value) > MAX_VALUE_CHARS:
        raise OverrideError(f"{key}: the value is longer than {MAX_VALUE_CHARS} characters")
    return value


def _check_yaml(key: Any, value: Any, where: str) -> None:
    if not isinstance(key, str) or not key or _CONTROL.search(key):
        raise OverrideError(f"{where}: YAML keys must be non-empty text without control characters")
    if isinstance(value, dict):
        for inner_key, inner in value.items():
            _check_yaml(inner_key, inner, f"{where}.{inner_key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                for inner_key, inner in item.items():
                    _check_yaml(inner_key, inner, f"{where}[{index}].{inner_key}")
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise OverrideError(f"{where}: {type(value).__name__} is not a YAML value")


def merge(fmt: str, base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Base values with the overrides on top: a key the base has keeps its place, new keys
    follow in the overrides' order. YAML maps merge deeply (a nested key replaces only itself)."""
    if fmt == "yaml":
        return _deep_merge(base, overrides)
    merged = dict(base)
    merged.update(overrides)
    return merged


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def serialise(fmt: str, values: dict[str, Any]) -> str:
    if fmt == "hadoop-xml":
        lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<configuration>"]
        for key, value in values.items():
            lines.append(f"  <property><name>{escape(key)}</name><value>{escape(str(value))}</value></property>")
        lines.append("</configuration>")
        return "\n".join(lines) + "\n"
    if fmt == "properties":
        # java.util.Properties (which spark-defaults.conf is read with): a backslash escapes.
        return "".join(f"{key} {str(value).replace(chr(92), chr(92) * 2)}\n" for key, value in values.items())
    if fmt == "yaml":
        return yaml.safe_dump(values, sort_keys=False, default_flow_style=False) if values else ""
    raise ValueError(f"unknown configuration format {fmt!r}")


def parse(fmt: str, text: str) -> dict[str, Any]:
    """The key/value map of a file this module wrote (tests read rendered files back with it)."""
    if fmt == "hadoop-xml":
        import xml.etree.ElementTree as ET

        root = ET.fromstring(text)
        return {p.findtext("name") or "": p.findtext("value") or "" for p in root.iter("property")}
    if fmt == "properties":
        result = {}
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith(("#", "!")):
                key, _, value = line.partition(" ")
                result[key] = value.replace("\\\\", "\\")
        return result
    if fmt == "yaml":
        return yaml.safe_load(text) or {}
    raise ValueError(f"unknown configuration format {fmt!r}")
