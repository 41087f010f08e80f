"""What the cloud wrote for its Heat process to read (standard library only: runs in Heat's venv).

`$DISCO_CLOUD_DIR/cloud.json`: the cloud's name, its catalogue (images, flavors, networks), the
server address range, podman's flags, where servers' files go. Secrets are separate files, 0600:
`signal.key` (signs wait-condition tokens) and `api-token.sha256` (the admin token's hash)."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

CLOUD_DIR_ENV = "DISCO_CLOUD_DIR"


def cloud_dir() -> Path:
    return Path(os.environ[CLOUD_DIR_ENV])


@functools.lru_cache(maxsize=1)
def cloud_config() -> dict[str, Any]:
    return json.loads((cloud_dir() / "cloud.json").read_text())


def catalogue() -> dict[str, Any]:
    return cloud_config()["catalogue"]


def secret_file(name: str) -> bytes:
    return (cloud_dir() / name).read_bytes().strip()
