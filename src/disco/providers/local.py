"""The embedded default provider: every node is a directory and a loopback address here.

Node `i` of cluster slot `s` gets 127.(B + s // 256).(s % 256).(i + 1), B being 1 unless
DISCO_LOCAL_NET_BASE says otherwise, so all nodes of
a cluster can use the same ports, as on real hosts. Every process is forked by a zygote
(warm, with its modules imported, or to exec a command), runs in its own session (its own
process group), writes its log beside its record, and carries its cluster's mark (marks.py).
The zygote writes each process's record before the process runs, so after a crash of the
service manager at any moment every process is found again, adopted or stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from disco.providers.base import (ClusterRef, Launch, NodeAddress, NodeCapacity, NodeRef, PlannedNode, PlanRequest,
                                  ProcessState, ProcessStatus, Provider, ProviderPlan, ProviderResources)
from disco.providers.local_users import ensure_user, isolation_mode, uid_for_host
from disco.providers.marks import ROOT_ENV, TAG_ENV, cluster_of, marked_processes, title_mark
from disco.providers.private_files import write_files, write_private
from disco.providers.sandbox import plan as sandbox_plan, within
from disco.providers.zygote_client import Zygote, runs_in_zygote

log = logging.getLogger("disco.providers.local")

__all__ = ["LocalProvider", "ROOT_ENV", "TAG_ENV", "node_host"]
RECORD_SUFFIX = ".pid"


def net_base() -> int:
    """Second octet of the first cluster's addresses; a test run picks its own to stay apart."""
    return int(os.environ.get("DISCO_LOCAL_NET_BASE", "1"))


def node_host(slot: int, index: int) -> str:
    octet = net_base() + slot // 256
    if not 1 <= slot or octet > 254 or not 0 <= index < 254:
        raise ValueError(f"no loopback address for slot {slot}, node {index}")
    return f"127.{octet}.{slot % 256}.{index + 1}"


def share_of_this_machine(nodes: int) -> NodeCapacity:
    nodes = max(1, nodes)
    return NodeCapacity(memory_bytes=psutil.virtual_memory().total // nodes,
                        cpus=max(1, (os.cpu_count() or 1) // nodes))


class LocalProvider(Provider):
    name = "local"

    @classmethod
    def from_resources(cls, resources: ProviderResources) -> "LocalProvider":
        return cls(resources.data_dir)

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "clusters"
        self.root.mkdir(parents=True, exist_ok=True)
        self.isolation = isolation_mode()
        if self.isolation == "users":
            # Nobody but the service manager passes here; a cluster's processes see their own
            # working directory only, mounted back into a private view (sandbox.py).
            self.data_dir.chmod(0o700)
            self.root.chmod(0o700)
        self._zygotes: dict[tuple[str, ...], Zygote] = {}
        self._zygote_lock = threading.Lock()
        # Starts under way per cluster, and clusters being destroyed: a start that was asked
        # for just before a delete must either finish before the delete stops everything, or
        # not happen at all (a thread cannot be cancelled half-way through a fork).
        self._starting: dict[str, int] = {}
        self._closing: set[str] = set()
        self._starts_done = threading.Condition()

    @property
    def isolates_tenants(self) -> bool:
        return self.isolation == "users"

    def node_capacity(self, cluster: ClusterRef, node: str, nodes_in_cluster: int) -> NodeCapacity:
        """A fair share of this machine: its memory and CPUs divided by the cluster's nodes
        (at least one CPU), so that frameworks sized from it do not promise the machine twice
        within one cluster. Other clusters on the machine are not counted."""
        return share_of_this_machine(nodes_in_cluster)

    def plan(self, request: PlanRequest) -> ProviderPlan:
        """The addresses of the slot a create would get now (another create may take it first),
        a directory per node, this machine's share for each; nothing is made."""
        count = len(request.nodes)
        nodes = [PlannedNode(n.name, node_host(request.cluster.slot, n.index),
                             str(self._workdir(request.cluster.id, n.name)),
                             capacity=share_of_this_machine(count),
                             notes=["address of the slot free now; assigned at create"])
                 for n in request.nodes]
        as_user = (f", owned by the cluster's own user (uid {uid_for_host(nodes[0].host or '')}), in a private "
                   "mount namespace" if self.isolation == "users" and nodes else "")
        steps = [{"step": "provisioning",
                  "what": f"make {count} node directories under {self.root}/<cluster id>/{as_user}; "
                          "addresses " + ", ".join(f"{n.name}={n.host}" for n in nodes)},
                 {"step": "installing", "what": "nothing to install: nodes run this machine's Python and software"}]
        return ProviderPlan(
            nodes=nodes, steps=steps, reachable_from=["127.0.0.0/8"],
            reach_note="loopback addresses of this machine: any process here can connect (access.allowed_cidrs is "
                       "not used by this provider); the frameworks' own authentication with the cluster's "
                       "credentials decides who gets in")

    async def warm(self, preloads: set[tuple[str, ...]]) -> None:
        for modules in preloads | {()}:
            self._zygote(modules)

    def close(self) -> None:
        for zygote in self._zygotes.values():
            zygote.close()
        self._zygotes.clear()

    def _zygote(self, modules: tuple[str, ...]) -> Zygote:
        with self._zygote_lock:
            zygote = self._zygotes.get(modules)
            if zygote is None or not zygote.alive():
                zygote = self._zygotes[modules] = Zygote(modules, self.root.parent / "zygotes",
                                                         _inherited_env())
            return zygote

    # -- files ----------------------------------------------------------------------

    # A node's directory is the service manager's own (records, logs, exit codes: nothing a
    # cluster's process may forge); its processes work in `work/` inside it.
    def _node_dir(self, cluster_id: str, node: str) -> Path:
        return self.root / cluster_id / node

    def _workdir(self, cluster_id: str, node: str) -> Path:
        return self._node_dir(cluster_id, node) / "work"

    def _records(self, cluster_id: str, node: str) -> list[dict]:
        """The node's processes as their zygote recorded them, oldest first."""
        records = []
        for path in self._node_dir(cluster_id, node).glob(f"*{RECORD_SUFFIX}"):
            try:
                records.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return sorted(records, key=lambda r: r.get("started") or 0.0)

    def _record_path(self, cluster_id: str, node: str, process: str) -> Path:
        return self._node_dir(cluster_id, node) / f"{process}{RECORD_SUFFIX}"

    # -- nodes ----------------------------------------------------------------------

    async def create_nodes(self, cluster: ClusterRef, nodes: list[NodeRef],
                           request: PlanRequest | None = None) -> list[NodeAddress]:
        result = []
        for node in nodes:
            host = node_host(cluster.slot, node.index)
            workdir = self._workdir(cluster.id, node.name)
            workdir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            workdir.mkdir(exist_ok=True, mode=0o700)
            if self.isolation == "users":
                uid = uid_for_host(host)
                await asyncio.to_thread(ensure_user, uid)
                os.chown(workdir, uid, uid)
                (self.root / cluster.id / "owner").write_text(str(uid))
            result.append(NodeAddress(node.name, host, str(workdir)))
        return result

    def _owner(self, cluster_id: str) -> int | None:
        try:
            return int((self.root / cluster_id / "owner").read_text())
        except (OSError, ValueError):
            return None

    def slot_free(self, slot: int) -> bool:
        """Nothing listens on any address of the slot (an orphan would answer for its cluster)."""
        prefix = node_host(slot, 0).rsplit(".", 1)[0] + "."
        return not any(ip.startswith(prefix) for ip, _port, _pid in _listeners())

    def owns_listener(self, cluster_id: str, host: str, port: int) -> bool:
        for ip, listening_port, pid in _listeners():
            if (ip, listening_port) == (host, port):
                owner = pid and self._process_cluster(pid)
                if owner != cluster_id:
                    log.warning("%s:%s is held by pid %s (cluster %s), not by cluster %s",
                                host, port, pid, owner, cluster_id)
                return owner == cluster_id
        return False

    def _process_cluster(self, pid: int) -> str | None:
        try:
            return cluster_of(psutil.Process(pid), str(self.root))
        except psutil.Error:
            return None

    async def destroy_nodes(self, cluster: ClusterRef, nodes: list[str]) -> None:
        for node in nodes:
            await self.stop_node(cluster, node, grace_s=5.0)
            await _remove_tree(self._node_dir(cluster.id, node))

    async def destroy_cluster(self, cluster_id: str) -> None:
        await asyncio.to_thread(self._stop_starting, cluster_id)
        cluster_dir = self.root / cluster_id
        ref = ClusterRef(cluster_id, 0)
        if cluster_dir.is_dir():
            for node_dir in cluster_dir.iterdir():
                if node_dir.is_dir():
                    await self.stop_node(ref, node_dir.name, grace_s=5.0)
        # Whatever the records miss (a process that left its group, a child of a child) still
        # carries the cluster's mark, or runs as the cluster's user.
        for _ in range(3):
            left = self._marked(cluster_id) + _owned_by(self._owner(cluster_id))
            if not left:
                break
            await _terminate(left, grace_s=5.0)
        else:
            raise RuntimeError(f"{len(left)} process(es) of cluster {cluster_id} did not stop: "
                               + ", ".join(str(p.pid) for p in left))
        await _remove_tree(cluster_dir)

    def _stop_starting(self, cluster_id: str) -> None:
        with self._starts_done:
            self._closing.add(cluster_id)
            self._starts_done.wait_for(lambda: not self._starting.get(cluster_id), timeout=60)

    def cluster_ids(self) -> set[str]:
        ids = {p.name for p in self.root.iterdir() if p.is_dir()} if self.root.is_dir() else set()
        return ids | {cid for cid, _ in marked_processes(str(self.root))}

    def _marked(self, cluster_id: str) -> list[psutil.Process]:
        return [proc for cid, proc in marked_processes(str(self.root)) if cid == cluster_id]

    # -- processes ------------------------------------------------------------------

    async def start_process(self, cluster: ClusterRef, node: NodeAddress, launch: Launch) -> int:
        status = await self.process_status(cluster, node.name, launch.name)
        if status.state is ProcessState.RUNNING and status.pid:
            return status.pid
        # A fork of a large parent takes milliseconds: off the event loop, so that the
        # workers of a cluster start side by side.
        return await asyncio.to_thread(self._spawn_once, cluster, node, launch)

    def _spawn_once(self, cluster: ClusterRef, node: NodeAddress, launch: Launch) -> int:
        with self._starts_done:
            if cluster.id in self._closing:
                raise RuntimeError(f"cluster {cluster.id} is being deleted")
            self._starting[cluster.id] = self._starting.get(cluster.id, 0) + 1
        try:
            return self._spawn(cluster, node, launch)
        finally:
            with self._starts_done:
                self._starting[cluster.id] -= 1
                if not self._starting[cluster.id]:
                    del self._starting[cluster.id]
                self._starts_done.notify_all()

    def _spawn(self, cluster: ClusterRef, node: NodeAddress, launch: Launch) -> int:
        workdir = Path(node.workdir)
        node_dir = workdir.parent
        uid = uid_for_host(node.host) if self.isolation == "users" else None
        write_files(workdir, launch.files, uid)
        env = {**_inherited_env(), **launch.env, TAG_ENV: cluster.id, ROOT_ENV: str(self.root),
               "DISCO_NODE": node.name}
        if uid is not None:
            env["HOME"] = str(workdir)
        log_path = node_dir / f"{launch.name}.log"
        exit_file = node_dir / f"{launch.name}.exit"
        exit_file.unlink(missing_ok=True)
        with open(log_path, "ab") as log_file:
            log_file.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: "
                           f"{' '.join(launch.argv)}\n".encode())
        env_file = node_dir / f"{launch.name}.env"
        write_private(env_file, json.dumps(env))
        request = {"name": launch.name, "env_file": str(env_file), "cwd": str(workdir),
                   "log": str(log_path), "exit_file": str(exit_file),
                   "record": str(self._record_path(cluster.id, node.name, launch.name))}
        if uid is not None:
            request["sandbox"] = {"uid": uid, "gid": uid, "cwd": str(workdir),
                                  "plan": sandbox_plan([str(self.data_dir)],
                                                       [str(workdir), *_python_paths(self.data_dir)])}
        if runs_in_zygote(launch):
            modules = launch.preload
            request.update(module=launch.argv[2], args=launch.argv[3:], after_fork=list(launch.after_fork),
                           title=" ".join([*launch.argv, title_mark(cluster.id, str(self.root))]))
        else:
            modules = ()
            request["exec"] = launch.argv
        try:
            return self._zygote(modules).spawn(request)
        except (OSError, ValueError) as exc:  # the zygote died: one more try with a new one
            log.warning("zygote for %s failed (%s); starting a new one", launch.name, exc)
            return self._zygote(modules).spawn(request)

    async def process_status(self, cluster: ClusterRef, node: str, process: str) -> ProcessStatus:
        try:
            record = json.loads(self._record_path(cluster.id, node, process).read_text())
        except (OSError, ValueError):
            return ProcessStatus(ProcessState.MISSING)
        pid = record["pid"]
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
        for record in reversed(self._records(cluster.id, node)):
            pid = record["pid"]
            if _alive(pid, record.get("started")):
                await _terminate_group(pid, grace_s)
            self._record_path(cluster.id, node, record["name"]).unlink(missing_ok=True)

    async def run_command(self, cluster: ClusterRef, node: NodeAddress, argv: list[str],
                          env: dict[str, str], timeout_s: float) -> tuple[int, str]:
        if self.isolation == "users":  # a framework's check runs as the cluster, in its view
            return await self._run_sandboxed(cluster, node, argv, env, timeout_s)
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

    async def _run_sandboxed(self, cluster: ClusterRef, node: NodeAddress, argv: list[str],
                             env: dict[str, str], timeout_s: float) -> tuple[int, str]:
        """A short command started as the cluster's processes are (recorded, marked, as its
        user in its private view); its exit code and output, then its files are gone."""
        name = f".run-{secrets.token_hex(6)}"
        node_dir = Path(node.workdir).parent
        try:
            pid = await asyncio.to_thread(self._spawn_once, cluster, node, Launch(name, argv, env))
            deadline = time.monotonic() + timeout_s
            while _alive(pid, None) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if _alive(pid, None):
                await _terminate_group(pid, 1.0)
                return -1, f"timed out after {timeout_s:g} s"
            code = self._exit_code(cluster.id, node.name, name)
            output = self.read_log(cluster.id, node.name, name).decode(errors="replace")
            return (-1 if code is None else code), output.partition("\n")[2]  # less our header line
        finally:
            for suffix in (RECORD_SUFFIX, ".log", ".exit", ".env"):
                (node_dir / f"{name}{suffix}").unlink(missing_ok=True)

    # -- logs -----------------------------------------------------------------------

    def log_names(self, cluster_id: str) -> list[tuple[str, str]]:
        cluster_dir = self.root / cluster_id
        if not cluster_dir.is_dir():
            return []
        return sorted((p.parent.name, p.stem) for p in cluster_dir.glob("*/*.log")
                      if not p.name.startswith("."))  # a short command's, gone when it ends

    def read_log(self, cluster_id: str, node: str, process: str, offset: int = 0,
                 limit: int = 1 << 20) -> bytes:
        path = self._node_dir(cluster_id, node) / f"{process}.log"
        if path.parent.parent != self.root / cluster_id:  # node/process names come from users
            return b""
        try:
            with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as handle:
                handle.seek(offset)
                return handle.read(limit)
        except OSError:
            return b""


def _listeners() -> list[tuple[str, int, int | None]]:
    """(IPv4 address, port, pid) of every listening TCP socket; a JVM's IPv4-mapped IPv6
    sockets count as the IPv4 address they stand for."""
    found = []
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr:
            ip = conn.laddr.ip.removeprefix("::ffff:")
            found.append((ip, conn.laddr.port, conn.pid))
    return found


def _python_paths(data_dir: Path) -> list[str]:
    """What a Python process of ours reads: the interpreter, the venv, the import path. Not
    the data directory, nor anything in it (started from there, the service manager has it on
    its import path): it stays covered."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(__file__).resolve().parents[1])}
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    hidden = os.path.realpath(data_dir)
    return sorted(p for p in paths if not within(os.path.realpath(p), hidden))


def _owned_by(uid: int | None) -> list[psutil.Process]:
    """Every live process running as the cluster's user (none when clusters run as ours)."""
    if uid is None:
        return []
    found = []
    for proc in psutil.process_iter(["uids", "status"]):
        uids = proc.info["uids"]
        if uids and uid in (uids.real, uids.effective) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def _inherited_env() -> dict[str, str]:
    """The service manager's environment minus its own settings: cluster processes run user
    code, which has no business reading the database URL or the secrets key."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DISCO_")}


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


async def _terminate_group(pgid: int, grace_s: float) -> None:
    """SIGTERM the whole process group (a JVM's executors too), SIGKILL what outlives grace_s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + (grace_s if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            if not _group_alive(pgid):
                return
            await asyncio.sleep(0.05)


async def _remove_tree(path: Path, attempts: int = 20) -> None:
    """Remove a node's or a cluster's directory. A zygote writes the exit code of a child
    there when it reaps it, a moment after the child is dead to us: if that lands while the
    tree is being removed, the directory is left non-empty, so it is removed again."""
    for _ in range(attempts):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        await asyncio.sleep(0.05)
    # Not gone is not deleted: the caller fails, and the reconciler tries again later.
    raise RuntimeError(f"could not remove {path}: something keeps writing into it")


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
