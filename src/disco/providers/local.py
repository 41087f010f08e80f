"""The embedded default provider: every node is a directory and a loopback address here.

Node `i` of cluster slot `s` gets 127.(B + s // 256).(s % 256).(i + 1), B being 1 unless
DISCO_LOCAL_NET_BASE says otherwise, so all nodes of
a cluster can use the same ports, as on real hosts. Each process runs in its own session
(its own process group), writes its log beside its pid file, and carries its cluster id
in its environment, so that after a crash of the service manager every process can be
found again and adopted or stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from disco.providers.base import (ClusterRef, Launch, NodeAddress, NodeRef, ProcessState,
                                  ProcessStatus, Provider)

log = logging.getLogger("disco.providers.local")

TAG_ENV = "DISCO_CLUSTER_ID"
# Several service managers (each with its own data directory) may share a machine: a
# process is ours only if it also carries our root.
ROOT_ENV = "DISCO_PROVIDER_ROOT"


def net_base() -> int:
    """Second octet of the first cluster's addresses; a test run picks its own to stay apart."""
    return int(os.environ.get("DISCO_LOCAL_NET_BASE", "1"))


def node_host(slot: int, index: int) -> str:
    octet = net_base() + slot // 256
    if not 1 <= slot or octet > 254 or not 0 <= index < 254:
        raise ValueError(f"no loopback address for slot {slot}, node {index}")
    return f"127.{octet}.{slot % 256}.{index + 1}"


class LocalProvider(Provider):
    name = "local"

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "clusters"
        self.root.mkdir(parents=True, exist_ok=True)
        # Popen objects of the processes we started, so exited children get reaped.
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._zygotes: dict[tuple[str, ...], _Zygote] = {}
        self._zygote_lock = threading.Lock()

    async def warm(self, preloads: set[tuple[str, ...]]) -> None:
        for modules in preloads:
            if modules:
                self._zygote(modules)

    def close(self) -> None:
        for zygote in self._zygotes.values():
            zygote.close()
        self._zygotes.clear()

    def _zygote(self, modules: tuple[str, ...]) -> "_Zygote":
        with self._zygote_lock:
            zygote = self._zygotes.get(modules)
            if zygote is None or not zygote.alive():
                zygote = self._zygotes[modules] = _Zygote(modules, self.root.parent / "zygotes")
            return zygote

    # -- files ----------------------------------------------------------------------

    def _node_dir(self, cluster_id: str, node: str) -> Path:
        return self.root / cluster_id / node

    def _pid_file(self, cluster_id: str, node: str) -> Path:
        return self._node_dir(cluster_id, node) / "processes.json"

    def _records(self, cluster_id: str, node: str) -> list[dict]:
        try:
            return json.loads(self._pid_file(cluster_id, node).read_text())
        except (OSError, ValueError):
            return []

    def _save_records(self, cluster_id: str, node: str, records: list[dict]) -> None:
        path = self._pid_file(cluster_id, node)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(records))
        os.replace(tmp, path)

    # -- nodes ----------------------------------------------------------------------

    async def create_nodes(self, cluster: ClusterRef, nodes: list[NodeRef]) -> list[NodeAddress]:
        result = []
        for node in nodes:
            workdir = self._node_dir(cluster.id, node.name)
            workdir.mkdir(parents=True, exist_ok=True)
            result.append(NodeAddress(node.name, node_host(cluster.slot, node.index), str(workdir)))
        return result

    async def destroy_nodes(self, cluster: ClusterRef, nodes: list[str]) -> None:
        for node in nodes:
            await self.stop_node(cluster, node, grace_s=5.0)
            await _remove_tree(self._node_dir(cluster.id, node))

    async def destroy_cluster(self, cluster_id: str) -> None:
        cluster_dir = self.root / cluster_id
        ref = ClusterRef(cluster_id, 0)
        if cluster_dir.is_dir():
            for node_dir in cluster_dir.iterdir():
                if node_dir.is_dir():
                    await self.stop_node(ref, node_dir.name, grace_s=5.0)
        # Processes whose pid file was never written (a crash right after fork) are
        # still found by the cluster id in their environment.
        await _terminate(self._tagged(cluster_id), grace_s=5.0)
        await _remove_tree(cluster_dir)

    def cluster_ids(self) -> set[str]:
        ids = {p.name for p in self.root.iterdir() if p.is_dir()} if self.root.is_dir() else set()
        return ids | {cid for cid, _ in _all_tagged(str(self.root))}

    def _tagged(self, cluster_id: str) -> list[psutil.Process]:
        return [proc for cid, proc in _all_tagged(str(self.root)) if cid == cluster_id]

    # -- processes ------------------------------------------------------------------

    async def start_process(self, cluster: ClusterRef, node: NodeAddress, launch: Launch) -> int:
        status = await self.process_status(cluster, node.name, launch.name)
        if status.state is ProcessState.RUNNING and status.pid:
            return status.pid
        # fork+exec of a large parent takes milliseconds: off the event loop, so that the
        # workers of a cluster start side by side.
        return await asyncio.to_thread(self._spawn, cluster, node, launch)

    def _spawn(self, cluster: ClusterRef, node: NodeAddress, launch: Launch) -> int:
        workdir = Path(node.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        _write_files(workdir, launch.files)
        env = {**_inherited_env(), **launch.env, TAG_ENV: cluster.id, ROOT_ENV: str(self.root),
               "DISCO_NODE": node.name}
        log_path = workdir / f"{launch.name}.log"
        exit_file = workdir / f"{launch.name}.exit"
        exit_file.unlink(missing_ok=True)
        with open(log_path, "ab") as log_file:
            log_file.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: "
                           f"{' '.join(launch.argv)}\n".encode())
        pid = self._fork_warm(launch, env, workdir, log_path, exit_file) if _forkable(launch) else None
        if pid is None:
            with open(log_path, "ab") as log_file:
                proc = subprocess.Popen(launch.argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                        stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
            self._children[proc.pid] = proc
            pid = proc.pid
        records = [r for r in self._records(cluster.id, node.name) if r["name"] != launch.name]
        records.append({"name": launch.name, "pid": pid, "started": _create_time(pid)})
        self._save_records(cluster.id, node.name, records)
        return pid

    def _fork_warm(self, launch: Launch, env: dict[str, str], workdir: Path, log_path: Path,
                   exit_file: Path) -> int | None:
        """Start the process from a zygote that has its modules imported; None to fall back
        to a plain start (the zygote could not be started or answered an error)."""
        try:
            return self._zygote(launch.preload).spawn({
                "module": launch.argv[2], "args": launch.argv[3:], "env": env, "cwd": str(workdir),
                "log": str(log_path), "exit_file": str(exit_file), "after_fork": list(launch.after_fork)})
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("warm start of %s failed (%s); starting it plainly", launch.name, exc)
            return None

    async def process_status(self, cluster: ClusterRef, node: str, process: str) -> ProcessStatus:
        record = next((r for r in self._records(cluster.id, node) if r["name"] == process), None)
        if record is None:
            return ProcessStatus(ProcessState.MISSING)
        pid = record["pid"]
        child = self._children.get(pid)
        if child is not None:
            code = child.poll()
            if code is not None:
                return ProcessStatus(ProcessState.EXITED, exit_code=code, pid=pid)
            return ProcessStatus(ProcessState.RUNNING, pid=pid)
        if _alive(pid, record.get("started")):
            return ProcessStatus(ProcessState.RUNNING, pid=pid)
        return ProcessStatus(ProcessState.EXITED, exit_code=self._exit_code(cluster.id, node, process), pid=pid)

    def _exit_code(self, cluster_id: str, node: str, process: str) -> int | None:
        """Exit code that a zygote wrote for a process it started. The zygote writes it when it
        reaps the child, a moment after the child died: wait that moment."""
        path = self._node_dir(cluster_id, node) / f"{process}.exit"
        for _ in range(20):
            try:
                return int(path.read_text())
            except (OSError, ValueError):
                time.sleep(0.01)
        return None

    async def stop_node(self, cluster: ClusterRef, node: str, grace_s: float) -> None:
        records = self._records(cluster.id, node)
        for record in reversed(records):
            pid = record["pid"]
            if pid in self._children or _alive(pid, record.get("started")):
                await _terminate_group(pid, grace_s, self._children.get(pid))
            self._children.pop(pid, None)
        if records:
            self._save_records(cluster.id, node, [])

    async def run_command(self, cluster: ClusterRef, node: NodeAddress, argv: list[str],
                          env: dict[str, str], timeout_s: float) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=node.workdir, env={**_inherited_env(), **env}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return -1, f"timed out after {timeout_s:g} s"
        return proc.returncode or 0, out.decode(errors="replace")

    # -- logs -----------------------------------------------------------------------

    def log_names(self, cluster_id: str) -> list[tuple[str, str]]:
        cluster_dir = self.root / cluster_id
        if not cluster_dir.is_dir():
            return []
        return sorted((p.parent.name, p.stem) for p in cluster_dir.glob("*/*.log"))

    def read_log(self, cluster_id: str, node: str, process: str, offset: int = 0,
                 limit: int = 1 << 20) -> bytes:
        path = self._node_dir(cluster_id, node) / f"{process}.log"
        if path.parent.parent != self.root / cluster_id:  # node/process names come from users
            return b""
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                return handle.read(limit)
        except OSError:
            return b""


def _forkable(launch: Launch) -> bool:
    """Only `<this python> -m module …` can run in a zygote: same interpreter, module entry."""
    argv = launch.argv
    return bool(launch.preload) and len(argv) >= 3 and argv[1] == "-m" and \
        os.path.realpath(argv[0]) == os.path.realpath(sys.executable)


class _Zygote:
    """One `python -m disco.providers.zygote` process, talked to over its stdin/stdout."""

    def __init__(self, modules: tuple[str, ...], log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / f"{'+'.join(modules)[:100]}.log", "ab") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "disco.providers.zygote", *modules], env=_inherited_env(),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, start_new_session=True)
        self._lock = threading.Lock()
        self._ready = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("zygote exited")
        return json.loads(line)

    def spawn(self, request: dict) -> int:
        with self._lock:
            if not self._ready:  # the first request waits for the imports to finish
                self._ready = bool(self._read().get("ready"))
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            reply = self._read()
        if "pid" not in reply:
            raise RuntimeError(reply.get("error", "no pid"))
        return int(reply["pid"])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _write_files(workdir: Path, files: dict[str, str]) -> None:
    """Write a launch's files under its workdir, private to the owner from the first byte."""
    for relative, content in files.items():
        path = (workdir / relative).resolve()
        if workdir.resolve() not in path.parents:
            raise ValueError(f"file {relative!r} is outside the node's directory")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        os.replace(tmp, path)


def _inherited_env() -> dict[str, str]:
    """The service manager's environment minus its own settings: cluster processes run user
    code, which has no business reading the database URL or the secrets key."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DISCO_")}


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _alive(pid: int, started: float | None) -> bool:
    """True when pid is still the process we started (pids get reused)."""
    try:
        proc = psutil.Process(pid)
        if started is not None and abs(proc.create_time() - started) > 0.5:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return any(_in_group(p, pgid) for p in psutil.process_iter())


def _in_group(proc: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE
    except (OSError, psutil.Error):
        return False


async def _terminate_group(pgid: int, grace_s: float, child: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the whole process group (a JVM's executors too), SIGKILL what outlives grace_s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            break
        deadline = time.monotonic() + (grace_s if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            if child is not None:
                child.poll()
            if not _group_alive(pgid):
                _reap(child)
                return
            await asyncio.sleep(0.05)
    _reap(child)


async def _remove_tree(path: Path, attempts: int = 20) -> None:
    """Remove a node's or a cluster's directory. A zygote writes the exit code of a child
    there when it reaps it, a moment after the child is dead to us: if that lands while the
    tree is being removed, the directory is left non-empty, so it is removed again."""
    for _ in range(attempts):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        await asyncio.sleep(0.05)
    log.warning("could not remove %s: something keeps writing into it", path)


def _reap(child: subprocess.Popen[bytes] | None) -> None:
    """Collect our child's exit status now, so no zombie waits for the next Popen to be reaped."""
    if child is not None:
        try:
            child.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass


def _all_tagged(root: str) -> list[tuple[str, psutil.Process]]:
    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            env = proc.environ()
        except (psutil.Error, OSError):
            continue
        if env.get(TAG_ENV) and env.get(ROOT_ENV) == root:
            found.append((env[TAG_ENV], proc))
    return found


async def _terminate(procs: list[psutil.Process], grace_s: float) -> None:
    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = await asyncio.to_thread(psutil.wait_procs, procs, grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    await asyncio.to_thread(psutil.wait_procs, alive, 5.0)
