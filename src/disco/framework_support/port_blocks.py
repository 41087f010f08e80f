"""Blocks of TCP ports handed to nodes, unique on this machine, for frameworks that bind some
of their ports to every address (Ray's GCS, raylet and agents listen on 0.0.0.0 or 127.0.0.1
whatever node address they are given): nodes of different clusters share those addresses,
so each node needs port numbers of its own, the same every time its templates are rendered.

The assignments live in a small JSON file in the service manager's cache, under a lock. A
block goes back to the pool once nothing listens on its node's address any more (the node
is gone) and it was handed out long enough ago for its node to have started.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

import psutil

FIRST_PORT = 20000
LAST_PORT = 32767  # below Linux's ephemeral range (32768-60999), where the kernel picks ports
RECLAIM_AFTER_S = 600.0
# Ports other programs pick from on their own, never handed out in a block: Ray's client proxy
# starts a server per client connection on a free port of 23000-23999 (checked free a moment
# before that server binds it), so a node's worker port there could take it in between.
RESERVED = ((23000, 24000),)


def port_block(registry_dir: str, host: str, size: int) -> int:
    """The first port of the block of `size` ports that belongs to `host`."""
    if not 1 <= size <= 1024:
        raise ValueError(f"a port block holds 1 to 1024 ports, not {size}")
    directory = Path(registry_dir)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "port-blocks.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = directory / "port-blocks.json"
        try:
            blocks: dict[str, dict] = json.loads(path.read_text())
        except (OSError, ValueError):
            blocks = {}
        mine = blocks.get(host)
        if mine and mine["size"] == size:
            return int(mine["start"])
        listening = _listeners()
        now = time.time()
        blocks = {h: b for h, b in blocks.items() if h != host and
                  (h in listening["hosts"] or now - b["since"] < RECLAIM_AFTER_S)}
        taken = [(b["start"], b["start"] + b["size"]) for b in blocks.values()] + list(RESERVED)
        start = FIRST_PORT
        while start + size - 1 <= LAST_PORT:
            clash = next((end for begin, end in taken if begin < start + size and start < end), None)
            if clash is not None:
                start = clash
                continue
            busy = [p for p in range(start, start + size) if p in listening["ports"]]
            if busy:
                start = busy[-1] + 1
                continue
            blocks[host] = {"start": start, "size": size, "since": now}
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(blocks))
            os.replace(tmp, path)
            return start
        raise RuntimeError(f"no free block of {size} ports left in {FIRST_PORT}-{LAST_PORT}")


def _listeners() -> dict[str, set]:
    """Addresses that have a listening socket, and every listening port (any address)."""
    hosts: set[str] = set()
    ports: set[int] = set()
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr:
            hosts.add(conn.laddr.ip.removeprefix("::ffff:"))
            ports.add(conn.laddr.port)
    return {"hosts": hosts, "ports": ports}
