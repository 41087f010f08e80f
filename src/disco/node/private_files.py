"""A launch's files, written under work/ private to the process's user from the first byte.

work/ belongs to the cluster's processes, which may have planted links there, while the
supervisor writes as root: every step is taken relative to an open directory, following no
link, and the file is staged and renamed."""

from __future__ import annotations

import os
from pathlib import Path

from disco.node.bundle import relative_path


def write_private_files(work: Path, files: dict[str, str], owner: tuple[int, int] | None) -> None:
    for name, content in files.items():
        parts = relative_path(name, "file").parts
        directory = os.open(work, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for part in parts[:-1]:
                try:
                    os.mkdir(part, 0o700, dir_fd=directory)
                except FileExistsError:
                    pass
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
                os.close(directory)
                directory = inner
                if owner is not None:
                    os.fchown(directory, *owner)
            _write_at(directory, parts[-1], content.encode(), owner)
        finally:
            os.close(directory)


def _write_at(directory: int, name: str, data: bytes, owner: tuple[int, int] | None) -> None:
    staging = f".{name}.{os.getpid()}.tmp"
    try:
        os.unlink(staging, dir_fd=directory)
    except FileNotFoundError:
        pass
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=directory)
    with os.fdopen(fd, "wb") as handle:
        if owner is not None:
            os.fchown(handle.fileno(), *owner)
        handle.write(data)
    os.replace(staging, name, src_dir_fd=directory, dst_dir_fd=directory)
