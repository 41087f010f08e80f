"""A running task's inputs as the worker sees them through INPUT and INPUT_ERR.

Replicas on this node come first (the worker reads them from its own disk; another node's are
read over HTTP, through that node's data server); replicas a worker reported as failing go to
the back of the list (oldest failure first), so a worker that asks again tries fresh ones
first; an input none of whose replicas is left is remembered, with the hosts it was on, so the
master can make it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from disco.mapreduce.urls import url_host


@dataclass
class Replica:
    rep_id: int
    url: str
    failed_at: float = 0.0


@dataclass
class WorkerInput:
    iid: int
    label: int | str
    replicas: list[Replica] = field(default_factory=list)

    def ordered(self, local_host: str | None = None) -> list[list[Any]]:
        reps = sorted(self.replicas, key=lambda r: (r.failed_at, url_host(r.url) != local_host, r.rep_id))
        return [[r.rep_id, r.url] for r in reps]


class TaskInputs:
    def __init__(self, entries: list[list[Any]], done: bool, local_host: str | None = None) -> None:
        self.items: dict[int, WorkerInput] = {}
        self.local_host = local_host
        self.done = done
        self.failed: dict[int, list[str]] = {}  # input id -> hosts it could not be read from
        self.add(entries)

    @property
    def known(self) -> int:
        return len(self.items)

    def add(self, entries: list[list[Any]]) -> None:
        """Entries as the master sends them: [input_id, label, [[rep_id, url], ...]]."""
        for iid, label, reps in entries:
            self.items[int(iid)] = WorkerInput(int(iid), label,
                                               [Replica(int(r), str(u)) for r, u in reps])

    def listing(self, include: list[int] | None = None,
                exclude: list[int] | None = None) -> list[list[Any]]:
        """The INPUT reply's input list."""
        if include is not None:
            ids = [i for i in include if i in self.items]
        else:
            skip = set(exclude or ())
            ids = [i for i in sorted(self.items) if i not in skip]
        # Disco always says "ok": a worker learns of dead replicas through INPUT_ERR.
        return [[iid, "ok", self.items[iid].label, self.items[iid].ordered(self.local_host)]
                for iid in ids]

    def report_failure(self, iid: int, rep_ids: list[int]) -> list[list[Any]]:
        """INPUT_ERR: the replicas still worth trying (empty: the input is lost)."""
        item = self.items.get(iid)
        if item is None:
            return []
        now = time.monotonic()
        bad = set(rep_ids)
        for rep in item.replicas:
            if rep.rep_id in bad:
                rep.failed_at = now
        left = [pair for pair in item.ordered(self.local_host) if pair[0] not in bad]
        if not left:
            self.failed[iid] = sorted({h for r in item.replicas if (h := url_host(r.url))})
        return left

    def failures(self) -> list[list[Any]]:
        return [[iid, hosts] for iid, hosts in sorted(self.failed.items())]
