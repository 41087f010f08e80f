"""Functions for classic map/reduce jobs (also importable as :mod:`disco.func`).

Signatures of the job functions the classic worker calls:

- ``map(entry, params)`` -> iterable of ``(key, value)``
- ``reduce(iter, out, params)`` writes with ``out.add(key, value)``; or
  ``reduce(iter, params)`` -> iterable of ``(key, value)`` (chosen by argument count)
- ``combiner(key, value, buf, done, params)`` -> iterable of records to write, or None
- ``partition(key, nr_partitions, params)`` -> int label
- ``init(input_iter, params)`` (``map_init``/``reduce_init``, deprecated)
- readers and input streams ``(fd, size, url, params)``, output streams
  ``(fd, partition, url, params)``; ``params`` is optional in all of these.

``functools.partial`` objects work wherever a function does.
"""

from __future__ import annotations

import hashlib
import pickle
from zlib import crc32
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from disco.util import kvgroup
from disco.worker.task_io import (  # noqa: F401  (re-exported: Disco users import them here)
    chain_reader, chain_stream, default_stream, disco_input_stream, disco_output_stream,
    gzip_line_reader, gzip_line_stream, gzip_reader, gzip_stream, map_input_stream,
    map_output_stream, old_netstr_reader, plain_output_stream, re_reader, reduce_input_stream,
    reduce_output_stream, string_input_stream, task_input_stream, task_output_stream)

__all__ = [
    "chain_reader", "chain_stream", "default_stream", "disco_input_stream",
    "disco_output_stream", "gzip_line_reader", "gzip_line_stream", "gzip_reader",
    "gzip_stream", "map_input_stream", "map_output_stream", "old_netstr_reader",
    "plain_output_stream", "re_reader", "reduce_input_stream", "reduce_output_stream",
    "string_input_stream", "task_input_stream", "task_output_stream",
    "nop_map", "nop_reduce", "sum_combiner", "sum_reduce", "make_range_partition",
    "default_partition", "persistent_hash", "init", "notifier", "kvgroup",
]


def nop_map(entry: Any, params: Any = None) -> Iterator[Any]:
    """Passes each input entry through: a ``(key, value)`` entry as it is, anything else as
    the key of a pair with an empty value."""
    if isinstance(entry, tuple) and len(entry) == 2:
        yield entry
    else:
        yield entry, ""


def nop_reduce(iter: Iterable[tuple[Any, Any]], out: Any, params: Any = None) -> None:
    """Writes every input record as it is."""
    for key, value in iter:
        out.add(key, value)


def sum_combiner(key: Any, value: Any, buf: dict[Any, Any], done: bool,
                 params: Any = None) -> Any:
    """Sums the values of each key within a map task (use with numeric values)."""
    if not done:
        buf[key] = buf.get(key, 0) + value
        return None
    return list(buf.items())


def sum_reduce(iter: Iterable[tuple[Any, Any]], params: Any = None) -> Iterator[tuple[Any, Any]]:
    """Sums the values of each key."""
    totals: dict[Any, Any] = {}
    for key, value in iter:
        totals[key] = totals.get(key, 0) + value
    yield from totals.items()


def _key_bytes(key: Any) -> bytes:
    """A canonical byte form of a key, equal for keys that compare equal in common cases
    (``1``, ``1.0`` and ``True``), the same in every process and every run."""
    if isinstance(key, bytes):
        return b"b" + key
    if isinstance(key, str):
        return b"s" + key.encode("utf-8", "surrogatepass")
    if isinstance(key, bool) or isinstance(key, int):
        return b"i%d" % int(key)
    if isinstance(key, float):
        return b"i%d" % int(key) if key.is_integer() else b"f" + repr(key).encode()
    if key is None:
        return b"n"
    if isinstance(key, tuple):
        return b"t" + b"".join(b"%d:" % len(part) + part for part in map(_key_bytes, key))
    if isinstance(key, frozenset):
        return b"z" + b",".join(sorted(_key_bytes(item) for item in key))
    return b"p" + pickle.dumps(key, 4)


def persistent_hash(key: Any) -> int:
    """A hash of ``key`` that does not change between processes (unlike ``hash()``, which
    Python salts per process for str and bytes): the first 8 bytes of the md5 of a
    canonical encoding of the key (strings as UTF-8, numbers by value, tuples element by
    element, other objects pickled)."""
    return int.from_bytes(hashlib.md5(_key_bytes(key)).digest()[:8], "big")


def default_partition(key: Any, nr_partitions: int, params: Any = None) -> int:
    """The key's partition, the same in every map task, on every node: the CRC-32 of a bytes
    or str key (str as UTF-8), ``persistent_hash(key)`` for any other key, modulo
    ``nr_partitions``.

    CRC-32 is one C call, about as cheap as Python's own ``hash()`` (which cannot serve: it
    is salted per process for str and bytes); a map task with a combiner looks up its
    buffer by this partition for every record, and the md5 cost that loop a quarter of its
    time on a word count, remembered per key or not."""
    kind = type(key)
    if kind is bytes:
        return crc32(key) % nr_partitions
    if kind is str:
        return crc32(key.encode("utf-8", "surrogatepass")) % nr_partitions
    return persistent_hash(key) % nr_partitions


def make_range_partition(min_val: int, max_val: int) -> Callable[[Any, int, Any], int]:
    """A partition function that spreads integer keys in ``[min_val, max_val]`` evenly over
    the partitions, in order (so the partitions are sorted relative to each other)."""
    span = max_val - min_val

    def range_partition(key: Any, nr_partitions: int, params: Any = None) -> int:
        if span <= 0:
            return 0
        return int(round(float(int(key) - min_val) / span * (nr_partitions - 1)))

    return range_partition


def init(input_iter: Any, params: Any) -> None:
    """The default ``map_init``/``reduce_init``: does nothing."""


def notifier(urls: Any) -> None:
    """Called by ``result_iterator`` with each input it opens; does nothing by default."""
