"""Where the testbed keeps images (cache: rebuilt if lost) and state (data: what is running)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$DISCO_CACHE_DIR/testbed, the same cache base the frameworks use (see
    disco.frameworks.render.cache_dir): DISCO_CACHE_DIR, else $XDG_CACHE_HOME/disco, else
    ~/.cache/disco."""
    configured = os.environ.get("DISCO_CACHE_DIR")
    if configured:
        base = Path(configured).expanduser()
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "disco"
    return base / "testbed"


def images_root(cache_dir: Path | None = None) -> Path:
    return (cache_dir or cache_root()) / "images"


def state_root() -> Path:
    """$DISCO_DATA_DIR/testbed (DISCO_DATA_DIR defaults to ~/.local/share/disco)."""
    base = os.environ.get("DISCO_DATA_DIR") or Path.home() / ".local" / "share" / "disco"
    return Path(base) / "testbed"
