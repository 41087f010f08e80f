"""Version 2 of the internal record format: records stored as runs of one key.

Ours, not Disco's. A map writes it for the outputs that only a reduce of the same job reads
(as Hadoop and Spark keep their intermediate formats to themselves); job results stay in
Disco's version 1, which Disco's own readers know.

A version 2 hunk (version byte 130) holds pickles back to back, each a tuple ``(keys,
counts, values)`` of three lists: the records are ``(keys[i], v)`` for the next
``counts[i]`` values ``v`` of ``values``. A map whose outputs are grouped by key writes a
key once for all its values. Writing and reading are C loops (one pickle per hunk, no
Python step per record): for a word count, writing costs a tenth of what version 1 costs
(it pickles every record on its own) and reading a fifth or less.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable, Iterator
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

from disco.error import DataError
from disco.worker.hunks import HUNK_SIZE, pack_hunk

VERSION = 2
PICKLE_PROTOCOL = 4
FIRST_LIMIT = 1 << 16  # records held before the first hunk is written
MAX_LIMIT = 1 << 20  # records held at most before a hunk is written (unless one run is longer)

_first, _second = itemgetter(0), itemgetter(1)


class RunsOutputStream:
    """Writes ``(key, value)`` records as version 2 hunks. ``close`` writes the last hunk
    but leaves the underlying stream open (its owner closes it)."""

    def __init__(self, stream: Any, compression_level: int = 2, min_hunk_size: int = HUNK_SIZE) -> None:
        self.stream = stream
        self.compression_level = compression_level
        self.min_hunk_size = min_hunk_size
        self._keys: list[Any] = []
        self._counts: list[int] = []
        self._values: list[Any] = []
        # How many records make a hunk of about min_hunk_size, judged by the last hunk.
        self._limit = FIRST_LIMIT

    def add(self, key: Any, value: Any) -> None:
        self._keys.append(key)
        self._counts.append(1)
        self._values.append(value)
        if len(self._values) >= self._limit:
            self.flush()

    def append(self, record: Any) -> None:
        key, value = record
        self.add(key, value)

    def extend(self, records: Iterable[Any]) -> None:
        """Write many ``(key, value)`` records."""
        records = records if isinstance(records, list) else list(records)
        self._keys.extend(map(_first, records))
        self._counts.extend(repeat(1, len(records)))
        self._values.extend(map(_second, records))
        if len(self._values) >= self._limit:
            self.flush()

    def extend_run(self, key: Any, values: Iterable[Any]) -> None:
        """Write ``(key, v)`` for every ``v`` of ``values``."""
        before = len(self._values)
        self._values.extend(values)
        if len(self._values) > before:
            self._keys.append(key)
            self._counts.append(len(self._values) - before)
            if len(self._values) >= self._limit:
                self.flush()

    def flush(self) -> None:
        if not self._values:
            return
        data = pickle.dumps((self._keys, self._counts, self._values), PICKLE_PROTOCOL)
        hunk = pack_hunk(VERSION, data, self.compression_level)
        self.stream.write(hunk)
        count = len(self._values)
        self._limit = max(1024, min(MAX_LIMIT, self.min_hunk_size * count // len(data)))
        self._keys, self._counts, self._values = [], [], []

    def close(self) -> None:
        self.flush()


def runs_output_stream(stream: Any, partition: Any, url: str, params: Any) -> RunsOutputStream:
    """Encodes records in this format (an output stream function, as
    ``disco_output_stream`` is for version 1)."""
    return RunsOutputStream(stream)


def decode_runs(data: bytes, url: str | None) -> Iterator[list[tuple[Any, Any]]]:
    """The records of a version 2 hunk's data, a list of them per pickle."""
    buffer = io.BytesIO(data)
    while buffer.tell() < len(data):
        try:
            keys, counts, values = pickle.load(buffer)
            if not (type(keys) is type(counts) is type(values) is list
                    and len(keys) == len(counts) and sum(counts) == len(values)
                    and (not counts or min(counts) > 0)):
                raise ValueError("not three lists of matching lengths")
        except Exception as exc:  # a hunk that passed its checksum yet does not decode
            raise DataError(f"Undecodable records in hunk: {exc}", url) from None
        if len(keys) == len(values):  # every run is one record (a combiner's output)
            yield list(zip(keys, values))
        else:
            yield list(zip(chain.from_iterable(map(repeat, keys, counts)), values))
