"""Listening TCP sockets of this machine, from /proc/net/tcp (every container of a testbed
shares this machine's network namespace, so its sockets show here)."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

_LISTEN = "0A"


def listening_ipv4() -> list[tuple[str, int]]:
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == _LISTEN:
            hex_address, hex_port = fields[1].split(":")
            address = socket.inet_ntoa(struct.pack("<I", int(hex_address, 16)))
            found.append((address, int(hex_port, 16)))
    return found


def listeners_on(addresses: set[str]) -> list[tuple[str, int]]:
    return [entry for entry in listening_ipv4() if entry[0] in addresses]
