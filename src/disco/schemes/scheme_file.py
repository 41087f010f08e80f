"""``file:///path`` or a plain path: a file that must exist on every node. Lines are bytes."""

from __future__ import annotations

from typing import Any

from disco.schemes import open_local
from disco.util import schemesplit


def input_stream(fd: Any, size: Any, url: str, params: Any) -> tuple[Any, int, str]:
    scheme, rest = schemesplit(url)
    return open_local(rest if scheme else url, url)
