"""``http://``: streamed over HTTP (proxy settings honoured). Lines are bytes.

A URL on a node's DISCO_PORT that names the worker's own host is read from the local disk.
"""

from __future__ import annotations

from typing import Any

from disco.schemes import open_location


def input_stream(fd: Any, size: Any, url: str, params: Any) -> tuple[Any, int | None, str]:
    return open_location(url, trust_env=True)
