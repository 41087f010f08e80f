"""Input -> units: inline data, files the server may read, or an http(s) URL on a host the
deployment allows; split by lines, bytes or records (newline-delimited JSON, or a delimiter),
each unit with its SHA-256."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from disco.errors import DiscoError, Forbidden, InvalidSpec

FETCH_TIMEOUT_S = 30


@dataclass(frozen=True)
class Chunk:
    seq: int
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class InputTooLarge(DiscoError):
    status = 413
    code = "input_too_large"


def read_file(path: str, allowed_dirs: list[Path], max_bytes: int) -> bytes:
    """A file under one of the directories the deployment lets projects read (none by default)."""
    resolved = Path(path).resolve()
    if not any(resolved.is_relative_to(d.resolve()) for d in allowed_dirs):
        raise Forbidden(f"the server reads input files only under its input directories; {path!r} is not",
                        code="input_path_not_allowed")
    try:
        size = resolved.stat().st_size
        if size > max_bytes:
            raise InputTooLarge(f"input file is {size} bytes, over the limit of {max_bytes}")
        return resolved.read_bytes()
    except OSError as exc:
        raise InvalidSpec(f"cannot read input file {path!r}: {exc.strerror}", code="input_unreadable") from None


def fetch_url(url: str, allowed_hosts: list[str], max_bytes: int) -> bytes:
    """An http(s) URL on an allowed host (the server fetching what a tenant names is otherwise a
    way into the server's network)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port out of range)
    except ValueError:
        raise InvalidSpec("input url is not a valid URL", code="invalid_input") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidSpec("input url must be http(s)://host/…", code="invalid_input")
    if parts.hostname not in allowed_hosts:
        raise Forbidden(f"input URLs may name only the hosts this server allows ({', '.join(allowed_hosts) or 'none'})",
                        code="input_host_not_allowed")
    chunks: list[bytes] = []
    size = 0
    try:
        with httpx.stream("GET", url, timeout=FETCH_TIMEOUT_S, trust_env=False, follow_redirects=False) as response:
            if response.status_code != 200:
                raise InvalidSpec(f"input url answered HTTP {response.status_code}", code="input_unreadable")
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise InputTooLarge(f"input at the URL is over the limit of {max_bytes} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise InvalidSpec(f"cannot fetch input url: {type(exc).__name__}", code="input_unreadable") from None
    return b"".join(chunks)


def split(data: bytes, by: str, size: int, delimiter: bytes = b"\n") -> list[Chunk]:
    """`lines`: `size` lines a unit; `bytes`: `size` bytes a unit; `records`: `size` records a unit,
    records ending in `delimiter` (newline-delimited JSON by default). A last, partial group is a
    unit too; empty input makes no unit."""
    if size < 1:
        raise InvalidSpec("split size must be at least 1", code="invalid_split")
    if by == "bytes":
        pieces: Iterator[bytes] = (data[i:i + size] for i in range(0, len(data), size))
    elif by in ("lines", "records"):
        pieces = _groups(_records(data, b"\n" if by == "lines" else delimiter), size)
    else:
        raise InvalidSpec(f"unknown split {by!r} (lines, bytes or records)", code="invalid_split")
    return [Chunk(seq, piece) for seq, piece in enumerate(pieces)]


def _records(data: bytes, delimiter: bytes) -> list[bytes]:
    if not delimiter:
        raise InvalidSpec("the records delimiter must not be empty", code="invalid_split")
    parts = data.split(delimiter)
    records = [part + delimiter for part in parts[:-1]]
    if parts[-1]:
        records.append(parts[-1])  # the last record needs no delimiter after it
    return records


def _groups(records: list[bytes], size: int) -> Iterator[bytes]:
    for i in range(0, len(records), size):
        yield b"".join(records[i:i + size])
