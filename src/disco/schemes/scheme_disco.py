"""``disco://host/path``: data on a Disco node.

Read from the local disk when ``host`` is the worker's own host (``disco/...`` under
DISCO_DATA, ``ddfs/...`` under DDFS_DATA), otherwise from ``http://host:DISCO_PORT/path``.
"""

from __future__ import annotations

from typing import Any

from disco.schemes import open_location


def input_stream(fd: Any, size: Any, url: str, params: Any) -> tuple[Any, int | None, str]:
    return open_location(url)
