"""Service-manager settings, read from the environment once at start-up.

Every knob has a sane default so that `disco sm` works on a fresh machine with no
configuration: data under the user's home, embedded SQLite, the local provider.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# What an address the service manager listens on looks like from this machine.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}


def default_data_dir() -> Path:
    return Path(os.environ.get("DISCO_DATA_DIR") or Path.home() / ".local" / "share" / "disco")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str = ""
    max_workers: int = 64
    max_body_bytes: int = 1 << 20
    default_provider: str = "local"
    reconcile_interval_s: float = 2.0
    stop_grace_s: float = 10.0
    # Folders with more framework definitions (DISCO_FRAMEWORKS_PATH, colon-separated).
    extra_framework_dirs: tuple[Path, ...] = ()
    # The URL clients reach the service manager at; every URL it renders starts with it.
    public_url: str = "http://127.0.0.1:8888"
    # Failed authentications (unknown tokens) one client address may make in the window.
    auth_failure_limit: int = 20
    auth_failure_window_s: float = 60.0
    # The one tenant a provider that cannot isolate tenants serves (the local provider when
    # the service manager does not run as root): the tenant of the first start's token.
    sole_tenant: str = "default"
    # Remote nodes (SSH hosts, cloud VMs) take Python packages from here on a private network.
    node_index_url: str = ""
    node_wheelhouse: str = ""
    # The OpenStack cloud the seed's OCCI creates use (docs/openstack.md#the-seeds-occi-interface): an entry name
    # of the admin's clouds.yaml, whose URL, project and domains the users' passwords log in to.
    openstack_cloud: str = ""
    openstack_clouds_file: Path | None = None

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'disco.sqlite'}"

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        env = os.environ
        values: dict[str, object] = {
            "data_dir": default_data_dir(),
            "database_url": env.get("DISCO_DATABASE_URL", ""),
            "max_workers": int(env.get("DISCO_MAX_WORKERS", "64")),
            "max_body_bytes": int(env.get("DISCO_MAX_BODY_BYTES", str(1 << 20))),
            "default_provider": env.get("DISCO_DEFAULT_PROVIDER", "local"),
            "reconcile_interval_s": float(env.get("DISCO_RECONCILE_INTERVAL", "2.0")),
            "stop_grace_s": float(env.get("DISCO_STOP_GRACE", "10.0")),
            "extra_framework_dirs": tuple(
                Path(p) for p in env.get("DISCO_FRAMEWORKS_PATH", "").split(os.pathsep) if p),
            "auth_failure_limit": _positive(env, "DISCO_AUTH_FAILURE_LIMIT", "20", int),
            "auth_failure_window_s": _positive(env, "DISCO_AUTH_FAILURE_WINDOW", "60", float),
            "sole_tenant": env.get("DISCO_SOLE_TENANT", "default"),
            "node_index_url": env.get("DISCO_NODE_INDEX_URL", ""),
            "node_wheelhouse": env.get("DISCO_NODE_WHEELHOUSE", ""),
            "openstack_cloud": env.get("DISCO_OPENSTACK_CLOUD", ""),
            "openstack_clouds_file": Path(env["DISCO_OPENSTACK_CLOUDS_FILE"]).expanduser()
            if env.get("DISCO_OPENSTACK_CLOUDS_FILE") else None,
        }
        if env.get("DISCO_PUBLIC_URL"):
            values["public_url"] = normalise_public_url(env["DISCO_PUBLIC_URL"])
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def normalise_public_url(url: str) -> str:
    """`http(s)://host[:port][/path]` without a trailing slash; anything else is a ValueError."""
    parts = urlsplit(url.strip())
    if "@" in parts.netloc:  # and the URL is not echoed: it would show the password
        raise ValueError("DISCO_PUBLIC_URL must not contain a user name or password")
    try:
        parts.port  # a bad port is only found when asked for
    except ValueError:
        raise ValueError(f"DISCO_PUBLIC_URL has a bad port: {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"DISCO_PUBLIC_URL must look like http://host:port or https://host/path, got {url!r}")
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def listening_url(host: str, port: int) -> str:
    """The public URL when none is configured: the address `disco sm` listens on."""
    host = _WILDCARDS.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"http://{host}:{port}"


def _positive(env: Mapping[str, str], name: str, default: str, kind: type) -> Any:
    value = kind(env.get(name, default))
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0, got {value}")
    return value
