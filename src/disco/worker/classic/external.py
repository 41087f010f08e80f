"""Map and reduce functions written as external programs (Disco's external interface).

``map=disco.util.external(["bin/cmap", "cmap.conf"])`` ships the program (the first file)
and its supporting files; on the node they are written to one directory and the program is
started there as ``<program> map`` (or ``reduce``).

Wire format, on the program's stdin and stdout: a key-value pair is ``<key length><key>
<value length><value>`` with lengths as 32-bit little-endian integers; a result list is
``<number of pairs>`` (same integer format) followed by that many pairs. Before any pair,
the program reads its parameters: ``ext_params`` as a netstring block
(``<total length>\\n`` then ``<klen> <key> <vlen> <value>\\n`` per item) when it is a dict,
as given when it is a string or bytes, else ``0\\n``.

- map: for every input entry (a ``(key, value)`` tuple, or a value with an empty key) the
  program answers with exactly one result list;
- reduce: the program gets every input pair, may answer with result lists at any time, and
  is finished when it exits.

Lines the program writes to stderr as ``**<MSG> text`` become messages; ``**<ERR> text``
fails the job with that text. Keys and values come back as ``str`` (UTF-8, undecodable bytes
kept as surrogate escapes).
"""

from __future__ import annotations

import os
import struct
import subprocess
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from disco.error import DiscoError

MAX_ITEM_SIZE = 1 << 30
_INT = struct.Struct("<I")
_process: "ExternalProgram | None" = None


def package(files: list[str]) -> dict[str, bytes]:
    """The program (first path) and its supporting files, as ``{name: contents}`` with the
    program under ``"op"``."""
    if not files:
        raise DiscoError("external() needs at least the program's path")
    programs: dict[str, bytes] = {}
    for path in files[1:]:
        with open(path, "rb") as file:
            programs[os.path.basename(path)] = file.read()
    with open(files[0], "rb") as file:
        programs["op"] = file.read()
    return programs


def encode_netstring_params(params: dict[Any, Any]) -> bytes:
    body = b"".join(b"%d %s %d %s\n" % (len(k), k, len(v), v)
                    for k, v in ((_bytes(k), _bytes(v)) for k, v in params.items()))
    return b"%d\n%s" % (len(body), body)


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def _text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


class ExternalProgram:
    def __init__(self, files: dict[str, bytes], params: Any, mode: str, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        for name, data in files.items():
            path = os.path.join(directory, os.path.basename(str(name)))
            with open(path, "wb") as file:
                file.write(_bytes(data))
        program = os.path.join(directory, "op")
        os.chmod(program, 0o755)
        self.error: str | None = None
        self.proc = subprocess.Popen([program, mode], cwd=directory, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self.stderr_thread.start()
        if isinstance(params, dict) and params:
            header = encode_netstring_params(params)
        elif isinstance(params, (str, bytes)) and params:
            header = _bytes(params)
        else:
            header = b"0\n"
        self._write(header)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith("**<MSG>"):
                print(line[len("**<MSG>"):].strip())
            elif line.startswith("**<ERR>"):
                self.error = line[len("**<ERR>"):].strip()
            elif line.strip():
                print(f"external program: {line}")

    def _write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            self._fail("stopped reading its input")

    def _fail(self, what: str) -> None:
        self.stderr_thread.join(timeout=1)
        if self.error:
            raise DiscoError(f"external program failed: {self.error}")
        raise DiscoError(f"external program {what} (exit status {self.proc.poll()})")

    def _read_exact(self, size: int) -> bytes:
        assert self.proc.stdout is not None
        data = self.proc.stdout.read(size)
        if len(data) < size:
            self._fail("ended its output early")
        return data

    def _read_int(self) -> int:
        return _INT.unpack(self._read_exact(4))[0]

    def _read_item(self) -> bytes:
        size = self._read_int()
        if size > MAX_ITEM_SIZE:
            raise DiscoError(f"external program sent an item of {size} bytes")
        return self._read_exact(size)

    def read_results(self) -> list[tuple[str, str]]:
        count = self._read_int()
        return [(_text(self._read_item()), _text(self._read_item())) for _ in range(count)]

    @staticmethod
    def pack(entry: Any) -> bytes:
        key, value = entry if isinstance(entry, tuple) and len(entry) == 2 else ("", entry)
        key, value = _bytes(key), _bytes(value)
        return _INT.pack(len(key)) + key + _INT.pack(len(value)) + value

    def map(self, entry: Any, params: Any = None) -> list[tuple[str, str]]:
        self._write(self.pack(entry))
        return self.read_results()

    def reduce(self, entries: Iterable[Any], params: Any = None) -> Iterator[tuple[str, str]]:
        errors: list[BaseException] = []

        def feed() -> None:
            try:
                for entry in entries:
                    self._write(self.pack(entry))
            except BaseException as exc:  # reported by the reading side
                errors.append(exc)
            finally:
                try:
                    assert self.proc.stdin is not None
                    self.proc.stdin.close()
                except OSError:
                    pass

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        assert self.proc.stdout is not None
        while True:
            head = self.proc.stdout.read(4)
            if not head:
                break
            if len(head) < 4:
                self._fail("ended its output early")
            for _ in range(_INT.unpack(head)[0]):
                yield _text(self._read_item()), _text(self._read_item())
        feeder.join()
        if errors:
            raise errors[0]
        status = self.proc.wait()
        self.stderr_thread.join(timeout=1)
        if self.error or status:
            self._fail("failed")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def prepare(files: dict[str, bytes], params: Any, mode: str) -> Any:
    """Start the external program for this task; the map or reduce function that uses it."""
    global _process
    from disco.worker import current_task
    task = current_task()
    directory = task.abspath(f"ext.{mode}") if task else os.path.abspath(f"ext.{mode}")
    _process = ExternalProgram(files, params, mode, directory)
    return _process.map if mode == "map" else _process.reduce


def close() -> None:
    global _process
    if _process is not None:
        _process.kill()
        _process = None
