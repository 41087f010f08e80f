"""The create body's JSON schema as this service manager accepts it.

`ClusterSpec` alone says "a list of frameworks, each with some properties"; what a request may
really hold depends on the catalogue (which frameworks exist, which properties each declares and
of what type), the providers and the configured maximum of workers. This module writes those
rules into the published schema, so that a client (or a fuzzer) that follows the schema sends
what the service manager takes, and one that breaks it is refused.

Property values follow `disco.frameworks.model.PropertyDef.coerce`: a JSON value of the
property's type, or text that converts to it (`"4"` for an int, `"yes"` for a bool).
"""

from __future__ import annotations

import math
from typing import Any

from disco.frameworks.catalog import Catalog
from disco.cluster import cloud_entry
from disco.providers.option_patterns import same_length
from disco.cluster.spec import MAX_OVERRIDES
from disco.frameworks.config_files import KEY_RE, MAX_VALUE_CHARS
from disco.frameworks.model import FrameworkDef, PropertyDef
from disco.providers import options_schema

# Properties end up on command lines and in config files: no control characters (model.py).
CONTROL_CHARACTER = r"[\x00-\x1f\x7f]"
# What `_to_bool` takes as text, in any letter case, with surrounding white space.
BOOL_TEXT = (r"^\s*(?:[Tt][Rr][Uu][Ee]|[Yy][Ee][Ss]|[Oo][Nn]|1|[Ff][Aa][Ll][Ss][Ee]|[Nn][Oo]|[Oo][Ff][Ff]|0)\s*$")
INT_TEXT_DIGITS = 18  # `_to_int` reads at most 18 digits of text (leading zeros included)
# IPv4 networks as `ipaddress.ip_network(strict=False)` reads them in CIDR form.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_CIDR = rf"^{_OCTET}(?:\.{_OCTET}){{3}}(?:/(?:3[0-2]|[12]?[0-9]))?$"
# IPv6 networks: the full and the `::`-shortened forms (embedded IPv4 is taken too, unlisted).
_H16 = "[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join([
    rf"(?:{_H16}:){{7}}{_H16}", rf"(?:{_H16}:){{1,7}}:", rf"(?:{_H16}:){{1,6}}:{_H16}",
    *(rf"(?:{_H16}:){{1,{n}}}(?::{_H16}){{1,{7 - n}}}" for n in range(5, 0, -1)),
    rf":(?:(?::{_H16}){{1,7}}|:)",
])
IPV6_CIDR = rf"^(?:{_IPV6})(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?$"


def refine_spec_schema(spec: dict[str, Any], catalog: Catalog, providers: list[str], max_workers: int,
                       default_provider: str | None = None) -> None:
    """Narrow the generated `ClusterSpec` schema (in place) to what this service manager takes."""
    fields = spec["properties"]
    fields["cloud"] = cloud_field_schema()
    spec["allOf"] = (cloud_use_rules(default_provider) + provider_options_rules(providers, default_provider)
                     + masters_rules(catalog))
    fields["workers"]["maximum"] = max_workers
    # Several masters where the frameworks declare it (resolve() checks the chosen ones).
    fields["masters"]["maximum"] = max([fw.max_masters for fw in catalog.frameworks.values()] or [1])
    fields["provider"] = {"anyOf": [{"enum": providers}, {"type": "null"}], "default": None,
                          "description": "Where the nodes live; the default provider when null or absent."}
    names = sorted(catalog.frameworks)
    fields["frameworks"] = {
        "type": "array", "default": [],
        "description": "Frameworks to install, by name or with properties; each at most once. "
                       "Their dependencies are added.",
        "items": {"anyOf": [{"type": "string", "enum": names},
                            *(framework_request_schema(catalog, name) for name in names)]},
        # The same framework, by name or as an object, may come only once.
        "allOf": [{"contains": _names(name), "minContains": 0, "maxContains": 1} for name in names],
    }


CLOUD_EXAMPLE = {
    "auth_type": "v3applicationcredential",
    "auth": {"auth_url": "https://keystone.example.org:5000/v3",
             "application_credential_id": "0123456789abcdef0123456789abcdef",
             "application_credential_secret": "<the secret Keystone showed once>"},
    "region_name": "RegionOne",
}


def cloud_field_schema() -> dict[str, Any]:
    """The spec's `cloud`: a clouds.yaml entry exactly as `cloud_entry.check_cloud_entry` takes it."""
    text = {"type": "string", "minLength": 1, "not": {"pattern": cloud_entry.CONTROL_CHARACTER}}

    def auth_value(key: str) -> dict[str, Any]:
        if key in cloud_entry.URL_KEYS:
            return {**text, "maxLength": cloud_entry.MAX_URL, "pattern": f"^{cloud_entry.URL_PATTERN}$",
                    "description": "An http(s) URL: a host, an optional port and path; no user:password@ "
                                   "part, query or fragment."}
        long = key in cloud_entry.SECRET_KEYS or key.endswith("_id")
        return {**text, "maxLength": cloud_entry.MAX_TEXT if long else cloud_entry.MAX_NAME}

    def needs(auth_type: str) -> list[dict[str, Any]]:
        return [{"anyOf": [{"required": list(alternative)} for alternative in group]}
                for group in cloud_entry.REQUIRED[auth_type]]

    rules = []
    for auth_type, keys in cloud_entry.AUTH_KEYS.items():
        # Without auth_type the entry is openstacksdk's default (password).
        named: dict[str, Any] = {"properties": {"auth_type": {"const": auth_type}}}
        if auth_type != cloud_entry.DEFAULT_AUTH_TYPE:
            named["required"] = ["auth_type"]
        rules.append({"if": named, "then": {"properties": {"auth": {
            "type": "object", "additionalProperties": False,
            "properties": {key: auth_value(key) for key in keys}, "allOf": needs(auth_type)}}}})
    entry = {
        "type": "object", "additionalProperties": False, "required": ["auth"],
        "properties": {
            "auth_type": {"enum": list(cloud_entry.AUTH_TYPES), "default": cloud_entry.DEFAULT_AUTH_TYPE,
                          "description": "Keystone v3 with a password (password, v3password) or an application "
                                         "credential (v3applicationcredential); admin_token: a token for an "
                                         "endpoint, without Keystone."},
            "auth": {"type": "object", "description": "The credentials: what the auth type needs."},
            "region_name": {**text, "maxLength": cloud_entry.MAX_NAME},
            "interface": {"enum": list(cloud_entry.INTERFACES)},
            "identity_api_version": {"enum": ["3", 3]},
            "verify": {"type": "boolean", "description": "Check TLS certificates (a CA file path is not taken)."},
            "api_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": cloud_entry.MAX_API_TIMEOUT_S},
        },
        "allOf": rules,
    }
    return {
        "anyOf": [entry, {"type": "null"}], "default": None, "writeOnly": True,
        "description": f"The {cloud_entry.CLOUD_PROVIDER} provider's cloud: the body of one clouds.yaml entry (under "
                       "`clouds: NAME:`), credentials included; required with that provider and refused "
                       "with any other (`cloud_not_used`). Write-only: sealed (encrypted) with the cluster's "
                       "secrets, never stored in clear nor shown; a plan shows only auth_type, the URL, "
                       "user, project and region. `disco cluster create --cloud NAME` reads it from the "
                       "user's clouds.yaml (and secure.yaml).",
        "examples": [CLOUD_EXAMPLE],
    }


def masters_rules(catalog: Catalog) -> list[dict[str, Any]]:
    """`masters: k` > 1 only with frameworks, each of which (its dependencies included) runs
    at least k masters (spec.py's `masters_not_supported`)."""
    most = max([fw.max_masters for fw in catalog.frameworks.values()] or [1])
    rules = []
    for k in range(2, most + 1):
        able = sorted(n for n in catalog.frameworks
                      if all(catalog.get(d).max_masters >= k for d in catalog.resolve([n])))
        rules.append({
            "if": {"properties": {"masters": {"minimum": k}}, "required": ["masters"]},
            "then": {"properties": {"frameworks": {
                "minItems": 1,
                "items": {"anyOf": [{"type": "string", "enum": able},
                                    *(framework_request_schema(catalog, n) for n in able)]}}},
                     "required": ["frameworks"]},
        })
    return rules


def cloud_use_rules(default_provider: str | None) -> list[dict[str, Any]]:
    """A cloud entry exactly when the provider is the one that reads it (service.py's
    `cloud_not_used` and `cloud_missing`); an absent or null provider is the default one."""
    if default_provider == cloud_entry.CLOUD_PROVIDER:
        chosen: dict[str, Any] = {"properties": {"provider": {"enum": [cloud_entry.CLOUD_PROVIDER, None]}}}
    else:
        chosen = {"properties": {"provider": {"const": cloud_entry.CLOUD_PROVIDER}}, "required": ["provider"]}
    given = {"properties": {"cloud": {"type": "object"}}, "required": ["cloud"]}
    return [{"if": given, "then": chosen}, {"if": chosen, "then": given}]


def provider_options_rules(providers: list[str], default_provider: str | None) -> list[dict[str, Any]]:
    """`provider_options` as the chosen provider's check_options takes them (its own schema,
    providers/*); an absent or null provider is the default one."""
    rules = []
    for name in providers:
        if name == default_provider:
            chosen: dict[str, Any] = {"properties": {"provider": {"enum": [name, None]}}}
        else:
            chosen = {"properties": {"provider": {"const": name}}, "required": ["provider"]}
        options = options_schema(name)
        then: dict[str, Any] = {"properties": {"provider_options": options}}
        if options.get("minProperties", 0) > 0:  # {} is refused, so leaving them out is too
            then["required"] = ["provider_options"]
        rules.append({"if": chosen, "then": then})
    return rules


def refine_access_schema(access: dict[str, Any]) -> None:
    cidrs = access["properties"]["allowed_cidrs"]
    cidrs["items"] = {"type": "string", "anyOf": [{"pattern": IPV4_CIDR}, {"pattern": IPV6_CIDR}],
                      "description": "An IPv4 or IPv6 network in CIDR form (host bits are cleared)."}


def refine_scale_schema(scale: dict[str, Any], max_workers: int) -> None:
    scale["properties"]["workers"]["maximum"] = max_workers


def _names(name: str) -> dict[str, Any]:
    return {"anyOf": [{"const": name},
                      {"type": "object", "properties": {"name": {"const": name}}, "required": ["name"]}]}


def framework_request_schema(catalog: Catalog, name: str) -> dict[str, Any]:
    fw = catalog.get(name)
    return {
        "type": "object", "title": f"{name} with properties",
        "properties": {
            "name": {"const": name},
            "properties": {
                "type": "object", "additionalProperties": False,
                "properties": {prop: property_schema(d) for prop, d in sorted(fw.properties.items())},
            },
            "overrides": overrides_schema(fw),
        },
        "required": ["name"], "additionalProperties": False,
    }


def overrides_schema(fw: FrameworkDef) -> dict[str, Any]:
    """Raw settings for the framework's configuration files, by file then key; they win over
    the framework's defaults, the values derived from the node and the properties."""
    files: dict[str, Any] = {}
    for name, config in sorted(fw.config_files.items()):
        if config.format == "yaml":
            files[name] = {"type": "object", "description": f"YAML merged deeply into {name}",
                           "maxProperties": MAX_OVERRIDES,
                           "propertyNames": {"not": {"enum": sorted(config.locked)}} if config.locked else {}}
            continue
        scalar = {"anyOf": [{"type": "string", "maxLength": MAX_VALUE_CHARS, "not": {"pattern": CONTROL_CHARACTER}},
                            {"type": "number"}, {"type": "boolean"}]}
        names: dict[str, Any] = {"pattern": f"^{KEY_RE.pattern}$"}
        if config.locked:
            names["not"] = {"enum": sorted(config.locked)}
        files[name] = {"type": "object", "description": f"{config.format} settings of {name}",
                       "propertyNames": names, "additionalProperties": scalar, "maxProperties": MAX_OVERRIDES}
    return {"type": "object", "additionalProperties": False, "properties": files,
            "description": "Raw settings merged into the framework's configuration files (by file name, "
                           "then key). Precedence: framework defaults < values derived from the node < "
                           "properties < overrides. Stored and shown as given: not for secrets."}


def property_schema(prop: PropertyDef) -> dict[str, Any]:
    """The JSON values a property takes: its own type, or text that converts to it."""
    described = {"description": prop.description} if prop.description else {}
    if prop.type == "int":
        low = None if prop.min is None else math.ceil(prop.min)
        high = None if prop.max is None else math.floor(prop.max)
        typed: dict[str, Any] = {"type": "integer"}
        typed.update({k: v for k, v in (("minimum", low), ("maximum", high)) if v is not None})
        return {"anyOf": [typed, {"type": "string", "pattern": integer_text_pattern(low, high)}], **described}
    if prop.type == "float":
        # Text is converted as well, but text in a range cannot be written as a pattern; the
        # schema asks for numbers.
        number: dict[str, Any] = {"type": "number"}
        number.update({k: v for k, v in (("minimum", prop.min), ("maximum", prop.max)) if v is not None})
        return {**number, **described}
    if prop.type == "bool":
        return {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}, {"type": "string", "pattern": BOOL_TEXT}],
                **described}
    text: dict[str, Any] = {"type": "string", "not": {"pattern": CONTROL_CHARACTER}}
    if prop.choices is not None:
        return {"enum": list(prop.choices), **described}
    if prop.pattern is not None:
        return {**text, "pattern": f"^(?:{prop.pattern})$", **described}
    # Numbers are taken as their text.
    return {"anyOf": [text, {"type": "number"}], **described}


def integer_text_pattern(low: int | None, high: int | None) -> str:
    """A regular expression for the text `_to_int` reads as an integer in [low, high]:
    optional white space around, an optional sign, at most 18 digits with leading zeros."""
    biggest = 10 ** INT_TEXT_DIGITS - 1
    low = -biggest if low is None else max(low, -biggest)
    high = biggest if high is None else min(high, biggest)
    branches = []
    if low <= 0 <= high:
        branches.append(f"[+-]?0{{1,{INT_TEXT_DIGITS}}}")
    if max(low, 1) <= high:
        branches.append(r"\+?" + _digits_in(max(low, 1), high))
    if low <= min(high, -1):
        branches.append("-" + _digits_in(max(-high, 1), -low))
    if not branches:
        return r"[^\s\S]"  # an empty range: nothing matches
    return r"^\s*(?:" + "|".join(branches) + r")\s*$"


def _digits_in(low: int, high: int) -> str:
    """Decimal digits, leading zeros allowed, of a number in [low, high] (1 <= low <= high)."""
    alternatives = []
    for length in range(len(str(low)), len(str(high)) + 1):
        start = max(low, 10 ** (length - 1))
        end = min(high, 10 ** length - 1)
        if start > end:
            continue
        zeros = INT_TEXT_DIGITS - length
        body = "|".join(same_length(str(start), str(end)))
        alternatives.append(f"0{{0,{zeros}}}(?:{body})" if zeros else f"(?:{body})")
    return "(?:" + "|".join(alternatives) + ")"


