"""Runs a farm project's Python function on units: a long-lived worker that reads requests on its
standard input and answers on its standard output, one at a time. It imports only the standard
library and cloudpickle, so the same file runs in a process slot and, mounted read-only, in a
container slot (the client image's Python). Functions are cached per SHA-256, so a slot loads a
project's code once, not once per unit.

Frame: a JSON header line, then `size` raw bytes. Request `{"code": path, "sha256": hex, "size":
n}`; answer `{"ok": true, "size": n}` or `{"ok": false, "error": "…", "size": 0}`."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import traceback
from typing import Any, BinaryIO, Callable

_functions: dict[str, Callable[[bytes], Any]] = {}


def load(path: str, sha256: str) -> Callable[[bytes], Any]:
    if sha256 not in _functions:
        import cloudpickle

        with open(path, "rb") as handle:
            pickled = handle.read()
        if hashlib.sha256(pickled).hexdigest() != sha256:  # checked again here: the file is the slot's input
            raise ValueError(f"code {path} does not match its SHA-256")
        _functions[sha256] = cloudpickle.loads(pickled)
    return _functions[sha256]


def call(func: Callable[[bytes], Any], data: bytes) -> bytes:
    out = func(data)
    if isinstance(out, str):
        return out.encode()
    if isinstance(out, (bytes, bytearray, memoryview)):
        return bytes(out)
    raise TypeError(f"the function returned {type(out).__name__}, not bytes or str")


def read_frame(stream: BinaryIO) -> tuple[dict[str, Any], bytes] | None:
    line = stream.readline()
    if not line:
        return None
    header = json.loads(line)
    data = stream.read(header.get("size", 0)) if header.get("size") else b""
    return header, data


def write_frame(stream: BinaryIO, header: dict[str, Any], data: bytes = b"") -> None:
    stream.write(json.dumps({**header, "size": len(data)}).encode() + b"\n" + data)
    stream.flush()


def serve() -> None:
    # The protocol keeps the real standard output; whatever the function prints goes to stderr.
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    proto_in = sys.stdin.buffer
    while True:
        frame = read_frame(proto_in)
        if frame is None:
            return
        header, data = frame
        try:
            output = call(load(header["code"], header["sha256"]), data)
        except BaseException as exc:  # the unit's failure is reported, the worker lives on
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            write_frame(proto_out, {"ok": False, "error": last[:2000]})
            continue
        write_frame(proto_out, {"ok": True}, output)


if __name__ == "__main__":
    serve()
