"""The OpenStack cloud of a seed-style OCCI create (`POST /disco/` with the heat attributes).

The seed's users give only their name, password and region (headers `X-User-Name`,
`X-Password`, `X-Region-Name`, or the attributes `icclab.disco.deployer.username/password/
region`); where the cloud is (Keystone's URL, the project, the domains) is the service
manager's: an entry of the admin's `clouds.yaml` (DISCO_OPENSTACK_CLOUD in
DISCO_OPENSTACK_CLOUDS_FILE). The user's name, password and region replace the entry's.

An `admin_token` entry (the cloud in a box, which has no Keystone) has nobody to check a user's
password against: the user must still give one, but the entry is used as it is.

The result is the spec's write-only `cloud` (sealed at create). No error or log line here
shows a password, a token or the admin's file's content.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from disco.cluster.settings import Settings
from disco.errors import Conflict, InvalidSpec

log = logging.getLogger(__name__)

NOT_CONFIGURED = "openstack_not_configured"
# Where openstacksdk looks for clouds.yaml, less the working directory (a service manager's is
# incidental): used when DISCO_OPENSTACK_CLOUDS_FILE is not set.
SEARCH_PATH = (Path.home() / ".config" / "openstack" / "clouds.yaml", Path("/etc/openstack/clouds.yaml"))
# Keystone's bound on user and region names; a password is given more room.
MAX_NAME = 255
MAX_PASSWORD = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# What is taken from the admin's entry: where and how to reach the cloud, never who.
TOP_KEYS = ("region_name", "interface", "identity_api_version", "verify", "api_timeout")
PASSWORD_AUTH_TYPES = ("password", "v3password", "v3applicationcredential")
# Keystone's URL, the project and the domains: the scope the user's password logs in to.
SCOPE_KEYS = ("auth_url", "project_id", "project_name", "project_domain_id", "project_domain_name",
              "user_domain_id", "user_domain_name", "default_domain_id", "default_domain_name")
TOKEN_KEYS = ("endpoint", "token")


@dataclass(frozen=True)
class Credentials:
    """A user's OpenStack name, password and region as one request gave them (any may be None)."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    region: str | None = None

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.username, self.password, self.region))


def header_credentials(headers: Mapping[str, str]) -> Credentials:
    """The seed README's X-User-Name / X-Password / X-Region-Name headers (an empty one is absent)."""
    return Credentials(username=headers.get("x-user-name") or None, password=headers.get("x-password") or None,
                       region=headers.get("x-region-name") or None)


def merge(headers: Credentials, attributes: Credentials) -> Credentials:
    """Headers and deployer attributes may both be sent (the README sends both); they must agree."""
    merged: dict[str, str | None] = {}
    for name in ("username", "password", "region"):
        from_header, from_attribute = getattr(headers, name), getattr(attributes, name)
        if from_header is not None and from_attribute is not None and from_header != from_attribute:
            header = {"username": "X-User-Name", "password": "X-Password", "region": "X-Region-Name"}[name]
            # Neither value is shown: one of them may be a password.
            raise InvalidSpec(f"the {header} header and the attribute icclab.disco.deployer.{name} differ; "
                              "give one of them, or the same value in both", code="conflicting_credentials",
                              details={"header": header, "attribute": f"icclab.disco.deployer.{name}"})
        merged[name] = from_header if from_header is not None else from_attribute
    return Credentials(**merged)


def _not_configured(message: str) -> Conflict:
    return Conflict(f"this service manager cannot create OpenStack clusters: {message}", code=NOT_CONFIGURED)


def clouds_file(settings: Settings) -> Path | None:
    if settings.openstack_clouds_file is not None:
        return settings.openstack_clouds_file
    return next((path for path in SEARCH_PATH if path.is_file()), None)


def admin_entry(settings: Settings) -> dict[str, Any]:
    """The admin's clouds.yaml entry, read at each create (an edit needs no restart), or 409
    openstack_not_configured. The tenant is told what is missing, not the file's path or content."""
    if not settings.openstack_cloud:
        raise _not_configured("no cloud is configured (the admin sets DISCO_OPENSTACK_CLOUD, an entry of "
                              "a clouds.yaml named by DISCO_OPENSTACK_CLOUDS_FILE)")
    name = settings.openstack_cloud
    path = clouds_file(settings)
    if path is None:
        raise _not_configured(f"cloud {name!r} is configured but no clouds.yaml was found "
                              "(DISCO_OPENSTACK_CLOUDS_FILE)")
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, UnicodeError) as exc:
        log.warning("cannot read the clouds file %s: %s", path, type(exc).__name__)
        raise _not_configured(f"the clouds.yaml of cloud {name!r} cannot be read") from None
    except yaml.YAMLError:
        # The parser's message may quote a line of the file, and the file holds passwords.
        log.warning("the clouds file %s is not valid YAML", path)
        raise _not_configured(f"the clouds.yaml of cloud {name!r} is not valid YAML") from None
    clouds = document.get("clouds") if isinstance(document, dict) else None
    entry = clouds.get(name) if isinstance(clouds, dict) else None
    if not isinstance(entry, dict):
        raise _not_configured(f"the clouds.yaml has no entry {name!r} under `clouds:`")
    auth_type = entry.get("auth_type", "password")
    auth = entry.get("auth")
    if auth_type not in (*PASSWORD_AUTH_TYPES, "admin_token") or not isinstance(auth, dict):
        raise _not_configured(f"entry {name!r} must have auth_type password, v3password, "
                              "v3applicationcredential or admin_token, and an `auth` mapping")
    needed = TOKEN_KEYS if auth_type == "admin_token" else ("auth_url",)
    missing = [key for key in needed if not auth.get(key)]
    if missing:
        raise _not_configured(f"entry {name!r} has no auth.{missing[0]}")
    return entry


def _checked(label: str, value: str | None, limit: int) -> str:
    if value is None:
        raise InvalidSpec(f"OpenStack clusters need your OpenStack {label}: the X-{_HEADER[label]} header or "
                          f"the attribute icclab.disco.deployer.{_ATTRIBUTE[label]}", code="missing_credentials",
                          details={"missing": f"X-{_HEADER[label]}"})
    if len(value) > limit or _CONTROL.search(value):
        # The value is not quoted: it may be a password.
        raise InvalidSpec(f"the OpenStack {label} (X-{_HEADER[label]} or icclab.disco.deployer."
                          f"{_ATTRIBUTE[label]}) must be at most {limit} characters, without control characters",
                          code="invalid_credentials", details={"credential": f"X-{_HEADER[label]}"})
    return value


_HEADER = {"user name": "User-Name", "password": "Password", "region": "Region-Name"}
_ATTRIBUTE = {"user name": "username", "password": "password", "region": "region"}


def user_cloud(entry: Mapping[str, Any], credentials: Credentials) -> dict[str, Any]:
    """The spec's `cloud`: the admin's entry with the user's name, password and region. A user
    name and a password are needed whatever the entry (with `admin_token` nobody checks them)."""
    username = _checked("user name", credentials.username, MAX_NAME)
    password = _checked("password", credentials.password, MAX_PASSWORD)
    region = None if credentials.region is None else _checked("region", credentials.region, MAX_NAME)
    top = {key: entry[key] for key in TOP_KEYS if key in entry}
    auth = entry["auth"]
    if entry.get("auth_type") == "admin_token":
        # The cloud in a box: one token for one endpoint, no Keystone, no regions.
        return {**top, "auth_type": "admin_token", "auth": {key: auth[key] for key in TOKEN_KEYS}}
    cloud: dict[str, Any] = {**top, "auth_type": "password", "auth": {
        **{key: auth[key] for key in SCOPE_KEYS if key in auth}, "username": username, "password": password}}
    if region is not None:
        cloud["region_name"] = region
    return cloud


def cloud_for(settings: Settings, credentials: Credentials) -> dict[str, Any]:
    """The configured cloud first (without it, credentials are pointless), then the user's."""
    return user_cloud(admin_entry(settings), credentials)
