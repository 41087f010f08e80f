"""A task's inputs as the INPUT reply lists them, and reading one from its replicas."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from disco.error import DataError

READ_BATCH = 1024  # records read from a replica before they are handed on

if TYPE_CHECKING:
    from disco.worker import Worker


@dataclass
class TaskInput:
    """One input of the task, as the INPUT reply gave it."""

    id: int
    status: str
    label: Any
    replicas: list[tuple[int, str]]

    @property
    def isindex(self) -> bool:
        return bool(self.replicas) and self.replicas[0][1].startswith("dir://")

    @property
    def urls(self) -> list[str]:
        return [url for _rid, url in self.replicas]


class ReplicaReader:
    """The records of one task input, read from its replicas in turn.

    ``open_records(url)`` gives the records at one replica URL. When a replica fails
    (DataError or OSError, before or during the read), the next one is tried and the records
    already handed on are skipped. When all have failed the node is told (INPUT_ERR) and
    answers with new replicas (RETRY), a pause (WAIT), or FAIL, which ends the task with a
    DataError so that the master retries it (regenerating the input if need be).
    """

    def __init__(self, worker: "Worker", task_input: TaskInput,
                 open_records: Callable[[str], Iterator[Any]]) -> None:
        self.worker = worker
        self.input = task_input
        self.open_records = open_records

    def __iter__(self) -> Iterator[Any]:
        replicas = list(self.input.replicas)
        consumed = 0
        while True:
            failed: list[int] = []
            error: Exception | None = None
            for rep_id, url in replicas:
                try:
                    records = iter(self.open_records(url))
                    if consumed:
                        next(islice(records, consumed, consumed), None)  # skip what was read
                    while True:
                        # Read a batch, then hand it on: a replica failing mid-batch loses
                        # nothing (the batch is read again elsewhere), and records are
                        # counted per batch, not one by one.
                        batch = list(islice(records, READ_BATCH))
                        if not batch:
                            return
                        consumed += len(batch)
                        yield from batch
                except (DataError, OSError) as exc:
                    failed.append(rep_id)
                    error = exc
                    self.worker.msg(f"WARNING: input {self.input.id} replica {url} failed "
                                    f"after {consumed} records: {exc}")
            replicas = self.worker.input_failed(self.input, failed, error)
