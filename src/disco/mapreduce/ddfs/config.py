"""DDFS settings of the master: replica counts, garbage collection timing, delayed commits.

Each value comes from the master's command line (`--ddfs-...`), else from the environment
variable Disco uses for it, else from Disco's default.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields

DAY = 24 * 60 * 60.0


def _env(name: str, default: float) -> float:
    try:
        return float(os.environ[name])
    except (KeyError, ValueError):
        return default


@dataclass
class DdfsConfig:
    blob_replicas: int = field(default_factory=lambda: int(_env("DDFS_BLOB_REPLICAS", 1)))
    tag_replicas: int = field(default_factory=lambda: int(_env("DDFS_TAG_REPLICAS", 1)))
    # A tag write that reaches fewer nodes than this fails.
    tag_min_replicas: int = field(default_factory=lambda: int(_env("DDFS_TAG_MIN_REPLICAS", 1)))
    # Seconds between garbage collections, and before the first one.
    gc_interval: float = field(default_factory=lambda: _env("DDFS_GC_INTERVAL", DAY))
    gc_initial_wait: float = field(default_factory=lambda: _env("DDFS_GC_INITIAL_WAIT", 300.0))
    # Blobs no tag refers to are deleted once they are this old (seconds): a blob is
    # uploaded before it is tagged, and must survive until then.
    orphan_grace: float = field(default_factory=lambda: _env("DDFS_ORPHAN_GRACE", 5 * DAY))
    # Uploads left half-done are deleted once this old.
    partial_grace: float = field(default_factory=lambda: _env("DDFS_PARTIAL_GRACE", DAY))
    # How long a deleted tag's name stays in +deleted, so that a node coming back with
    # old copies of it does not bring it back.
    deleted_expiry: float = field(default_factory=lambda: _env("DDFS_DELETED_EXPIRY", 30 * DAY))
    # Delayed tag updates (`?delayed=1`) are committed together this often.
    delayed_flush: float = field(default_factory=lambda: _env("DDFS_DELAYED_FLUSH", 1.0))
    # Seconds the master waits for a node's answer to a DDFS request.
    node_timeout: float = 30.0

    def __post_init__(self) -> None:
        for name in ("blob_replicas", "tag_replicas", "tag_min_replicas"):
            if getattr(self, name) < 1:
                raise ValueError(f"DDFS {name} must be at least 1")
        if self.tag_min_replicas > self.tag_replicas:
            raise ValueError("DDFS tag_min_replicas cannot exceed tag_replicas")


_OPTIONS = {
    "blob_replicas": (int, "DDFS_BLOB_REPLICAS: copies of each blob"),
    "tag_replicas": (int, "DDFS_TAG_REPLICAS: copies of each tag"),
    "tag_min_replicas": (int, "DDFS_TAG_MIN_REPLICAS: copies a tag write needs to succeed"),
    "gc_interval": (float, "seconds between DDFS garbage collections"),
    "gc_initial_wait": (float, "seconds before the first garbage collection"),
    "orphan_grace": (float, "seconds an untagged blob is kept"),
    "partial_grace": (float, "seconds an unfinished upload is kept"),
    "deleted_expiry": (float, "seconds a deleted tag's name is remembered"),
    "delayed_flush": (float, "seconds between commits of delayed tag updates"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DdfsConfig()
    group = parser.add_argument_group("DDFS")
    for name, (kind, text) in _OPTIONS.items():
        group.add_argument(f"--ddfs-{name.replace('_', '-')}", dest=f"ddfs_{name}", type=kind,
                           default=getattr(defaults, name), help=f"{text} (default %(default)s)")


def from_arguments(args: argparse.Namespace) -> DdfsConfig:
    known = {f.name for f in fields(DdfsConfig)}
    return DdfsConfig(**{name: getattr(args, f"ddfs_{name}") for name in _OPTIONS
                         if name in known})
