"""``dir://host/path``: an index of ``label url size`` lines; the input is the concatenation
of the files it lists, in label order. (Workers normally expand indexes themselves, by
label; this is for readers given a ``dir://`` URL directly.)"""

from __future__ import annotations

import io
from typing import Any

from disco.error import DataError
from disco.schemes import open_location
from disco.util import parse_dir


class ConcatenatedInput(io.RawIOBase):
    """Several inputs read one after the other as one binary stream; each input is a URL or
    a list of replica URLs, tried in order until one opens."""

    def __init__(self, inputs: list[Any]) -> None:
        super().__init__()
        self.inputs = [[i] if isinstance(i, str) else list(i) for i in inputs]
        self.current: Any = None

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while True:
            if self.current is None:
                if not self.inputs:
                    return 0
                self.current = _open_any(self.inputs.pop(0))
            data = self.current.read(len(target))
            if data:
                target[:len(data)] = data
                return len(data)
            self.current.close()
            self.current = None

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None
        super().close()


def _open_any(replicas: list[str]) -> Any:
    error: Exception | None = None
    for url in replicas:
        try:
            return open_location(url)[0]
        except DataError as exc:
            error = exc
    raise error or DataError("no replicas", None)


def input_stream(fd: Any, size: Any, url: str, params: Any) -> tuple[Any, None, str]:
    return io.BufferedReader(ConcatenatedInput(parse_dir(url))), None, url
