"""Start-up benchmark: create request -> cluster ready, DISCO against its baselines.

Variants, all 1 master + N workers (default 4) on loopback addresses of this machine:

  dask/disco      a real `disco sm` subprocess; POST /api/v1/clusters, then follow the
                  cluster's event stream (?follow=true) until its "ready" event
  dask/hand       the same processes, flags and environment, started by this script the way
                  a careful human would (scheduler, then all workers at once; poll the
                  scheduler's /json/counts.json as often as framework.yaml's readiness does)
  dask/gateway    dask-gateway-server's local backend (in .bench-venv): new_cluster(),
                  scale(N), wait_for_workers(N)
  spark/disco     as dask/disco
  spark/hand      as dask/hand; workers start once the master's port accepts connections;
                  poll the master's /json/ as often as framework.yaml's readiness does
  spark/default   spark/hand with Spark's default daemon flags (no SPARK_DAEMON_JAVA_OPTS,
                  default SPARK_DAEMON_MEMORY)

Each variant runs --repeat times (rounds interleave the variants so a slow spell of the
machine hits all of them), after --warmup unrecorded rounds that fill the page cache.
Peak memory is the largest sum of RSS over the cluster's processes, the service manager
or gateway server included, sampled every 0.1 s from the request until ready. The machine
is shared: each run also accounts the CPU time that other people's processes used, and a
run they disturbed (more than --max-foreign cores on average) is run again.

    .venv/bin/python benchmarks/startup.py --repeat 3 --json results.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jinja2
import psutil
import yaml

REPO = Path(__file__).resolve().parent.parent
FRAMEWORKS_DIR = REPO / "src" / "disco" / "frameworks"
BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_BENCH_VENV = REPO / ".bench-venv"

HAND_NET_BASES = range(250, 255)   # second octets reserved for this benchmark's own clusters
DISCO_NET_BASE = 240               # DISCO_LOCAL_NET_BASE of the benchmark's service manager
READY_POLL_DEFAULT_S = 0.2         # Readiness.interval_s when framework.yaml gives none
TCP_POLL_S = 0.05                  # what DISCO's wait_for_tcp uses
SAMPLE_S = 0.1                     # memory sampling period
STOP_GRACE_S = 10.0                # SIGTERM -> SIGKILL, as DISCO's default DISCO_STOP_GRACE

VARIANTS: dict[str, str] = {
    "dask/disco": "Dask   DISCO (REST API)",
    "dask/hand": "Dask   hand-started, same flags",
    "dask/gateway": "Dask   dask-gateway local backend",
    "spark/disco": "Spark  DISCO (REST API)",
    "spark/hand": "Spark  hand-started, same flags",
    "spark/default": "Spark  hand-started, default daemon flags",
}
# (name, numerator, denominator, largest ratio that passes)
TARGETS: list[tuple[str, str, str, float]] = [
    ("DISCO Dask / hand-started Dask", "dask/disco", "dask/hand", 1.15),
    ("DISCO Spark / hand-started Spark", "spark/disco", "spark/hand", 1.15),
    ("DISCO Dask / dask-gateway", "dask/disco", "dask/gateway", 0.7),
    ("DISCO Spark / default-flags Spark", "spark/disco", "spark/default", 0.6),
]


class BenchError(RuntimeError):
    pass


@dataclasses.dataclass
class RunResult:
    variant: str
    round: int
    seconds: float                       # request (or first launch) -> ready
    peak_rss_bytes: int
    max_processes: int
    stop_seconds: float | None = None    # delete/stop -> every process gone
    cpu_busy_before: float | None = None  # system CPU % just before the run (noise check)
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)


# -- processes: tracking, memory sampling, stopping ---------------------------------------------


def _key(proc: psutil.Process) -> tuple[int, float]:
    return proc.pid, proc.create_time()


class ProcessSampler:
    """Samples, in a thread, the summed RSS of some processes and all their descendants.

    It also remembers every process it has seen, so that clean-up can stop descendants that
    their parent failed to stop (only processes descended from ones we started), and it
    accounts CPU time: ours (those processes, plus `cpu_only` ones such as a client, plus
    this benchmark) against the whole machine's, so that a run disturbed by somebody else's
    work on this shared machine shows as `foreign_cpu_s`."""

    def __init__(self, roots: Callable[[], list[psutil.Process]],
                 cpu_only: Callable[[], list[psutil.Process]] = lambda: [],
                 interval_s: float = SAMPLE_S) -> None:
        self._roots = roots
        self._cpu_only = cpu_only
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak_rss = 0
        self.max_processes = 0
        self.seen: dict[tuple[int, float], psutil.Process] = {}
        self._cpu_first: dict[tuple[int, float], float] = {}
        self._cpu_last: dict[tuple[int, float], float] = {}
        self._marks: tuple[float, float, float] = (0.0, 0.0, 0.0)  # wall, machine busy, self
        self._epoch = 0.0                                 # time.time() at the start
        self._parents: set[int] = {os.getpid()}           # us and the processes already running
        self._born: dict[tuple[int, float], tuple[int, float]] = {}  # new -> (parent, start)
        self.wall_s = 0.0
        self.own_cpu_s = 0.0
        self.foreign_cpu_s = 0.0

    def _tree(self) -> dict[int, psutil.Process]:
        procs: dict[int, psutil.Process] = {}
        for root in self._roots():
            try:
                procs[root.pid] = root
                for child in root.children(recursive=True):
                    procs[child.pid] = child
            except psutil.Error:
                continue
        return procs

    def sample(self, *, baseline: bool = False) -> None:
        procs = self._tree()
        total = 0
        for proc in procs.values():
            try:
                total += proc.memory_info().rss
                self._account(proc, baseline)
            except (psutil.Error, OSError):  # it ended meanwhile
                continue
        for proc in self._cpu_only():
            with contextlib.suppress(psutil.Error, OSError):
                self._account(proc, baseline)
        self.peak_rss = max(self.peak_rss, total)
        self.max_processes = max(self.max_processes, len(procs))

    def _account(self, proc: psutil.Process, baseline: bool) -> None:
        key = _key(proc)
        if key not in self.seen:
            if baseline:
                self._parents.add(proc.pid)
            else:
                self._born[key] = (proc.ppid(), _started_since_boot(proc.pid))
        self.seen.setdefault(key, proc)
        cpu = _cpu_seconds(proc)
        # A process that already ran before the measurement counts from here on; one born
        # during it counts whole.
        self._cpu_first.setdefault(key, cpu if baseline else 0.0)
        self._cpu_last[key] = cpu

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample()

    def __enter__(self) -> "ProcessSampler":
        self._marks = (time.perf_counter(), _machine_busy_s(), _cpu_seconds(psutil.Process()))
        self.sample(baseline=True)
        self._epoch = time.clock_gettime(time.CLOCK_BOOTTIME)  # the caller's clock starts now
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling; one last sample so the state at 'ready' always counts."""
        if self._thread is None or self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self.sample()
        wall0, busy0, self0 = self._marks
        self.wall_s = time.perf_counter() - wall0
        own = sum(self._cpu_last[k] - self._cpu_first[k] for k in self._cpu_last)
        self.own_cpu_s = own + _cpu_seconds(psutil.Process()) - self0
        self.foreign_cpu_s = max(0.0, _machine_busy_s() - busy0 - self.own_cpu_s)

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def alive(self) -> list[psutil.Process]:
        return [p for p in self.seen.values() if _running(p)]

    def cpu_of(self, proc: psutil.Process) -> float:
        key = _key(proc)
        return self._cpu_last.get(key, 0.0) - self._cpu_first.get(key, 0.0)

    def launched(self) -> list[float]:
        """When the processes that we, the service manager or the gateway started directly
        were created, in seconds from the start (kernel start times: 10 ms resolution)."""
        return sorted(round(max(0.0, start - self._epoch), 2) for ppid, start in self._born.values()
                      if ppid in self._parents)

    def stats(self) -> dict[str, Any]:
        return {"wall_s": round(self.wall_s, 3), "own_cpu_s": round(self.own_cpu_s, 2),
                "foreign_cpu_s": round(self.foreign_cpu_s, 2), "launched_s": self.launched()}


def _started_since_boot(pid: int) -> float:
    """A process's start in seconds since boot, to the kernel's clock tick. (psutil's
    create_time() adds the boot time, which /proc gives only to the whole second.)"""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime


def _cpu_seconds(proc: psutil.Process) -> float:
    # Without children_*: a reaped child was sampled itself (counting it twice would hide
    # foreign load); a child that lives less than one period is missed (a little false
    # "foreign" time, e.g. spark-class's launcher JVM ends up to 0.1 s after its last sample).
    t = proc.cpu_times()
    return t.user + t.system


def _machine_busy_s() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


def _running(proc: psutil.Process) -> bool:
    try:
        # is_running() also guards against pid reuse (it compares the creation time).
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def spawn(argv: list[str], *, cwd: Path, env: dict[str, str], log: Path,
          stdin: int | None = subprocess.DEVNULL, stdout: int | None = None) -> subprocess.Popen[bytes]:
    """Start a process in its own session (its own process group, so we can stop all it
    forks, and a Ctrl-C in the terminal reaches only us, and we clean up in order)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as handle:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdin=stdin,
                                stdout=stdout if stdout is not None else handle,
                                stderr=handle, start_new_session=True)


def stop_groups(procs: list[subprocess.Popen[bytes]], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM each process group, wait for the leaders, SIGKILL what outlives grace_s."""
    for proc in procs:
        _killpg(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _killpg(proc, signal.SIGKILL)
            proc.wait(5)
    for proc in procs:  # children that outlived their leader (e.g. a launcher JVM)
        _wait_group_gone(proc.pid, 5.0)


def _killpg(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # pgid == pid: spawn() gave it its own session


def _wait_group_gone(pgid: int, timeout_s: float) -> None:
    """Wait until no process of the group runs. Zombies count as gone, as in DISCO's own
    check: spark-class leaves a subshell that only init reaps once its JVM has exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _group_running(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _group_running(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
    return False


def wait_gone(procs: list[psutil.Process], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(_running(p) for p in procs):
            return True
        time.sleep(0.05)
    return False


def kill_leftovers(procs: list[psutil.Process]) -> None:
    """Last resort of clean-up: terminate, then kill, processes we (indirectly) started."""
    alive = [p for p in procs if _running(p)]
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, still = psutil.wait_procs(alive, timeout=5)
    for proc in still:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(still, timeout=5)


# -- small helpers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listeners_on(prefix: str) -> list[str]:
    """Listening TCP sockets whose address starts with prefix (e.g. '127.250.')."""
    found = []
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and str(conn.laddr.ip).startswith(prefix):
            found.append(f"{conn.laddr.ip}:{conn.laddr.port}")
    return found


def pick_hand_net_base() -> int:
    for base in HAND_NET_BASES:
        if not listeners_on(f"127.{base}."):
            return base
    raise BenchError(f"every 127.B.x.x block with B in {HAND_NET_BASES.start}-{HAND_NET_BASES.stop - 1} "
                     "has listeners: another benchmark is running?")


def wait_tcp(address: str, timeout_s: float) -> None:
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=2.0):
                return
        except OSError:
            time.sleep(TCP_POLL_S)
    raise BenchError(f"{address} did not accept connections within {timeout_s:g} s")


def settle(max_wait_s: float = 30.0, busy_below: float = 15.0) -> float:
    """Wait (a little) for the machine to be quiet; returns the last CPU % seen, which goes
    into the results so that runs disturbed by someone else's work can be recognised."""
    time.sleep(0.5)
    deadline = time.monotonic() + max_wait_s
    busy = psutil.cpu_percent(interval=0.5)
    while busy >= busy_below and time.monotonic() < deadline:
        busy = psutil.cpu_percent(interval=0.5)
    return busy


def tail(path: Path, size: int = 1500) -> str:
    try:
        data = path.read_bytes()[-size:]
    except OSError:
        return ""
    return data.decode(errors="replace")


# -- rendering framework.yaml for the hand-started clusters -----------------------------------


@dataclasses.dataclass
class Launch:
    name: str                 # <framework>-<process>, as DISCO names its log files
    node: str
    host: str
    workdir: Path
    argv: list[str]
    env: dict[str, str]
    wait_for_tcp: str | None
    files: dict[str, str] = dataclasses.field(default_factory=dict)  # framework.yaml `files:`


def _module_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(f"Python package {name!r} is not installed")
    return str(Path(list(spec.submodule_search_locations)[0]))


_jinja = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
def _cache_dir() -> str:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "disco"
    base.mkdir(parents=True, exist_ok=True)
    return str(base)


def _java_support(classpath: str) -> str:
    # The web UI filter Spark's daemons load: the same classes DISCO builds and runs.
    from disco.framework_support.java_build import built_classes
    return built_classes(classpath)


def _spark_class_archive(role: str, java_opts: str) -> str:
    # The same trusted class-data archives DISCO records and maps (spark_archives.py).
    from disco.framework_support.spark_archives import archive_option
    spark_home = _module_dir("pyspark")
    return archive_option(role, spark_home, _java_support(spark_home + "/jars/*"), java_opts)


_jinja.globals.update(python=sys.executable, module_dir=_module_dir,
                      bin_dir=str(Path(sys.executable).parent), cache_dir=_cache_dir,
                      path_exists=os.path.exists, java_support=_java_support,
                      spark_class_archive=_spark_class_archive)


def _render(value: Any, ctx: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return _jinja.from_string(value).render(ctx) if "{{" in value or "{%" in value else value
    if isinstance(value, list):
        return [_render(item, ctx) for item in value]
    if isinstance(value, dict):
        return {key: _render(item, ctx) for key, item in value.items()}
    return value


def load_framework(name: str) -> dict[str, Any]:
    return yaml.safe_load((FRAMEWORKS_DIR / name / "framework.yaml").read_text())


def render_launches(fw: dict[str, Any], hosts: list[str], root: Path,
                    credentials: dict[str, str]) -> tuple[list[Launch], list[Launch]]:
    """The master's and the workers' processes, with the commands and environment that
    framework.yaml gives (defaults of every property), rendered here with plain Jinja2 and
    not with DISCO's code, so this is what a person reading framework.yaml would run."""
    props = {name: prop.get("default") for name, prop in fw.get("properties", {}).items()}
    ports = {name: port["port"] for name, port in fw.get("ports", {}).items()}
    names = ["master"] + [f"worker-{i}" for i in range(1, len(hosts))]
    groups: tuple[list[Launch], list[Launch]] = ([], [])
    for index, (name, host) in enumerate(zip(names, hosts)):
        role = "master" if index == 0 else "worker"
        workdir = root / name
        ctx = {"cluster": {"id": "bench", "name": "bench", "workers": len(hosts) - 1},
               "node": {"name": name, "role": role, "index": index, "host": host, "workdir": str(workdir)},
               "master": {"host": hosts[0]}, "workers": hosts[1:], "ports": ports, "props": props,
               "credentials": credentials}
        env = _render(fw.get("env", {}), ctx)
        files = _render(fw.get("files", {}), ctx)
        for proc in fw["roles"].get(role, {}).get("processes", []):
            groups[0 if role == "master" else 1].append(Launch(
                name=f"{fw['name']}-{proc['name']}", node=name, host=host, workdir=workdir,
                argv=_render(proc["command"], ctx), env={**env, **_render(proc.get("env", {}), ctx)},
                wait_for_tcp=_render(proc["wait_for_tcp"], ctx) if proc.get("wait_for_tcp") else None,
                files={**files, **_render(proc.get("files", {}), ctx)}))
    return groups


# -- hand-started clusters -------------------------------------------------------------------------


@dataclasses.dataclass
class HandSpec:
    framework: str                         # dask | spark
    default_daemon_flags: bool = False     # spark/default: drop DISCO's JVM tuning


READINESS: dict[str, tuple[str, str, float]] = {
    # framework -> (URL template, JSON field that counts workers, timeout from framework.yaml)
    "dask": ("http://{master}:8787/json/counts.json", "workers", 90.0),
    "spark": ("http://{master}:8080/json/", "aliveworkers", 180.0),
}
SPARK_TUNING_ENV = ("SPARK_DAEMON_JAVA_OPTS", "SPARK_DAEMON_MEMORY")


def hand_env(launch: Launch, spec: HandSpec) -> dict[str, str]:
    env = {**os.environ, **launch.env}
    if spec.default_daemon_flags:
        for name in SPARK_TUNING_ENV:
            env.pop(name, None)
    return env


def hand_run(spec: HandSpec, variant: str, rnd: int, hosts: list[str], root: Path,
             http: httpx.Client) -> RunResult:
    framework = load_framework(spec.framework)
    # The same kind of credentials DISCO makes for a cluster (TLS certificate, secret, token):
    # by hand, a careful human would secure the endpoints alike, web UIs included.
    from disco.cluster.credentials import new_credentials
    credentials = new_credentials("bench")
    masters, workers = render_launches(framework, hosts, root, credentials)
    url_tpl, field, timeout_s = READINESS[spec.framework]
    # A careful human polls as often as DISCO's readiness check does for this framework.
    poll_s = float(framework.get("readiness", {}).get("interval_s", READY_POLL_DEFAULT_S))
    url = url_tpl.format(master=hosts[0])
    want = len(hosts) - 1
    started: list[tuple[Launch, subprocess.Popen[bytes]]] = []
    sampler = ProcessSampler(lambda: _live_roots(started))
    busy = settle()
    stopped = False
    timeline = Timeline()
    try:
        with sampler:
            timeline.start()
            for launch in masters:
                started.append((launch, _hand_spawn(launch, spec)))
            timeline.mark("master", "master process(es) started")
            for address in sorted({w.wait_for_tcp for w in workers if w.wait_for_tcp}):
                wait_tcp(address, timeout_s)
                timeline.mark("master", f"{address} accepts connections")
            for launch in workers:
                started.append((launch, _hand_spawn(launch, spec)))
            timeline.mark("workers", f"{len(workers)} worker process(es) started")
            _poll_ready(http, url, field, want, timeout_s, started, timeline, poll_s,
                        {"Authorization": f"Bearer {credentials['token']}"})
            seconds = timeline.elapsed()
        stop_started = time.perf_counter()
        _hand_stop(started)
        stop_seconds = time.perf_counter() - stop_started
        stopped = True
    finally:
        if not stopped:
            _hand_stop(started)
        kill_leftovers(sampler.alive())
    return RunResult(variant, rnd, seconds, sampler.peak_rss, sampler.max_processes, stop_seconds, busy,
                     {"hosts": hosts, "timeline": timeline.rows, **sampler.stats()})


class Timeline:
    """Offsets of what happened since start(), in the same form as DISCO's event timeline."""

    def __init__(self) -> None:
        self._t0 = 0.0
        self.rows: list[dict[str, Any]] = []

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def mark(self, step: str, message: str) -> None:
        self.rows.append({"t": round(self.elapsed(), 3), "step": step, "message": message, "duration_s": None})


def _live_roots(started: list[tuple[Launch, subprocess.Popen[bytes]]]) -> list[psutil.Process]:
    roots = []
    for _, proc in list(started):  # the main thread appends while we sample
        with contextlib.suppress(psutil.Error):
            roots.append(psutil.Process(proc.pid))
    return roots


def _hand_spawn(launch: Launch, spec: HandSpec) -> subprocess.Popen[bytes]:
    launch.workdir.mkdir(parents=True, exist_ok=True)
    for relative, content in launch.files.items():
        path = launch.workdir / relative
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
    return spawn(launch.argv, cwd=launch.workdir, env=hand_env(launch, spec),
                 log=launch.workdir / f"{launch.name}.log")


def _poll_ready(http: httpx.Client, url: str, field: str, want: int, timeout_s: float,
                started: list[tuple[Launch, subprocess.Popen[bytes]]], timeline: Timeline,
                poll_s: float, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + timeout_s
    detail = last = "no answer yet"
    while time.monotonic() < deadline:
        for launch, proc in started:
            if proc.poll() is not None:
                logs = "".join(tail(p) for p in launch.workdir.glob("*.log"))
                raise BenchError(f"{launch.argv[:4]} on {launch.host} exited ({proc.returncode}): {logs}")
        try:
            response = http.get(url, timeout=5.0, headers=headers)
            response.raise_for_status()
            count = int(response.json().get(field, 0))
            detail = f"{count}/{want} {field}"
            if count >= want:
                timeline.mark("ready", detail)
                return
        except (httpx.HTTPError, ValueError) as exc:
            detail = f"{url}: {type(exc).__name__}"
        if detail != last:  # like DISCO's events: a row when the answer changes
            timeline.mark("waiting", detail)
            last = detail
        time.sleep(poll_s)
    raise BenchError(f"{url} not ready after {timeout_s:g} s ({detail})")


def _hand_stop(started: list[tuple[Launch, subprocess.Popen[bytes]]]) -> None:
    """Workers first, then the master (a Dask scheduler stopped first leaves its workers
    retrying for > 10 s); wait for every process to exit."""
    workers = [p for launch, p in started if launch.node != "master"]
    masters = [p for launch, p in started if launch.node == "master"]
    stop_groups(workers)
    stop_groups(masters)


# -- DISCO through its REST API --------------------------------------------------------------------


class ServiceManager:
    """A real `disco sm` subprocess with its own data directory, as a user would run it."""

    def __init__(self, data_dir: Path, net_base: int) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.net_base = net_base
        self.proc: subprocess.Popen[bytes] | None = None
        self.cluster_ids: list[str] = []
        self.log = data_dir / "sm.log"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "DISCO_DATA_DIR": str(self.data_dir),
               "DISCO_LOCAL_NET_BASE": str(self.net_base)}
        for name in ("DISCO_DATABASE_URL", "DISCO_FRAMEWORKS_PATH"):  # only the packaged ones
            env.pop(name, None)
        self.proc = spawn([sys.executable, "-m", "disco.cli.main", "sm", "--port", str(self.port)],
                          cwd=self.data_dir, env=env, log=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/v1/health", timeout=1, trust_env=False).status_code == 200:
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise BenchError(f"service manager did not start:\n{tail(self.log, 3000)}")

    def client(self) -> httpx.Client:
        token = (self.data_dir / "token").read_text().strip()  # made by its first start
        return httpx.Client(base_url=self.url, headers={"X-Auth-Token": token}, timeout=30,
                            trust_env=False)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_groups([self.proc], grace_s=20.0)

    def destroy_leftovers(self) -> None:
        """After the service manager stopped: what its clusters left behind, found the way
        the tests do (DISCO's local provider, by the cluster ids this run created)."""
        from disco.providers.local import LocalProvider  # the project's package, in .venv

        provider = LocalProvider(self.data_dir)
        for cluster_id in provider.cluster_ids() & set(self.cluster_ids):
            asyncio.run(provider.destroy_cluster(cluster_id))


def disco_run(sm: ServiceManager, api: httpx.Client, framework: str, workers: int, variant: str,
              rnd: int, poll_s: float) -> RunResult:
    prefix = f"127.{sm.net_base}."
    if busy := listeners_on(prefix):
        raise BenchError(f"addresses of DISCO_LOCAL_NET_BASE={sm.net_base} are in use: {busy[:5]}")
    assert sm.proc is not None
    sm_proc = psutil.Process(sm.proc.pid)
    sampler = ProcessSampler(lambda: [sm_proc])
    busy_cpu = settle()
    cluster_id = ""
    try:
        with sampler:
            wall0, t0 = time.time(), time.perf_counter()
            response = api.post("/api/v1/clusters", json={"frameworks": [{"name": framework}], "workers": workers})
            if response.status_code != 201:
                raise BenchError(f"create failed: {response.status_code} {response.text}")
            cluster_id = response.json()["id"]
            sm.cluster_ids.append(cluster_id)
            polls = _follow_until(api, cluster_id, {"ready", "failed"}, timeout_s=240)
            seconds = time.perf_counter() - t0
            body = api.get(f"/api/v1/clusters/{cluster_id}").json()
            if body["state"] != "ready":
                raise BenchError(f"cluster {cluster_id} failed: {body['status_reason']}")
        stop_started = time.perf_counter()
        api.delete(f"/api/v1/clusters/{cluster_id}").raise_for_status()
        _poll_state(api, cluster_id, {"deleted"}, poll_s, timeout_s=120)
        stop_seconds = time.perf_counter() - stop_started
        cluster_id = ""
    finally:
        if cluster_id:  # failed or interrupted half-way: still delete it
            with contextlib.suppress(Exception):
                api.delete(f"/api/v1/clusters/{cluster_id}")
                _poll_state(api, cluster_id, {"deleted"}, 0.2, timeout_s=60)
    detail = {"cluster_id": body["id"], "hosts": [n["host"] for n in body["nodes"]],
              "server_ready_s": _seconds_between(body["created_at"], body["ready_at"]),
              "polls": polls, "sm_cpu_s": round(sampler.cpu_of(sm_proc), 2),
              "timeline": _timeline(body, wall0), **sampler.stats()}
    return RunResult(variant, rnd, seconds, sampler.peak_rss, sampler.max_processes, stop_seconds,
                     busy_cpu, detail)


def _follow_until(api: httpx.Client, cluster_id: str, steps: set[str], timeout_s: float) -> int:
    """Follow the cluster's event stream (server-sent events, pushed as they happen) until an
    event of one of `steps`; how many events arrived. This is how DISCO's own clients learn
    that a cluster is ready, so no client-side poll interval is added to the measurement."""
    seen = 0
    with api.stream("GET", f"/api/v1/clusters/{cluster_id}/events", params={"follow": True},
                    timeout=httpx.Timeout(timeout_s)) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            seen += 1
            if json.loads(line[6:])["step"] in steps:
                return seen
    raise BenchError(f"event stream of {cluster_id} ended before any of {steps}")


def _poll_state(api: httpx.Client, cluster_id: str, states: set[str], poll_s: float,
                timeout_s: float) -> tuple[dict[str, Any], int]:
    """GET the cluster every poll_s until its state is one of `states`; (body, GETs made)."""
    deadline = time.monotonic() + timeout_s
    polls = 0
    while True:
        body = api.get(f"/api/v1/clusters/{cluster_id}").json()
        polls += 1
        if body["state"] in states:
            return body, polls
        if body["state"] == "failed" and "failed" not in states:
            raise BenchError(f"cluster {cluster_id} failed: {body['status_reason']}")
        if time.monotonic() > deadline:
            raise BenchError(f"cluster {cluster_id} not {states} after {timeout_s:g} s "
                             f"(state {body['state']}): {body.get('events', [])[-3:]}")
        time.sleep(poll_s)


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (_parse_time(end) - _parse_time(start)).total_seconds()


def _timeline(body: dict[str, Any], wall0: float) -> list[dict[str, Any]]:
    """The cluster's events as offsets from the moment before the POST (same clock)."""
    rows = [{"t": round(_parse_time(body["created_at"]).timestamp() - wall0, 3), "step": "created",
             "message": "row stored (created_at)", "duration_s": None}]
    for event in body.get("events", []):
        rows.append({"t": round(_parse_time(event["at"]).timestamp() - wall0, 3), "step": event["step"],
                     "message": event["message"], "duration_s": event["duration_s"]})
    return rows


# -- dask-gateway ----------------------------------------------------------------------------------


class GatewayServer:
    """dask-gateway-server with the local backend, from .bench-venv, on 127.0.0.1 only."""

    def __init__(self, venv: Path, work: Path, nanny: bool) -> None:
        self.venv = venv
        self.work = work
        self.nanny = nanny
        self.address = f"127.0.0.1:{free_port()}"
        self.url = f"http://{self.address}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = work / "gateway-server.log"

    def start(self) -> None:
        (self.work / "clusters").mkdir(parents=True, exist_ok=True)
        env = {**os.environ,
               "BENCH_GATEWAY_ADDRESS": self.address,
               "BENCH_GATEWAY_API_ADDRESS": f"127.0.0.1:{free_port()}",
               "BENCH_GATEWAY_CLUSTERS_DIR": str(self.work / "clusters"),
               "BENCH_GATEWAY_NANNY": "1" if self.nanny else "0"}
        self.proc = spawn([str(self.venv / "bin" / "dask-gateway-server"), "-f", str(BENCH_DIR / "gateway_config.py")],
                          cwd=self.work, env=env, log=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/health", timeout=1, trust_env=False).status_code == 200:
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise BenchError(f"dask-gateway-server did not start:\n{tail(self.log, 3000)}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_groups([self.proc], grace_s=30.0)  # it stops its clusters on shutdown


def gateway_run(server: GatewayServer, workers: int, variant: str, rnd: int) -> RunResult:
    assert server.proc is not None
    server_proc = psutil.Process(server.proc.pid)
    baseline = {_key(p) for p in [server_proc, *server_proc.children(recursive=True)]}
    log = server.work / f"client-{rnd}.log"
    client = spawn([str(server.venv / "bin" / "python"), str(BENCH_DIR / "gateway_client.py"),
                    "--address", server.url, "--workers", str(workers)],
                   cwd=server.work, env=dict(os.environ), log=log,
                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    client_proc = psutil.Process(client.pid)
    # The client (not part of the cluster) counts for CPU, not for memory.
    sampler = ProcessSampler(lambda: [server_proc], cpu_only=lambda: [client_proc])
    try:
        _read_phase(client, "loaded", timeout_s=120, log=log)  # imports done, clock not started
        busy = settle()
        with sampler:
            _tell(client, "go")
            ready = _read_phase(client, "ready", timeout_s=180, log=log)
        # Scheduler and workers of this cluster: what the server started during the run.
        cluster_procs = [p for k, p in sampler.seen.items() if k not in baseline]
        stop_started = time.perf_counter()
        _tell(client, "stop")
        client.wait(60)
        if not wait_gone(cluster_procs, 60):
            raise BenchError("dask-gateway cluster processes still running 60 s after shutdown")
        stop_seconds = time.perf_counter() - stop_started
    finally:
        if client.poll() is None:
            stop_groups([client])
    return RunResult(variant, rnd, float(ready["seconds"]), sampler.peak_rss, sampler.max_processes,
                     stop_seconds, busy, {"cluster": ready.get("name"), "nanny": server.nanny,
                                          "server_cpu_s": round(sampler.cpu_of(server_proc), 2),
                                          **sampler.stats()})


def _tell(client: subprocess.Popen[bytes], word: str) -> None:
    assert client.stdin is not None
    client.stdin.write(word.encode() + b"\n")
    client.stdin.flush()


def _read_phase(client: subprocess.Popen[bytes], phase: str, timeout_s: float, log: Path) -> dict[str, Any]:
    """Read the client's JSON lines until `phase` (readline in a thread: it has no timeout)."""
    box: dict[str, Any] = {}

    def reader() -> None:
        assert client.stdout is not None
        for line in client.stdout:
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if message.get("phase") == phase:
                    box.update(message)
                    return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not box:
        raise BenchError(f"dask-gateway client gave no {phase!r} (exit {client.poll()}):\n{tail(log, 3000)}")
    return box


# -- the run ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Context:
    args: argparse.Namespace
    work: Path
    hand_base: int
    http: httpx.Client
    sm: ServiceManager | None = None
    api: httpx.Client | None = None
    gateway: GatewayServer | None = None
    hand_slot: int = 0


def selected_variants(args: argparse.Namespace) -> list[str]:
    return [v for v in VARIANTS
            if v.split("/")[0] in args.only and not (args.skip_gateway and v == "dask/gateway")]


def run_variant(ctx: Context, variant: str, rnd: int) -> RunResult:
    framework, kind = variant.split("/")
    workers = ctx.args.workers
    if kind == "disco":
        assert ctx.sm is not None and ctx.api is not None
        return disco_run(ctx.sm, ctx.api, framework, workers, variant, rnd, ctx.args.poll)
    if kind == "gateway":
        assert ctx.gateway is not None
        return gateway_run(ctx.gateway, workers, variant, rnd)
    # A fresh 127.B.S.x block for every hand-started cluster: no TIME_WAIT or a slow
    # exit of the previous run can get in the way.
    ctx.hand_slot += 1
    hosts = [f"127.{ctx.hand_base}.{ctx.hand_slot}.{i + 1}" for i in range(workers + 1)]
    root = ctx.work / "hand" / f"{framework}-{kind}-{ctx.hand_slot}"
    spec = HandSpec(framework, default_daemon_flags=(kind == "default"))
    return hand_run(spec, variant, rnd, hosts, root, ctx.http)


def run_all(ctx: Context, variants: list[str]) -> list[RunResult]:
    results: list[RunResult] = []
    rounds = ctx.args.warmup + ctx.args.repeat
    for rnd in range(rounds):
        label = "warm-up" if rnd < ctx.args.warmup else f"round {rnd - ctx.args.warmup + 1}/{ctx.args.repeat}"
        for variant in variants:
            result = run_quiet(ctx, variant, rnd - ctx.args.warmup, label)
            print(f"  {label:>11}  {variant:<14} ready {result.seconds:6.2f} s   peak "
                  f"{result.peak_rss_bytes / 2**20:5.0f} MiB  {result.max_processes:2d} procs   "
                  f"stop {result.stop_seconds or 0:5.2f} s   CPU: ours {result.detail.get('own_cpu_s', 0):5.1f} s, "
                  f"others {result.detail.get('foreign_cpu_s', 0):4.1f} s", flush=True)
            if rnd >= ctx.args.warmup:
                results.append(result)
    return results


def foreign_load(result: RunResult) -> float:
    """Average number of cores that other people's processes used during the run."""
    wall = result.detail.get("wall_s") or result.seconds
    return float(result.detail.get("foreign_cpu_s", 0.0)) / max(wall, 1e-3)


def run_quiet(ctx: Context, variant: str, rnd: int, label: str) -> RunResult:
    """Run a variant; run it again (up to --retries times) while someone else's work on this
    shared machine took more than --max-foreign cores on average during it."""
    for attempt in range(ctx.args.retries + 1):
        result = run_variant(ctx, variant, rnd)
        load = foreign_load(result)
        result.detail["foreign_cores"] = round(load, 2)
        result.detail["attempt"] = attempt + 1
        if load <= ctx.args.max_foreign:
            return result
        print(f"  {label:>11}  {variant:<14} ({result.seconds:.2f} s) disturbed: other processes used "
              f"{load:.2f} cores on average" + ("; again" if attempt < ctx.args.retries else "; kept, flagged"),
              flush=True)
    result.detail["disturbed"] = True
    return result


def start_services(ctx: Context, variants: list[str]) -> None:
    if any(v.endswith("/disco") for v in variants):
        ctx.sm = ServiceManager(ctx.work / "disco-data", ctx.args.disco_net_base)
        ctx.sm.start()
        ctx.api = ctx.sm.client()
    if "dask/gateway" in variants:
        ensure_bench_venv(ctx.args.bench_venv)
        ctx.gateway = GatewayServer(ctx.args.bench_venv, ctx.work / "gateway", ctx.args.gateway_nanny)
        ctx.gateway.start()


def stop_services(ctx: Context) -> None:
    """Clean-up that runs even after a failure or Ctrl-C; each step on its own."""
    steps: list[Callable[[], None]] = []
    if ctx.api is not None:
        steps.append(ctx.api.close)
    if ctx.sm is not None:
        steps += [ctx.sm.stop, ctx.sm.destroy_leftovers]
    if ctx.gateway is not None:
        steps.append(ctx.gateway.stop)
    for step in steps:
        try:
            step()
        except Exception as exc:  # keep cleaning up; say what failed
            print(f"clean-up step {step.__qualname__} failed: {exc!r}", file=sys.stderr)


def ensure_bench_venv(venv: Path) -> None:
    """Create or update .bench-venv (a no-op when it is already as wanted)."""
    subprocess.run(["bash", str(BENCH_DIR / "setup_bench_venv.sh")], check=True,
                   env={**os.environ, "BENCH_VENV": str(venv)})


# -- report ----------------------------------------------------------------------------------------


def summarize(results: list[RunResult], variants: list[str]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for variant in variants:
        runs = [r for r in results if r.variant == variant]
        if not runs:
            continue
        seconds = [r.seconds for r in runs]
        summary[variant] = {
            "label": VARIANTS[variant],
            "runs": len(runs),
            "median_s": statistics.median(seconds),
            "min_s": min(seconds),
            "max_s": max(seconds),
            "peak_rss_mib_median": statistics.median(r.peak_rss_bytes for r in runs) / 2**20,
            "peak_rss_mib_max": max(r.peak_rss_bytes for r in runs) / 2**20,
            "processes": max(r.max_processes for r in runs),
            "stop_median_s": statistics.median(r.stop_seconds or 0.0 for r in runs),
            "own_cpu_s_median": statistics.median(r.detail.get("own_cpu_s", 0.0) for r in runs),
            "foreign_cores_max": max(r.detail.get("foreign_cores", 0.0) for r in runs),
            "disturbed_runs": sum(1 for r in runs if r.detail.get("disturbed")),
        }
    return summary


def evaluate_targets(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name, num, den, limit in TARGETS:
        if num not in summary or den not in summary:
            continue
        ratio = summary[num]["median_s"] / summary[den]["median_s"]
        ratio_min = summary[num]["min_s"] / summary[den]["min_s"]
        rows.append({"target": name, "numerator": num, "denominator": den, "limit": limit,
                     "ratio_median": ratio, "ratio_min": ratio_min,
                     "result": "PASS" if ratio <= limit else "MISS"})
    return rows


def print_report(summary: dict[str, dict[str, Any]], targets: list[dict[str, Any]],
                 results: list[RunResult]) -> None:
    print()
    print(f"{'variant':<44}{'median s':>9}{'min s':>8}{'max s':>8}{'peak MiB':>10}{'procs':>7}{'stop s':>8}"
          f"{'others':>8}")
    print("-" * 102)
    for s in summary.values():
        print(f"{s['label']:<44}{s['median_s']:>9.2f}{s['min_s']:>8.2f}{s['max_s']:>8.2f}"
              f"{s['peak_rss_mib_median']:>10.0f}{s['processes']:>7d}{s['stop_median_s']:>8.2f}"
              f"{s['foreign_cores_max']:>8.2f}")
    print("(peak MiB: median over runs of the peak summed RSS; others: most cores that other people's "
          "processes used on average during one run)")
    print()
    print(f"{'target (ratio of medians)':<40}{'ratio':>8}{'of mins':>9}{'limit':>8}  result")
    print("-" * 74)
    for t in targets:
        print(f"{t['target']:<40}{t['ratio_median']:>8.3f}{t['ratio_min']:>9.3f}{'≤ ' + format(t['limit'], 'g'):>8}"
              f"  {t['result']}")
    for variant in ("dask/disco", "dask/hand", "spark/disco", "spark/hand"):
        runs = sorted((r for r in results if r.variant == variant), key=lambda r: r.seconds)
        if not runs:
            continue
        run = runs[(len(runs) - 1) // 2]  # the median run (the lower one for an even count)
        extra = (f"; server-side created_at -> ready_at {run.detail['server_ready_s']:.2f} s, "
                 f"service manager CPU {run.detail['sm_cpu_s']:.2f} s over {run.detail['polls']} GETs"
                 if variant.endswith("/disco") else "")
        print(f"\n{VARIANTS[variant].strip()}: timeline of the median run ({run.seconds:.2f} s{extra})")
        for row in run.detail["timeline"]:
            took = f" ({row['duration_s']:.2f} s)" if row["duration_s"] is not None else ""
            print(f"  +{row['t']:6.2f} s  {row['step']:<13} {row['message'][:90]}{took}")
        launched = run.detail.get("launched_s") or []
        if launched:
            print(f"  processes created at +{', +'.join(f'{t:.2f}' for t in launched)} s (kernel start times)")


def machine_info(bench_venv: Path) -> dict[str, Any]:
    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            return "unavailable"

    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor())
    import dask
    import distributed
    import pyspark

    gateway = "not installed"
    if (bench_venv / "bin" / "python").exists():
        gateway = first_line([str(bench_venv / "bin" / "python"), "-c",
                              "import dask_gateway_server as s; print(s.__version__)"])
    return {"nproc": os.cpu_count(), "cpu_model": model,
            "mem_total_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "java": first_line(["java", "-version"]), "spark": pyspark.__version__,
            "dask": dask.__version__, "distributed": distributed.__version__,
            "dask_gateway_server": gateway, "date": dt.datetime.now().isoformat(timespec="seconds")}


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="measured runs of each variant (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="unrecorded rounds first (default 1)")
    parser.add_argument("--workers", type=int, default=4, help="workers per cluster (default 4)")
    parser.add_argument("--only", nargs="+", choices=["dask", "spark"], default=["dask", "spark"])
    parser.add_argument("--skip-gateway", action="store_true", help="leave out dask-gateway")
    parser.add_argument("--gateway-nanny", action="store_true",
                        help="gateway workers with a nanny (its default) instead of DISCO's --no-nanny")
    parser.add_argument("--poll", type=float, default=0.1, help="GET poll period for DISCO's state (s)")
    parser.add_argument("--bench-venv", type=Path, default=DEFAULT_BENCH_VENV)
    parser.add_argument("--disco-net-base", type=int, default=DISCO_NET_BASE)
    parser.add_argument("--max-foreign", type=float, default=0.25,
                        help="a run during which other processes used more cores than this on "
                             "average is repeated (default 0.25)")
    parser.add_argument("--retries", type=int, default=2, help="repeats of a disturbed run (default 2)")
    parser.add_argument("--json", type=Path, help="write all results here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs)")
    return parser.parse_args(argv)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM to the benchmark runs the same clean-up as Ctrl-C."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    variants = selected_variants(args)
    work = Path(tempfile.mkdtemp(prefix="disco-bench-"))
    failed = True
    with sigterm_as_interrupt(), httpx.Client(trust_env=False) as http:
        ctx = Context(args, work, pick_hand_net_base(), http)
        print(f"start-up benchmark: {', '.join(variants)}; {args.workers} workers; "
              f"{args.warmup} warm-up + {args.repeat} rounds; hand-started on 127.{ctx.hand_base}.x.x, "
              f"DISCO on 127.{args.disco_net_base}.x.x; work dir {work}", flush=True)
        try:
            start_services(ctx, variants)
            results = run_all(ctx, variants)
            failed = False
        finally:
            stop_services(ctx)
            if failed or args.keep:
                print(f"working directory (logs) kept: {work}", file=sys.stderr)
            else:
                shutil.rmtree(work, ignore_errors=True)
    summary = summarize(results, variants)
    targets = evaluate_targets(summary)
    print_report(summary, targets, results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "benchmark": "startup", "machine": machine_info(args.bench_venv),
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "summary": summary, "targets": targets,
            "runs": [dataclasses.asdict(r) for r in results]}, indent=2))
        print(f"\nJSON results: {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # clean-up already ran in main's finally blocks
        print("interrupted; everything this benchmark started has been stopped", file=sys.stderr)
        sys.exit(130)
