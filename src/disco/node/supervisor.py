"""The supervisor of one cluster's node: a daemon that outlives the SSH session and the
service manager, starts the node's processes, restarts a dead one with backoff (then
reports it dead), keeps per-process logs, and serves them (log_server.py).

Nothing it runs can be lost: a process's record (pid and start time) is in state.json
before the process may run, and every process carries the node's marks in its environment.
A supervisor started after a crash of the last one adopts the processes that still run as
recorded and kills the node's other marked processes.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from disco.node import control, users
from disco.node.bundle import NodeBundle
from disco.node.launch import Launch, LaunchError
from disco.node.layout import CLUSTER_ENV, NODE_ENV, PROCESS_ENV, NodeDir, write_json
from disco.node.private_files import write_private_files
from disco.node.proc_scan import environ, is_live, node_processes, start_time
from disco.node.log_server import LogServer

log = logging.getLogger("disco.node.supervisor")

SUPERVISOR_PROCESS = "_supervisor"
# The process waits on its stdin for this line, written once its record is on disk; if the
# supervisor dies first, the process reads end of file and exits without running anything.
_GATE = 'IFS= read -r go && [ "$go" = go ] && exec "$@" </dev/null; exit 125'
_TICK_S = 0.1


@dataclass
class Proc:
    launch: Launch
    seq: int
    state: str = "starting"        # starting, running, backoff, stopped, exited, dead
    pid: int | None = None
    start_ticks: int | None = None
    exit_code: int | None = None
    restarts: int = 0
    started_at: float = 0.0        # time.monotonic() of the last start
    next_start: float = 0.0
    child: subprocess.Popen[bytes] | None = None  # None: adopted from an earlier supervisor

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "pid": self.pid if self.state == "running" else None,
                "exit_code": self.exit_code, "restarts": self.restarts}

    def record(self) -> dict[str, Any]:
        return {"state": self.state, "pid": self.pid, "start_ticks": self.start_ticks,
                "exit_code": self.exit_code, "restarts": self.restarts, "seq": self.seq}


class Supervisor:
    def __init__(self, node: NodeDir) -> None:
        self.node = node
        self.bundle: NodeBundle = node.load_bundle()
        self.user = users.ensure_user(self.bundle.cluster_id)[0] if users.isolating() else None
        self.lock = threading.RLock()
        self.procs: dict[str, Proc] = {}
        self.seq = 0
        self.stopping = threading.Event()
        self.server = LogServer(self.bundle.host, self.bundle.log_port, self.bundle.log_token_sha256,
                                node.path, self.status)

    # -- the daemon's life -------------------------------------------------------------------

    def serve(self, ready_fd: int | None) -> None:
        control.check_socket_path(self.node.socket)
        self.recover()
        listener = self._bind_socket()
        self.server.start()
        threading.Thread(target=self._watch, name="watch", daemon=True).start()
        log.info("supervisor %d serves %s", os.getpid(), self.node.path)
        if ready_fd is not None:
            os.write(ready_fd, b"ready\n")
            os.close(ready_fd)
        listener.settimeout(0.5)
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()
        listener.close()
        self.server.close()
        self.node.socket.unlink(missing_ok=True)
        log.info("supervisor %d ends", os.getpid())

    def _bind_socket(self) -> socket.socket:
        self.node.socket.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(str(self.node.socket))
        finally:
            os.umask(old)
        listener.listen(16)
        return listener

    def _handle(self, conn: socket.socket) -> None:
        request: dict[str, Any] = {}
        with conn:
            try:
                line = control.read_line(conn)
                if line is None:
                    return
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("a request is a JSON object")
                reply = {"ok": True, **self._dispatch(request)}
            except (LaunchError, ValueError, OSError, TimeoutError, KeyError) as exc:
                reply = {"ok": False, "error": str(exc)}
            except Exception as exc:  # the supervisor must outlive a bad request
                log.exception("request failed")
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            try:
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                pass
            if request.get("op") == "shutdown" and reply.get("ok"):
                self.stopping.set()

    def _dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "ping":
            return {"pid": os.getpid()}
        if op == "start":
            return {"pid": self.start(Launch.from_dict(request.get("launch")))}
        if op == "status":
            return self.status(request.get("name"))
        if op in ("stop", "shutdown"):
            return {"stopped": self.stop_all(float(request.get("grace", 10.0)))}
        raise ValueError(f"unknown request {op!r}")

    # -- requests ------------------------------------------------------------------------------

    def status(self, name: str | None = None) -> dict[str, Any]:
        with self.lock:
            procs = {n: p.status() for n, p in self.procs.items() if name is None or n == name}
        return {"processes": procs, "supervisor": {"pid": os.getpid()}}

    def start(self, launch: Launch) -> int:
        with self.lock:
            current = self.procs.get(launch.name)
            if current is not None and current.state == "running" and current.pid is not None:
                return current.pid
            if current is not None and current.state == "backoff":  # asked for now: no more waiting
                self._spawn(current)
                assert current.pid is not None
                return current.pid
            if current is not None and current.state in ("starting", "stopping"):
                raise ValueError(f"{launch.name} is {current.state}; ask again later")
            self.seq += 1
            proc = Proc(launch, self.seq)
            self.procs[launch.name] = proc
            write_json(self.node.launches / f"{launch.name}.json", launch.to_dict(), 0o600)
            self._save()
        if launch.wait_for_tcp:
            try:
                _wait_tcp(launch.wait_for_tcp, launch.wait_timeout_s)
            except TimeoutError:
                with self.lock:
                    proc.state, proc.exit_code = "dead", None
                    self._save()
                raise
        with self.lock:
            if proc.state != "starting":  # stopped while it waited
                raise ValueError(f"{launch.name} was stopped before it started")
            self._spawn(proc)
            assert proc.pid is not None
            return proc.pid

    def stop_all(self, grace_s: float) -> list[str]:
        """Every process, newest first: SIGTERM to its process group, SIGKILL after grace_s."""
        with self.lock:
            order = sorted(self.procs.values(), key=lambda p: -p.seq)
            for proc in order:
                if proc.state in ("starting", "backoff"):
                    proc.state = "stopped"
            self._save()
        stopped = []
        for proc in order:
            with self.lock:
                if proc.state != "running" or proc.pid is None:
                    continue
                proc.state = "stopping"
                pid = proc.pid
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and self._alive(proc):
                time.sleep(0.05)
            _signal_group(pid, signal.SIGKILL)
            while self._alive(proc):
                time.sleep(0.02)
            with self.lock:
                proc.state = "stopped"
                self._save()
            stopped.append(proc.launch.name)
        return stopped

    # -- processes -----------------------------------------------------------------------------

    def _environment(self, launch: Launch) -> dict[str, str]:
        prefix = self.bundle.prefix.rstrip("/")
        env = {"PATH": f"{prefix}/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME": str(self.node.work), "LANG": "C.UTF-8"}
        if self.user is not None:
            env.update(USER=self.user.name, LOGNAME=self.user.name)
        env.update(launch.env)
        env.update({CLUSTER_ENV: self.bundle.cluster_id, NODE_ENV: self.bundle.node, PROCESS_ENV: launch.name})
        return env

    def _spawn(self, proc: Proc) -> None:
        """Start the process (lock held): its record is saved before it may run."""
        launch = proc.launch
        owner = (self.user.uid, self.user.gid) if self.user else None
        write_private_files(self.node.work, launch.files, owner)
        log_fd = os.open(self.node.logs / f"{launch.name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        gate_read, gate_write = os.pipe()
        as_user: dict[str, Any] = {}
        if self.user is not None:
            as_user = {"user": self.user.uid, "group": self.user.gid, "extra_groups": []}
        try:
            try:
                child = subprocess.Popen(["/bin/sh", "-c", _GATE, "disco-gate", *launch.argv], stdin=gate_read,
                                         stdout=log_fd, stderr=log_fd, cwd=self.node.work,
                                         env=self._environment(launch), start_new_session=True, **as_user)
            finally:
                os.close(gate_read)
            pid = child.pid
            proc.child, proc.pid, proc.start_ticks = child, pid, start_time(pid)
            proc.state, proc.exit_code = "running", None
            proc.started_at = time.monotonic()
            self._save()
            os.write(gate_write, b"go\n")
        finally:
            os.close(gate_write)
            os.close(log_fd)
        _log_line(self.node.logs / f"{launch.name}.log", f"[disco-node] started {launch.name} as pid {pid}")
        log.info("started %s (pid %d)", launch.name, pid)

    def _alive(self, proc: Proc) -> bool:
        if proc.pid is None:
            return False
        if proc.child is not None:
            code = proc.child.poll()  # negative: killed by that signal
            if code is None:
                return True
            proc.exit_code = code
            return False
        return is_live(proc.pid) and start_time(proc.pid) == proc.start_ticks

    def _watch(self) -> None:
        """Notice exits, restart with backoff, give up after the policy's limit."""
        while not self.stopping.is_set():
            now = time.monotonic()
            with self.lock:
                changed = False
                for proc in self.procs.values():
                    if proc.state == "running" and not self._alive(proc):
                        self._exited(proc, now)
                        changed = True
                    elif proc.state == "backoff" and now >= proc.next_start:
                        proc.state = "starting"
                        try:
                            self._spawn(proc)
                        except OSError as exc:
                            log.error("restart of %s failed: %s", proc.launch.name, exc)
                            proc.state, proc.next_start = "backoff", now + proc.launch.restart.delay(proc.restarts)
                        changed = True
                if changed:
                    self._save()
            time.sleep(_TICK_S)

    def _exited(self, proc: Proc, now: float) -> None:
        policy = proc.launch.restart
        name = proc.launch.name
        if proc.pid is not None:
            _signal_group(proc.pid, signal.SIGKILL)  # what it left behind in its group
        if now - proc.started_at >= policy.stable_s:
            proc.restarts = 0
        _log_line(self.node.logs / f"{name}.log", f"[disco-node] {name} exited with {proc.exit_code}")
        if proc.restarts < policy.max:
            proc.restarts += 1
            proc.state, proc.next_start = "backoff", now + policy.delay(proc.restarts)
            log.warning("%s exited (%s); restart %d of %d", name, proc.exit_code, proc.restarts, policy.max)
        else:
            proc.state = "exited" if policy.max == 0 and proc.exit_code == 0 else "dead"
            log.error("%s exited (%s) and stays %s", name, proc.exit_code, proc.state)

    def _save(self) -> None:
        records = {name: proc.record() for name, proc in self.procs.items()}
        write_json(self.node.state_file, {"supervisor_pid": os.getpid(), "processes": records}, 0o600)

    # -- after a crash -------------------------------------------------------------------------

    def recover(self) -> None:
        """Take over from a supervisor that died: adopt what still runs as recorded, restart what
        should run, kill the node's other marked processes (the dead supervisor included)."""
        try:
            saved = json.loads(self.node.state_file.read_text()).get("processes", {})
        except FileNotFoundError:
            saved = {}
        now = time.monotonic()
        for name, record in saved.items():
            try:
                launch = Launch.from_dict(json.loads((self.node.launches / f"{name}.json").read_text()))
            except (FileNotFoundError, LaunchError, ValueError):
                log.warning("no launch kept for %s: forgotten", name)
                continue
            proc = Proc(launch, int(record.get("seq", 0)), state=record.get("state", "dead"),
                        pid=record.get("pid"), start_ticks=record.get("start_ticks"),
                        exit_code=record.get("exit_code"), restarts=int(record.get("restarts", 0)))
            self.seq = max(self.seq, proc.seq)
            self.procs[name] = proc
            if proc.state in ("running", "stopping"):
                if proc.pid and self._alive(proc) and environ(proc.pid).get(PROCESS_ENV) == name:
                    proc.state, proc.started_at = "running", now
                    log.info("adopted %s (pid %d)", name, proc.pid)
                else:
                    proc.exit_code = None
                    self._exited(proc, now)
            elif proc.state in ("starting", "backoff"):
                proc.state, proc.next_start = "backoff", now
        adopted = {name for name, proc in self.procs.items() if proc.state == "running"}
        for found in node_processes(self.bundle.cluster_id, self.bundle.node, self.node.path, None):
            if found.how == "env" and found.process not in adopted:
                log.warning("killing %s (pid %d), left by an earlier supervisor", found.process or "?", found.pid)
                kill_process(found.pid)
        self._save()


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def kill_process(pid: int) -> None:
    """SIGKILL to a process, and to its group when it leads one (as every launch does)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_tcp(address: str, timeout_s: float) -> None:
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing answered on {address} within {timeout_s:g}s") from exc
            if exc.errno not in (errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH, None):
                log.debug("waiting for %s: %s", address, exc)
            time.sleep(0.2)


def _log_line(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {text}\n")
