"""Files for tasks: atomic outputs, directories, zip archives for job homes.

:class:`DiscoOutputStream` (Disco's internal record format) lives in
:mod:`disco.worker.task_io` and is re-exported here, where Disco users import it from.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

from disco.error import DataError
from disco.worker.task_io import (  # noqa: F401  (re-exported)
    DiscoOutputStream, DiscoOutputStream_v0, DiscoOutputStream_v1, HUNK_SIZE, MAX_RECORD_SIZE)


# Tasks refuse to write with less free space than this (Disco's value; tests raise it).
MIN_DISK_SPACE = 1 << 20


def ensure_free_space(path: str) -> None:
    """Raise DataError when the file system holding ``path`` has less than
    ``MIN_DISK_SPACE`` bytes free for unprivileged users (read at each call)."""
    stats = os.statvfs(path)
    free = stats.f_frsize * stats.f_bavail
    if free < MIN_DISK_SPACE:
        raise DataError(f"only {free // 1024} KB of disk space free (at least "
                        f"{MIN_DISK_SPACE // 1024} KB needed): task failed", path)


def ensure_path(path: str) -> None:
    """Create the directory ``path`` (and its parents) unless it exists."""
    os.makedirs(path, exist_ok=True)


def ensure_file(path: str, data: bytes = b"", mode: int | None = None) -> None:
    """Create ``path`` with ``data`` unless it exists; written atomically."""
    if os.path.exists(path):
        return
    parent = os.path.dirname(path)
    if parent:
        ensure_path(parent)
    with AtomicFile(path) as file:
        file.write(data)
    if mode is not None:
        os.chmod(path, mode)


class AtomicFile:
    """A file that appears under its name only once it is complete.

    Data goes to ``<path>.partial.<pid>``; :meth:`close` flushes, syncs (unless ``sync`` is
    false) and renames it to ``path``. If the task dies first (or the object is dropped
    without ``close``), no half-written file is ever seen under ``path``. :meth:`abort`
    drops the partial file.
    """

    def __init__(self, path: str, buffering: int = 1 << 16, sync: bool = True) -> None:
        self.path = path
        self.sync = sync
        parent = os.path.dirname(path)
        if parent:
            ensure_path(parent)
        self.partial = f"{path}.partial.{os.getpid()}"
        try:
            self.file = open(self.partial, "wb", buffering=buffering)
        except OSError as exc:
            raise DataError(f"cannot create output file: {exc}", path) from exc
        self.isopen = True
        self.size = 0

    def write(self, data: bytes) -> int:
        written = self.file.write(data)
        self.size += len(data)
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.file.flush()

    def fileno(self) -> int:
        return self.file.fileno()

    def tell(self) -> int:
        return self.file.tell()

    @property
    def closed(self) -> bool:
        return not self.isopen

    def close(self) -> None:
        if not self.isopen:
            return
        self.isopen = False
        self.file.flush()
        if self.sync:
            os.fsync(self.file.fileno())
        self.file.close()
        os.rename(self.partial, self.path)

    def abort(self) -> None:
        if self.isopen:
            self.isopen = False
            self.file.close()
        try:
            os.unlink(self.partial)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # Dropped without close(): the output is incomplete, so it must not appear.
        if getattr(self, "isopen", False):
            self.abort()


class DiscoZipFile(zipfile.ZipFile):
    """An in-memory zip archive, for job homes."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        super().__init__(self.buffer, "w", zipfile.ZIP_DEFLATED)

    def writebytes(self, name: str, data: bytes | str, executable: bool = False) -> None:
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        mode = 0o755 if executable else 0o644
        info.external_attr = (stat.S_IFREG | mode) << 16
        self.writestr(info, data)

    def writepath(self, path: str, arcname: str | None = None,
                  exclude: tuple[str, ...] = (".pyc", ".pyo")) -> None:
        """Add a file, or a directory tree, keeping file modes."""
        arcname = arcname or os.path.basename(path.rstrip("/"))
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = [d for d in dirs if d != "__pycache__"]
                for name in files:
                    if name.endswith(exclude):
                        continue
                    full = os.path.join(root, name)
                    rel = os.path.relpath(full, path)
                    self.write(full, os.path.join(arcname, rel))
        else:
            self.write(path, arcname)

    def dumps(self) -> bytes:
        if self.fp is not None:
            self.close()
        return self.buffer.getvalue()


CHUNK_SIZE = 64 << 20  # `ddfs chunk` makes blobs of about this many bytes (before compression)


class Chunker:
    """Disco's ``Chunker``: records in Disco's record format, cut into pieces of about
    ``chunk_size`` bytes that each begin at a record (:func:`disco.ddfs.chunks`, as files)."""

    def __init__(self, chunk_size: int = CHUNK_SIZE,
                 max_record_size: int = MAX_RECORD_SIZE) -> None:
        self.chunk_size = chunk_size
        self.max_record_size = max_record_size

    def chunks(self, records: Iterable[Any]) -> Iterator[io.BytesIO]:
        from disco.ddfs import chunks  # here: it loads the HTTP client, which tasks rarely need
        for data in chunks(records, self.chunk_size, self.max_record_size):
            yield io.BytesIO(data)
