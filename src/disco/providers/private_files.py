"""Files a provider writes into a node's directory for a process: private to the process's
user from the first byte, and safe in a directory that the cluster's processes own (they may
have put links there): every step is taken relative to an open directory, following no link."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_files(workdir: Path, files: dict[str, str], uid: int | None) -> None:
    """Write a launch's files under its workdir, private to the process's user (`uid`, or
    ours) from the first byte. The workdir belongs to the cluster's processes, which may have
    put links in it: every step is taken relative to an open directory, following no link."""
    for relative, content in files.items():
        parts = Path(os.path.normpath(relative)).parts
        if not parts or parts[0] in ("/", "..") or ".." in parts:
            raise ValueError(f"file {relative!r} is outside the node's directory")
        directory = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for name in parts[:-1]:
                try:
                    os.mkdir(name, 0o700, dir_fd=directory)
                except FileExistsError:
                    pass
                inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
                os.close(directory)
                directory = inner
                if uid is not None:
                    os.fchown(directory, uid, uid)
            _write_at(directory, parts[-1], content, uid)
        finally:
            os.close(directory)


def write_private(path: Path, content: str) -> None:
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _write_at(directory, path.name, content, None)
    finally:
        os.close(directory)


def _write_at(directory: int, name: str, content: str, uid: int | None) -> None:
    tmp = f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        os.unlink(tmp, dir_fd=directory)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=directory)
    with os.fdopen(fd, "w") as handle:
        if uid is not None:
            os.fchown(handle.fileno(), uid, uid)
        handle.write(content)
    os.replace(tmp, name, src_dir_fd=directory, dst_dir_fd=directory)
