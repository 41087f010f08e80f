"""A task's inputs as the INPUT reply lists them, and reading one from its replicas."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

from disco.error import DataError

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

    ``open_batches(url)`` gives the records at one replica URL, in lists. When a replica
    fails (DataError or OSError, before or during the read), the next one is tried and the
    records already handed on are skipped. When all have failed the node is told (INPUT_ERR)
    and answers with new replicas (RETRY), a pause (WAIT), or FAIL, which ends the task with
    a DataError so that the master retries it (regenerating the input if need be).

    Records are handed on a whole list at a time, so a replica failing in the middle of a
    list loses nothing (the list is read again elsewhere), and iterating takes no Python
    step per record.
    """

    def __init__(self, worker: "Worker", task_input: TaskInput,
                 open_batches: Callable[[str], Iterator[list[Any]]]) -> None:
        self.worker = worker
        self.input = task_input
        self.open_batches = open_batches

    def __iter__(self) -> Iterator[Any]:
        return chain.from_iterable(self.batches())

    def batches(self) -> Iterator[list[Any]]:
        replicas = list(self.input.replicas)
        consumed = 0
        while True:
            failed: list[int] = []
            error: Exception | None = None
            for rep_id, url in replicas:
                try:
                    skip = consumed  # what an earlier replica already handed on
                    for batch in self.open_batches(url):
                        if skip:
                            if len(batch) <= skip:
                                skip -= len(batch)
                                continue
                            batch, skip = batch[skip:], 0
                        consumed += len(batch)
                        yield batch
                    return
                except (DataError, OSError) as exc:
                    failed.append(rep_id)
                    error = exc
                    self.worker.msg(f"WARNING: input {self.input.id} replica {url} failed "
                                    f"after {consumed} records: {exc}")
            replicas = self.worker.input_failed(self.input, failed, error)
