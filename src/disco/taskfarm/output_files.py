"""The projects' output files (a files-output project's units, one file each), written by the
farm's loop, not by the transaction that assimilates their units: that transaction only queues
its files (before it commits), and the loop, once a second, writes everything queued and
flushes it to disk with one flush. Creating each file inside the group commit cost its writer
more than the commit's database work: on ext4 a new file waits for the journal the database's
own commit flushes (docs/benchmarks.md).

The database is the record, and the files are rebuilt from it. A unit's canonical output stays
in the database (its instance's output, which `results` reads), so it is durable at the commit.
A project is done only once its files are written and flushed (Farm.tick). After each flush a
mark file says "every output written before this time is on disk"; at start, before the server
answers anyone, `recover` compares each unit assimilated since shortly before the mark
(MARGIN_S: a unit's time is taken when its transaction begins) with its file, and writes again
any file that a crash took away, cut short or never wrote, and removes temporary files a crash
left."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select

from disco.taskfarm.durable_files import flush, write_durably, write_renamed
from disco.taskfarm.models import Instance, Project, Unit
from disco.taskfarm.store import FarmStore

U = Unit.__table__
I = Instance.__table__
P = Project.__table__
MARK = ".flushed"
MARGIN_S = 600.0
MAX_QUEUED = 20_000  # files, or
MAX_QUEUED_BYTES = 64 << 20  # bytes, waiting for the loop


class OutputFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._queued: list[tuple[Path, bytes]] = []
        self._queued_bytes = 0
        self._lock = threading.Lock()  # the group committer queues, the loop writes
        self._flushing = threading.Lock()  # one flush at a time: marks in order

    def queue(self, staged: Sequence[tuple[Path, bytes]]) -> None:
        """Each (path, bytes) to be written whole at the next flush (a transaction's, just
        before it commits: one that then fails to commit may leave a file for a unit that is
        not assimilated, holding the bytes a later assimilation writes again). When the loop
        falls that far behind, the caller flushes (memory stays bounded)."""
        with self._lock:
            self._queued.extend(staged)
            self._queued_bytes += sum(len(data) for _, data in staged)
            behind = len(self._queued) > MAX_QUEUED or self._queued_bytes > MAX_QUEUED_BYTES
        if behind:
            self.flush()

    def flush(self) -> None:
        """Everything queued so far written and on disk, then the mark that says so."""
        with self._flushing:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            queued, self._queued, self._queued_bytes = self._queued, [], 0
        if not queued:
            return
        started = time.time()
        try:
            for parent in {path.parent for path, _ in queued}:
                parent.mkdir(parents=True, exist_ok=True)
            for path, data in queued:
                write_renamed(path, data)
            flush([path for path, _ in queued])
        except BaseException:
            with self._lock:  # tried again at the next flush (the same bytes to the same names)
                self._queued[:0] = queued
                self._queued_bytes += sum(len(data) for _, data in queued)
            raise
        self._mark(started)

    def _mark(self, before: float) -> None:
        write_durably([(self.root / MARK, json.dumps({"written_before": before}).encode())])

    def flushed_before(self) -> float | None:
        try:
            return float(json.loads((self.root / MARK).read_bytes())["written_before"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # no mark (a new farm, or one from before marks): every unit is checked

    def recover(self, store: FarmStore) -> int:
        """Files of recently assimilated units that are missing or differ from the database's
        canonical output written again, and temporary files a crash left removed; then flushed.
        Answers how many files it wrote."""
        for leftover in self.root.glob("*/.tmp-*"):
            leftover.unlink(missing_ok=True)
        started = time.time()
        mark = self.flushed_before()
        since = float("-inf") if mark is None else mark - MARGIN_S
        query = (select(U.c.output_path, I.c.output).join(I, I.c.id == U.c.canonical_instance_id)
                 .join(P, P.c.id == U.c.project_id)
                 .where(U.c.state == "assimilated", P.c.output.is_(None), U.c.updated_at >= since))
        with store.session() as s:
            rows = s.execute(query).all()
        missing = [(Path(path), output or b"") for path, output in rows
                   if path and not _holds(Path(path), output or b"")]
        self.queue(missing)
        self.flush()
        # The files that were there may not be on disk yet (a server killed, not the machine).
        flush([Path(path) for path, _ in rows if path])
        if self.root.exists():
            self._mark(started)
        return len(missing)


def _holds(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False
