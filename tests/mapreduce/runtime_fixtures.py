"""Helpers for the runtime tests: a real master and real nodes as subprocesses on loopback
addresses of their own, job packs built with disco.jobpack around a small protocol-speaking
test worker, and HTTP helpers. Everything started here is stopped (process groups, workers
included) by `Cluster.stop()`, which the fixtures call even when a test fails."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

from disco.jobpack import VERSION_CLASSIC, VERSION_PIPELINE, JobPack

PYTHON = sys.executable

RUN_WORKER = '#!/bin/sh\nexec "${DISCO_PYTHON:-python3}" -S -B -u testworker.py\n'

# The test worker, shipped as testworker.py in each test job's home.
WORKER_SOURCE = r'''
"""A small worker for the runtime tests: speaks Disco's worker protocol 1.1 with the standard
library only. It is shipped in the job home of test jobs; `TW_*` job environment variables pick
what it does:

TW_MODE      map (default) | noop | fatal | garbage | crash_once | silent | error_always
             | spawn_child (starts `sleep 60`, its pid in TW_STARTED/child-<taskid>, then maps)
TW_SLEEP     seconds to sleep before working (stage `map` only)
TW_SLEEP_STEP    and this many more seconds times the task id
TW_REDUCE_DELAY  seconds a non-map stage sleeps before reading its inputs
TW_MARKER    a file: crash_once crashes while it does not exist (and creates it)
TW_STARTED   a folder: each task writes `<stage>-<taskid>-<host>` there, holding its pid
TW_LABELS    map: number of labels; line i of an input goes to label i % n (default 1)

Stage `map` (and any first stage) upper-cases each input, one output per input and label.
Stages named `*shuffle*` copy their inputs, keeping labels. Any other stage (a reduce)
gathers the lines of all its inputs, sorts them and writes one output, label 0; it also sends
MSG "inputs: <urls>" and, while its input list may grow, MSG "more inputs to come".
"""

import json
import os
import sys
import time


def send(name, payload=""):
    body = json.dumps(payload)
    sys.stderr.write("%s %d %s\n" % (name, len(body), body))
    sys.stderr.flush()


def recv():
    stream = sys.stdin.buffer

    def until_space():
        out = b""
        while True:
            c = stream.read(1)
            if not c:
                sys.exit(9)
            if c == b" ":
                return out.decode()
            out += c

    name = until_space()
    length = int(until_space())
    body = stream.read(length + 1)
    return name, json.loads(body[:-1])


def call(name, payload=""):
    send(name, payload)
    return recv()


def local_path(url, task):
    # disco://host/disco/<path> is DISCO_DATA/<path> on that host itself.
    rest = url.split("://", 1)[1]
    host, path = rest.split("/", 1)
    if host == task["host"] and path.startswith("disco/"):
        return os.path.join(task["disco_data"], path[len("disco/"):])
    return None


def fetch(url, task):
    if url.startswith("raw://"):
        return url[len("raw://"):].encode()
    local = local_path(url, task)
    if local is not None:
        with open(local, "rb") as f:
            return f.read()
    import urllib.request  # here: it is slow to import, and only remote inputs need it

    rest = url.split("://", 1)[1]
    host, path = rest.split("/", 1)
    request = urllib.request.Request("http://%s:%d/%s" % (host, task["disco_port"], path))
    token = os.environ.get("DISCO_CLUSTER_TOKEN")  # the node gives workers the cluster token
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=5) as r:
        return r.read()


def read_input(entry, task):
    """(label, bytes) pieces of one input, trying its replicas in turn."""
    iid, _status, label, replicas = entry
    tried = []
    while True:
        for rep_id, url in replicas:
            if rep_id in tried:
                continue
            try:
                data = fetch(url, task)
            except Exception:  # noqa: BLE001 - any failure: tell the node, try the others
                tried.append(rep_id)
                continue
            if not url.startswith("dir://"):
                return [(label, data)]
            pieces = []
            for line in data.decode().splitlines():
                lab, part_url, _size = line.split()
                if label == "all" or int(lab) == label:
                    pieces.append((int(lab), fetch(part_url, task)))
            return pieces
        name, reply = call("INPUT_ERR", [iid, tried])
        if name == "FAIL":
            send("ERROR", "input %d is unreachable" % iid)
            recv()
            sys.exit(1)
        replicas = reply


def all_inputs(task):
    seen, entries = [], []
    while True:
        _name, (status, batch) = call("INPUT", ["exclude", seen] if seen else "")
        for entry in batch:
            if entry[0] not in seen:
                seen.append(entry[0])
                entries.append(entry)
        if status == "done":
            return entries
        send("MSG", "more inputs to come")
        recv()


def output(task, label, data, n):
    os.makedirs("out", exist_ok=True)
    path = "out/%s-%d-%d-%d" % (task["stage"], task["taskid"], os.getpid(), n)
    with open(path, "wb") as f:
        f.write(data)
    call("OUTPUT", [label, path, len(data)])


def main():
    mode = os.environ.get("TW_MODE", "map")
    if mode == "garbage":
        sys.stdout.write("this is not the worker protocol\n")
        sys.stdout.flush()
        sys.exit(1)
    if mode == "silent":
        time.sleep(600)
    call("WORKER", {"version": "1.1", "pid": os.getpid()})
    _name, task = call("TASK")
    started = os.environ.get("TW_STARTED")
    if started:
        marker = "%s-%d-%s" % (task["stage"], task["taskid"], task["host"])
        with open(os.path.join(started, marker), "w") as f:
            f.write(str(os.getpid()))
    if mode == "spawn_child":
        import subprocess

        child = subprocess.Popen(["sleep", "60"])
        with open(os.path.join(started, "child-%d" % task["taskid"]), "w") as f:
            f.write(str(child.pid))
    if mode == "fatal":
        send("FATAL", "boom: the job cannot go on")
        recv()
        return
    if mode == "error_always":
        send("ERROR", "this task always fails")
        recv()
        return
    if mode == "crash_once":
        marker = os.environ["TW_MARKER"]
        if not os.path.exists(marker):
            open(marker, "w").close()
            sys.exit(3)
    entries = all_inputs(task)
    if mode == "noop":
        send("DONE")
        recv()
        return
    first_stage = task["stage"] == os.environ.get("TW_FIRST_STAGE", "map")
    if first_stage:
        time.sleep(float(os.environ.get("TW_SLEEP", "0"))
                   + float(os.environ.get("TW_SLEEP_STEP", "0")) * task["taskid"])
        labels = int(os.environ.get("TW_LABELS", "1"))
        n = 0
        for entry in entries:
            for _lab, data in read_input(entry, task):
                lines = data.upper().splitlines()
                for lab in range(labels):
                    part = b"".join(line + b"\n" for i, line in enumerate(lines) if i % labels == lab)
                    if part:
                        output(task, lab, part, n)
                        n += 1
    else:
        time.sleep(float(os.environ.get("TW_REDUCE_DELAY", "0")))
        send("MSG", "inputs: " + " ".join(url for e in entries for _rid, url in e[3]))
        recv()
        pieces = [p for entry in entries for p in read_input(entry, task)]
        if "shuffle" in task["stage"]:
            for n, (lab, data) in enumerate(pieces):
                output(task, lab, data, n)
        else:
            lines = sorted(line for _lab, data in pieces for line in data.splitlines())
            output(task, 0, b"".join(line + b"\n" for line in lines), 0)
    send("DONE")
    recv()


if __name__ == "__main__":
    main()
'''


def jobhome_zip(files: dict[str, str] | None = None) -> bytes:
    """A jobhome ZIP with the test worker (and `files`), the worker script executable."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("run-worker")
        info.external_attr = (stat.S_IFREG | 0o755) << 16
        zf.writestr(info, RUN_WORKER)
        zf.writestr("testworker.py", WORKER_SOURCE)
        for name, text in (files or {}).items():
            zf.writestr(name, text)
    return buf.getvalue()


def pipeline_pack(inputs: list[Any], pipeline: list[list[Any]], env: dict[str, str] | None = None,
                  prefix: str = "RuntimeTest", **jobdict: Any) -> bytes:
    """A version 2 job pack; `inputs` are URLs or [label, size, url...] entries."""
    entries = [i if isinstance(i, list) else [0, 0, i] for i in inputs]
    d = {"prefix": prefix, "worker": "run-worker", "owner": "tests@runtime",
         "pipeline": pipeline, "inputs": entries, "scheduler": {}, **jobdict}
    return JobPack(d, env or {}, jobhome_zip(), b"jobdata", VERSION_PIPELINE).dumps()


def classic_pack(inputs: list[Any], env: dict[str, str] | None = None, map_: bool = True,
                 reduce: bool = False, nr_reduces: int = 1, prefix: str = "ClassicTest") -> bytes:
    # Disco's keys are map?/reduce?; disco.jobpack.JobPack.validate wants map/reduce too.
    d = {"prefix": prefix, "worker": "run-worker", "owner": "tests@runtime", "input": inputs,
         "map?": map_, "reduce?": reduce, "map": map_, "reduce": reduce,
         "nr_reduces": nr_reduces, "scheduler": {}}
    return JobPack(d, env or {}, jobhome_zip(), b"", VERSION_CLASSIC).dumps()


def _free_port(addresses: list[str], avoid: set[int] | None = None) -> int:
    """A port free on every one of the addresses (and not in `avoid`)."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        if avoid and port in avoid:
            continue
        try:
            for addr in addresses:
                with socket.socket() as s:
                    s.bind((addr, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _my_nets(nets: range) -> list[int]:
    # Imported here, not at the top: jobs ship test modules to the nodes, which lack tests/.
    from xdist_worker import worker_share
    return worker_share(nets)


class Proc:
    """A process we started in its own session; stopping it takes its descendants along."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        self._logf = open(log, "wb")
        self.popen = subprocess.Popen(args, stdout=self._logf, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return []

    def kill9(self) -> None:
        """Die as a machine dies: the process and everything it started, at once."""
        family = self.descendants()
        _signal_group(self.pid, signal.SIGKILL)
        for p in family:
            _kill(p)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            family = self.descendants()
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(8)
            except subprocess.TimeoutExpired:
                _signal_group(self.pid, signal.SIGKILL)
                self.popen.wait(5)
            for p in family:
                _kill(p)
        self._logf.close()

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill(p: psutil.Process) -> None:
    try:
        p.kill()
    except psutil.Error:
        pass


def write_token_file(path: Path, token: str) -> Path:
    """A token file as a deployer writes one: readable by its owner only."""
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return path


class Cluster:
    """A master on 127.N.0.1 and nodes on 127.N.0.2, 127.N.0.3, ... all on one port.

    The cluster has a token of its own (a fresh random one) unless `open_cluster` is set;
    `self.http` sends it with every request, as Disco's clients do with DISCO_CLUSTER_TOKEN."""

    def __init__(self, root: Path, nodes: int = 2, slots: int = 2, net: int | None = None,
                 master_args: list[str] | None = None, node_args: list[str] | None = None,
                 open_cluster: bool = False) -> None:
        self.root = root
        self.net = net if net is not None else random.choice(_my_nets(range(60, 91)))
        self.master_host = f"127.{self.net}.0.1"
        self.node_hosts = [f"127.{self.net}.0.{i + 2}" for i in range(nodes)]
        self.port = _free_port([self.master_host, *self.node_hosts])
        # DDFS uploads: another port, free on every node address too.
        self.put_port = _free_port(self.node_hosts, avoid={self.port})
        self.url = f"http://{self.master_host}:{self.port}"
        self.slots = slots
        self.master_args = master_args or []
        self.node_args = node_args or []
        self.master: Proc | None = None
        self.nodes: dict[str, Proc] = {}
        self.root.mkdir(parents=True, exist_ok=True)
        self.token: str | None = None if open_cluster else secrets.token_urlsafe(32)
        self.token_args: list[str] = []
        if self.token is not None:
            token_file = write_token_file(self.root / "cluster.token", self.token)
            self.token_args = ["--token-file", str(token_file)]
        self.http = httpx.Client(timeout=30, trust_env=False, headers=self.auth_headers)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCO_", "DDFS_"))}

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def data(self, host: str) -> Path:
        return self.root / host

    def start(self) -> Cluster:
        self.start_master()
        for host in self.node_hosts:
            self.start_node(host)
        wait_until(lambda: self._connected() >= set(self.node_hosts), 20, "the nodes to register")
        return self

    def start_master(self, log_name: str = "master.log") -> None:
        """The master on its data folder and port (again, after a kill: it resumes its jobs)."""
        mdata = self.root / "master"
        self.master = Proc([PYTHON, "-m", "disco.mapreduce.master", "--host", self.master_host,
                            "--port", str(self.port), "--data", str(mdata),
                            "--retry-base", "0.05", "--node-timeout", "3", "--poll-hold", "0.5",
                            *self.token_args, *self.master_args], self.root / log_name, self.env)
        wait_until(self._master_up, 20, "the master to answer")

    def start_node(self, host: str) -> None:
        self.nodes[host] = Proc(
            [PYTHON, "-m", "disco.mapreduce.node", "--master", self.url, "--host", host,
             "--port", str(self.port), "--data", str(self.data(host)), "--slots", str(self.slots),
             "--put-port", str(self.put_port), *self.token_args, *self.node_args],
            self.root / f"node-{host}.log", self.env)

    def _master_up(self) -> bool:
        try:
            return self.http.get(f"{self.url}/disco/version", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _connected(self) -> set[str]:
        info = self.get("nodeinfo")
        return {h for h, n in info.items() if n["connected"]}

    def stop(self) -> None:
        for proc in list(self.nodes.values()):
            proc.stop()
        if self.master is not None:
            self.master.stop()
        self.http.close()
        self._kill_strays()
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_strays(self) -> None:
        """Workers run with their job home, inside our data folders, as working directory."""
        root = str(self.root.resolve())
        for p in psutil.process_iter(["cwd"]):
            cwd = p.info.get("cwd") or ""
            if cwd.startswith(root):
                _kill(p)

    def logs(self) -> str:
        procs = ([self.master] if self.master else []) + list(self.nodes.values())
        return "\n".join(f"==== {p.log.name}\n{p.output()[-6000:]}" for p in procs)

    # ---------------------------------------------------------------- master API

    def get(self, op: str, **params: Any) -> Any:
        resp = self.http.get(f"{self.url}/disco/ctrl/{op}", params=params)
        resp.raise_for_status()
        return resp.json()

    def post(self, op: str, body: Any) -> Any:
        resp = self.http.post(f"{self.url}/disco/ctrl/{op}", content=json.dumps(body))
        resp.raise_for_status()
        return resp.json()

    def submit(self, pack: bytes) -> str:
        reply = self.http.post(f"{self.url}/disco/job/new", content=pack).json()
        assert reply[0] == "ok", reply
        return reply[1]

    def wait(self, name: str, timeout: float = 60) -> tuple[str, list[list[str]]]:
        deadline = time.monotonic() + timeout
        while True:
            [[_name, [status, results]]] = self.post("get_results", [1000, [name]])
            if status != "active":
                return status, results
            if time.monotonic() > deadline:
                raise AssertionError(f"job {name} still active after {timeout} s:\n"
                                     f"{self.event_text(name)}")

    def events(self, name: str) -> list[list[str]]:
        """Oldest first, from the raw event log."""
        raw = self.http.get(f"{self.url}/disco/ctrl/rawevents", params={"name": name}).text
        return [json.loads(line) for line in raw.splitlines() if line.strip()]

    def event_text(self, name: str) -> str:
        return "\n".join(f"{h}: {m}" for _ts, h, m in self.events(name))

    # ---------------------------------------------------------------- node data

    def fetch(self, url: str) -> bytes:
        """A disco:// or dir:// URL, read over HTTP from the node that serves it."""
        scheme, rest = url.split("://", 1)
        assert scheme in ("disco", "dir"), url
        host, path = rest.split("/", 1)
        resp = self.http.get(f"http://{host}:{self.port}/{path}")
        resp.raise_for_status()
        return resp.content

    def index(self, dir_url: str) -> list[tuple[int, str, int]]:
        lines = self.fetch(dir_url).decode().splitlines()
        return [(int(lab), url, int(size)) for lab, url, size in (line.split() for line in lines)]

    def result_data(self, results: list[list[str]]) -> list[tuple[int, bytes]]:
        """Every (label, content) the job's result indexes list."""
        out = []
        for replicas in results:
            for lab, url, _size in self.index(replicas[0]):
                out.append((lab, self.fetch(url)))
        return out


# ---------------------------------------------------------------- the real client

CLIENT_SETTINGS = ("DISCO_", "DDFS_")


@contextlib.contextmanager
def client_cluster(prefix: str, nodes: int = 2, slots: int = 2,
                   **cluster_args: Any) -> Iterator[Cluster]:
    """A started cluster, with the environment set up for Disco's own client (`Job`,
    `result_iterator`, `disco.test.TestCase`) to use it: DISCO_MASTER, DISCO_PORT (nodes
    serve `disco://` data on the master's port), and DISCO_TEST_HOST/DISCO_TEST_PORT for
    the test server that nodes read inputs from. Every DISCO_*/DDFS_* variable the caller
    had is put back afterwards, and the cluster is stopped even if starting it failed."""
    cluster = Cluster(Path(tempfile.mkdtemp(prefix=f"{prefix}-")), nodes=nodes, slots=slots,
                      **cluster_args)
    saved = {k: v for k, v in os.environ.items() if k.startswith(CLIENT_SETTINGS)}
    try:
        cluster.start()
        for key in saved:
            del os.environ[key]
        os.environ.update({
            "DISCO_MASTER": cluster.url,
            "DISCO_PORT": str(cluster.port),
            "DDFS_PUT_PORT": str(getattr(cluster, "put_port", 8990)),
            "DISCO_TEST_HOST": cluster.master_host,
            "DISCO_TEST_PORT": str(_free_port(
                [cluster.master_host], avoid={cluster.port, getattr(cluster, "put_port", 0)})),
            "DISCO_EVENTS": "",
            "DISCO_SETTINGS_FILE": os.devnull,  # no ~/.disco of the developer's
        })
        if cluster.token is not None:
            os.environ["DISCO_CLUSTER_TOKEN"] = cluster.token
        yield cluster
    finally:
        for key in [k for k in os.environ if k.startswith(CLIENT_SETTINGS)]:
            del os.environ[key]
        os.environ.update(saved)
        cluster.stop()

