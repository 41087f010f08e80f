"""A job's runnable tasks, indexed for data locality.

Each queued task sits in the queue of every host holding its input and in the `anywhere` queue.
A free slot on host H first takes a task from H's own queue; a task leaves for another host only
when none of the hosts holding its input has a free slot (or force_local/force_remote say
otherwise). Entries are invalidated lazily: a task re-queued or dispatched bumps its
`queue_token`, and entries with an old token are dropped when met.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Mapping

from disco.mapreduce.master.tasks import Task, TaskState

# How far down the anywhere-queue one remote pick looks; past it, tasks that cannot run on the
# host at hand (blacklisted there, or waiting for their own host) are left for a later round.
SCAN_LIMIT = 2000

Entry = tuple[int, Task]


class JobQueue:
    def __init__(self, force_local: bool = False, force_remote: bool = False) -> None:
        self.by_host: defaultdict[str, deque[Entry]] = defaultdict(deque)
        self.anywhere: deque[Entry] = deque()
        self.force_local = force_local
        self.force_remote = force_remote

    def push(self, task: Task) -> None:
        task.queue_token += 1
        entry = (task.queue_token, task)
        if not self.force_remote:
            for host in task.preferred:
                self.by_host[host].append(entry)
        self.anywhere.append(entry)

    def clear(self) -> None:
        self.by_host.clear()
        self.anywhere.clear()

    @staticmethod
    def _live(entry: Entry) -> bool:
        token, task = entry
        return task.state is TaskState.QUEUED and token == task.queue_token

    @staticmethod
    def _avoids(task: Task, host: str, usable: set[str]) -> bool:
        """Whether the task must keep off `host`. A blacklist that now covers every usable host
        (nodes lost or blacklisted since it was made) is forgotten, or the task could wait
        forever."""
        if host not in task.blacklist:
            return False
        if usable <= task.blacklist:
            task.blacklist.clear()
            return False
        return True

    def pop_local(self, host: str, usable: set[str]) -> Task | None:
        q = self.by_host.get(host)
        while q:
            entry = q.popleft()
            task = entry[1]
            if self._live(entry) and not self._avoids(task, host, usable):
                return task
        return None

    def pop_remote(self, host: str, free: Mapping[str, int], connected: set[str],
                   usable: set[str]) -> Task | None:
        skipped: list[Entry] = []
        found: Task | None = None
        scanned = 0
        while self.anywhere and scanned < SCAN_LIMIT:
            entry = self.anywhere.popleft()
            if not self._live(entry):
                continue
            scanned += 1
            task = entry[1]
            if self._can_take(task, host, free, connected, usable):
                found = task
                break
            skipped.append(entry)
        self.anywhere.extendleft(reversed(skipped))
        return found

    def _can_take(self, task: Task, host: str, free: Mapping[str, int], connected: set[str],
                  usable: set[str]) -> bool:
        if self._avoids(task, host, usable):
            return False
        homes = [h for h in task.preferred if h not in task.blacklist]
        if self.force_remote:
            return host not in homes or all(h == host for h in connected)
        if not homes or host in homes:
            return True
        if any(free.get(h, 0) > 0 for h in homes):
            return False  # a host holding the data has room: it will take it
        if self.force_local:
            # Wait for the data's own host, unless none of them is still with us.
            return not any(h in connected for h in homes)
        return True
