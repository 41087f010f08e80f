"""What the master keeps on disk so that a restart (even after kill -9) loses no job.

Per job, in `jobs/<hh>/<jobname>/`:

- `jobpack`: the submitted pack, synced (file and folders) before the job is named;
- `journal`: JSON lines, appended while the job runs: `{"ev": "submitted", "time": T}` first,
  then one `{"ev": "done", "task": id, "stage": S, "group": [label, host], "host": H,
  "outputs": [...]}` per task end the master accepted (outputs as `data.output_to_json`);
- `final.json`: written (atomically) when the job ends: its status, results, stage counts and
  what `jobinfo` shows. The journal is deleted then: a finished job's state is this file, so
  journals never grow past one running job's task ends (that is the compaction).

Lines are gathered for the rest of the event loop's turn and then written with one `os.write`
per journal (in the page cache: a killed process loses nothing written), and made durable against a machine crash by group commit: `Durability.sync()` waits
for one fsync of every journal written since the last, shared by every caller waiting at the
time, in a thread, so the event loop never blocks on a disk. Blocking file operations that
must happen in order with the journal (the final state, moving a cleaned job away) are queued
with `later()` and run by the same thread before its fsyncs.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

JOURNAL = "journal"
FINAL = "final.json"
TRASH = ".trash"  # cleaned jobs' folders go here (one rename), then are deleted

_encode = json.JSONEncoder(separators=(",", ":")).encode  # one encoder: dumps(**kw) makes one a call


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all: a temporary file, synced, renamed, folder synced."""
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    fsync_dir(path.parent)


def write_pack(jobs_root: Path, jobdir: Path, body: bytes) -> None:
    """The job pack, synced with every folder on the way to it (new ones included)."""
    jobdir.mkdir(parents=True, exist_ok=True)
    write_durably(jobdir / "jobpack", body)
    fsync_dir(jobdir.parent)
    fsync_dir(jobs_root)


def move_to_trash(jobs_root: Path, jobdir: Path) -> Path | None:
    """Take a job's folder out of what a restart resumes, in one durable rename; the caller
    deletes what is returned at leisure (and a restart empties the trash)."""
    trash = jobs_root / TRASH
    trash.mkdir(exist_ok=True)
    dest = trash / uuid.uuid4().hex
    try:
        jobdir.replace(dest)
    except FileNotFoundError:
        return None
    fsync_dir(jobdir.parent)
    return dest


def empty_trash(jobs_root: Path) -> None:
    shutil.rmtree(jobs_root / TRASH, ignore_errors=True)


class JobJournal:
    """One job's journal file, open for appending."""

    def __init__(self, path: Path, fresh: bool) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.fresh = fresh  # its folder entry still needs a sync
        self.closing = False  # set on the loop's thread: nothing more is written
        self.closed = False
        self.lines: list[str] = []  # appended, not yet written

    def write(self, record: dict[str, Any]) -> None:
        os.write(self.fd, (_encode(record) + "\n").encode())

    def write_lines(self) -> None:
        lines, self.lines = self.lines, []
        if lines:
            os.write(self.fd, "".join(lines).encode())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The records of a journal; a torn last line (a crash mid-write) is cut off the file, so
    that appending goes on after the last whole record."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    records = []
    for line in data[:end].splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            break  # nothing after a damaged line can be trusted to follow it
        if isinstance(record, dict):
            records.append(record)
    return records


def read_final(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class Durability:
    """Group commit of the journals (see the module docstring)."""

    def __init__(self) -> None:
        self._dirty: set[JobJournal] = set()
        self._ops: list[Callable[[], None]] = []
        self._written = 0   # bumped by every write and queued operation
        self._synced = 0    # the last `_written` a finished sync covered
        self._inflight: asyncio.Future[None] | None = None
        self._unwritten: set[JobJournal] = set()
        self._write_scheduled = False
        self.syncs = 0      # fsync rounds so far (for tests and benchmarks)

    def append(self, journal: JobJournal, record: dict[str, Any]) -> None:
        """Record a line; it is written at the end of this turn of the event loop (or by the
        next sync), so that a batch of task ends costs one write."""
        if journal.closing:
            return
        journal.lines.append(_encode(record) + "\n")
        self._unwritten.add(journal)
        self._dirty.add(journal)
        self._written += 1
        if not self._write_scheduled:
            self._write_scheduled = True
            asyncio.get_running_loop().call_soon(self.write_out)

    def write_out(self) -> None:
        """Hand what was appended to the kernel (on the loop's thread)."""
        self._write_scheduled = False
        journals, self._unwritten = self._unwritten, set()
        for journal in journals:
            if not journal.closed:
                journal.write_lines()

    def later(self, op: Callable[[], None]) -> None:
        """A blocking file operation, run in order before the next fsync round."""
        self._ops.append(op)
        self._written += 1

    def close(self, journal: JobJournal) -> None:
        """Close once what was written is synced (the sync thread closes it)."""
        self.write_out()
        journal.closing = True
        self.later(journal.close)

    @property
    def pending(self) -> bool:
        return self._synced < self._written

    async def sync(self) -> None:
        """Return once everything written or queued before the call is on disk."""
        self.write_out()
        target = self._written
        while self._synced < target:
            if self._inflight is None:
                self._inflight = asyncio.ensure_future(self._round())
            await asyncio.shield(self._inflight)

    async def _round(self) -> None:
        try:
            self.write_out()
            upto = self._written
            ops, self._ops = self._ops, []
            dirty, self._dirty = self._dirty, set()
            await asyncio.to_thread(_run_round, ops, dirty)
            self._synced = upto
            self.syncs += 1
        finally:
            self._inflight = None

    def flush_now(self) -> None:
        """At shutdown, on the loop's own thread: whatever is queued, done and synced."""
        self.write_out()
        ops, self._ops = self._ops, []
        dirty, self._dirty = self._dirty, set()
        _run_round(ops, dirty)
        self._synced = self._written


def _run_round(ops: list[Callable[[], None]], dirty: set[JobJournal]) -> None:
    # Journals first: an operation may close one (a finished job's), after its final state.
    for journal in dirty:
        if journal.closed:
            continue
        os.fsync(journal.fd)
        if journal.fresh:
            fsync_dir(journal.path.parent)
            journal.fresh = False
    for op in ops:
        op()
