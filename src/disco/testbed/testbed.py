"""A testbed: N test hosts, each a podman container that looks like a fresh machine from the
outside: its own hostname, its own loopback address with sshd on port 22, root login with a
key, its own writable filesystem over a shared image, apt and pip reaching the package
mirrors as this machine does."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from disco.testbed.boot import BOOT_DIR, BOOT_SCRIPT
from disco.testbed.errors import TestbedError
from disco.testbed.images import ensure_image
from disco.testbed.keys import make_login_key
from disco.testbed.paths import images_root, state_root
from disco.testbed.podman import IMAGE_LABEL, LABEL, containers, podman, require_podman, runtime_flags
from disco.testbed.sockets import listeners_on
from disco.testbed.state import TestbedState, TestHost, all_states, load, save

ADDRESS_LABEL = "disco.testbed.address"
DEFAULT_NAME = "tb"
DEFAULT_ADDRESS_BASE = "127.0.100"
SSH_PORT = 22
BOOT_TIMEOUT_S = 120.0
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def check_address_base(base: str) -> str:
    parts = base.split(".")
    if (len(parts) != 3 or not all(p.isdigit() and 0 <= int(p) <= 255 for p in parts)
            or parts[0] != "127"):
        raise TestbedError(f"address base {base!r} must be three octets of a loopback address, "
                           "e.g. 127.0.100 (host i gets 127.0.100.i)")
    return ".".join(str(int(p)) for p in parts)


class Testbed:
    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, name: str = DEFAULT_NAME, address_base: str | None = None,
                 state_dir: Path | str | None = None, cache_dir: Path | str | None = None,
                 progress: Progress = _quiet) -> None:
        if not _NAME.match(name):
            raise TestbedError(f"testbed name {name!r}: lower-case letters, digits and '-', "
                               "starting with a letter (it names hosts)")
        self.name = name
        self.state_dir = Path(state_dir) if state_dir else state_root()
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.progress = progress
        existing = load(self.state_path)
        if existing and address_base and check_address_base(address_base) != existing.address_base:
            raise TestbedError(f"testbed {name} is up on {existing.address_base}.x, not {address_base}.x")
        self.address_base = existing.address_base if existing else check_address_base(
            address_base or DEFAULT_ADDRESS_BASE)

    @property
    def state_path(self) -> Path:
        return self.state_dir / f"{self.name}.json"

    @property
    def files_dir(self) -> Path:
        return self.state_dir / self.name

    def hosts(self) -> list[TestHost]:
        state = load(self.state_path)
        return list(state.hosts) if state else []

    def inventory(self) -> str:
        return inventory_yaml(self.hosts())

    # -- up -------------------------------------------------------------------------------

    def up(self, n: int, image: str = "baked") -> list[TestHost]:
        """Starts n more hosts from `image` ("bare" or "baked") and returns them once each
        serves SSH; the testbed's earlier hosts stay as they are."""
        require_podman()
        if n < 1:
            raise TestbedError("a testbed needs at least one host")
        state = load(self.state_path) or TestbedState(self.name, self.address_base)
        first = max((int(h.name.rsplit("-", 1)[1]) for h in state.hosts), default=0) + 1
        if first + n - 1 > 254:
            raise TestbedError(f"{self.address_base}.x has room for 254 hosts; {first - 1} are up")
        built = ensure_image(image, self.cache_dir, progress=self.progress)
        planned = [(f"{self.name}-{i}", f"{self.address_base}.{i}") for i in range(first, first + n)]
        self._check_free(planned)
        key = self._login_key()
        started: list[TestHost] = []
        began = time.monotonic()
        try:
            for hostname, address in planned:
                host = self._run_container(hostname, address, built.recipe.name, built.path.name, key)
                started.append(host)
                state.hosts.append(host)
                save(self.state_path, state)  # before it boots: `down` finds it whatever happens next
            for host in started:
                host.host_key = self._await_boot(host)
                self.progress(f"{host.name} on {host.address}:{host.port} is up "
                              f"({time.monotonic() - began:.1f} s)")
            save(self.state_path, state)
        except BaseException:
            for host in started:
                podman("rm", "-f", "-t", "2", host.container, check=False)
            state.hosts = [h for h in state.hosts if h not in started]
            if state.hosts:
                save(self.state_path, state)
            else:
                self._forget()
            raise
        return started

    def _check_free(self, planned: list[tuple[str, str]]) -> None:
        addresses = {address for _, address in planned}
        busy = listeners_on(addresses)
        if busy:
            taken = ", ".join(f"{a}:{p}" for a, p in sorted(busy))
            raise TestbedError(f"address taken: something already listens on {taken}; "
                               "choose another --address-base")
        for state in all_states(self.state_dir):
            for host in state.hosts:
                if host.address in addresses:
                    raise TestbedError(f"address taken: {host.address} is host {host.name} of testbed "
                                       f"{state.name}; choose another --address-base")
        for address in sorted(addresses):
            other = containers(f"{ADDRESS_LABEL}={address}")
            if other:
                owner = other[0].get("Labels", {}).get(LABEL, "?")
                raise TestbedError(f"address taken: container {other[0]['Names'][0]} of testbed {owner} "
                                   f"uses {address}; choose another --address-base (or `disco testbed "
                                   f"down {owner}`)")
        for hostname, _ in planned:
            exists = subprocess.run(["podman", "container", "exists", hostname], capture_output=True)
            if exists.returncode == 0:
                raise TestbedError(f"a container named {hostname} exists already; choose another --name")

    def _login_key(self) -> Path:
        key = self.files_dir / "id_ed25519"
        if not key.is_file():
            public = make_login_key(key, f"disco-testbed-{self.name}")
            (self.files_dir / "authorized_keys").write_text(public + "\n")
        boot = self.files_dir / "boot.sh"
        boot.write_text(BOOT_SCRIPT)
        boot.chmod(0o755)
        return key

    def _run_container(self, hostname: str, address: str, image: str, image_dir: str, key: Path) -> TestHost:
        rootfs = images_root(self.cache_dir) / image_dir / "rootfs"
        try:
            container = self._podman_run(hostname, address, image_dir, rootfs)
        except TestbedError:
            # Created but not started (a runtime error): the name was free before, so it is ours.
            podman("rm", "-f", hostname, check=False)
            raise
        return TestHost(name=hostname, address=address, port=SSH_PORT, user="root", key=str(key),
                        host_key="", container=container, image=image, labels=["testbed", image])

    def _podman_run(self, hostname: str, address: str, image_dir: str, rootfs: Path) -> str:
        return podman(
            "run", "-d", "--name", hostname, "--hostname", hostname, "--init", "--network", "host",
            "--add-host", f"{hostname}:{address}",
            "--label", f"{LABEL}={self.name}", "--label", f"{ADDRESS_LABEL}={address}",
            "--label", f"{IMAGE_LABEL}={image_dir}",
            *runtime_flags(),
            "-v", f"{self.files_dir}:{BOOT_DIR}:ro",
            "--rootfs", f"{rootfs}:O", "/bin/sh", f"{BOOT_DIR}/boot.sh", address).strip()

    def _await_boot(self, host: TestHost, timeout: float = BOOT_TIMEOUT_S) -> str:
        """Waits until the host's sshd greets on its address; returns its host key."""
        deadline = time.monotonic() + timeout
        while True:
            if _ssh_banner(host.address, host.port):
                break
            if not self._running(host):
                logs = podman("logs", host.container, check=False)[-1500:]
                raise TestbedError(f"test host {host.name} stopped while booting:\n{logs}")
            if time.monotonic() > deadline:
                raise TestbedError(f"test host {host.name}: no SSH on {host.address}:{host.port} "
                                   f"after {timeout:.0f} s")
            time.sleep(0.2)
        public = self.exec(host, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.split()
        return " ".join(public[:2])

    def _running(self, host: TestHost) -> bool:
        out = podman("inspect", "--format", "{{.State.Running}}", host.container, check=False)
        return out.strip() == "true"

    # -- faults and assertions --------------------------------------------------------------

    def kill(self, host: TestHost) -> None:
        """The host dies at once (power cut): SIGKILL to everything in it."""
        podman("kill", "--signal", "KILL", host.container)
        podman("wait", host.container, check=False)

    def stop(self, host: TestHost, grace_s: int = 10) -> None:
        """The host shuts down: SIGTERM, then SIGKILL after `grace_s`."""
        podman("stop", "-t", str(grace_s), host.container)

    def start(self, host: TestHost) -> None:
        """A stopped or killed host boots again, with its filesystem as it was."""
        podman("start", host.container)
        if self._await_boot(host) != host.host_key:
            raise TestbedError(f"test host {host.name} came back with another host key")

    def exec(self, host: TestHost, argv: list[str], input: str | None = None,
             check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Runs a command in the host as root, outside SSH (for a test's own checks)."""
        done = subprocess.run(["podman", "exec", "-i", host.container, *argv], input=input or "",
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise TestbedError(f"{' '.join(argv)} on {host.name} failed (exit {done.returncode}): "
                               f"{done.stderr.strip()[-1500:]}")
        return done

    # -- down -------------------------------------------------------------------------------

    def down(self, timeout: float = 30.0) -> list[str]:
        """Removes this testbed's containers (by id) and state; checks with podman (by label)
        and the machine's listening sockets that nothing of it is left. Returns the ids."""
        require_podman()
        state = load(self.state_path)
        known = {h.container: h.address for h in state.hosts} if state else {}
        for found in containers(f"{LABEL}={self.name}"):
            known.setdefault(found["Id"], found.get("Labels", {}).get(ADDRESS_LABEL, ""))
        for container in known:
            podman("rm", "-f", "-t", "5", container, check=False)
        addresses = {a for a in known.values() if a}
        deadline = time.monotonic() + timeout
        while True:
            left = containers(f"{LABEL}={self.name}")
            busy = listeners_on(addresses)
            if not left and not busy:
                break
            if time.monotonic() > deadline:
                raise TestbedError(f"testbed {self.name} is not all gone: containers "
                                   f"{[c['Id'][:12] for c in left]}, listening {busy}")
            time.sleep(0.2)
        self._forget()
        return sorted(known)

    def _forget(self) -> None:
        self.state_path.unlink(missing_ok=True)
        shutil.rmtree(self.files_dir, ignore_errors=True)


def _ssh_banner(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2) as connection:
            return connection.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def inventory_yaml(hosts: list[TestHost]) -> str:
    return yaml.safe_dump({"hosts": [h.inventory_entry() for h in hosts]}, sort_keys=False,
                          default_flow_style=False)


def testbeds(state_dir: Path | None = None) -> list[TestbedState]:
    return all_states(state_dir or state_root())
