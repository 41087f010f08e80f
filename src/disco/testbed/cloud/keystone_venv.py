"""The virtual environment that holds OpenStack Keystone (about 100 packages) for a cloud in a
box started with --keystone: built once under the testbed cache, like Heat's (heat_venv.py),
and kept apart from it so that Heat's pins never move for it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from disco.testbed.cloud.heat_venv import ensure_venv, venv_path

# Keystone 30 is the 2026.2 release, the series of the box's Heat 27 (heat_venv.HEAT_PACKAGES).
KEYSTONE_PACKAGES = ("keystone==30.0.0",)
STAMP = ".disco-keystone-venv"


def keystone_venv_path(cache_dir: Path | None = None) -> Path:
    return venv_path("keystone-venv", KEYSTONE_PACKAGES, cache_dir)


def ensure_keystone_venv(cache_dir: Path | None = None,
                         progress: Callable[[str], None] = lambda message: None) -> Path:
    """The Keystone venv's directory, built if missing (about 2 min with a warm pip cache)."""
    return ensure_venv(keystone_venv_path(cache_dir), KEYSTONE_PACKAGES, STAMP, "Keystone", progress)
