"""Disco's internal record format, readers and output files."""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from disco.error import DataError
from disco.fileutils import AtomicFile, DiscoOutputStream
from disco.func import chain_reader, disco_input_stream, gzip_line_reader, re_reader
from disco.worker.task_io import HUNK_HEADER, PlainOutputStream, StreamChain

RECORDS = [("", ""), ("key", 1), (b"bytes", b"\x00\xff"), (1.5, None), (("t", 1), [1, 2]),
           ("\u00e4\u2603", {"nested": {"dict": True}})] + [(f"k{i}", i) for i in range(5000)]


def encode(records, **kwargs) -> bytes:
    buffer = io.BytesIO()
    stream = DiscoOutputStream(buffer, **kwargs)
    for key, value in records:
        stream.add(key, value)
    stream.close()
    return buffer.getvalue()


def decode(data: bytes, **kwargs):
    return list(disco_input_stream(io.BytesIO(data), len(data), "test://", **kwargs))


@pytest.mark.parametrize("level", [0, 2, 9])
def test_round_trip_keeps_types(level: int) -> None:
    assert decode(encode(RECORDS, compression_level=level)) == RECORDS


def test_header_layout() -> None:
    data = encode([("a", 1)], compression_level=2)
    version, compressed, checksum, size = HUNK_HEADER.unpack(data[:14])
    assert HUNK_HEADER.format == "<BBIQ" and HUNK_HEADER.size == 14
    assert (version, compressed) == (129, 1)
    assert size == len(data) - 14
    assert zlib.crc32(zlib.decompress(data[14:])) & 0xFFFFFFFF == checksum


def test_many_hunks_and_concatenation() -> None:
    big = [(i, "x" * 1000) for i in range(3000)]  # about 3 MB: several 1 MB hunks
    data = encode(big, min_hunk_size=100_000)
    hunks, offset = 0, 0
    while offset < len(data):
        offset += 14 + HUNK_HEADER.unpack(data[offset:offset + 14])[3]
        hunks += 1
    assert hunks > 10
    # Files can be concatenated (the shuffle does it): no end marker in the way.
    assert decode(data + encode(RECORDS)) == big + RECORDS


def test_empty_stream_has_no_records() -> None:
    assert encode([]) == b""
    assert decode(b"") == []


def _corrupt(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


@pytest.mark.parametrize("level", [0, 2])
def test_corrupt_hunk_raises_data_error(level: int) -> None:
    data = encode(RECORDS, compression_level=level)
    with pytest.raises(DataError) as info:
        decode(_corrupt(data, 100))
    assert info.value.url == "test://"


def test_bad_checksum_truncation_and_header() -> None:
    data = encode(RECORDS)
    version, compressed, checksum, size = HUNK_HEADER.unpack(data[:14])
    wrong_sum = HUNK_HEADER.pack(version, compressed, checksum ^ 1, size) + data[14:]
    for broken in (wrong_sum, data[:-5], data[:9], b"\x81\x07" + data[2:],
                   HUNK_HEADER.pack(129, 1, 0, 1 << 40) + b"x"):
        with pytest.raises(DataError):
            decode(broken)


def test_ignore_corrupt_skips_bad_hunks() -> None:
    first = encode([("a", 1)])
    second = encode([("b", 2)])
    records = decode(_corrupt(first, 20) + second, ignore_corrupt=True)
    assert records == [("b", 2)]


def test_old_format_round_trip() -> None:
    data = encode([("key", "value"), ("", ""), ("k", 3)], version=0)
    assert data.startswith(b"3 key 5 value\n")
    assert decode(data) == [("key", "value"), ("", ""), ("k", "3")]
    with pytest.raises(DataError):
        decode(data[:-3])


def test_chain_reader_is_a_reader_with_params() -> None:
    data = encode(RECORDS[:5])
    assert list(chain_reader(io.BytesIO(data), len(data), "u", object())) == RECORDS[:5]
    with pytest.raises(DataError):
        list(chain_reader(io.BytesIO(_corrupt(data, 30)), None, "u", object()))


def test_atomic_file_appears_only_when_closed(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out"
    file = AtomicFile(str(path))
    file.write(b"data")
    assert not path.exists()
    file.close()
    assert path.read_bytes() == b"data"
    aborted = AtomicFile(str(tmp_path / "aborted"))
    aborted.write(b"half")
    del aborted  # dropped unclosed, as by a task that failed
    assert list(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_atomic_file_syncs_unless_told_not_to(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    with AtomicFile(str(tmp_path / "result")) as kept:
        kept.write(b"kept")
    with AtomicFile(str(tmp_path / "passing"), sync=False) as passing:
        passing.write(b"read by the next stage")
    assert len(synced) == 1
    assert (tmp_path / "passing").read_bytes() == b"read by the next stage"


def test_a_task_knows_from_its_node_whether_it_makes_the_results() -> None:
    from disco.worker.task import Task
    assert Task.from_reply({"stage": "map", "final": False}).final is False
    assert Task.from_reply({"stage": "reduce", "final": True}).final is True
    assert Task.from_reply({"stage": "map"}).final is True  # Disco's node: sync everything


def test_output_chain_closes_encoder_then_file(tmp_path: Path) -> None:
    from disco.func import disco_output_stream, task_output_stream
    path = tmp_path / "map-0"
    chain = StreamChain(str(path), [task_output_stream, disco_output_stream], None, size=0)
    for key, value in RECORDS:
        chain.add(key, value)
    assert not path.exists()
    chain.close()
    assert decode(path.read_bytes()) == RECORDS


def test_plain_output_and_readers() -> None:
    buffer = io.BytesIO()
    out = PlainOutputStream(buffer)
    out.add("word", 3)
    out.add(b"raw", b"bytes")
    assert buffer.getvalue() == b"word 3\nraw bytes\n"
    gz = gzip.compress(b"one\ntwo\n")
    assert list(gzip_line_reader(io.BytesIO(gz), len(gz), "u", None)) == [b"one\n", b"two\n"]
    with pytest.raises(DataError):
        list(gzip_line_reader(io.BytesIO(gz[:-6]), None, "u", None))
    data = b"<a>1</a><a>2</a>"
    assert list(re_reader(rb"<a>(.*?)</a>", io.BytesIO(data), len(data), "u")) == \
        [(b"1",), (b"2",)]
    text = io.StringIO("k=v;x=y;")
    assert list(re_reader(r"(\w)=(\w);", text, None, "u")) == [("k", "v"), ("x", "y")]


def test_header_struct_is_little_endian() -> None:
    assert struct.pack("<BBIQ", 129, 1, 2, 3) == HUNK_HEADER.pack(129, 1, 2, 3)


def _hunk_sizes(data: bytes) -> list[int]:
    sizes, offset = [], 0
    while offset < len(data):
        size = HUNK_HEADER.unpack(data[offset:offset + 14])[3]
        sizes.append(len(zlib.decompress(data[offset + 14:offset + 14 + size])))
        offset += 14 + size
    return sizes


def test_records_pickled_in_batches_still_make_hunks_of_the_set_size() -> None:
    small = [(f"k{i}", i) for i in range(200_000)]
    buffer = io.BytesIO()
    stream = DiscoOutputStream(buffer, min_hunk_size=100_000)
    stream.extend(small[:1000])  # many at once, as a grouping map writes a key's values
    for key, value in small[1000:]:
        stream.add(key, value)
    stream.close()
    data = buffer.getvalue()
    assert decode(data) == small
    sizes = _hunk_sizes(data)
    assert len(sizes) > 10
    # Each hunk ends soon after it passes the set size (within a batch of small records).
    assert all(100_000 < s < 200_000 for s in sizes[:-1]), sizes


def test_a_record_size_limit_is_checked_record_by_record() -> None:
    buffer = io.BytesIO()
    stream = DiscoOutputStream(buffer, max_record_size=100)
    stream.add("ok", "x")
    with pytest.raises(ValueError, match="exceeds 100"):
        stream.add("big", "x" * 200)
    with pytest.raises(ValueError, match="exceeds 100"):
        stream.extend([("fine", 1), ("big", "y" * 200)])
