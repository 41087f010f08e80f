"""A task's outputs: OUTPUT messages turned into the task's `.results` index and result list.

A relative path is a local output: one line `<label> disco://<host>/disco/<job path>/<path>
<size>` in `<jobhome>/.disco/<stage>-<taskid>-<µs>.results`, and the task's result is that
index as `dir://<host>/disco/<job path>/.disco/...results`. A URL is a remote output, passed on
as it is. An absolute path is refused.
"""

from __future__ import annotations

import os
import posixpath
import time
from pathlib import Path
from typing import IO, Any

from disco.mapreduce.urls import job_path


class OutputError(Exception):
    """An output the task may not declare; the task fails (and is retried)."""


class ResultsIndex:
    def __init__(self, jobhome: Path, host: str, jobname: str, stage: str, taskid: int,
                 sync: bool = True) -> None:
        self.jobhome = jobhome
        self.sync = sync  # the job's results: made durable; a later stage's input: not
        self.host = host
        self.prefix = f"{host}/disco/{job_path(host, jobname)}"
        self.stage = stage
        self.taskid = taskid
        self.labels: dict[int, int] = {}
        self.remote: list[dict[str, Any]] = []
        self._file: IO[str] | None = None
        self._name = ""

    def add(self, label: int, location: str, size: int) -> None:
        if "://" in location:
            self.remote.append({"data": [label, size, [location]]})
            return
        if location.startswith("/"):
            raise OutputError(f"output {location!r} is an absolute path; outputs are relative "
                              "to the job home")
        rel = posixpath.normpath(location)
        if rel == ".." or rel.startswith("../"):
            raise OutputError(f"output {location!r} is outside the job home")
        if self._file is None:
            self._name = f".disco/{self.stage}-{self.taskid}-{time.time_ns() // 1000}.results"
            path = self.jobhome / self._name
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "w", encoding="utf-8")
        self._file.write(f"{label} disco://{self.prefix}/{rel} {size}\n")
        self.labels[label] = self.labels.get(label, 0) + size

    @property
    def writing(self) -> bool:
        """Whether the task declared a local output (and `close` has an index to write)."""
        return self._file is not None

    def close(self) -> list[dict[str, Any]]:
        """Write the index out (durably for results) and return the task's outputs as the
        master wants them."""
        outputs: list[dict[str, Any]] = []
        if self._file is not None:
            self._file.flush()
            if self.sync:
                os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            outputs.append({"dir": [self.host, f"dir://{self.prefix}/{self._name}",
                                    sorted([lab, size] for lab, size in self.labels.items())]})
        return outputs + self.remote

    def abandon(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
