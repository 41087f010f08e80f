"""The nodes the master knows: their slots, health, and what they have been told to do.

A node is *connected* from its registration until it stops polling for `node_timeout` seconds;
a node that comes back must register again (a new session), because in the meantime its tasks
have been given to others. Assignments and orders wait in the node's outbox until its next poll
takes them; `wake()` ends a poll that is waiting so they leave at once.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from disco.mapreduce.master.tasks import Task


@dataclass(eq=False)
class NodeState:
    host: str
    declared_slots: int
    slots: int
    session: str
    port: int = 0
    put_port: int = 0  # where it takes DDFS uploads; 0: it stores no DDFS data
    connected: bool = True
    blacklisted: bool = False
    last_seen: float = field(default_factory=time.monotonic)
    poll_seq: int = 0
    running: dict[tuple[str, int], Task] = field(default_factory=dict)
    delivered: dict[tuple[str, int], int] = field(default_factory=dict)  # task -> poll seq
    outbox: list[dict[str, Any]] = field(default_factory=list)
    kill_tasks: list[list[Any]] = field(default_factory=list)   # [job, taskid, attempt]
    kill_jobs: set[str] = field(default_factory=set)
    purge_jobs: set[str] = field(default_factory=set)
    job_ok: int = 0
    data_error: int = 0
    error: int = 0
    diskfree: int = 0
    diskused: int = 0
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def free_slots(self) -> int:
        return self.slots - len(self.running)

    @property
    def usable(self) -> bool:
        return self.connected and not self.blacklisted

    def has_orders(self) -> bool:
        return bool(self.outbox or self.kill_tasks or self.kill_jobs or self.purge_jobs)

    def wake(self) -> None:
        self._wakeup.set()

    async def wait_for_orders(self, timeout: float) -> None:
        if self.has_orders():
            return
        self._wakeup.clear()
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except TimeoutError:
            pass

    def take_orders(self, seq: int) -> dict[str, Any]:
        assignments, self.outbox = self.outbox, []
        for a in assignments:
            self.delivered[(a["job"], a["taskid"])] = seq
        orders = {
            "slots": self.slots,
            "tasks": assignments,
            "kill_tasks": self.kill_tasks,
            "kill_jobs": sorted(self.kill_jobs),
            "purge_jobs": sorted(self.purge_jobs),
        }
        self.kill_tasks, self.kill_jobs, self.purge_jobs = [], set(), set()
        return orders

    def info(self) -> dict[str, Any]:
        """Disco's nodeinfo entry for this node."""
        return {
            "job_ok": self.job_ok, "data_error": self.data_error, "error": self.error,
            "max_workers": self.slots, "connected": self.connected,
            "blacklisted": self.blacklisted, "tasks": [list(k) for k in self.running],
            "diskfree": self.diskfree, "diskused": self.diskused,
        }


class NodeRegistry:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeState] = {}

    def register(self, host: str, slots: int, port: int, configured: int | None) -> NodeState:
        old = self.nodes.get(host)
        node = NodeState(host=host, declared_slots=slots,
                         slots=configured if configured is not None else slots,
                         session=secrets.token_hex(8), port=port)
        if old is not None:
            node.blacklisted = old.blacklisted
            node.job_ok, node.data_error, node.error = old.job_ok, old.data_error, old.error
            old.wake()  # a poll of the old session may still be waiting: let it go
        self.nodes[host] = node
        return node

    def mark_lost(self, host: str) -> None:
        """A host known from before a restart that has not come back: lost, as if it had
        stopped polling (it may still register later)."""
        if host not in self.nodes:
            self.nodes[host] = NodeState(host=host, declared_slots=0, slots=0, session="",
                                         connected=False)

    def session(self, host: str, session: str) -> NodeState | None:
        node = self.nodes.get(host)
        if node is None or node.session != session or not node.connected:
            return None
        return node

    def usable(self) -> list[NodeState]:
        return [n for n in self.nodes.values() if n.usable]

    def connected_hosts(self) -> set[str]:
        return {h for h, n in self.nodes.items() if n.connected}

    def unreachable(self, host: str) -> bool:
        """A host we know and have lost; hosts we never heard of may be anything (a web
        server, say), so they count as reachable."""
        node = self.nodes.get(host)
        return node is not None and not node.connected
