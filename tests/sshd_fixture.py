"""A real OpenSSH server for the host-pool tests: `/usr/sbin/sshd -D` as root on
127.0.9.<k>:2222, with a host key and an authorized ed25519 key made for it, stopped by its pid.

Root logs in with the key only (no password, no PAM); sftp is served in-process. The server
can be started again on the same address with a new host key (a "reinstalled machine")."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

from disco.cluster.secrets import ssh_keypair

SSHD = "/usr/sbin/sshd"
PORT = 2222
CONFIG = """\
ListenAddress {address}:{port}
HostKey {dir}/ssh_host_ed25519_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
LogLevel ERROR
"""


def free_address(port: int = PORT) -> str:
    """An address 127.0.9.<k> whose port nobody listens on (test runs share the machine)."""
    for k in random.sample(range(2, 250), 248):  # .254 is the fuzzer's (tests/openapi_hooks.py)
        address = f"127.0.9.{k}"
        with socket.socket() as sock:
            try:
                sock.bind((address, port))
                return address
            except OSError:
                continue
    raise RuntimeError("no free address in 127.0.9.0/24")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


class Sshd:
    def __init__(self, folder: Path, address: str | None = None, port: int = PORT) -> None:
        self.dir = folder
        self.dir.mkdir(parents=True, exist_ok=True)
        self.address = address or free_address(port)
        self.port = port
        public, private = ssh_keypair("disco-test-client")
        self.client_key_path = self.dir / "id_ed25519"
        _write_private(self.client_key_path, private)
        self.client_key = private
        (self.dir / "authorized_keys").write_text(public + "\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.host_key = ""
        self.new_host_key()

    def new_host_key(self) -> str:
        public, private = ssh_keypair("disco-test-host")
        _write_private(self.dir / "ssh_host_ed25519_key", private)
        self.host_key = " ".join(public.split()[:2])
        return self.host_key

    def start(self) -> "Sshd":
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        config = self.dir / "sshd_config"
        config.write_text(CONFIG.format(address=self.address, port=self.port, dir=self.dir))
        log = open(self.dir / "sshd.log", "ab")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.dir / 'sshd.log').read_text()[-2000:]}")
            with socket.socket() as sock:
                if sock.connect_ex((self.address, self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("sshd did not listen within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart_with_new_host_key(self) -> str:
        self.stop()
        key = self.new_host_key()
        self.start()
        return key

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def inventory_entry(sshd: Sshd, name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "address": sshd.address, "port": sshd.port, "user": "root",
            "key": str(sshd.client_key_path), **extra}
