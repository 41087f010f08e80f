"""Files made durable in batches: each written to a temporary name, then renamed to its own, and
flushed to disk together: at once (write_durably), or later, by whoever keeps the list of what it
wrote (write_renamed, then flush: the farm's output files, output_files.py).

On Linux one syncfs(2) on their file system flushes every file and rename of the batch: one
system call a batch. Per-file fsync (the portable way, and the fallback when syncfs is not
there) cost about 28 futex calls a unit in the farm's server — eight threads overlapping the
fsyncs and handing the GIL back and forth — and was two thirds of the server's CPU time
(docs/benchmarks.md). syncfs also flushes whatever else is waiting on that file system, so a
flush may wait for another program's writes; that costs time, never correctness.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_TMP_SEQ = itertools.count()
_FSYNC_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="farm-fsync")


def _load_syncfs():  # type: ignore[no-untyped-def]
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        return None
    syncfs.argtypes = [ctypes.c_int]
    syncfs.restype = ctypes.c_int
    return syncfs


_SYNCFS = _load_syncfs()


def has_syncfs() -> bool:
    return _SYNCFS is not None


def write_durably(staged: Sequence[tuple[Path, bytes]], *, per_file: bool = False) -> None:
    """Each (path, bytes) written atomically (a reader sees the old file or the whole new one)
    and on disk, renames included, when this returns; an OSError otherwise (some may be
    written: the caller's transaction rolls back, and a later pass writes the same bytes to the
    same names). `per_file`: fsync each file and directory even where syncfs is there."""
    if not staged:
        return
    if _SYNCFS is not None and not per_file:
        for path, data in staged:
            write_renamed(path, data)
        flush([path for path, _ in staged])
        return
    list(_FSYNC_POOL.map(lambda item: _write_renamed(*item, sync=True), staged))
    list(_FSYNC_POOL.map(_fsync, {path.parent for path, _ in staged}))


def write_renamed(path: Path, data: bytes) -> None:
    """`path` replaced whole by `data` (a temporary file renamed), not yet flushed: see flush."""
    _write_renamed(path, data, sync=False)


def flush(paths: Sequence[Path]) -> None:
    """Files written by write_renamed, and their renames, on disk when this returns: one syncfs
    of their file system (every path given must be on one), or each file and directory fsynced
    where syncfs is not there. A path gone since (replaced again, say) is skipped."""
    if not paths:
        return
    if _SYNCFS is not None:
        _syncfs(paths[0].parent)
        return
    list(_FSYNC_POOL.map(_fsync_if_there, set(paths)))
    list(_FSYNC_POOL.map(_fsync_if_there, {path.parent for path in paths}))


def _fsync_if_there(path: Path) -> None:
    try:
        _fsync(path)
    except FileNotFoundError:
        pass


def _syncfs(directory: Path) -> None:
    """Flush the file system `directory` is on (every staged path of a commit is on one: the
    server's output directory)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _SYNCFS(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs {directory}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _write_renamed(path: Path, data: bytes, *, sync: bool) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{next(_TMP_SEQ)}-{path.name}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
