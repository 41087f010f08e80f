"""Exceptions of Disco's Map/Reduce API (``from disco.error import DataError``).

How a worker reports them to the master decides what happens next:

- :class:`DataError` (and so :class:`CommError`), ``OSError`` and ``MemoryError`` raised in a
  task are sent as ``ERROR``: the task is retried, on another node if possible.
- Anything else is sent as ``FATAL`` and ends the whole job.
"""

from __future__ import annotations

from typing import Any


class DiscoError(Exception):
    """The base of every Disco Map/Reduce error."""

    def __str__(self) -> str:
        return " ".join(str(arg) for arg in self.args) if self.args else self.__class__.__name__


class JobError(DiscoError):
    """A job failed, or could not be submitted, waited for or found.

    ``job`` is a :class:`disco.job.Job` or a job name; ``message`` says what went wrong.
    """

    def __init__(self, job: Any, message: str) -> None:
        super().__init__(job, message)
        self.job = job
        self.message = message

    @property
    def name(self) -> str:
        return str(getattr(self.job, "name", self.job))

    def __str__(self) -> str:
        return f"Job {self.name} failed: {self.message}"


class DataError(DiscoError):
    """Input data could not be read: raising it in a task makes the master retry the task.

    ``url`` names the data that failed; ``code`` is an HTTP status when there is one.
    """

    def __init__(self, msg: str, url: Any = None, code: int | None = None) -> None:
        super().__init__(msg, url)
        self.msg = msg
        self.url = url
        self.code = code

    def __str__(self) -> str:
        where = f" ({self.url})" if self.url else ""
        return f"Unable to access resource{where}: {self.msg}"


class CommError(DataError):
    """An HTTP request failed. ``code`` is the HTTP status, or None when nothing answered."""

    def __str__(self) -> str:
        status = f" (HTTP {self.code})" if self.code is not None else ""
        return f"{self.msg}{status}: {self.url}" if self.url else f"{self.msg}{status}"
