"""The supervisor's control socket: one JSON request per line, one JSON answer per line,
over a unix socket in the node's directory that only root (the supervisor's user) may open.

    {"op": "ping"}                          -> {"ok": true, "pid": 4242}
    {"op": "start", "launch": {...}}        -> {"ok": true, "pid": 4321}
    {"op": "status", "name": null}          -> {"ok": true, "processes": {...}}
    {"op": "stop", "grace": 10}             -> {"ok": true, "stopped": ["worker", "scheduler"]}
    {"op": "shutdown", "grace": 10}         -> stop, then the supervisor exits
Errors: {"ok": false, "error": "…"}.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

_MAX_PATH = 107  # sun_path holds 108 bytes with the terminating NUL


class SupervisorUnavailable(ConnectionError):
    pass


class SupervisorError(RuntimeError):
    pass


def check_socket_path(path: Path) -> None:
    if len(str(path).encode()) > _MAX_PATH:
        raise ValueError(f"{path} is longer than a unix socket path may be ({_MAX_PATH} bytes): "
                         "choose a shorter node prefix")


def call(path: Path, request: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
    check_socket_path(path)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout_s)
    try:
        try:
            client.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise SupervisorUnavailable(f"no supervisor answers on {path}") from exc
        client.sendall(json.dumps(request).encode() + b"\n")
        answer = read_line(client)
    finally:
        client.close()
    if answer is None:
        raise SupervisorUnavailable(f"the supervisor on {path} closed the connection")
    reply = json.loads(answer)
    if not reply.get("ok"):
        raise SupervisorError(reply.get("error", "the supervisor failed"))
    return reply


def answers(path: Path) -> bool:
    try:
        call(path, {"op": "ping"}, timeout_s=5.0)
        return True
    except (SupervisorUnavailable, OSError):
        return False


def read_line(conn: socket.socket, limit: int = 16 << 20) -> bytes | None:
    chunks = bytearray()
    while not chunks.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            return None
        chunks += chunk
        if len(chunks) > limit:
            raise ValueError("request too large")
    return bytes(chunks)
