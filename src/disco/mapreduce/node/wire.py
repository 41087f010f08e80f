"""Framing of Disco's worker protocol: `<NAME> SP <payload-len> SP <json-payload> \\n`.

Names are at most 10 characters (upper-case letters and `_`), payloads at most 100 MB. The
parser is incremental and strict: at the first byte that cannot be part of a message it stops,
records why in `error`, and keeps the unconsumed bytes in `buffer`: the worker's "last words".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_NAME = 10
MAX_PAYLOAD = 100 * 1024 * 1024
MAX_LENGTH_DIGITS = len(str(MAX_PAYLOAD))
_NAME = re.compile(rb"[A-Z_]{1,10}")
_NAME_PREFIX = re.compile(rb"[A-Z_]*")


class ProtocolError(Exception):
    """Bytes from the worker that are not a protocol message."""


@dataclass(frozen=True)
class Frame:
    name: str
    payload: bytes  # raw JSON


class FrameParser:
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.error: str | None = None

    @property
    def partial(self) -> bool:
        """Part of a message has arrived and the rest has not."""
        return bool(self.buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """The complete messages `data` ends; after an error, nothing more is parsed."""
        self.buffer += data
        frames: list[Frame] = []
        while self.buffer and self.error is None:
            try:
                frame = self._next()
            except ProtocolError as exc:
                self.error = str(exc)
                break
            if frame is None:
                break
            frames.append(frame)
        return frames

    def _next(self) -> Frame | None:
        buf = self.buffer
        sp = buf.find(b" ", 0, MAX_NAME + 1)
        if sp < 0:
            if len(buf) > MAX_NAME or not _NAME_PREFIX.fullmatch(buf):
                raise ProtocolError("no message name")
            return None
        name = bytes(buf[:sp])
        if not _NAME.fullmatch(name):
            raise ProtocolError(f"invalid message name {name[:20]!r}")
        sp2 = buf.find(b" ", sp + 1, sp + 2 + MAX_LENGTH_DIGITS)
        if sp2 < 0:
            digits = bytes(buf[sp + 1:])
            if len(digits) > MAX_LENGTH_DIGITS or (digits and not digits.isdigit()):
                raise ProtocolError("invalid payload length")
            return None
        digits = bytes(buf[sp + 1:sp2])
        if not digits.isdigit():
            raise ProtocolError("invalid payload length")
        length = int(digits)
        if length > MAX_PAYLOAD:
            raise ProtocolError(f"payload of {length} bytes is over the 100 MB limit")
        end = sp2 + 1 + length
        if len(buf) <= end:
            return None
        if buf[end] != 0x0A:
            raise ProtocolError("message does not end with a newline")
        frame = Frame(name.decode("ascii"), bytes(buf[sp2 + 1:end]))
        del buf[:end + 1]
        return frame


def encode(name: str, payload: Any) -> bytes:
    body = json.dumps(payload).encode("ascii")  # ASCII: the length counts bytes
    return b"%s %d %s\n" % (name.encode("ascii"), len(body), body)
