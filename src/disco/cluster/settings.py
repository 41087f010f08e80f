"""Service-manager settings, read from the environment once at start-up.

Every knob has a sane default so that `disco sm` works on a fresh machine with no
configuration: data under the user's home, embedded SQLite, the local provider.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


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
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
