"""The running task: what the node's TASK reply said, and the globals job functions see.

Inside a worker process :func:`current_task` is the task being run; job functions also get
``Task`` itself and the helpers below as globals (see :func:`job_globals`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from disco.error import DiscoError
from disco.util import data_err, err, hexhash, msg

if TYPE_CHECKING:
    from disco.worker import Worker


@dataclass
class Task:
    """What the node told the worker in its TASK reply, plus paths for this attempt."""

    host: str = ""
    jobname: str = ""
    master: str = ""
    taskid: int = -1
    stage: str = ""
    grouping: str = ""
    group: tuple[Any, str] = (0, "")
    disco_port: int = 8989
    put_port: int = 8990
    disco_data: str = ""
    ddfs_data: str = ""
    jobfile: str = ""
    jobhome: str = field(default_factory=os.getcwd)
    uid: str = ""
    # Whether the outputs are the job's results (our node says; Disco's does not, and then
    # everything is synced to disk as Disco did).
    final: bool = True
    _made: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.group, list):
            self.group = tuple(self.group)  # type: ignore[assignment]
        if not self.uid:
            self.uid = f"{self.stage}-{self.taskid}-{int(time.time() * 1e6):x}-{os.getpid():x}"

    @classmethod
    def from_reply(cls, reply: dict[str, Any]) -> "Task":
        known = {name for name in cls.__dataclass_fields__ if not name.startswith("_")}
        return cls(**{key: value for key, value in reply.items() if key in known})

    # Disco's names
    @property
    def group_label(self) -> Any:
        return self.group[0] if self.group else None

    @property
    def group_host(self) -> str:
        return self.group[1] if self.group and len(self.group) > 1 else ""

    @property
    def mode(self) -> str:
        return self.stage

    @property
    def jobpath(self) -> str:
        """The job home relative to DISCO_DATA: ``<host>/<hh>/<jobname>``."""
        return os.path.join(self.host, hexhash(self.jobname), self.jobname)

    @property
    def taskpath(self) -> str:
        """This attempt's own directory, relative to the job home."""
        return os.path.join(hexhash(self.uid), self.uid)

    def path(self, name: str) -> str:
        """``name`` inside this attempt's directory, relative to the job home (the directory
        is made on first use: on some file systems a mkdir costs more than a no-op task)."""
        self.makedirs()
        return os.path.join(self.taskpath, name)

    def abspath(self, name: str) -> str:
        return os.path.join(self.jobhome, self.path(name))

    def url(self, name: str, scheme: str = "disco") -> str:
        self.makedirs()
        return f"{scheme}://{self.host}/disco/{self.jobpath}/{self.taskpath}/{name}"

    def makedirs(self) -> None:
        if self._made:
            return
        self._made = True
        path = os.path.join(self.jobhome, self.taskpath)
        try:
            os.mkdir(path)  # the usual case, and much cheaper than makedirs
        except FileNotFoundError:
            os.makedirs(path, exist_ok=True)
        except FileExistsError:
            pass

    def get(self, key: str) -> bytes:
        """The out-of-band value stored under ``key`` by a task of this job."""
        from disco.util import load_oob
        return load_oob(self.master_url, self.jobname, key)

    def put(self, key: str, value: bytes) -> None:
        """Store an out-of-band ``value`` (bytes) under ``key``
        (``[A-Za-z0-9_\\-@:]``, at most 256 characters) for this job."""
        from disco.util import save_oob
        save_oob(self.master_url, self.jobname, key, value)

    @property
    def master_url(self) -> str:
        from disco.util import master_url
        return master_url(self.master, self.disco_port)


_current_task: Task | None = None
_current_worker: "Worker | None" = None


def current_task() -> Task | None:
    """The task this process runs (None outside a worker)."""
    return _current_task


def set_current_task(task: Task | None, worker: "Worker | None" = None) -> None:
    global _current_task, _current_worker
    _current_task = task
    _current_worker = worker


# -- the globals job functions see --------------------------------------------------------
def _task() -> Task:
    if _current_task is None:
        raise DiscoError("not running inside a Disco task")
    return _current_task


def this_partition() -> Any:
    """The map task's id (0..nr_maps-1); for a reduce task, its partition (label)."""
    task = _task()
    if task.stage != "map" and isinstance(task.group_label, int):
        return task.group_label
    return task.taskid


def this_host() -> str:
    return _task().host


def this_name() -> str:
    return _task().jobname


def this_master() -> str:
    return _task().master


def this_inputs() -> list[list[str]]:
    """The inputs of this task, each as a list of replica URLs."""
    if _current_worker is None:
        raise DiscoError("not running inside a Disco task")
    return [[url for _rid, url in inp.replicas] for inp in _current_worker.all_inputs()]


def get(key: str) -> bytes:
    return _task().get(key)


def put(key: str, value: bytes) -> None:
    _task().put(key, value)


def job_globals(task: Task) -> dict[str, Any]:
    from disco.worker.classic import func
    names: dict[str, Any] = {name: getattr(func, name) for name in func.__all__}
    names.update({"Task": task, "this_partition": this_partition, "this_host": this_host,
                  "this_name": this_name, "this_master": this_master,
                  "this_inputs": this_inputs, "get": get, "put": put,
                  # Disco's job functions call these without importing them.
                  "msg": msg, "err": err, "data_err": data_err})
    return names
