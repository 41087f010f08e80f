"""Task input and output: stream chains, readers, and Disco's internal record format.

Stream functions are chained. An *input stream* is called as ``f(fd, size, url, params)`` and
returns a new ``fd``, or ``(fd, size, url)``; the last object of the chain is iterated for
records. An *output stream* is called as ``f(fd, partition, url, params)`` and returns a new
``fd`` or ``(fd, url)``; the last object's ``add(key, value)`` writes a record. In both, the
``params`` argument is passed only to functions that take four arguments.

Internal record format (``DiscoOutputStream_v1``): hunks (:mod:`disco.worker.hunks`) of
version 1, each holding pickled ``(key, value)`` records back to back, zlib-compressed
(level 2). Hunks are about 1 MB before compression. A reader that finds a bad header, a
short hunk, undecompressable data or a wrong checksum raises :class:`~disco.error.DataError`
(so the input is retried from another replica). Readers also take version 2
(:mod:`disco.worker.record_runs`), which our maps write for their reduce.

Readers hand records on in lists (:meth:`DiscoInputStream.record_batches`,
:func:`iter_batches`) so that a task's runtime takes no Python step per record; iterating
gives the records one by one.
"""

from __future__ import annotations

import gzip
import io
import pickle
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, islice, repeat
from typing import Any

from disco.error import DataError
from disco.util import argcount
from disco.worker import record_runs
from disco.worker.hunks import HUNK_HEADER, HUNK_SIZE, MAX_HUNK_SIZE, pack_hunk

MAX_RECORD_SIZE = 1 << 20  # what `ddfs chunk` allows per record
# Protocol 4 is readable by every Python 3 we support and avoids the per-object overhead of
# the ancient protocol 1 Disco used; the reader accepts any protocol.
PICKLE_PROTOCOL = 4
PICKLE_BATCH = 4096  # records pickled by one C loop
READ_BATCH = 1024  # records a reader hands on at a time, when the stream is not batched


def in_lists(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``records`` handed on in lists of ``size`` (the last one shorter)."""
    it = iter(records)
    while batch := list(islice(it, size)):
        yield batch


# -- internal format: writing ------------------------------------------------------------
class DiscoOutputStream_v1:
    """Writes ``(key, value)`` records in hunks. ``close`` flushes the last hunk but leaves
    the underlying stream open (its owner closes it)."""

    def __init__(self, stream: Any, version: int = 1, compression_level: int = 2,
                 min_hunk_size: int = HUNK_SIZE, max_record_size: int | None = None) -> None:
        self.stream = stream
        self.version = version
        self.compression_level = compression_level
        self.min_hunk_size = min_hunk_size
        self.max_record_size = max_record_size
        self.hunk = io.BytesIO()
        self.hunk_size = 0
        self.size = 0  # bytes written to the stream
        self.records = 0
        # Records wait here and are pickled in batches by a C loop: per-record Python work is
        # what a map task's time goes to. A batch is as many records as should fill the hunk
        # (judged by the last batch's record size), so hunks end where they would have. A
        # size limit needs each record's size at once.
        self._batch: list[Any] = []
        self._batch_append = self._batch.append
        self._limit = 1
        if max_record_size:
            self.append = self._append_checked  # type: ignore[method-assign]
            self.add = lambda key, value: self._append_checked((key, value))  # type: ignore[method-assign]

    def add(self, key: Any, value: Any) -> None:
        self._batch_append((key, value))
        if len(self._batch) >= self._limit:
            self._pickle_batch()

    def append(self, record: Any) -> None:
        self._batch_append(record)
        if len(self._batch) >= self._limit:
            self._pickle_batch()

    def extend(self, records: Iterable[Any]) -> None:
        """Write many records (``add`` for each, in one call)."""
        if self.max_record_size:
            for record in records:
                self._append_checked(record)
            return
        self._batch.extend(records)
        if len(self._batch) >= self._limit:
            self._pickle_batch()

    def _append_checked(self, record: Any) -> None:
        data = pickle.dumps(record, PICKLE_PROTOCOL)
        if len(data) > (self.max_record_size or len(data)):
            raise ValueError(f"record of {len(data)} bytes exceeds {self.max_record_size}")
        self._write(data, 1)

    def _pickle_batch(self) -> None:
        batch = self._batch
        if batch:
            data = b"".join(map(pickle.dumps, batch, repeat(PICKLE_PROTOCOL, len(batch))))
            count = len(batch)
            batch.clear()
            self._write(data, count)
            room = self.min_hunk_size - self.hunk_size
            self._limit = max(1, min(PICKLE_BATCH, room * count // max(1, len(data)) + 1))

    def _write(self, data: bytes, count: int) -> None:
        self.hunk.write(data)
        self.hunk_size += len(data)
        self.records += count
        if self.hunk_size > self.min_hunk_size:
            self.flush()

    def flush(self) -> None:
        self._pickle_batch()
        if not self.hunk_size:
            return
        hunk = pack_hunk(self.version, self.hunk.getvalue(), self.compression_level)
        self.stream.write(hunk)
        self.size += len(hunk)
        self.hunk = io.BytesIO()
        self.hunk_size = 0

    def close(self) -> None:
        self.flush()


class DiscoOutputStream_v0:
    """Disco's pre-0.3 format: ``klen SP key SP vlen SP value \\n``, keys and values as str."""

    def __init__(self, stream: Any, **_ignored: Any) -> None:
        self.stream = stream
        self.size = 0

    def add(self, key: Any, value: Any) -> None:
        k, v = _v0_bytes(key), _v0_bytes(value)
        data = b"%d %s %d %s\n" % (len(k), k, len(v), v)
        self.stream.write(data)
        self.size += len(data)

    def append(self, record: Any) -> None:
        self.add(*record)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _v0_bytes(obj: Any) -> bytes:
    if isinstance(obj, bytes):
        return obj
    return str(obj).encode("utf-8")


def DiscoOutputStream(stream: Any, version: int = 1, **kwargs: Any) -> Any:
    """An output stream in Disco's internal format (``version=0`` for the old one)."""
    if version == 0:
        return DiscoOutputStream_v0(stream, **kwargs)
    return DiscoOutputStream_v1(stream, version=version, **kwargs)


# -- internal format: reading ------------------------------------------------------------
def _read_exactly(stream: Any, size: int) -> bytes:
    """Read ``size`` bytes, fewer only at the end of the stream (read() may return less)."""
    chunks, left = [], size
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class DiscoInputStream:
    """The records of a stream in Disco's internal format (any version). Iterate it for
    records, or take :meth:`record_batches` for lists of them; not both."""

    def __init__(self, stream: Any, url: str | None = None, ignore_corrupt: bool = False) -> None:
        self._batches = _record_batches(stream, url, ignore_corrupt)
        self._records = chain.from_iterable(self._batches)

    def __iter__(self) -> Iterator[Any]:
        return self._records

    def __next__(self) -> Any:
        return next(self._records)

    def record_batches(self) -> Iterator[list[Any]]:
        return self._batches


def disco_input_stream(stream: Any, size: int | None = None, url: str | None = None,
                       ignore_corrupt: bool = False) -> DiscoInputStream:
    """The records of a stream in Disco's internal format.

    With ``ignore_corrupt``, hunks that fail their checksum or decompression are skipped
    instead of raising DataError (truncation is always an error).
    """
    return DiscoInputStream(stream, url, ignore_corrupt)


def _record_batches(stream: Any, url: str | None, ignore_corrupt: bool) -> Iterator[list[Any]]:
    offset = 0
    while True:
        first = stream.read(1)
        if not first:
            return
        if first[0] < 128:
            yield from in_lists(_read_v0(stream, url, first), READ_BATCH)
            return
        rest = _read_exactly(stream, HUNK_HEADER.size - 1)
        if len(rest) < HUNK_HEADER.size - 1:
            raise DataError(f"Truncated hunk header at byte {offset}", url)
        version, compressed, checksum, hunk_size = HUNK_HEADER.unpack(first + rest)
        if version not in (129, 128 + record_runs.VERSION) or compressed not in (0, 1) \
                or hunk_size > MAX_HUNK_SIZE:
            raise DataError(f"Corrupted hunk header at byte {offset} (version byte "
                            f"{version}, compressed {compressed}, size {hunk_size})", url)
        offset += HUNK_HEADER.size
        if not hunk_size:
            return  # an empty hunk ends the stream (written by some Disco versions)
        hunk = _read_exactly(stream, hunk_size)
        if len(hunk) < hunk_size:
            raise DataError(f"Truncated data: hunk at byte {offset} has {len(hunk)} of "
                            f"{hunk_size} bytes", url)
        try:
            data = zlib.decompress(hunk) if compressed else hunk
            if zlib.crc32(data) & 0xFFFFFFFF != checksum:
                raise ValueError("checksum does not match")
        except (ValueError, zlib.error) as exc:
            if not ignore_corrupt:
                raise DataError(f"Corrupted data between bytes {offset}-{offset + hunk_size}: "
                                f"{exc}", url) from None
            offset += hunk_size
            continue
        offset += hunk_size
        if version == 129:
            yield _unpickle_all(data, url)
        else:
            yield from record_runs.decode_runs(data, url)


def _unpickle_all(data: bytes, url: str | None) -> list[Any]:
    """The records of a version 1 hunk: one pickle each."""
    buffer = io.BytesIO(data)
    load = pickle.load
    records: list[Any] = []
    append = records.append
    while True:
        try:
            append(load(buffer))
        except EOFError:
            if buffer.tell() == len(data):
                return records
            raise DataError("Undecodable record in hunk: it ends in the middle", url) from None
        except Exception as exc:  # a hunk that passed its checksum yet does not unpickle
            raise DataError(f"Undecodable record in hunk: {exc}", url) from None


def _read_v0(stream: Any, url: str | None, head: bytes) -> Iterator[tuple[str, str]]:
    """Records of the old netstring format, as ``(str, str)``."""
    reader = io.BufferedReader(_Prefixed(head, stream)) if head else stream

    def netstring() -> bytes | None:
        digits = b""
        while True:
            char = reader.read(1)
            if not char:
                if digits:
                    raise DataError("Truncated input: incomplete length", url)
                return None
            if char == b" ":
                if not digits:
                    raise DataError("Corrupted input: empty length", url)
                break
            if not char.isdigit() or len(digits) > 10:
                raise DataError("Corrupted input: could not parse a length", url)
            digits += char
        length = int(digits)
        value = _read_exactly(reader, length)
        if len(value) < length or not reader.read(1):
            raise DataError(f"Truncated input: expected {length + 1} bytes", url)
        return value

    while True:
        key = netstring()
        if key is None:
            return
        value = netstring()
        if value is None:
            raise DataError("Truncated input: key without a value", url)
        yield key.decode("utf-8", "replace"), value.decode("utf-8", "replace")


class _Prefixed(io.RawIOBase):
    """A stream with some already-read bytes put back in front."""

    def __init__(self, head: bytes, stream: Any) -> None:
        self.head, self.stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        if self.head:
            data, self.head = self.head[:len(target)], self.head[len(target):]
        else:
            data = self.stream.read(len(target))
        target[:len(data)] = data
        return len(data)


def chain_reader(stream: Any, size: int | None, url: str, params: Any = None) -> DiscoInputStream:
    """Reader for the outputs of earlier tasks (Disco's internal format): yields the
    ``(key, value)`` records with the types they were written with."""
    return disco_input_stream(stream, size, url, ignore_corrupt=False)


old_netstr_reader = _read_v0


# -- other readers -----------------------------------------------------------------------
def gzip_reader(fd: Any, size: int | None, url: str, params: Any) -> tuple[Any, None, str]:
    """Wraps the input in a :class:`gzip.GzipFile` (iterating it gives bytes lines)."""
    return gzip.GzipFile(fileobj=fd), None, url


def gzip_line_reader(fd: Any, size: int | None, url: str, params: Any) -> Iterator[bytes]:
    """The lines of a gzipped input; a corrupt or truncated input raises DataError."""
    try:
        yield from gzip.GzipFile(fileobj=fd)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"bad gzip data: {exc}", url) from None


def re_reader(item_re_str: str | bytes, fd: Any, size: int | None, fname: str,
              output_tail: bool = False, read_buffer_size: int = 8192) -> Iterator[Any]:
    """Entries of a stream matched by a regular expression: ``m.groups()`` for each match.

    The expression must cover every byte of the input (matches are anchored where the
    previous one ended). At the end, unmatched bytes are yielded as ``[tail]`` when
    ``output_tail``, else reported with a message. Text inputs (``str``) and byte inputs
    are both accepted; the expression is converted to the input's type.
    """
    buffer: Any = None
    total = 0
    item_re: Any = None
    while True:
        limit = read_buffer_size if not size else min(read_buffer_size, size - total)
        chunk = fd.read(limit) if limit > 0 else fd.read(0)
        if buffer is None:
            buffer = chunk[:0] if chunk is not None else b""
            text = isinstance(buffer, str)
            pattern = item_re_str
            if text and isinstance(pattern, bytes):
                pattern = pattern.decode("utf-8")
            elif not text and isinstance(pattern, str):
                pattern = pattern.encode("utf-8")
            item_re = re.compile(pattern)
        chunk = chunk or buffer[:0]
        total += len(chunk)
        buffer += chunk
        match = item_re.match(buffer)
        while match and match.end() > 0:
            yield match.groups()
            buffer = buffer[match.end():]
            match = item_re.match(buffer)
        if not chunk or (size and total >= size):
            if size and total < size:
                raise DataError(f"Truncated input: expected {size} bytes, got {total}", fname)
            if buffer:
                if output_tail:
                    yield [buffer]
                else:
                    print(f"Couldn't match the last {len(buffer)} bytes in {fname}. "
                          "Some bytes may be missing from input.")
            return


# -- stream functions --------------------------------------------------------------------
def task_input_stream(stream: Any, size: int | None, url: str, params: Any) -> Any:
    """Opens ``url`` with the ``input_stream`` of ``disco.schemes.scheme_<scheme>``
    (``file`` when the URL has no scheme)."""
    from disco import schemes
    return schemes.input_stream(stream, size, url, params)


def string_input_stream(string: str, size: int | None, url: str, params: Any) -> tuple:
    return io.StringIO(string), len(string), url


def task_output_stream(stream: Any, partition: Any, url: str, params: Any) -> Any:
    """An output file at ``url`` (a path in the job home) that is only visible once the task
    closes it, so that partial outputs of failed tasks are never read."""
    from disco.fileutils import AtomicFile
    return AtomicFile(url)


def disco_output_stream(stream: Any, partition: Any, url: str, params: Any) -> Any:
    """Encodes records in Disco's internal format."""
    return DiscoOutputStream(stream)


class PlainOutputStream:
    """Writes records as text lines ``key SP value \\n`` (bytes are written as they are)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def add(self, key: Any, value: Any) -> None:
        self.stream.write(_plain(key) + b" " + _plain(value) + b"\n")

    def close(self) -> None:
        pass


def _plain(obj: Any) -> bytes:
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj)
    return str(obj).encode("utf-8")


def plain_output_stream(stream: Any, partition: Any, url: str, params: Any) -> Any:
    """Output as text lines instead of Disco's internal format."""
    return PlainOutputStream(stream)


# Disco 0.4 names of the default chain members.
map_input_stream = reduce_input_stream = task_input_stream
map_output_stream = reduce_output_stream = task_output_stream

chain_stream = (task_input_stream, chain_reader)
default_stream = (task_input_stream,)
gzip_stream = (task_input_stream, gzip_reader)
gzip_line_stream = (task_input_stream, gzip_line_reader)


# -- chains ------------------------------------------------------------------------------
class StreamChain:
    """The objects made by running one URL through a chain of stream functions.

    Iterating gives the records of the last object; :meth:`close` closes every object, the
    last first (so an encoder flushes into its file before the file is closed).
    """

    def __init__(self, url: str, streams: Sequence[Callable[..., Any]], params: Any,
                 fd: Any = None, size: Any = None) -> None:
        self.url = url
        self.fds: list[Any] = []
        try:
            for function in streams:
                extra = (params,) if argcount(function) >= 4 else ()
                result = function(fd, size, url, *extra)
                if isinstance(result, tuple) and len(result) == 3:
                    fd, size, url = result
                elif isinstance(result, tuple) and len(result) == 2:
                    fd, url = result
                else:
                    fd = result
                self.fds.append(fd)
        except BaseException:
            self.abort()
            raise

    @property
    def last(self) -> Any:
        return self.fds[-1]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.last)

    def add(self, key: Any, value: Any) -> None:
        self.last.add(key, value)

    def close(self) -> None:
        closed: set[int] = set()
        for fd in reversed(self.fds):
            if id(fd) not in closed and hasattr(fd, "close"):
                closed.add(id(fd))
                fd.close()

    def abort(self) -> None:
        """Close without committing: atomic files are dropped."""
        for fd in reversed(self.fds):
            try:
                if hasattr(fd, "abort"):
                    fd.abort()
                elif hasattr(fd, "close") and not hasattr(fd, "add"):
                    fd.close()
            except Exception:
                pass


def iter_batches(url: str, streams: Iterable[Callable[..., Any]], params: Any) -> Iterator[list[Any]]:
    """The records of one input URL read through an input chain, in lists; the chain is
    closed at the end (or when the iteration is abandoned)."""
    stream_chain = StreamChain(url, [s for s in streams if s], params)
    try:
        batches = getattr(stream_chain.last, "record_batches", None)
        if callable(batches):
            yield from batches()
            return
        yield from in_lists(stream_chain, READ_BATCH)
    finally:
        try:
            stream_chain.close()
        except Exception:
            pass


def iter_records(url: str, streams: Iterable[Callable[..., Any]], params: Any) -> Iterator[Any]:
    """The records of one input URL read through an input chain (see :func:`iter_batches`)."""
    return chain.from_iterable(iter_batches(url, streams, params))
