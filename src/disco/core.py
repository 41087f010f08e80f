"""Talking to the Disco master (``from disco.core import Disco, Job, result_iterator``).

:class:`Disco` wraps the master's HTTP API: job submission (``POST /disco/job/new``), the
``/disco/ctrl/...`` queries and commands, and waiting for results. :func:`result_iterator`
reads the records of a job's results (or of any inputs) on the client.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote

from disco import comm, comm_auth
from disco.error import CommError, DataError, DiscoError, JobError
from disco.job import Job, JobChain  # noqa: F401  (re-exported)
from disco.settings import DiscoSettings
from disco.util import iterify, master_url, proxy_url, urllist
from disco.worker import Params  # noqa: F401  (Disco 0.4 scripts import Params from here)
from disco.worker.classic.func import chain_reader, notifier as default_notifier
from disco.worker.task_io import iter_records, task_input_stream


class Continue(Exception):
    """Internal: the job is still running."""


# Disco.wait() tries a master that does not answer again after these pauses (doubling).
DOWN_RETRY_FIRST = 0.1
DOWN_RETRY_MAX = 2.0


def master_unavailable(exc: CommError) -> bool:
    """Nothing answered, or the master (or a proxy before it) answered that it cannot now:
    worth trying again. Any other answer (401, 404, ...) will not change by waiting."""
    return exc.code is None or exc.code in (500, 502, 503, 504)


class Disco:
    """The master at ``master`` (``http://host:port``, ``disco://host`` or a host name;
    DISCO_MASTER by default)."""

    def __init__(self, master: str | None = None, settings: DiscoSettings | None = None,
                 proxy: str | None = None) -> None:
        self.settings = settings or DiscoSettings()
        self.proxy = proxy if proxy is not None else self.settings["DISCO_PROXY"]
        self.master = master_url(master or self.settings["DISCO_MASTER"],
                                 self.settings["DISCO_PORT"])

    def __repr__(self) -> str:
        return f"Disco master at {self.master}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Disco) and other.master == self.master

    def __hash__(self) -> int:
        return hash(self.master)

    # -- HTTP ----------------------------------------------------------------------------
    def request(self, path: str, data: Any = None, offset: int = 0,
                method: str | None = None) -> bytes:
        url = proxy_url(f"{self.master}{path}", proxy=self.proxy)
        try:
            return comm.download(url, data, method=method, offset=offset,
                                 scope=comm_auth.scope_for(self.settings, self.master))
        except CommError as exc:
            if exc.code is None:
                exc.msg += f" (is the disco master running at {self.master}?)"
            raise

    def request_json(self, path: str, data: Any = None, **kwargs: Any) -> Any:
        body = json.dumps(data) if data is not None and not isinstance(data, (bytes, str)) \
            else data
        raw = self.request(path, body, **kwargs)
        try:
            return json.loads(raw) if raw.strip() else None
        except ValueError:
            raise DiscoError(f"the master answered {path} with non-JSON: {raw[:200]!r}") from None

    # -- jobs ----------------------------------------------------------------------------
    def submit(self, jobpack: bytes) -> str:
        """Submit a job pack; the name the master gave the job."""
        reply = self.request_json("/disco/job/new", jobpack)
        if not (isinstance(reply, list) and len(reply) == 2):
            raise DiscoError(f"Failed to submit jobpack: unexpected reply {reply!r}")
        status, body = reply
        if status != "ok":
            raise DiscoError(f"Failed to submit jobpack: {body}")
        return str(body)

    def new_job(self, name: str, **jobargs: Any) -> Job:
        return Job(name=name, master=self).run(**jobargs)

    def joblist(self) -> list[Any]:
        """``[[timestamp, status, name], ...]``, newest first."""
        return self.request_json("/disco/ctrl/joblist")

    def jobinfo(self, jobname: str) -> dict[str, Any]:
        return self.request_json(f"/disco/ctrl/jobinfo?name={quote(jobname)}")

    def jobpack(self, jobname: str) -> Any:
        from disco.jobpack import JobPack
        return JobPack.loads(self.request(f"/disco/ctrl/parameters?name={quote(jobname)}"))

    def kill(self, jobname: str) -> None:
        self.request("/disco/ctrl/kill_job", json.dumps(jobname))

    def clean(self, jobname: str) -> None:
        """Forget the job's metadata on the master (its data stays; see :meth:`purge`)."""
        self.request("/disco/ctrl/clean_job", json.dumps(jobname))

    def purge(self, jobname: str) -> None:
        """Delete the job and all its data."""
        self.request("/disco/ctrl/purge_job", json.dumps(jobname))

    def rawevents(self, jobname: str, offset: int = 0) -> bytes:
        return self.request(f"/disco/ctrl/rawevents?name={quote(jobname)}", offset=offset)

    def events(self, jobname: str, offset: int = 0) -> Iterator[tuple[int, tuple[Any, ...]]]:
        """The job's events from byte ``offset`` of its event log, as
        ``(next offset, (timestamp, host, message))``; safe to call while the job runs."""
        data = self.rawevents(jobname, offset=offset)
        position = offset
        for line in data.split(b"\n"):
            if not line.strip():
                position += len(line) + 1
                continue
            try:
                event = tuple(json.loads(line))
            except ValueError:
                break  # a line still being written
            position += len(line) + 1
            yield min(position, offset + len(data)), event

    def mapresults(self, jobname: str) -> Any:
        return self.stageresults(jobname, "map")

    def stageresults(self, jobname: str, stagename: str) -> Any:
        return self.request_json(f"/disco/ctrl/get_stageresults?name={quote(jobname)}"
                                 f"&stage={quote(stagename)}")

    def results(self, jobspec: Any, timeout: int = 2000) -> Any:
        """For one job (a Job or a name): ``(status, results)``, status one of ``'ready'``,
        ``'active'``, ``'dead'``, ``'unknown job'``. For a list of jobs: ``(inactive,
        active)``, each a list of ``(name, (status, results))``; waits up to ``timeout``
        milliseconds for one of them to finish."""
        single = isinstance(jobspec, (Job, str))

        def name_of(job: Any) -> str:
            if isinstance(job, Job):
                return job.name
            if isinstance(job, str):
                return job
            return job[0]

        names = [name_of(job) for job in iterify(jobspec)]
        replies = self.request_json("/disco/ctrl/get_results", [timeout, names])
        inactive, active = [], []
        for name, (status, result) in replies or ():
            if single:
                return status, result
            (active if status == "active" else inactive).append((name, (status, result)))
        if single:
            return "unknown job", []
        return inactive, active

    def check_results(self, jobname: str, start_time: float, timeout: float | None,
                      poll_interval: float) -> list[Any]:
        try:
            status, results = self.results(jobname, timeout=int(poll_interval * 1000))
        except CommError:
            status, results = "active", None
        if status == "ready":
            return results
        if status != "active":
            raise JobError(jobname, f"Status {status}")
        if timeout and time.time() - start_time > timeout:
            raise JobError(jobname, "Timeout")
        raise Continue()

    def wait(self, jobname: str, poll_interval: float = 2, timeout: float | None = None,
             clean: bool = False, show: Any = None,
             down_timeout: float | None = None) -> list[Any]:
        """Block until the job is done; its result URLs. Raises JobError when the job died
        (or ``timeout`` seconds passed). ``show`` prints the job's events as they come
        (default: DISCO_EVENTS; ``'json'`` prints them as JSON).

        A master that does not answer (restarting, say: it resumes its jobs) is asked again
        after growing pauses (0.1 s doubling up to 2 s) for up to ``down_timeout`` seconds in
        a row (default DISCO_MASTER_DOWN_TIMEOUT, 120), then the CommError is raised."""
        if show is None:
            show = self.settings["DISCO_EVENTS"]
        if down_timeout is None:
            down_timeout = float(self.settings["DISCO_MASTER_DOWN_TIMEOUT"])
        monitor = EventMonitor(self, jobname, show)
        start = time.time()
        down_since: float | None = None
        pause = DOWN_RETRY_FIRST
        try:
            while True:
                monitor.refresh()
                try:
                    status, results = self.results(jobname, timeout=int(poll_interval * 1000))
                except CommError as exc:
                    if not master_unavailable(exc):
                        raise
                    now = time.time()
                    down_since = now if down_since is None else down_since
                    if now - down_since >= down_timeout:
                        exc.msg += f" (no answer for {now - down_since:.0f} s)"
                        raise
                    if timeout and now - start > timeout:
                        raise JobError(jobname, "Timeout") from None
                    time.sleep(min(pause, max(0.0, down_since + down_timeout - now)))
                    pause = min(DOWN_RETRY_MAX, pause * 2)
                    continue
                down_since, pause = None, DOWN_RETRY_FIRST
                if status == "ready":
                    return results
                if status != "active":
                    raise JobError(jobname, f"Status {status}")
                if timeout and time.time() - start > timeout:
                    raise JobError(jobname, "Timeout")
        finally:
            monitor.refresh()
            if clean:
                self.clean(jobname)

    def result_iterator(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        kwargs.setdefault("ddfs", self.master)
        return result_iterator(*args, **kwargs)

    # -- cluster -------------------------------------------------------------------------
    def nodeinfo(self) -> dict[str, Any]:
        return self.request_json("/disco/ctrl/nodeinfo")

    def blacklist(self, node: str) -> None:
        """Run no more tasks on ``node``."""
        self.request("/disco/ctrl/blacklist", json.dumps(node))

    def whitelist(self, node: str) -> None:
        self.request("/disco/ctrl/whitelist", json.dumps(node))

    def gc_blacklist(self, node: str) -> None:
        self.request("/disco/ctrl/gc_blacklist", json.dumps(node))

    def gc_whitelist(self, node: str) -> None:
        self.request("/disco/ctrl/gc_whitelist", json.dumps(node))

    def get_config(self) -> Any:
        return self.request_json("/disco/ctrl/load_config_table")

    def set_config(self, config: Any) -> None:
        reply = self.request_json("/disco/ctrl/save_config_table", config)
        if reply != "table saved!":
            raise DiscoError(f"the master refused the configuration: {reply}")

    config = property(get_config, set_config)

    def get_settings(self) -> Any:
        return self.request_json("/disco/ctrl/get_settings")

    def save_settings(self, settings: dict[str, Any]) -> Any:
        return self.request_json("/disco/ctrl/save_settings", settings)

    def master_version(self) -> Any:
        raw = self.request("/disco/version")
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace").strip()

    @property
    def ddfs(self) -> Any:
        from disco.ddfs import DDFS  # written with DDFS; not part of the client core
        return DDFS(self.master)

    # -- out-of-band data ----------------------------------------------------------------
    def oob_get(self, jobname: str, key: str) -> bytes:
        from disco.util import load_oob
        try:
            return load_oob(self.master, jobname, key)
        except CommError as exc:
            if exc.code == 404:
                raise DiscoError("Unknown key or jobname") from None
            raise

    def oob_list(self, jobname: str) -> list[str]:
        from disco.util import blob_name, oob_tag
        tag = self.request_json(f"/ddfs/tag/{oob_tag(jobname)}")
        return sorted({blob_name(replicas[0]) for replicas in tag.get("urls", []) if replicas})

    def profile_stats(self, jobname: str, mode: str = "", stream: Any = None) -> Any:
        """The job's profile (run with ``profile=True``) as a :class:`pstats.Stats`."""
        import marshal
        import pstats
        names = [name for name in self.oob_list(jobname)
                 if name.startswith(f"profile-{mode}")]
        if not names:
            raise JobError(jobname, "No profile data")

        class _Loaded:
            def __init__(self, data: bytes) -> None:
                self.stats = marshal.loads(data)

            def create_stats(self) -> None:
                pass

        stats = pstats.Stats(_Loaded(self.oob_get(jobname, names[0])),  # type: ignore[arg-type]
                             stream=stream or sys.stdout)
        for name in names[1:]:
            stats.add(_Loaded(self.oob_get(jobname, name)))  # type: ignore[arg-type]
        stats.strip_dirs()
        stats.sort_stats("cumulative")
        return stats


class EventMonitor:
    """Prints a job's new events while :meth:`Disco.wait` polls."""

    def __init__(self, disco: Disco, jobname: str, show: Any) -> None:
        self.disco, self.jobname, self.show = disco, jobname, show
        self.offset = 0

    def refresh(self) -> None:
        if not self.show:
            return
        try:
            for self.offset, event in self.disco.events(self.jobname, offset=self.offset):
                if self.show == "json":
                    print(json.dumps(event))
                else:
                    timestamp, host, message = (list(event) + ["", "", ""])[:3]
                    print(f"{timestamp} {host:>15} {message}")
            sys.stdout.flush()
        except CommError:
            pass  # events are a courtesy: never fail a wait over them


def result_iterator(urls: Any, reader: Callable[..., Any] | None = chain_reader,
                    input_stream: Iterable[Callable[..., Any]] = (task_input_stream,),
                    notifier: Callable[[Any], Any] = default_notifier, params: Any = None,
                    ddfs: str | None = None) -> Iterator[Any]:
    """The records of ``urls`` (the results of ``job.wait()``, or any inputs), read with
    ``input_stream`` followed by ``reader``. ``dir://`` indexes are expanded to their files
    and ``tag://`` to the tag's blobs (from ``ddfs``, the master); each input is read from
    its replicas in turn until one works, skipping records already read from a replica
    that failed midway."""
    streams = [*input_stream, *([reader] if reader is not None else [])]
    for item in iterify(urls):
        for replicas in urllist(item, ddfs=ddfs):
            notifier(replicas)
            yield from _read_replicas(replicas, streams, params)


def classic_iterator(*args: Any, **kwargs: Any) -> Iterator[Any]:
    return result_iterator(*args, **kwargs)


def _read_replicas(replicas: list[str], streams: list[Callable[..., Any]],
                   params: Any) -> Iterator[Any]:
    consumed = 0
    error: Exception | None = None
    for url in replicas:
        position = 0
        try:
            for record in iter_records(proxy_url(url, to_master=False), streams, params):
                position += 1
                if position <= consumed:
                    continue
                consumed = position
                yield record
            return
        except (DataError, OSError) as exc:
            error = exc
    raise DataError(f"none of the replicas could be read: {error}",
                    replicas[0] if replicas else None)
