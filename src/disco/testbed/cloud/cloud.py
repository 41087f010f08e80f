"""A cloud in a box: a real OpenStack Heat (engine + API, one process of our own) on a loopback
address, with a MariaDB database of its own, whose servers are podman containers booting
test-host images through cloud-init; optionally a real Keystone in front (keystone.py).
`up`, `status`, `down` (see docs/cloud-in-a-box.md)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from disco.testbed.cloud import database, keystone
from disco.testbed.cloud.catalogue import IMAGES, build_catalogue
from disco.testbed.cloud.heat_config import (GLOBAL_ENVIRONMENT, LAUNCHER, render_heat_conf,
                                             render_token_response)
from disco.testbed.cloud.heat_venv import ensure_heat_venv
from disco.testbed.cloud.keystone_config import render_heat_keystone_sections
from disco.testbed.cloud.keystone_venv import ensure_keystone_venv
from disco.testbed.cloud.server_boot import SERVER_BOOT_SCRIPT
from disco.testbed.errors import TestbedError
from disco.testbed.paths import state_root
from disco.testbed.podman import containers, podman, runtime_flags
from disco.testbed.sockets import listening_ipv4

DEFAULT_NAME = "disco-box"
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 8004                      # Heat's own port
DEFAULT_SERVER_RANGE = "127.0.120.0/24"  # apart from test hosts (127.0.100.x, 127.201.k.x) and
                                         # the local provider (127.N.x.x, N >= 1)
CLOUD_LABEL = "disco.cloud"              # on every server container (= the cloud's name)
REGION = "RegionOne"
START_TIMEOUT_S = 90.0
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,29}$")  # names containers and the database
Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


@dataclass
class CloudState:
    name: str
    address: str
    port: int
    server_range: str
    database: str
    venv: str
    pid: int = 0
    keystone_address: str = ""   # empty: no Keystone (admin_token straight to Heat)
    keystone_port: int = 0
    keystone_venv: str = ""
    keystone_pid: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://{self.address}:{self.port}/v1/admin"

    @property
    def auth_url(self) -> str:
        return keystone.auth_url(self.keystone_address, self.keystone_port) if self.keystone_address else ""


class Cloud:
    def __init__(self, name: str = DEFAULT_NAME, state_dir: Path | str | None = None,
                 cache_dir: Path | str | None = None, progress: Progress = _quiet) -> None:
        if not _NAME.match(name):
            raise TestbedError(f"cloud name {name!r}: lower-case letters, digits and '-', starting "
                               "with a letter, at most 30")
        self.name = name
        self.dir = (Path(state_dir) if state_dir else state_root() / "cloud") / name
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.progress = progress

    # -- files ------------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.dir / "state.json"

    @property
    def clouds_yaml_path(self) -> Path:
        return self.dir / "clouds.yaml"

    def state(self) -> CloudState | None:
        if not self.state_path.is_file():
            return None
        return CloudState(**json.loads(self.state_path.read_text()))

    def _save(self, state: CloudState) -> None:
        temporary = self.state_path.with_name(".state.json.tmp")
        temporary.write_text(json.dumps(asdict(state), indent=1) + "\n")
        os.replace(temporary, self.state_path)

    @property
    def admin_token_path(self) -> str:
        """With a Keystone, clouds.yaml holds the demo user's entry; the box's own admin token
        (straight to Heat, for `status` and `down`) is kept apart in this 0600 file."""
        return str(self.dir / "heat-admin.token")

    def token(self) -> str:
        if os.path.isfile(self.admin_token_path):
            return Path(self.admin_token_path).read_text().strip()
        entry = yaml.safe_load(self.clouds_yaml_path.read_text())
        return str(entry["clouds"][self.name]["auth"]["token"])

    def clouds_yaml(self) -> str:
        return self.clouds_yaml_path.read_text()

    # -- up ---------------------------------------------------------------------------------

    def up(self, address: str = DEFAULT_ADDRESS, port: int = DEFAULT_PORT,
           server_range: str = DEFAULT_SERVER_RANGE, images: list[str] | None = None,
           keystone_address: str | None = None, keystone_port: int = keystone.DEFAULT_PORT) -> CloudState:
        """Starts the cloud; returns its state once Heat answers. With `keystone_address`,
        a Keystone of its own too, and clouds.yaml's entry logs in to it as the demo user. A
        failed start removes what it made."""
        require_root_and_podman()
        if self.state() is not None:
            raise TestbedError(f"cloud {self.name} is up already (`disco testbed cloud status`, "
                               f"`disco testbed cloud down`)")
        _check_address(address)
        if keystone_address is not None:
            _check_address(keystone_address, "--keystone-address")
            if (keystone_address, keystone_port) == (address, port):
                raise TestbedError("Keystone and Heat cannot share an address and port")
        server_range = _check_range(server_range)
        _check_port_free(address, port)
        if keystone_address is not None:
            _check_port_free(keystone_address, keystone_port, "--keystone-port")
        self._check_range_free(server_range)
        unknown = [image for image in images or [] if image not in IMAGES]
        if unknown:
            raise TestbedError(f"unknown image {unknown[0]!r} (images: {', '.join(IMAGES)})")
        if any(other.name == self.name for other in running_clouds()):
            # Names label the containers and name the database: two clouds may not share one.
            raise TestbedError(f"a cloud named {self.name} runs already (from another state "
                               "directory); choose another --name")
        venv = ensure_heat_venv(self.cache_dir, progress=self.progress)
        keystone_venv = ensure_keystone_venv(self.cache_dir, progress=self.progress) \
            if keystone_address is not None else None
        catalogue = build_catalogue(images, self.cache_dir, progress=self.progress)
        state = CloudState(self.name, address, port, server_range, database.database_name(self.name),
                           str(venv))
        if keystone_venv is not None and keystone_address is not None:
            state.keystone_address, state.keystone_port = keystone_address, keystone_port
            state.keystone_venv = str(keystone_venv)
        if database.database_exists(venv, state.database):  # checked before `down` could drop it
            raise TestbedError(f"database {state.database} exists already: a cloud named {self.name} "
                               "was not brought down; `disco testbed cloud down --name "
                               f"{self.name}` where it was started, or drop the database")
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        self._save(state)  # before anything is made: `down` finds it whatever happens next
        try:
            logins = keystone.KeystoneLogins.new() if state.keystone_address else None
            token = self._write_files(state, venv, catalogue, logins)
            database.create_database(venv, state.database)
            self._db_sync(venv)
            if logins is not None:
                self._start_keystone(state, logins)
            state.pid = self._start_heat(state, venv)
            self._save(state)
            self._await_api(state, token)
        except BaseException:
            try:
                self.down()
            except TestbedError as exc:
                self.progress(f"cleaning up after the failed start: {exc}")
            raise
        return state

    def _check_range_free(self, server_range: str) -> None:
        network = ipaddress.ip_network(server_range)
        busy = sorted({f"{a}:{p}" for a, p in listening_ipv4() if ipaddress.ip_address(a) in network})
        if busy:
            raise TestbedError(f"server range {server_range} is in use: something listens on "
                               f"{', '.join(busy[:5])}; choose another --server-range")
        for other in all_clouds(self.dir.parent) + running_clouds():
            if ipaddress.ip_network(other.server_range).overlaps(network):
                raise TestbedError(f"server range {server_range} overlaps cloud {other.name}'s "
                                   f"({other.server_range})")

    def _start_keystone(self, state: CloudState, logins: keystone.KeystoneLogins) -> None:
        kvenv = Path(state.keystone_venv)
        keystone.set_up(kvenv, self.dir, state.keystone_address, state.keystone_port, logins.admin, REGION)
        state.keystone_pid = keystone.start(kvenv, self.dir, state.keystone_address, state.keystone_port)
        self._save(state)
        keystone.await_api(state.keystone_address, state.keystone_port, state.keystone_pid, self.dir)
        keystone.provision(state.keystone_address, state.keystone_port, logins,
                           f"http://{state.address}:{state.port}", REGION)

    def _write_files(self, state: CloudState, venv: Path, catalogue: dict[str, Any],
                     logins: keystone.KeystoneLogins | None) -> str:
        config = {"name": self.name, "catalogue": catalogue, "server_range": state.server_range,
                  "podman_flags": runtime_flags(), "keystone": logins is not None}
        (self.dir / "cloud.json").write_text(json.dumps(config, indent=1) + "\n")
        (self.dir / "boot.sh").write_text(SERVER_BOOT_SCRIPT)
        (self.dir / "boot.sh").chmod(0o755)
        (self.dir / "servers").mkdir(mode=0o700, exist_ok=True)
        (self.dir / "environment.d").mkdir(exist_ok=True)
        (self.dir / "environment.d" / "disco-box.yaml").write_text(GLOBAL_ENVIRONMENT)
        token = secrets.token_urlsafe(32)
        _write_private(self.dir / "signal.key", secrets.token_hex(32) + "\n")
        _write_private(self.dir / "api-token.sha256", hashlib.sha256(token.encode()).hexdigest() + "\n")
        admin_entry = {"auth_type": "admin_token", "auth": {"endpoint": state.endpoint, "token": token},
                       "region_name": REGION}
        sections = ""
        if logins is None:
            entry = admin_entry
        else:
            # Passwords only in 0600 files: clouds.yaml (demo), keystone/logins.yaml, heat.conf.
            entry = keystone.clouds_entry(state.keystone_address, state.keystone_port, logins.demo, REGION)
            _write_private(Path(self.admin_token_path), token + "\n")
            _write_private(self.dir / "keystone-logins.yaml", yaml.safe_dump(
                {"admin": logins.admin, "heat": logins.heat, "demo": logins.demo}))
            sections = render_heat_keystone_sections(auth_url=state.auth_url, service_password=logins.heat)
        _write_private(self.dir / "clouds.yaml", yaml.safe_dump({"clouds": {self.name: entry}},
                                                                sort_keys=False))
        (self.dir / "token-response.json").write_text(render_token_response(
            address=state.address, port=state.port, region=REGION))
        _write_private(self.dir / "heat.conf", render_heat_conf(
            cloud_dir=self.dir, venv=venv, database_url=database.database_url(state.database),
            address=state.address, port=state.port, name=self.name, keystone_sections=sections))
        return token

    def _db_sync(self, venv: Path) -> None:
        done = subprocess.run([str(venv / "bin" / "heat-manage"), "--config-file", str(self.dir / "heat.conf"),
                               "db_sync"], capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise TestbedError(f"heat-manage db_sync failed: {done.stderr.strip()[-1500:]}")

    def _start_heat(self, state: CloudState, venv: Path) -> int:
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C.UTF-8",
               "DISCO_CLOUD_DIR": str(self.dir), "HOME": str(self.dir)}
        with open(self.dir / "heat.out", "ab") as output:
            process = subprocess.Popen(
                [str(venv / "bin" / "python"), str(LAUNCHER), str(self.dir / "heat.conf"),
                 state.address, str(state.port)],
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env,
                cwd=self.dir, start_new_session=True)
        return process.pid

    def _await_api(self, state: CloudState, token: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                answer = httpx.get(f"{state.endpoint}/stacks", headers={"X-Auth-Token": token}, timeout=5)
                if answer.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if not _alive(state.pid):
                raise TestbedError(f"Heat exited while starting: {self._log_tail()}")
            if time.monotonic() > deadline:
                raise TestbedError(f"Heat did not answer on {state.endpoint} within "
                                   f"{START_TIMEOUT_S:.0f} s: {self._log_tail()}")
            time.sleep(0.3)

    def _log_tail(self) -> str:
        lines = []
        for name in ("heat.out", "heat.log"):
            path = self.dir / name
            if path.is_file():
                lines += path.read_text(errors="replace").splitlines()[-15:]
        return "\n".join(lines)[-2500:]

    # -- status -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        require_root_and_podman()
        state = self.state()
        if state is None:
            raise TestbedError(f"cloud {self.name} is not up")
        heat = "running" if _alive(state.pid) and _is_ours(state.pid, self.dir) else "stopped"
        stacks: list[dict[str, Any]] = []
        if heat == "running":
            try:
                answer = httpx.get(f"{state.endpoint}/stacks", headers={"X-Auth-Token": self.token()},
                                   timeout=10)
                stacks = [{"name": s["stack_name"], "id": s["id"], "status": s["stack_status"]}
                          for s in answer.json().get("stacks", [])]
            except (httpx.HTTPError, ValueError):
                heat = "not answering"
        servers = [{"name": c["Names"][0], "id": c["Id"][:12], "state": c.get("State", "")}
                   for c in containers(f"{CLOUD_LABEL}={self.name}")]
        found: dict[str, Any] = {}
        if state.keystone_address:
            up = _alive(state.keystone_pid) and state.keystone_pid in keystone.processes(self.dir)
            found = {"keystone": "running" if up else "stopped", "auth_url": state.auth_url,
                     "keystone_pid": state.keystone_pid}
        return {**found, "name": self.name, "endpoint": state.endpoint, "heat": heat, "pid": state.pid,
                "database": state.database, "server_range": state.server_range,
                "clouds_yaml": str(self.clouds_yaml_path), "stacks": stacks, "servers": servers}

    # -- down -------------------------------------------------------------------------------

    def down(self, timeout: float = 120.0) -> dict[str, int]:
        """Deletes the stacks (their servers with them), stops Heat, removes any server
        container left, drops the database; then scans that nothing is left (processes,
        listening sockets, containers, database) and only then removes the state."""
        require_root_and_podman()
        state = self.state()
        if state is None:
            raise TestbedError(f"cloud {self.name} is not up")
        removed = {"stacks": 0, "containers": 0}
        if state.pid and _alive(state.pid) and _is_ours(state.pid, self.dir):
            removed["stacks"] = self._delete_stacks(state, timeout)
            _stop_process(state.pid)
        if state.keystone_pid and state.keystone_pid in keystone.processes(self.dir):
            _stop_process(state.keystone_pid)
        for container in containers(f"{CLOUD_LABEL}={self.name}"):
            podman("rm", "-f", "-t", "2", container["Id"], check=False)
            removed["containers"] += 1
        venv = Path(state.venv)
        if (venv / "bin" / "python").exists():
            database.drop_database(venv, state.database)
        deadline = time.monotonic() + 15  # sockets and containers take a moment to go
        while (left := self.leftovers(state)) and time.monotonic() < deadline:
            time.sleep(0.3)
        if left:
            raise TestbedError(f"cloud {self.name} is not all gone: {'; '.join(left)}")
        shutil.rmtree(self.dir)
        return removed

    def _delete_stacks(self, state: CloudState, timeout: float) -> int:
        """The admin project's stacks, and with a Keystone the demo project's (Heat lists a
        project's stacks only, even to an admin): each project's through its own login."""
        deleted = self._delete_stacks_at(state.endpoint, {"X-Auth-Token": self.token()}, timeout)
        if state.keystone_address:
            entry = yaml.safe_load(self.clouds_yaml_path.read_text())["clouds"][self.name]
            try:
                token, project = keystone.demo_login(state.keystone_address, state.keystone_port,
                                                     entry["auth"]["password"])
            except (httpx.HTTPError, KeyError) as exc:
                self.progress(f"could not log in as the demo user ({type(exc).__name__}); its "
                              "stacks' containers are removed directly")
                return deleted
            deleted += self._delete_stacks_at(f"http://{state.address}:{state.port}/v1/{project}",
                                              {"X-Auth-Token": token}, timeout)
        return deleted

    def _delete_stacks_at(self, endpoint: str, headers: dict[str, str], timeout: float) -> int:
        try:
            stacks = httpx.get(f"{endpoint}/stacks", headers=headers, timeout=30).json()["stacks"]
            for stack in stacks:
                httpx.delete(f"{endpoint}/stacks/{stack['stack_name']}/{stack['id']}",
                             headers=headers, timeout=30)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                left = httpx.get(f"{endpoint}/stacks", headers=headers, timeout=30).json()["stacks"]
                if not left:
                    break
                failed = [s for s in left if s["stack_status"] == "DELETE_FAILED"]
                if failed and len(failed) == len(left):
                    self.progress(f"stacks failed to delete: {[s['stack_name'] for s in failed]}; "
                                  "their containers are removed directly")
                    break
                time.sleep(0.5)
            return len(stacks)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            self.progress(f"could not delete the stacks through Heat ({exc}); removing their "
                          "containers directly")
            return 0

    def leftovers(self, state: CloudState) -> list[str]:
        """What of the cloud is still there: a scan, not the records."""
        left = []
        ours = [p.pid for p in psutil.process_iter(["cmdline"])
                if str(self.dir / "heat.conf") in (p.info["cmdline"] or [])]
        ours += keystone.processes(self.dir)
        if ours:
            left.append(f"processes {ours}")
        network = ipaddress.ip_network(state.server_range)
        busy = [f"{a}:{p}" for a, p in listening_ipv4()
                if (a == state.address and p == state.port) or ipaddress.ip_address(a) in network
                or (a == state.keystone_address and p == state.keystone_port)]
        if busy:
            left.append(f"listening {busy}")
        found = containers(f"{CLOUD_LABEL}={self.name}")
        if found:
            left.append(f"containers {[c['Id'][:12] for c in found]}")
        venv = Path(state.venv)
        if (venv / "bin" / "python").exists() and database.database_exists(venv, state.database):
            left.append(f"database {state.database}")
        return left


def require_root_and_podman() -> None:
    if os.geteuid() != 0:
        raise TestbedError("the cloud in a box needs root (its servers are podman containers with "
                           "host networking); run as root")
    if shutil.which("podman") is None:
        raise TestbedError("podman is not installed (Debian/Ubuntu: apt-get install podman runc catatonit)")


def all_clouds(clouds_dir: Path | None = None) -> list[CloudState]:
    root = clouds_dir or state_root() / "cloud"
    found = []
    for path in sorted(root.glob("*/state.json")) if root.is_dir() else []:
        found.append(CloudState(**json.loads(path.read_text())))
    return found


def running_clouds() -> list[CloudState]:
    """Every cloud whose Heat runs on this machine, whatever its state directory: found by
    scanning processes for our launcher, then reading the state beside its heat.conf."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if len(cmdline) >= 3 and cmdline[1] == str(LAUNCHER):
            state = Path(cmdline[2]).parent / "state.json"
            try:
                found.append(CloudState(**json.loads(state.read_text())))
            except (OSError, ValueError, TypeError):
                continue
    return found


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _check_address(address: str, option: str = "address") -> None:
    try:
        if not ipaddress.IPv4Address(address).is_loopback:
            raise ValueError
    except ValueError:
        raise TestbedError(f"{option} {address!r}: the cloud serves on a loopback address "
                           "(127.x.y.z) only") from None


def _check_range(server_range: str) -> str:
    try:
        network = ipaddress.IPv4Network(server_range)
    except ValueError:
        raise TestbedError(f"server range {server_range!r} is not a network like 127.0.120.0/24") from None
    if not network.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")) or network.prefixlen < 16 \
            or network.prefixlen > 29 or ipaddress.IPv4Address("127.0.0.1") in network:
        raise TestbedError(f"server range {server_range}: a loopback network from /16 to /29, "
                           "without 127.0.0.1")
    return str(network)


def _check_port_free(address: str, port: int, option: str = "--port") -> None:
    if not 1 <= port <= 65535:
        raise TestbedError(f"port {port} is not a TCP port")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Heat's server binds
        try:
            probe.bind((address, port))
        except OSError:
            raise TestbedError(f"port in use: {address}:{port} is taken; choose another {option}") from None


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _is_ours(pid: int, cloud_dir: Path) -> bool:
    """The recorded pid is still our Heat (not a reused pid)."""
    try:
        return str(cloud_dir / "heat.conf") in psutil.Process(pid).cmdline()
    except psutil.Error:
        return False


def _stop_process(pid: int, grace_s: float = 15.0) -> None:
    try:
        process = psutil.Process(pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace_s)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(5)
    except psutil.NoSuchProcess:
        pass
    except ChildProcessError:
        pass


__all__ = ["Cloud", "CloudState", "all_clouds"]
