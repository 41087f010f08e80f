"""``raw://<data>``: the URL itself is the data. Records are ``str`` lines of the data."""

from __future__ import annotations

import io
from typing import Any


def input_stream(fd: Any, size: Any, url: str, params: Any) -> tuple[io.StringIO, int, str]:
    data = url[len("raw://"):] if url.startswith("raw://") else url.split("://", 1)[-1]
    return io.StringIO(data), len(data), url
