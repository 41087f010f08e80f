"""Our record format for map outputs a reduce reads (record_runs, hunk version 2), readers
that hand records on in lists, and which format a map task writes."""

from __future__ import annotations

import io
import pickle
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from fake_node import FakeNode, make_pack

from disco.error import DataError
from disco.worker.classic.worker import Worker
from disco.worker.hunks import HUNK_HEADER, pack_hunk
from disco.worker.inputs import ReplicaReader, TaskInput
from disco.worker.record_runs import RunsOutputStream
from disco.worker.task_io import (READ_BATCH, DiscoOutputStream, disco_input_stream,
                                  iter_batches, iter_records)


def decode(data: bytes) -> list[Any]:
    return list(disco_input_stream(io.BytesIO(data), len(data), "test://"))


def write_runs(write: Any, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    stream = RunsOutputStream(buffer, **kwargs)
    write(stream)
    stream.close()
    return buffer.getvalue()


def test_every_way_of_writing_reads_back_in_order() -> None:
    def write(stream: RunsOutputStream) -> None:
        stream.add("a", 1)
        stream.append(("b", None))
        stream.extend([(b"c", 2.5), (("t", 1), [1, 2])])
        stream.extend((k, k * 2) for k in range(3))  # any iterable
        stream.extend_run("d", [1, 1, 1])
        stream.extend_run("empty", [])
        stream.extend_run("e", iter(["x", "y"]))
    expected = [("a", 1), ("b", None), (b"c", 2.5), (("t", 1), [1, 2]), (0, 0), (1, 2), (2, 4),
                ("d", 1), ("d", 1), ("d", 1), ("e", "x"), ("e", "y")]
    for level in (0, 2):
        data = write_runs(write, compression_level=level)
        assert data[0] == 130 and data[1] == (1 if level else 0)
        assert decode(data) == expected


def test_hunks_of_the_set_size_concatenate_with_version_1() -> None:
    runs = write_runs(lambda s: [s.extend_run(f"k{i}", range(i % 7 + 1)) for i in range(20000)],
                      min_hunk_size=4096)
    expected = [(f"k{i}", v) for i in range(20000) for v in range(i % 7 + 1)]
    offset, hunks = 0, 0
    while offset < len(runs):
        version, _compressed, _crc, size = HUNK_HEADER.unpack(runs[offset:offset + 14])
        assert version == 130
        offset += 14 + size
        hunks += 1
    assert hunks > 5
    old = io.BytesIO()
    stream = DiscoOutputStream(old)
    stream.add("old", "record")
    stream.close()
    # A shuffle concatenates the outputs of many tasks, whatever their version.
    assert decode(runs + old.getvalue() + runs) == expected + [("old", "record")] + expected


def test_a_key_is_stored_once_per_run() -> None:
    keys = sorted(f"word{i}" for i in range(50))
    records = [(key, 1) for key in keys for _ in range(200)]
    v1 = io.BytesIO()
    stream = DiscoOutputStream(v1, compression_level=0)
    for key, value in records:
        stream.add(key, value)
    stream.close()
    runs = write_runs(lambda s: [s.extend_run(key, [1] * 200) for key in keys], compression_level=0)
    assert decode(runs) == records
    assert len(runs) * 5 < len(v1.getvalue())


@pytest.mark.parametrize("payload", [
    ("not", "three", "lists"),
    (["k"], [2], [1]),  # counts say 2 values, there is 1
    (["k", "j"], [3, -1], [1, 1]),  # adds up, but a count is negative
    (["k"], [1]),
    ["a", "list"],
])
def test_a_hunk_that_passes_its_checksum_but_does_not_decode(payload: Any) -> None:
    data = pack_hunk(2, pickle.dumps(payload), 2)
    with pytest.raises(DataError, match="Undecodable records"):
        decode(data)


def test_readers_hand_on_lists() -> None:
    runs = write_runs(lambda s: s.extend([(i, i) for i in range(5000)]))
    batches = list(disco_input_stream(io.BytesIO(runs)).record_batches())
    assert all(isinstance(batch, list) for batch in batches)
    assert [r for batch in batches for r in batch] == [(i, i) for i in range(5000)]
    # A stream that is not batched is cut into lists of READ_BATCH records.
    text = "".join(f"line {i}\n" for i in range(2500))
    plain = list(iter_batches("raw://x", [lambda fd, size, url: io.StringIO(text)], None))
    assert [len(batch) for batch in plain] == [READ_BATCH, READ_BATCH, 2500 - 2 * READ_BATCH]
    assert list(iter_records("raw://x", [lambda fd, size, url: io.StringIO(text)], None)) == \
        text.splitlines(keepends=True)


def test_a_replica_failing_mid_way_loses_and_repeats_nothing() -> None:
    records = [(i, str(i)) for i in range(2500)]

    def open_batches(url: str) -> Any:
        it = iter(records)
        while batch := list(islice(it, 1000 if url == "first" else 300)):
            yield batch
            if url == "first":
                raise DataError("replica went away", url)
    task_input = TaskInput(0, "ok", 0, [(0, "first"), (1, "second")])
    reader = ReplicaReader(Worker(), task_input, open_batches)
    assert list(reader) == records


def test_a_map_writes_runs_for_its_reduce_and_version_1_results(tmp_path: Path) -> None:
    def word_map(line: Any, params: Any) -> Any:
        for word in line.split():
            yield word, 1

    def first_bytes(pack: Any, where: Path) -> set[int]:
        node = FakeNode(where, pack)
        session = node.run("map", [[0, "ok", 0, [[0, "raw://b a b c a b"]]]])
        assert session.end == "DONE", session.end_payload
        return {(node.home / path).read_bytes()[0] for _label, path, _size in session.outputs}

    with_reduce = make_pack(input=["raw://x"], map=word_map, partitions=2,
                            reduce=lambda iter, params: iter)
    assert first_bytes(with_reduce, tmp_path / "a") == {130}
    map_only = make_pack(input=["raw://x"], map=word_map, partitions=2)
    assert first_bytes(map_only, tmp_path / "b") == {129}


def test_grouping_big_values_writes_a_run_before_memory_runs_out(tmp_path: Path) -> None:
    # 4,000 values of 100 kB: more than the 256 MB a map may grow by while grouping, so
    # the records are written as two sorted runs, none lost.
    def big_map(n: Any, params: Any) -> Any:
        yield ("a" if int(n) % 2 else "b"), bytes(100_000) + str(n).encode()

    pack = make_pack(input=["raw://x"], map=big_map, reduce=lambda iter, params: iter,
                     map_reader=lambda fd, size, url, params: range(4000))
    node = FakeNode(tmp_path, pack)
    session = node.run("map", [[0, "ok", 0, [[0, "raw://-"]]]])
    assert session.end == "DONE", session.end_payload
    [output] = session.outputs
    keys = [key for key, _value in node.records(output)]
    assert len(keys) == 4000 and keys.count("a") == keys.count("b") == 2000
    runs = 1 + sum(1 for before, after in zip(keys, keys[1:]) if after < before)
    assert runs == 2
