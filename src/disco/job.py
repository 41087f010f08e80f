"""Disco jobs: ``Job(...).run(input=..., map=..., reduce=...)`` builds a job pack and submits it.

    from disco.job import Job
    results = Job().run(input=["http://host/file"], map=fun_map).wait()

Parameters resolve as jobargs (given to :meth:`Job.run`) first, then attributes of the Job
(sub)class, then the worker's defaults, so a ``Job`` subclass with ``@staticmethod`` map and
reduce and class attributes such as ``partitions = 4`` is a reusable job. Job functions are
cloudpickled, so lambdas, closures, ``functools.partial`` objects and functions or Job
subclasses defined in ``__main__`` all work; the user's own modules they use are shipped in
the job home.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from disco.error import JobError
from disco.jobpack import JobPack  # noqa: F401  (Disco users import JobPack from here)
from disco.jobpack import VERSION_CLASSIC as JOBPACK_VERSION1  # noqa: F401
from disco.jobpack import VERSION_PIPELINE as JOBPACK_VERSION2  # noqa: F401
from disco.settings import DiscoSettings
from disco.util import chainify, iterify
from disco.worker.classic.worker import Worker as ClassicWorker


class Job:
    """A Disco job: ``Job(name=None, master=None, worker=None, settings=None)``.

    ``name`` is the prefix of the name the master gives the job (``<name>@<timestamp>``),
    the class name by default; after :meth:`run`, :attr:`name` is the full name. ``master``
    is a URL or a :class:`disco.core.Disco`. ``worker`` defaults to ``self.Worker()``.

    These :class:`disco.core.Disco` methods are available with the job name filled in:
    ``clean, events, jobinfo, jobpack, kill, mapresults, oob_get, oob_list, profile_stats,
    purge, results, stageresults, wait``.
    """

    Worker = ClassicWorker
    proxy_functions = ("clean", "events", "kill", "jobinfo", "jobpack", "oob_get", "oob_list",
                       "profile_stats", "purge", "results", "mapresults", "stageresults",
                       "wait")

    def __init__(self, name: str | None = None, master: Any = None, worker: Any = None,
                 settings: DiscoSettings | None = None) -> None:
        from disco.core import Disco
        self.name = name or type(self).__name__
        self.settings = settings or DiscoSettings()
        self.disco = master if isinstance(master, Disco) else Disco(master, settings=self.settings)
        self.worker = worker if worker is not None else self.Worker()

    @property
    def master(self) -> str:
        return self.disco.master

    def __getattr__(self, attr: str) -> Any:
        if attr in type(self).proxy_functions:
            return partial(getattr(self.disco, attr), self.name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def run(self, **jobargs: Any) -> "Job":
        """Build the job pack from ``jobargs`` and submit it; returns the job, now named."""
        jobpack = self.worker.jobpack(self, **jobargs)
        self.name = self.disco.submit(jobpack.dumps())
        return self


class JobChain(dict):
    """Jobs and their inputs, run as their inputs become ready.

    ``JobChain({a: urls, b: urls, c: [a, b]}).wait()`` runs ``a`` and ``b`` at once and ``c``
    on the results of both once they are ready.
    """

    def wait(self, poll_interval: float = 1) -> "JobChain":
        while sum(self.walk()) < len(self):
            time.sleep(poll_interval)
        return self

    def walk(self) -> Any:
        for job in self:
            status, _results = job.results() if _submitted(job) else ("unknown job", [])
            if status == "unknown job":
                inputs = chainify(self.inputs(job))
                if not any(i is None for i in inputs):
                    job.run(input=inputs)
            elif status == "active":
                pass
            elif status == "ready":
                yield 1
            else:
                raise JobError(job, f"Status {status}")

    def inputs(self, job: Job) -> Any:
        for item in iterify(self[job]):
            if isinstance(item, Job):
                if not _submitted(item):
                    yield [None]
                    continue
                status, results = item.results()
                if status in ("unknown job", "active"):
                    yield [None]
                elif status == "ready":
                    yield results
                else:
                    raise JobError(item, f"Status {status}")
            else:
                yield [item]

    def purge(self) -> None:
        for job in self:
            if _submitted(job):
                job.purge()

    def __hash__(self) -> int:  # type: ignore[override]
        return id(self)


def _submitted(job: Job) -> bool:
    """A job has a master-given name (``prefix@...``) once it has been run."""
    return "@" in str(job.name)


class SimpleJob(Job):
    """Kept for scripts that import it; it is the classic job."""
