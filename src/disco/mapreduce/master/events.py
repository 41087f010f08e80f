"""A job's event log: JSON lines `["<ts>","<host>","<msg>"]` in `<jobdir>/events`.

Lines are buffered in memory and appended to the file by `flush()`, which the master calls
periodically, before serving the raw log and when the job ends, so that a busy job costs one
small write now and then rather than one per event. The newest lines are also kept in memory for
`jobevents` and the web page.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

from disco.mapreduce.timefmt import event_timestamp

RECENT_EVENTS = 1000
RECENT_TAIL_BYTES = 256 * 1024


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: list[str] = []
        self.recent: deque[tuple[str, str, str]] = deque(maxlen=RECENT_EVENTS)
        self.count = 0
        self.closed = False

    def add(self, host: str, msg: str) -> None:
        if self.closed:
            return  # events reported after the job ended do not belong in its log
        event = (event_timestamp(), host, msg)
        self.recent.append(event)
        self._pending.append(json.dumps(list(event), ensure_ascii=False) + "\n")
        self.count += 1

    def load_recent(self) -> None:
        """After a restart: the newest lines of the log on disk, for `jobevents` and the page
        (only its tail is read; searches past it read the file)."""
        try:
            with open(self.path, "rb") as f:
                size = f.seek(0, 2)
                f.seek(max(0, size - RECENT_TAIL_BYTES))
                data = f.read()
        except OSError:
            return
        lines = data.split(b"\n")
        if size > RECENT_TAIL_BYTES:
            lines = lines[1:]  # the first may be cut
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, list) and len(event) == 3:
                self.recent.append((str(event[0]), str(event[1]), str(event[2])))
                self.count += 1
        if size > RECENT_TAIL_BYTES:
            self.count += 1  # more than `recent` holds: searches read the file

    def flush(self) -> None:
        if not self._pending:
            return
        data, self._pending = "".join(self._pending), []
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(data)
        except OSError:
            # The job's folder was purged under us; nothing left to log to.
            pass

    def close(self) -> None:
        self.flush()
        self.closed = True

    def raw(self, offset: int = 0) -> bytes:
        self.flush()
        try:
            with open(self.path, "rb") as f:
                f.seek(max(0, offset))
                return f.read()
        except OSError:
            return b""

    def last(self, num: int, query: str = "") -> list[list[str]]:
        """Newest first, at most `num`, those whose message contains `query` (any case)."""
        q = query.lower()
        out: list[list[str]] = []
        for event in reversed(self.recent):
            if len(out) >= num:
                break
            if not q or q in event[2].lower() or q in event[1].lower():
                out.append(list(event))
        if q and len(out) < num and self.count > len(self.recent):
            out = self._grep_file(q, num)
        return out

    def _grep_file(self, q: str, num: int) -> list[list[str]]:
        matches: deque[list[str]] = deque(maxlen=num)
        for line in self.raw().decode("utf-8", "replace").splitlines():
            if q in line.lower():
                try:
                    matches.append(json.loads(line))
                except ValueError:
                    continue
        return list(reversed(matches))
