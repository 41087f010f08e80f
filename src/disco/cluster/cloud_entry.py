"""The spec's `cloud`: one `clouds.yaml` entry (the body under `clouds: NAME:`) as openstacksdk
takes it, checked before it is sealed with the cluster's secrets.

Only what the OpenStack provider needs is taken: Keystone v3 with a password or an application
credential, or `admin_token` (a token for an endpoint, as the cloud in a box has no Keystone).
Nothing that names a file on the service manager's machine (`cacert`, `cert`, `key`) nor a
vendor profile (fetched from the network) is accepted: the entry travels to a service manager
that is not the user's machine.

An error names the key that is wrong and never shows a value of the entry: it may hold a
password. `describe_cloud` is all of it that may ever be shown (plans, documentation)."""

from __future__ import annotations

import re
from typing import Any

from disco.errors import InvalidSpec

CODE = "invalid_cloud"
CLOUD_PROVIDER = "openstack"   # the provider that reads the entry; no other takes one
MAX_TEXT = 4096        # a Keystone token or secret is far shorter; a bound, not a guess
MAX_URL = 2048
MAX_NAME = 255         # Keystone's limit for user, project, domain and region names

# Keys keystoneauth's loaders read for each auth type (keystoneauth1.loading.get_plugin_loader
# (name).get_options()), less the ones that would need more than the entry (e.g. kerberos).
_SCOPE = ("system_scope", "domain_id", "domain_name", "project_id", "project_name", "project_domain_id",
          "project_domain_name", "trust_id")
_USER = ("user_id", "username", "user_domain_id", "user_domain_name")
AUTH_KEYS: dict[str, tuple[str, ...]] = {
    "password": ("auth_url", *_SCOPE, "default_domain_id", "default_domain_name", *_USER, "password"),
    "v3password": ("auth_url", *_SCOPE, *_USER, "password"),
    "v3applicationcredential": ("auth_url", *_SCOPE, *_USER, "application_credential_secret",
                                "application_credential_id", "application_credential_name"),
    "admin_token": ("endpoint", "token"),
}
AUTH_TYPES = tuple(AUTH_KEYS)
DEFAULT_AUTH_TYPE = "password"    # openstacksdk's, when an entry names none
# Each auth type's needs: every group must be met by one of its alternatives (all keys of it).
REQUIRED: dict[str, tuple[tuple[tuple[str, ...], ...], ...]] = {
    "password": ((("auth_url",),), (("password",),), (("username",), ("user_id",))),
    "v3password": ((("auth_url",),), (("password",),), (("username",), ("user_id",))),
    "v3applicationcredential": (
        (("auth_url",),), (("application_credential_secret",),),
        (("application_credential_id",), ("application_credential_name", "username"),
         ("application_credential_name", "user_id"))),
    "admin_token": ((("endpoint",),), (("token",),)),
}
SECRET_KEYS = frozenset({"password", "token", "application_credential_secret"})
URL_KEYS = frozenset({"auth_url", "endpoint"})
INTERFACES = ("public", "internal", "admin")
TOP_KEYS = ("auth_type", "auth", "region_name", "interface", "identity_api_version", "verify", "api_timeout")
MAX_API_TIMEOUT_S = 3600

# An http(s) URL of a host (a DNS name, IPv4 address or bracketed IPv6 address) and an optional
# port and path: no user:password@ part, no query, no fragment, no white space. The same
# expression is published in the API's schema (spec_schema.py), so both say the same.
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
URL_PATTERN = (rf"https?://(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]{{2,45}}\])(?::{_PORT})?"
               r"(?:/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?")
_URL_RE = re.compile(URL_PATTERN)
CONTROL_CHARACTER = r"[\x00-\x1f\x7f]"
_CONTROL_RE = re.compile(CONTROL_CHARACTER)
# A key is named in an error only when it looks like a key; anything else might be a value
# written where a key was meant.
_KEY_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")

SHOWN_AUTH_KEYS = ("auth_url", "endpoint", "username", "user_id", "user_domain_name", "project_name",
                   "project_id", "project_domain_name")


def _bad(where: str, what: str) -> InvalidSpec:
    return InvalidSpec(f"cloud entry: {where} {what}", code=CODE, details={"key": where})


def _key_name(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if isinstance(key, str) and _KEY_NAME.fullmatch(key) else f"{prefix}.<a key that is not a name>"


def _text(where: str, value: Any, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(where, "must be non-empty text")
    if len(value) > limit:
        raise _bad(where, f"must be at most {limit} characters")
    if _CONTROL_RE.search(value):
        raise _bad(where, "must not hold control characters")
    return value


def check_cloud_entry(entry: Any) -> dict[str, Any]:
    """The entry as openstacksdk will be given it, or InvalidSpec (422 invalid_cloud) naming the
    key that is wrong (never its value)."""
    if not isinstance(entry, dict):
        raise _bad("cloud", "must be a mapping: the body of one clouds.yaml entry (auth_type, auth, region_name, …)")
    for key in entry:
        if key not in TOP_KEYS:
            raise _bad(_key_name("cloud", key), f"is not a key DISCO takes (it takes: {', '.join(TOP_KEYS)})")
    auth_type = entry.get("auth_type", DEFAULT_AUTH_TYPE)
    if not isinstance(auth_type, str) or auth_type not in AUTH_KEYS:
        raise _bad("cloud.auth_type", f"must be one of {', '.join(AUTH_TYPES)} (absent: {DEFAULT_AUTH_TYPE})")
    checked: dict[str, Any] = {"auth_type": auth_type, "auth": _check_auth(auth_type, entry.get("auth"))}
    if "region_name" in entry:
        checked["region_name"] = _text("cloud.region_name", entry["region_name"], MAX_NAME)
    if "interface" in entry:
        if entry["interface"] not in INTERFACES:
            raise _bad("cloud.interface", f"must be one of {', '.join(INTERFACES)}")
        checked["interface"] = entry["interface"]
    if "identity_api_version" in entry:
        version = entry["identity_api_version"]
        if isinstance(version, bool) or version not in ("3", 3):
            raise _bad("cloud.identity_api_version", "must be 3 (Keystone v3)")
        checked["identity_api_version"] = "3"
    if "verify" in entry:
        # A CA bundle would be a path on the service manager's machine: only true or false.
        if not isinstance(entry["verify"], bool):
            raise _bad("cloud.verify", "must be true or false (a CA file path is not taken)")
        checked["verify"] = entry["verify"]
    if "api_timeout" in entry:
        timeout = entry["api_timeout"]
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_API_TIMEOUT_S:
            raise _bad("cloud.api_timeout", f"must be a number of seconds, more than 0 and at most {MAX_API_TIMEOUT_S}")
        checked["api_timeout"] = timeout
    return checked


def _check_auth(auth_type: str, auth: Any) -> dict[str, str]:
    if not isinstance(auth, dict):
        raise _bad("cloud.auth", f"must be a mapping of the {auth_type} credentials")
    allowed = AUTH_KEYS[auth_type]
    for key in auth:
        if key not in allowed:
            raise _bad(_key_name("cloud.auth", key), f"is not a key of auth_type {auth_type} "
                                                      f"(it takes: {', '.join(allowed)})")
    checked: dict[str, str] = {}
    for key, value in auth.items():
        where = f"cloud.auth.{key}"
        if key in URL_KEYS:
            text = _text(where, value, MAX_URL)
            if not _URL_RE.fullmatch(text):
                raise _bad(where, "must be an http(s) URL with a host, and no user:password@ part, query or "
                                  "fragment")
            checked[key] = text
        else:
            checked[key] = _text(where, value, MAX_TEXT if key in SECRET_KEYS or key.endswith("_id") else MAX_NAME)
    for group in REQUIRED[auth_type]:
        if not any(all(k in checked for k in alternative) for alternative in group):
            wanted = " or ".join(" + ".join(f"cloud.auth.{k}" for k in alternative) for alternative in group)
            raise _bad(wanted, f"is needed for auth_type {auth_type}")
    return checked


def describe_cloud(entry: dict[str, Any]) -> dict[str, Any]:
    """What may be shown of a (checked) entry: how it authenticates, where, as whom, for which
    project and region; never a password, token or secret."""
    auth = entry.get("auth") or {}
    shown: dict[str, Any] = {"auth_type": entry.get("auth_type", DEFAULT_AUTH_TYPE)}
    shown.update({key: auth[key] for key in SHOWN_AUTH_KEYS if key in auth})
    if "region_name" in entry:
        shown["region_name"] = entry["region_name"]
    return shown
