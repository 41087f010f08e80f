"""Helpers for the service-manager tests: a real service manager process with its own data
directory and loopback subnet, waiting helpers, and clean-up that leaves nothing behind.
(A module of its own, not conftest.py: tests/mapreduce has a conftest.py too, and two
modules both named `conftest` cannot be imported side by side.)"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from disco.cluster.store import Store
from disco.providers.local import LocalProvider
from disco.providers.marks import cluster_of
from xdist_worker import worker_share

TEST_FRAMEWORKS = Path(__file__).parent / "frameworks"
# Each service manager a test run starts gets its own 127.N.x.x block, apart from the
# default (127.1.x.x) that a developer's own `disco sm` uses, and apart from the blocks of the
# Map/Reduce tests (127.60-99) and the test hosts (127.200-210), which may run beside them in
# another pytest-xdist worker. Parallel workers draw from disjoint sets of blocks.
_worker_bases = worker_share([*range(20, 60), *range(100, 200), *range(211, 250)])
_net_bases = itertools.cycle(random.sample(_worker_bases, len(_worker_bases)))


def frameworks_path(folder: Path, definitions: dict[str, str]) -> str:
    """DISCO_FRAMEWORKS_PATH with the test frameworks and these (name -> framework.yaml text),
    written under `folder`: frameworks one test file needs stay out of everyone's catalogue."""
    for name, text in definitions.items():
        (folder / "frameworks" / name).mkdir(parents=True)
        (folder / "frameworks" / name / "framework.yaml").write_text(text)
    return f"{TEST_FRAMEWORKS}{os.pathsep}{folder / 'frameworks'}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceManager:
    """`disco sm` as a subprocess, as users run it."""

    def __init__(self, data_dir: Path, *, database_url: str = "", extra_env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.data_dir = data_dir
        self.cwd = cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DISCO_DATA_DIR": str(data_dir),
            "DISCO_FRAMEWORKS_PATH": str(TEST_FRAMEWORKS),
            "DISCO_LOCAL_NET_BASE": str(next(_net_bases)),
            "DISCO_RECONCILE_INTERVAL": "0.5",
            "DISCO_STOP_GRACE": "5",
            **({"DISCO_DATABASE_URL": database_url} if database_url else {}),
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "sm.log"

    def start(self) -> "ServiceManager":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "disco.cli.main", "sm", "--port", str(self.port), "--log-level", "warning"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"service manager did not start:\n{self.log_path.read_text()[-3000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def store(self) -> Store:
        return Store(self.env.get("DISCO_DATABASE_URL") or f"sqlite:///{self.data_dir / 'disco.sqlite'}")

    def token(self, tenant: str = "tenant-a") -> str:
        store = self.store()
        try:
            return store.create_token(tenant)
        finally:
            store.close()

    def client(self, tenant: str = "tenant-a") -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-Auth-Token": self.token(tenant)},
                            timeout=30, trust_env=False)

    def cleanup(self) -> None:
        """Delete every cluster (through the API when it still answers), then stop."""
        if self.proc and self.proc.poll() is None:
            try:
                store = self.store()
                live = [(c.id, c.tenant) for c in store.list_clusters()]
                store.close()
                for cid, tenant in live:
                    with self.client(tenant) as client:
                        client.delete(f"/api/v1/clusters/{cid}")
                wait_until(lambda: not _live_ids(self), timeout=60, what="clusters deleted")
            except Exception as exc:  # still stop everything below, but say why
                print(f"clean-up through the API failed: {exc!r}", file=sys.stderr)
        self.stop()
        provider = LocalProvider(self.data_dir)
        for cid in provider.cluster_ids():
            asyncio.run(provider.destroy_cluster(cid))


def stored_clusters(sm: ServiceManager) -> int:
    """How many clusters the service manager's store holds, deleted ones included."""
    store = sm.store()
    try:
        return len(store.list_clusters(include_deleted=True))
    finally:
        store.close()


def _live_ids(sm: ServiceManager) -> list[str]:
    store = sm.store()
    try:
        return [c.id for c in store.list_clusters()]
    finally:
        store.close()


def wait_until(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_state(client: httpx.Client, cluster_id: str, states: set[str], timeout: float = 120) -> dict:
    def check() -> dict | None:
        body = client.get(f"/api/v1/clusters/{cluster_id}").json()
        return body if body["state"] in states else None
    try:
        return wait_until(check, timeout=timeout, what=f"cluster {cluster_id} in {states}")
    except AssertionError:
        events = client.get(f"/api/v1/clusters/{cluster_id}/events").json()
        raise AssertionError(f"cluster {cluster_id} not in {states}; events: {events}") from None


def cluster_processes(cluster_id: str) -> list[psutil.Process]:
    """Every live process that carries the cluster's mark, found by scanning /proc (not by
    asking the service manager), whichever service manager started it."""
    found = []
    for proc in psutil.process_iter():
        try:
            if cluster_of(proc, None) == cluster_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def listening_on(hosts: list[str]) -> list[str]:
    """host:port of every listening TCP socket on these addresses (a JVM's IPv4-mapped IPv6
    sockets included)."""
    wanted = set(hosts)
    found = []
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr:
            ip = conn.laddr.ip.removeprefix("::ffff:")
            if ip in wanted:
                found.append(f"{ip}:{conn.laddr.port}")
    return found
