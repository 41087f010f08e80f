"""The Python worker: the client half builds a job pack, the node half runs one task.

On the client, a :class:`Worker` (a dict of job parameters with defaults) turns a job's
arguments into Disco's job pack: ``jobdict`` for the master, ``jobhome`` (a zip with the
``run-worker`` script and the user's own modules) and ``jobdata`` (the resolved
parameters, cloudpickled). Parameters are resolved by :meth:`Worker.getitem`: the arguments
given to ``Job.run`` first, then attributes of the Job (sub)class, then the defaults.

On a node, the node runs ``run-worker`` in the job home, which starts
``python -m disco.worker.classic.worker`` (or the pipeline worker). :func:`main` then speaks
the worker protocol (:mod:`disco.worker.protocol`): WORKER, TASK, INPUT..., OUTPUT..., DONE.
Everything the task prints, and any byte written to file descriptors 1 and 2 by the task or
its child processes, becomes a MSG, so nothing stray reaches the node's protocol reader.
A :class:`~disco.error.DataError`, ``OSError`` or ``MemoryError`` ends the task with ERROR
(retried elsewhere); any other exception with FATAL (the job fails), with the traceback.

Job functions see these extra globals: ``Task`` (the running :class:`Task`),
``this_partition()``, ``this_host()``, ``this_name()``, ``this_master()``,
``this_inputs()``, ``get(key)``/``put(key, value)`` (out-of-band data), ``msg``, ``err``
and ``data_err`` (of :mod:`disco.util`), the names of :mod:`disco.worker.classic.func` and
the names of ``required_modules``. Without ``required_modules``, the client finds them: the
user's own modules the functions need, and modules a function uses as ``name.attr``
without its module importing ``name`` (as Disco did).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any

from disco.error import DataError, DiscoError

JOBDATA_MAGIC = b"DISCO-PY"
STATUS_BATCH = 4096  # records status_iter counts at a time (when not given lists)
RUN_WORKER = "run-worker"


# -- parameters --------------------------------------------------------------------------
class Params:
    """A bag of parameters handed to every job function as ``params``.

    ``Params(n=3, f=func)`` gives ``params.n`` and ``params.f``; each task gets its own copy
    (they are pickled with the job), so tasks may keep state in it.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"Params({items})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Params) and vars(self) == vars(other)

    def __getitem__(self, key: str) -> Any:  # some jobs treat params as a mapping
        return self.__dict__[key]


from disco.worker.inputs import ReplicaReader, TaskInput  # noqa: E402
from disco.worker.stdio import MessageWriter, WorkerIO  # noqa: E402
from disco.worker.task import (  # noqa: E402
    Task, current_task, get, job_globals, put, set_current_task, this_host, this_inputs,
    this_master, this_name, this_partition)

__all__ = ["Worker", "Params", "Task", "TaskInput", "ReplicaReader", "MessageWriter",
           "WorkerIO", "current_task", "set_current_task", "job_globals", "load_worker",
           "main", "get", "put", "this_host", "this_inputs", "this_master", "this_name",
           "this_partition"]


# -- the worker --------------------------------------------------------------------------
class Worker(dict):
    """Job parameters with their defaults; builds job packs and runs tasks.

    Subclasses set :attr:`worker_module` (run with ``python -m`` on the nodes) and
    :attr:`jobpack_version`, extend :meth:`defaults` and :meth:`jobdict`, and implement
    :meth:`run` for the node side.
    """

    worker_module = "disco.worker.classic.worker"
    jobpack_version = 1

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(self.defaults())
        self.update(kwargs)
        self._init_runtime()

    def _init_runtime(self) -> None:
        self.outputs: dict[Any, Any] = {}
        self.io: WorkerIO | None = None
        self.task: Task | None = None
        self._inputs: list[TaskInput] | None = None
        self.listed_inputs: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {}  # the parameters travel as dict items; runtime state never does

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._init_runtime()

    def defaults(self) -> dict[str, Any]:
        return {
            "map": None,
            "reduce": None,
            "partitions": 1,
            "params": Params(),
            "profile": False,
            "reuse_worker": True,
            # Disco sends each print as a message and fails a task that sends 10 in a
            # second; True gathers prints into fewer messages (disco.worker.stdio).
            "batch_messages": False,
            "required_files": {},
            "required_modules": None,
            "save_results": False,
            "save_info": "ddfs",
            "scheduler": {},
            "version": "%d.%d" % sys.version_info[:2],
        }

    # -- client side ---------------------------------------------------------------------
    @property
    def bin(self) -> str:
        """The worker executable, relative to the job home (``jobdict.worker``)."""
        return RUN_WORKER

    def getitem(self, key: str, job: Any, jobargs: dict[str, Any], default: Any = None) -> Any:
        """``key`` from ``jobargs``, else an attribute of ``job``, else this worker's value,
        else ``default``."""
        if key in jobargs:
            return jobargs[key]
        if key == "save_results" and "save" in jobargs:
            return jobargs["save"]
        if job is not None and hasattr(job, key):
            return getattr(job, key)
        if key == "save_results" and job is not None and hasattr(job, "save"):
            return job.save  # Disco's short name works as a Job attribute too
        return self.get(key, default)

    def resolve(self, job: Any, jobargs: dict[str, Any]) -> dict[str, Any]:
        """Every parameter's value for this job."""
        keys = list(dict.fromkeys([*self.keys(), *jobargs.keys()]))
        return {key: self.getitem(key, job, jobargs) for key in keys}

    def jobdict(self, job: Any, **jobargs: Any) -> dict[str, Any]:
        from disco.settings import DiscoSettings
        settings = getattr(job, "settings", None) or DiscoSettings()
        prefix = self.getitem("name", job, jobargs) or type(job).__name__
        prefix = str(prefix)
        if not prefix or any(c in prefix for c in "/.") or len(prefix) > 128:
            raise DiscoError(f"job name {prefix!r}: must be non-empty, without '/' or '.'")
        owner = self.getitem("owner", job, jobargs) or settings["DISCO_JOB_OWNER"]
        return {
            "prefix": prefix,
            "owner": str(owner),
            "worker": self.bin,
            "scheduler": self.getitem("scheduler", job, jobargs) or {},
            "save_results": bool(self.getitem("save_results", job, jobargs)),
            "save_info": self.getitem("save_info", job, jobargs) or "ddfs",
        }

    def jobenvs(self, job: Any, **jobargs: Any) -> dict[str, str]:
        envs = self.getitem("jobenvs", job, jobargs) or {}
        return {str(k): str(v) for k, v in dict(envs).items()}

    def job_callables(self, params: dict[str, Any]) -> list[Any]:
        """Everything in the resolved parameters that may need modules shipped."""
        return [value for key, value in params.items()
                if key not in ("input", "required_files", "required_modules", "scheduler")]

    def jobzip(self, job: Any, params: dict[str, Any]) -> Any:
        from disco.fileutils import DiscoZipFile
        from disco.worker.modutil import (UserModules, find_modules, module_arcname,
                                          module_path, referenced_modules)
        jobzip = DiscoZipFile()
        script = ('#!/bin/sh\n'
                  f'exec "${{DISCO_PYTHON:-python3}}" -m {self.worker_module} "$@"\n')
        jobzip.writebytes(RUN_WORKER, script, executable=True)
        required_files = params.get("required_files") or {}
        if isinstance(required_files, dict):
            for name, data in required_files.items():
                jobzip.writebytes(str(name), data)
        else:
            for path in required_files:
                jobzip.write(path, os.path.join("lib", os.path.basename(path)))
        modules = params.get("required_modules")
        objects = [job.__class__, *self.job_callables(params)]
        # The functions travel by reference: their own modules (and the user's own modules
        # those import) go with the job whatever required_modules says.
        shipped = find_modules(objects, exclude=["Task"])
        names = [name for name, _path in shipped]
        if modules is None:
            # Modules used as `name.attr` that the functions' modules never import (Disco
            # imports these on the node, and job scripts rely on it): all are imported by
            # name there; the user's own are shipped, with the user's own modules they import.
            implicit = referenced_modules(objects, exclude=["Task", *names])
            own = UserModules(exclude=names)
            for name in implicit:
                own.add(name)
            shipped.extend(own.expand())
            params["required_modules"] = list(dict.fromkeys(
                [*names, *own.found, *implicit]))
        else:
            for module in modules:
                if isinstance(module, (tuple, list)) and len(module) == 2:
                    name, path = str(module[0]), str(module[1])
                    shipped.append((name, path))
                else:
                    name = str(module)
                    path = module_path(name)
                    if path:
                        shipped.append((name, path))
                names.append(name)
            params["required_modules"] = list(dict.fromkeys(names))
        written_dirs: list[str] = []
        written = set(jobzip.namelist())
        for name, path in sorted(shipped, key=lambda item: item[0].count(".")):
            real = os.path.realpath(path)
            arcname = module_arcname(name, path)
            if arcname in written or any(real.startswith(d + os.sep) for d in written_dirs):
                continue  # already shipped, or inside a package shipped whole
            jobzip.writepath(path, arcname)
            written.add(arcname)
            if os.path.isdir(path):
                written_dirs.append(real)
        return jobzip

    def jobdata(self, job: Any, params: dict[str, Any]) -> bytes:
        import cloudpickle
        shipped = self.__class__.__new__(self.__class__)
        # Workers learn their inputs from the node; a job's whole input list in every
        # task's jobdata would cost each task time in proportion to the job's size.
        dict.update(shipped, {k: v for k, v in params.items() if k != "input"})
        shipped._init_runtime()
        version = "%d.%d" % sys.version_info[:2]
        header = JOBDATA_MAGIC + b" " + version.encode() + b"\n"
        return header + cloudpickle.dumps(shipped, protocol=4)

    def jobpack(self, job: Any, **jobargs: Any) -> Any:
        """The job pack for ``job`` run with ``jobargs``."""
        from disco.jobpack import JobPack
        jobdict = self.jobdict(job, **jobargs)
        params = self.resolve(job, jobargs)
        jobhome = self.jobzip(job, params).dumps()
        return JobPack(jobdict, self.jobenvs(job, **jobargs), jobhome,
                       self.jobdata(job, params), version=self.jobpack_version)

    # -- node side -----------------------------------------------------------------------
    def msg(self, text: str) -> None:
        if self.io is not None:
            self.io.writer.flush(force=True)
            self.io.channel.msg(text)

    def request(self, name: str, payload: Any = "") -> tuple[str, Any]:
        assert self.io is not None, "not running as a worker"
        return self.io.channel.request(name, payload)

    def get_inputs(self) -> Iterator[TaskInput]:
        """The task's inputs, asking the node until it says the list is complete."""
        seen: list[int] = []
        # Our node lists the inputs in its TASK reply, which saves asking: the answer INPUT
        # "" would get. Other nodes do not, and then we ask.
        listed, self.listed_inputs = self.listed_inputs, None
        while True:
            if listed is not None:
                name, payload, listed = "INPUT", listed, None
            else:
                name, payload = self.request("INPUT", ["exclude", seen] if seen else "")
            if name != "INPUT":
                raise DiscoError(f"unexpected reply {name} to INPUT")
            flag, inputs = payload
            new = 0
            for input_id, status, label, replicas in inputs:
                if input_id in seen:
                    continue
                seen.append(input_id)
                new += 1
                yield TaskInput(input_id, status, label,
                                [(rid, str(url)) for rid, url in replicas])
            if flag == "done":
                return
            if not new:
                time.sleep(0.5)  # "more" with nothing new: poll gently

    def all_inputs(self) -> list[TaskInput]:
        if self._inputs is None:
            self._inputs = list(self.get_inputs())
        return self._inputs

    def refresh_input(self, task_input: TaskInput) -> list[tuple[int, str]]:
        name, payload = self.request("INPUT", ["include", [task_input.id]])
        for input_id, status, _label, replicas in payload[1]:
            if input_id == task_input.id:
                task_input.status = status
                task_input.replicas = [(rid, str(url)) for rid, url in replicas]
        return task_input.replicas

    def input_failed(self, task_input: TaskInput, failed: list[int],
                     error: Exception | None) -> list[tuple[int, str]]:
        """Tell the node that these replicas failed; the replicas to try next."""
        while True:
            name, payload = self.request("INPUT_ERR", [task_input.id, failed])
            if name == "RETRY" and payload:
                return [(rid, str(url)) for rid, url in payload]
            if name == "WAIT":
                time.sleep(float(payload or 1))
                replicas = self.refresh_input(task_input)
                if replicas:
                    return replicas
                continue
            url = task_input.urls[0] if task_input.urls else None
            raise DataError(f"Failed to read input {task_input.id}: {error}", url)

    def open_input(self, task_input: TaskInput, streams: list[Any], params: Any,
                   label: Any = None) -> ReplicaReader:
        """The records of an input read through ``streams``. A ``dir://`` input is the
        concatenation of the files its index lists (only those labelled ``label`` when
        given)."""
        from disco.util import read_index
        from disco.worker.task_io import iter_batches

        def open_batches(url: str) -> Iterator[list[Any]]:
            if url.startswith("dir://"):
                for entry_label, entry_url, _size in sorted(
                        read_index(url), key=lambda e: (str(type(e[0])), e[0])):
                    if label is None or entry_label == label:
                        yield from iter_batches(entry_url, streams, params)
            else:
                yield from iter_batches(url, streams, params)

        return ReplicaReader(self, task_input, open_batches)

    @staticmethod
    def label_filter(task_input: TaskInput, first_stage: bool = False) -> Any:
        """Which entries of an index input this task reads: the input's label, or None for
        all of them ("all", given by group_node and group_all).

        The master splits an index by the labels it lists, for the job's own inputs too
        (a reduce-only job over partitioned results gets one task per label, a pipeline's
        first stage one input per label), so the label is honoured in every stage:
        reading the whole index would read each other label's records once more.
        ``first_stage`` is accepted for callers and does not change the answer."""
        if task_input.label in ("all", None):
            return None
        return task_input.label

    def index_entries(self, task_input: Any) -> list[tuple[Any, str, int]]:
        """The ``(label, url, size)`` lines of a ``dir://`` input's index, from the first
        readable replica (asking the node for others as replicas fail)."""
        from disco.util import read_index
        error: Exception | None = None
        replicas = task_input.replicas
        while True:
            failed = []
            for rep_id, url in replicas:
                try:
                    return list(read_index(url))
                except (DataError, OSError) as exc:
                    failed.append(rep_id)
                    error = exc
            replicas = self.input_failed(task_input, failed, error)

    def index_labels(self, task_input: TaskInput) -> list[Any]:
        """The labels present in a ``dir://`` input's index."""
        return sorted({label for label, _url, _size in self.index_entries(task_input)},
                      key=lambda l: (str(type(l)), l))

    def output(self, label: Any, streams: list[Any], params: Any) -> Any:
        """The output of this task with ``label`` (opened on first use): an object whose
        ``add(key, value)`` writes a record."""
        from disco.worker.task_io import StreamChain
        if label not in self.outputs:
            assert self.task is not None
            self.task.makedirs()
            relpath = self.task.path(f"{self.task.stage}-{label}")
            streams_out = StreamChain(self.task.abspath(f"{self.task.stage}-{label}"),
                                      [s for s in streams if s], params, size=label)
            if not self.task.final:  # a later stage reads it: no need to sync it to disk
                _no_sync(streams_out.fds)
            self.outputs[label] = (relpath, streams_out)
        return self.outputs[label][1]

    def send_outputs(self) -> None:
        """Close every output and report it: OUTPUT [label, path relative to job home, size]."""
        assert self.task is not None and self.io is not None
        for label, (relpath, streams_out) in list(self.outputs.items()):
            streams_out.close()
            path = os.path.join(self.task.jobhome, relpath)
            if os.path.exists(path):
                # Posted: its reply (OK) is read before the next request's.
                self.io.channel.post("OUTPUT", [label, relpath, os.path.getsize(path)])
            else:
                self.msg(f"WARNING: output {label} was not written to {relpath}")
        self.outputs.clear()

    def status_iter(self, iterator: Any, template: str) -> Iterator[Any]:
        """Pass records through, with progress MSGs (see :meth:`status_batches`)."""
        from disco.worker.task_io import in_lists
        return chain.from_iterable(self.status_batches(in_lists(iterator, STATUS_BATCH), template))

    def status_batches(self, batches: Iterable[list[Any]], template: str) -> Iterator[list[Any]]:
        """Pass lists of records through, with a MSG every ``status_interval`` records:
        progress messages the MSG rate limit has no room for are left out (the next one
        says more), never waited for; the final "Done: ..." is always sent."""
        interval = self.get("status_interval") or 0
        count = reported = 0
        for batch in batches:
            yield batch
            count += len(batch)
            if interval and count - reported >= interval:
                reported = count - count % interval
                self.progress(template % reported)
        self.msg("Done: " + template % count)

    def progress(self, text: str) -> None:
        """A MSG if the rate limit allows one right now and one more after it (so that the
        "Done" line that ends a task never waits for room); otherwise nothing."""
        if self.io is not None and self.io.channel.msg_allowed(reserve=1):
            self.msg(text)

    def start(self, task: Task) -> None:
        """Run the task (profiled when ``profile`` is set), then report its outputs."""
        self.task = task
        self.globalize(task)
        if self.get("profile"):
            self._run_profiled(task)
        else:
            self.run(task)
        self.send_outputs()

    def _run_profiled(self, task: Task) -> None:
        import cProfile
        import marshal
        import pstats
        profiler = cProfile.Profile()
        profiler.runcall(self.run, task)
        stats = pstats.Stats(profiler)
        name = f"profile-{task.uid}".replace(".", "_")
        try:
            task.put(name, marshal.dumps(stats.stats))  # type: ignore[attr-defined]
        except Exception as exc:  # profiling must not fail the task
            self.msg(f"WARNING: could not store profile {name}: {exc}")

    def globalize(self, task: Task) -> None:
        """Give every job function the globals Disco job functions expect."""
        import importlib
        from disco.util import globalize
        names = job_globals(task)
        for module in self.get("required_modules") or ():
            name = module[0] if isinstance(module, (tuple, list)) else str(module)
            try:
                names[name.split(".")[-1]] = importlib.import_module(name)
            except ImportError as exc:
                raise DiscoError(f"required module {name} cannot be imported: {exc}") from exc
        for obj in self.job_functions():
            if callable(obj):
                globalize(obj, names)

    def job_functions(self) -> list[Any]:
        """The objects that get the job globals: every parameter value (flattened), and the
        values inside a :class:`Params`."""
        from disco.util import flatten
        objects = list(flatten(self.values()))
        for value in self.values():
            if isinstance(value, Params):
                objects.extend(flatten(vars(value).values()))
        return objects

    def run(self, task: Task) -> None:
        """Do one task; every concrete worker (classic, pipeline) defines it."""
        raise TypeError(f"{type(self).__name__} is a base class: use a worker that defines run()")

    @classmethod
    def main(cls) -> None:
        main()


# -- the worker process ------------------------------------------------------------------
def load_worker(jobfile: str, cache: dict[str, bytes] | None = None) -> Worker:
    """The Worker pickled into a job pack's jobdata: a fresh copy on every call (each task
    gets its own parameters), with the job pack read once per ``cache``."""
    import pickle

    from disco.jobpack import read_jobdata
    data = cache.get(jobfile) if cache is not None else None
    if data is None:
        data = read_jobdata(jobfile)
        if cache is not None:
            cache[jobfile] = data
    if not data.startswith(JOBDATA_MAGIC + b" "):
        raise DiscoError("job data was not written by the DISCO Python client")
    header, _, payload = data.partition(b"\n")
    built_with = header.split(b" ", 1)[1].decode()
    running = "%d.%d" % sys.version_info[:2]
    if built_with != running:
        raise DiscoError(f"Python version mismatch: the job was built with Python "
                         f"{built_with}, this node runs Python {running}")
    worker = pickle.loads(payload)
    if not isinstance(worker, Worker):
        raise DiscoError(f"job data holds a {type(worker).__name__}, not a Worker")
    return worker


def _report(worker_io: WorkerIO, name: str, text: str) -> None:
    try:
        worker_io.finish()
        worker_io.writer.disabled = True
        worker_io.channel.request(name, text, timeout=10)
    except Exception:
        pass


def _run_task(worker_io: WorkerIO, jobhome: str, packs: dict[str, bytes]) -> Worker:
    """Ask for a task, run it, and report its outputs (everything but DONE)."""
    name, reply = worker_io.channel.request("TASK")
    if name != "TASK" or not isinstance(reply, dict):
        raise DiscoError(f"unexpected reply {name} to TASK")
    task = Task.from_reply({**reply, "jobhome": jobhome})
    jobfile = task.jobfile if os.path.isabs(task.jobfile) else \
        os.path.join(jobhome, task.jobfile)
    worker = load_worker(jobfile, packs)
    worker.io = worker_io
    worker_io.writer.batch = bool(worker.get("batch_messages", False))
    worker.listed_inputs = reply.get("inputs")
    set_current_task(task, worker)
    worker.start(task)
    worker_io.finish()
    return worker


def main() -> None:
    """Entry point of a worker process (``python -m disco.worker.classic.worker``).

    The worker offers to stay (``"reuse": true`` in WORKER): a node that takes the offer
    answers DONE with ``OK "next"``, and the worker then asks for its next TASK of the same
    job instead of exiting; any other answer ends the process, as Disco's protocol has it.
    A job opts out with the parameter ``reuse_worker=False``."""
    from disco.worker.protocol import PROTOCOL_VERSION
    worker_io = WorkerIO()
    jobhome = os.getcwd()
    sys.path.insert(0, os.path.join(jobhome, "lib"))
    sys.dont_write_bytecode = True  # tasks of a job share its home: no racing .pyc writes
    packs: dict[str, bytes] = {}
    try:
        worker_io.channel.request("WORKER", {"version": PROTOCOL_VERSION, "pid": os.getpid(),
                                             "reuse": True})
        _apply_memory_limit()
        while True:
            worker = _run_task(worker_io, jobhome, packs)
            worker_io.writer.disabled = True
            try:
                _name, answer = worker_io.channel.request("DONE", "", timeout=10)
            except (TimeoutError, EOFError, OSError):
                os._exit(0)  # the node stops us on DONE; a missing reply is no error
            if answer != "next" or not worker.get("reuse_worker", True):
                os._exit(0)
            set_current_task(None)
            worker_io.restart()
    except (DataError, OSError, MemoryError, KeyboardInterrupt):
        _report(worker_io, "ERROR", traceback.format_exc())
        os._exit(1)
    except BaseException:
        _report(worker_io, "FATAL", traceback.format_exc())
        os._exit(2)


def _apply_memory_limit() -> None:
    """Honour DISCO_WORKER_MAX_MEM (``80%`` of RAM, or bytes) when the node sets it."""
    value = os.environ.get("DISCO_WORKER_MAX_MEM", "").strip()
    if not value:
        return
    import resource
    try:
        if value.endswith("%"):
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            limit = int(total * float(value[:-1]) / 100)
        else:
            limit = int(value)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):
        pass


def _no_sync(fds: list[Any]) -> None:
    from disco.fileutils import AtomicFile
    for fd in fds:
        if isinstance(fd, AtomicFile):
            fd.sync = False
