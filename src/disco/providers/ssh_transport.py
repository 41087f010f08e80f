"""SSH to the pool's hosts (asyncssh): one connection per host, its host key enforced.

The provider's interface is called both from the lifecycle's event loop and from API worker
threads (logs), while an asyncssh connection belongs to the loop that made it. So every SSH
conversation runs on one event loop of the transport's own, in a thread; callers on any
thread or loop wait for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shlex
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncssh

from disco.providers.base import ProviderError

T = TypeVar("T")
CONNECT_TIMEOUT_S = 10.0
UPLOAD_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class HostSpec:
    """A pool host as the provider needs it. `private_key` is the decrypted key text: held in
    memory only; `host_key` is the key the host must present (`ssh-ed25519 AAAA…`)."""

    name: str
    address: str
    port: int
    user: str
    private_key: str
    host_key: str
    prefix: str = "/opt/disco"
    # A host reached only through another (a cloud's private worker through its master, the
    # one with a floating IP): SSH to `via`, then a direct-tcpip channel from there.
    via: HostSpec | None = None

    def __repr__(self) -> str:  # never the key, in a log or a traceback
        through = f" via {self.via.address}" if self.via else ""
        return f"HostSpec({self.name}, {self.user}@{self.address}:{self.port}{through})"


def as_root(host: HostSpec, argv: list[str]) -> list[str]:
    """Installing packages and giving each cluster a user of its own need root: a host's
    user that is not root must have password-less sudo."""
    return argv if host.user == "root" else ["sudo", "-n", "--", *argv]


class SSHError(ProviderError):
    """Reaching a host failed; the message says why in words an admin can act on. `kind` says
    whether trying again can help: `unreachable` and `lost` may pass; `auth` and `host_key`
    need an admin; `remote` is a command on the host that failed."""

    def __init__(self, message: str, *, kind: str = "remote") -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def host_unusable(self) -> bool:
        """The host cannot be worked on at all now (not merely a command that failed)."""
        return self.kind in ("unreachable", "lost", "auth", "host_key")


@dataclass(frozen=True)
class Completed:
    exit_code: int
    stdout: str
    stderr: str


class Transport:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="disco-ssh", daemon=True)
        self._thread.start()
        self._connections: dict[tuple[str, int, str], asyncssh.SSHClientConnection] = {}
        self._locks: dict[tuple[str, int, str], asyncio.Lock] = {}

    # -- running on the transport's loop, from anywhere --------------------------------

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """From a thread that is not running an event loop."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def acall(self, coro: Coroutine[Any, Any, T]) -> T:
        """From a coroutine on another loop."""
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        async def close_all() -> None:
            for connection in self._connections.values():
                connection.close()
            self._connections.clear()
        try:
            self.call(close_all())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    # -- what runs there ----------------------------------------------------------------

    async def run(self, host: HostSpec, argv: list[str], *, stdin: str = "", timeout_s: float = 60.0) -> Completed:
        """Run a command (quoted for the remote shell) with `stdin`, its exit code and output.
        Secrets travel on stdin only: a command line shows in `ps` on the host."""
        connection = await self._connection(host)
        command = " ".join(shlex.quote(part) for part in argv)
        try:
            done = await asyncio.wait_for(connection.run(command, input=stdin, check=False), timeout_s)
        except asyncio.TimeoutError:
            raise SSHError(f"{host.name}: `{argv[0]} …` did not finish within {timeout_s:g} s") from None
        except (OSError, asyncssh.Error) as exc:
            self._forget(host)
            raise SSHError(f"{host.name}: connection lost ({exc})", kind="lost") from None
        return Completed(done.exit_status if done.exit_status is not None else 255,
                         str(done.stdout or ""), str(done.stderr or ""))

    async def upload(self, host: HostSpec, data: bytes, path: str, mode: int = 0o644) -> None:
        """Write a file on the host, whole or not at all (a staging name, then a rename), as
        root: through the command channel and `sudo` for a user that is not root, since the
        node's prefix belongs to root and SFTP cannot change user (nor is it always on)."""
        connection = await self._connection(host)
        # Directories it makes are the node's layout (readable, as the bootstrap makes them);
        # the file is private until its mode is set.
        script = ('set -e; umask 022; mkdir -p "$(dirname "$1")"; umask 077; cat > "$1.part"; '
                  f'chmod {mode:o} "$1.part"; mv -f "$1.part" "$1"')
        command = " ".join(shlex.quote(part) for part in as_root(host, ["sh", "-c", script, "sh", path]))
        try:
            done = await asyncio.wait_for(connection.run(command, input=data, encoding=None, check=False),
                                          UPLOAD_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise SSHError(f"{host.name}: writing {path} took longer than {UPLOAD_TIMEOUT_S:g} s") from None
        except (OSError, asyncssh.Error) as exc:
            self._forget(host)
            raise SSHError(f"{host.name}: could not write {path} ({exc})", kind="lost") from None
        if done.exit_status != 0:
            reason = bytes(done.stderr or b"").decode(errors="replace").strip()[-300:]
            raise SSHError(f"{host.name}: could not write {path} (exit {done.exit_status}: {reason})")

    async def _connection(self, host: HostSpec) -> asyncssh.SSHClientConnection:
        key = _connection_key(host)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            existing = self._connections.get(key)
            if existing is not None and not existing.is_closed():
                return existing
            tunnel = await self._connection(host.via) if host.via else None
            self._connections[key] = connection = await connect(host, tunnel=tunnel)
            return connection

    def hang_up(self, host: HostSpec) -> None:
        """Close the connection to a host we are done with (its cluster let it go): the next
        user of the host logs in afresh, with whatever key and host key hold then."""
        self._loop.call_soon_threadsafe(self._forget, host)

    def _forget(self, host: HostSpec) -> None:
        connection = self._connections.pop(_connection_key(host), None)
        if connection is not None:
            connection.close()


def _connection_key(host: HostSpec) -> tuple[str, int, str, str]:
    """Private addresses repeat between clusters' networks: a host behind another is known by
    both addresses."""
    return host.address, host.port, host.user, f"{host.via.address}:{host.via.port}" if host.via else ""


def known_hosts_line(host: HostSpec) -> str:
    where = host.address if host.port == 22 else f"[{host.address}]:{host.port}"
    return f"{where} {host.host_key}"


async def connect(host: HostSpec, timeout_s: float = CONNECT_TIMEOUT_S,
                  tunnel: asyncssh.SSHClientConnection | None = None) -> asyncssh.SSHClientConnection:
    """A connection that trusts only the host key recorded for the host; through `tunnel` (a
    connection to `host.via`) when the host is behind another."""
    try:
        key = asyncssh.import_private_key(host.private_key)
        known = asyncssh.import_known_hosts(known_hosts_line(host))
    except (ValueError, asyncssh.KeyImportError) as exc:
        raise SSHError(f"{host.name}: unusable key material ({type(exc).__name__})", kind="auth") from None
    try:
        return await asyncssh.connect(host.address, port=host.port, username=host.user, client_keys=[key],
                                      known_hosts=known, connect_timeout=timeout_s,
                                      agent_path=None, config=[], tunnel=tunnel or ())
    except asyncssh.HostKeyNotVerifiable:
        raise SSHError(f"{host.name}: the host key differs from the one recorded when the host was "
                       "added (a different machine, or a reinstalled one); check it and add the host again",
                       kind="host_key") from None
    except asyncssh.PermissionDenied:
        raise SSHError(f"{host.name}: {host.user}@{host.address} refused the key", kind="auth") from None
    except (OSError, asyncio.TimeoutError) as exc:
        through = f" through {host.via.address}" if host.via else ""
        raise SSHError(f"{host.name}: cannot reach {host.address}:{host.port}{through} "
                       f"({exc.__class__.__name__}: {exc or 'timed out'})", kind="unreachable") from None
    except asyncssh.Error as exc:
        raise SSHError(f"{host.name}: SSH failed ({exc})", kind="unreachable") from None


# Host key algorithms in the order a first contact asks for them: ed25519 when the host has one.
HOST_KEY_PREFERENCE = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                       "rsa-sha2-512", "rsa-sha2-256")


def public_key_line(key: asyncssh.SSHKey) -> str:
    """`<algorithm> <base64>` of a public key, with no comment."""
    algorithm, body = key.export_public_key("openssh").decode().split()[:2]
    return f"{algorithm} {body}"


def host_key_algorithms(host_key: str) -> list[str]:
    """The algorithms to ask a server for so that it presents a key of the same type as
    `host_key` (an RSA key signs under several names)."""
    algorithm = host_key.split()[0] if host_key.strip() else ""
    if algorithm == "ssh-rsa":
        return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
    return [algorithm] if algorithm else list(HOST_KEY_PREFERENCE)


async def fetch_host_key(name: str, address: str, port: int, like: str = "",
                         timeout_s: float = CONNECT_TIMEOUT_S) -> str:
    """The host key a server presents (`ssh-ed25519 AAAA…`), read from the key exchange alone:
    nothing is authenticated. For trust on first use, and to say what a changed key now is.
    With `like` (a recorded key), a key of that type; else ed25519 when the server has one."""
    try:
        key = await asyncio.wait_for(
            asyncssh.get_server_host_key(address, port, server_host_key_algs=host_key_algorithms(like),
                                         config=[]),
            timeout_s)
    except (OSError, asyncio.TimeoutError) as exc:
        raise SSHError(f"{name}: cannot reach {address}:{port} "
                       f"({exc.__class__.__name__}: {exc or 'timed out'})", kind="unreachable") from None
    except asyncssh.Error as exc:
        raise SSHError(f"{name}: SSH failed at {address}:{port} ({exc})", kind="unreachable") from None
    if key is None:
        raise SSHError(f"{name}: {address}:{port} presented no host key")
    return public_key_line(key)
