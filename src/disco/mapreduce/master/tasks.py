"""A task of a job, as the master tracks it between creation and completion."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field

from disco.mapreduce.master.data import InputRef, Output


class TaskState(enum.Enum):
    PENDING = "pending"   # not runnable yet: waiting for a retry pause or for a lost input
    QUEUED = "waiting"    # runnable, waiting for a free slot
    RUNNING = "running"   # handed to a node
    DONE = "done"


@dataclass(eq=False)
class Task:
    job: str
    stage: str
    taskid: int
    grouping: str
    group: tuple[int, str | None]
    inputs: list[InputRef] = field(default_factory=list)
    inputs_done: bool = True          # False while a concurrent stage may still add inputs
    state: TaskState = TaskState.PENDING
    attempt: int = 0                  # increases each time the task is handed to a node
    host: str | None = None           # where the current attempt runs or ran
    failures: int = 0
    blacklist: set[str] = field(default_factory=set)
    outputs: list[Output] = field(default_factory=list)
    completions: int = 0
    waiting_on: set[int] = field(default_factory=set)   # producers being re-run for us
    waiters: set[int] = field(default_factory=set)      # consumers waiting for our re-run
    queue_token: int = 0              # invalidates stale entries in the scheduler's queues
    preferred: list[str] = field(default_factory=list)  # hosts holding its input, best first
    retry_timer: asyncio.TimerHandle | None = None
    started_at: float = 0.0
    # Concurrent-stage tasks whose node waits for more inputs.
    input_watchers: list[asyncio.Future[None]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, int]:
        return (self.job, self.taskid)

    @property
    def name(self) -> str:
        return f"{self.stage}:{self.taskid}"

    def notify_inputs(self) -> None:
        watchers, self.input_watchers = self.input_watchers, []
        for fut in watchers:
            if not fut.done():
                fut.set_result(None)
