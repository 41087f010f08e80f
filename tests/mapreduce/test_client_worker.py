"""The worker end to end, with this test playing the node (fake_node.FakeNode): it runs
tasks of real job packs and reads back the outputs."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fake_node import HOST, FakeNode, Session, make_pack

from disco.worker.pipeline.worker import Stage
from disco.worker.pipeline.worker import Worker as PipelineWorker
from disco.worker.protocol import Parser
from disco.worker.task_io import DiscoOutputStream, disco_input_stream


def word_map(line, params):
    for word in line.split():
        yield word, 1


def test_map_task_writes_partitioned_outputs(tmp_path: Path) -> None:
    pack = make_pack(input=["raw://x"], map=word_map, partitions=3,
                     partition=lambda key, n, params: len(key) % n)
    node = FakeNode(tmp_path, pack)
    session = node.run("map", [[0, "ok", 0, [[0, "raw://a bb ccc dddd a"]]],
                               [1, "ok", 0, [[1, "raw://bb"]]]])
    assert session.end == "DONE", session.end_payload
    assert session.exit_code == 0
    by_label = {label: node.records([label, path, size]) for label, path, size in session.outputs}
    assert by_label == {1: [("a", 1), ("dddd", 1), ("a", 1)], 2: [("bb", 1), ("bb", 1)],
                        0: [("ccc", 1)]}
    for _label, path, _size in session.outputs:
        assert not os.path.isabs(path) and (node.home / path).is_file()
    assert "Done: 2 entries mapped" in session.msgs()


def test_map_with_combiner_and_default_partition(tmp_path: Path) -> None:
    from disco.worker.classic.func import default_partition, sum_combiner
    pack = make_pack(input=["raw://x"], map=word_map, combiner=sum_combiner, partitions=2)
    node = FakeNode(tmp_path, pack)
    session = node.run("map", [[0, "ok", 0, [[0, "raw://a b a c a"]]]])
    assert session.end == "DONE", session.end_payload
    records = {label: dict(node.records([label, p, s])) for label, p, s in session.outputs}
    for label, counts in records.items():
        for key in counts:
            assert default_partition(key, 2) == label
    merged = {k: v for counts in records.values() for k, v in counts.items()}
    assert merged == {"a": 3, "b": 1, "c": 1}


def mixed_key_map(line, params):
    for word in line.split():
        for key in (word.encode(), word, word + "\udcff", len(word), (word, 1), None):
            yield key, 1


def counting_combiner(key, value, buffer, done, params):
    if done:
        return buffer.items()
    buffer[key] = buffer.get(key, 0) + value


def test_a_combiner_gets_each_key_in_its_default_partition(tmp_path: Path) -> None:
    """bytes and str keys take a fast path to their buffer (their CRC-32, inline); it must
    agree with default_partition, as every other key type's does."""
    from disco.worker.classic.func import default_partition
    pack = make_pack(input=["raw://x"], map=mixed_key_map, combiner=counting_combiner,
                     partitions=5)
    node = FakeNode(tmp_path, pack)
    text = "alpha beta gamma delta alpha epsilon zeta beta alpha"
    session = node.run("map", [[0, "ok", 0, [[0, f"raw://{text}"]]]])
    assert session.end == "DONE", session.end_payload
    records = {label: node.records([label, p, s]) for label, p, s in session.outputs}
    seen: dict[Any, int] = {}
    for label, pairs in records.items():
        for key, count in pairs:
            assert default_partition(key, 5) == label, key
            seen[key] = seen.get(key, 0) + count
    words = text.split()
    for word in set(words):
        n = words.count(word)
        assert seen[word.encode()] == seen[word] == seen[word + "\udcff"] == seen[(word, 1)] == n
    assert seen[None] == len(words)
    assert len(records) > 1


def _map_then_reduce(tmp_path: Path, **jobargs: Any) -> tuple[FakeNode, Session]:
    pack = make_pack(input=["raw://x"], map=word_map, **jobargs)
    node = FakeNode(tmp_path, pack)
    first = node.run("map", [[0, "ok", 0, [[0, "raw://to be or not to be"]]]], taskid=0)
    second = node.run("map", [[0, "ok", 0, [[0, "raw://be quick"]]]], taskid=1)
    assert first.end == second.end == "DONE"
    index_a = node.write_index("map-0.results", first.outputs)
    index_b = node.write_index("map-1.results", second.outputs)
    session = node.run("reduce", [[0, "ok", 0, [[0, index_a]]], [1, "ok", 0, [[0, index_b]]]],
                       taskid=0, grouping="group_label", group=[0, None])
    return node, session


def test_reduce_task_reads_map_outputs_from_local_disco_urls(tmp_path: Path) -> None:
    def reduce(iter, out, params):
        from disco.util import kvgroup
        for word, counts in kvgroup(sorted(iter)):
            out.add(word, sum(counts))

    node, session = _map_then_reduce(tmp_path, reduce=reduce)
    assert session.end == "DONE", session.end_payload
    [output] = session.outputs
    assert output[0] == 0
    assert node.records(output) == [("be", 3), ("not", 1), ("or", 1), ("quick", 1), ("to", 2)]


def test_reduce_two_argument_form_with_sort(tmp_path: Path) -> None:
    def reduce(iter, params):
        from disco.util import kvgroup  # as Disco users write it: imports inside
        for word, counts in kvgroup(iter):
            yield word, sum(counts)

    node, session = _map_then_reduce(tmp_path, reduce=reduce, sort=True)
    assert session.end == "DONE", session.end_payload
    assert node.records(session.outputs[0]) == [
        ("be", 3), ("not", 1), ("or", 1), ("quick", 1), ("to", 2)]


def test_reduce_of_one_label_reads_only_that_label(tmp_path: Path) -> None:
    def reduce(iter, params):
        return sorted(iter)

    pack = make_pack(input=["raw://x"], map=word_map, reduce=reduce, partitions=2,
                     partition=lambda key, n, params: 0 if key < "m" else 1)
    node = FakeNode(tmp_path, pack)
    mapped = node.run("map", [[0, "ok", 0, [[0, "raw://zoo apple kiwi nut"]]]])
    index = node.write_index("map-0.results", mapped.outputs)
    session = node.run("reduce", [[0, "ok", 1, [[0, index]]]], taskid=1,
                       grouping="group_label", group=[1, None])
    assert session.end == "DONE", session.end_payload
    [output] = session.outputs
    assert output[0] == 1
    assert node.records(output) == [("nut", 1), ("zoo", 1)]


def test_failed_replica_falls_back_through_input_err(tmp_path: Path) -> None:
    stored = tmp_path / "data" / "stored"
    stored.parent.mkdir(parents=True, exist_ok=True)
    with open(stored, "wb") as file:
        out = DiscoOutputStream(file)
        for i in range(5):
            out.add(i, i * i)
        out.close()
    missing = f"disco://{HOST}/disco/missing"
    good = f"disco://{HOST}/disco/stored"
    pack = make_pack(input=["raw://x"], map=lambda kv, params: [kv],
                     map_reader=lambda fd, size, url, params: disco_input_stream(fd, size, url))
    node = FakeNode(tmp_path, pack)
    session = node.run("map", [[7, "ok", 0, [[0, missing]]]], retry={7: [[1, good]]})
    assert session.end == "DONE", session.end_payload
    assert ("INPUT_ERR", [7, [0]]) in session.messages
    assert node.records(session.outputs[0]) == [(i, i * i) for i in range(5)]


def test_unreadable_input_ends_with_error(tmp_path: Path) -> None:
    pack = make_pack(input=["raw://x"], map=word_map)
    node = FakeNode(tmp_path, pack)
    session = node.run("map", [[3, "ok", 0, [[0, f"disco://{HOST}/disco/nothing-here"]]]])
    assert session.end == "ERROR"
    assert "Failed to read input 3" in session.end_payload
    assert session.exit_code != 0


def test_exception_in_map_is_fatal_with_traceback(tmp_path: Path) -> None:
    def bad_map(entry, params):
        raise ValueError("this map is broken")

    node = FakeNode(tmp_path, make_pack(input=["raw://x"], map=bad_map))
    session = node.run("map", [[0, "ok", 0, [[0, "raw://a"]]]])
    assert session.end == "FATAL"
    assert "Traceback" in session.end_payload
    assert "ValueError: this map is broken" in session.end_payload
    assert "bad_map" in session.end_payload
    assert session.outputs == []


def test_data_error_in_map_is_a_retryable_error(tmp_path: Path) -> None:
    def flaky_map(entry, params):
        from disco.error import DataError
        raise DataError("temporarily unavailable", "raw://a")

    node = FakeNode(tmp_path, make_pack(input=["raw://x"], map=flaky_map))
    session = node.run("map", [[0, "ok", 0, [[0, "raw://a"]]]])
    assert session.end == "ERROR"
    assert "DataError" in session.end_payload and "temporarily unavailable" in session.end_payload


def test_prints_and_stray_output_become_messages(tmp_path: Path) -> None:
    def chatty_map(entry, params):
        import os
        import sys
        print("hello from map", Task.taskid, this_partition())  # noqa: F821 (node globals)
        sys.stderr.write("to stderr\n")
        os.write(1, b"raw bytes on fd 1\n")
        os.system("echo from a child process")
        print(b"\xc4\xe4 bytes")
        print("\u00c4\u00e4rett\u00f6myys")
        return [(entry, this_host())]  # noqa: F821

    node = FakeNode(tmp_path, make_pack(input=["raw://x"], map=chatty_map, status_interval=0))
    session = node.run("map", [[0, "ok", 0, [[0, "raw://line"]]]], taskid=4)
    assert session.end == "DONE", session.end_payload
    text = "\n".join(session.msgs())
    for expected in ("hello from map 4 4", "to stderr", "raw bytes on fd 1",
                     "from a child process", "\u00c4\u00e4rett\u00f6myys"):
        assert expected in text
    assert node.records(session.outputs[0]) == [("line", HOST)]
    # Everything the worker wrote was protocol: the parser consumed it all.
    parser = Parser()
    assert len(parser.feed(session.raw)) == len(session.messages) and not parser.pending()


def test_each_print_is_a_message_sent_at_once(tmp_path: Path) -> None:
    """Disco's way, the default: one MSG per print, not held back by the worker (the
    node's throttle judges the rate; this fake node answers at once)."""
    def loud_map(entry, params):
        for i in range(40):
            print("line", i)
        return []

    node = FakeNode(tmp_path, make_pack(input=["raw://x"], map=loud_map, status_interval=0))
    started = time.monotonic()
    session = node.run("map", [[0, "ok", 0, [[0, "raw://a"]]]])
    assert session.end == "DONE", session.end_payload
    assert time.monotonic() - started < 5  # 40 in under a second if paced at 4 a second
    lines = [m for m in session.msgs() if m.startswith("line")]
    assert lines == [f"line {i}" for i in range(40)]


def test_many_prints_do_not_flood_the_node_with_batch_messages(tmp_path: Path) -> None:
    def loud_map(entry, params):
        for i in range(2000):
            print("line", i)
        return []

    node = FakeNode(tmp_path, make_pack(input=["raw://x"], map=loud_map, batch_messages=True))
    started = time.monotonic()
    session = node.run("map", [[0, "ok", 0, [[0, "raw://a"]]]])
    assert session.end == "DONE"
    assert time.monotonic() - started < 30
    text = "\n".join(session.msgs())
    assert "line 0" in text and "line 1999" in text
    assert len(session.msgs()) < 100


def test_pipeline_stage_task(tmp_path: Path) -> None:
    def split_words(interface, state, label, inp):
        for line in inp:
            for word in line.split():
                interface.output(len(word)).add(word, 1)

    def count_init(interface, params):
        return {}

    def count(interface, state, label, inp):
        for word, n in inp:
            state[word] = state.get(word, 0) + n

    def count_done(interface, state):
        for word in sorted(state):
            interface.output(0).add(word, state[word])

    pipeline = [("split", Stage("words", process=split_words)),
                ("group_label", Stage("count", init=count_init, process=count, done=count_done))]
    pack = make_pack(worker=PipelineWorker(), input=["raw://x"], pipeline=pipeline)
    assert pack.version == 2
    node = FakeNode(tmp_path, pack)
    first = node.run("words", [[0, "ok", 0, [[0, "raw://aa b aa cc"]]]], grouping="split")
    assert first.end == "DONE", first.end_payload
    assert sorted(o[0] for o in first.outputs) == [1, 2]
    index = node.write_index("words-0.results", first.outputs)
    second = node.run("count", [[0, "ok", 2, [[0, index]]]], grouping="group_label",
                      group=[2, None])
    assert second.end == "DONE", second.end_payload
    assert node.records(second.outputs[0]) == [("aa", 2), ("cc", 1)]


def test_map_shuffle_concatenates_per_label(tmp_path: Path) -> None:
    pack = make_pack(input=["raw://x"], map=word_map, reduce=lambda i, p: i, partitions=2,
                     partition=lambda key, n, params: len(key) % 2)
    node = FakeNode(tmp_path, pack)
    maps = [node.run("map", [[0, "ok", 0, [[0, f"raw://{text}"]]]], taskid=i)
            for i, text in enumerate(["a bb", "cc d"])]
    indexes = [node.write_index(f"map-{i}.results", m.outputs) for i, m in enumerate(maps)]
    session = node.run("map_shuffle", [[i, "ok", "all", [[0, url]]] for i, url in
                                       enumerate(indexes)], grouping="group_node",
                       group=[0, HOST])
    assert session.end == "DONE", session.end_payload
    shuffled = {label: sorted(node.records([label, p, s])) for label, p, s in session.outputs}
    assert shuffled == {0: [("bb", 1), ("cc", 1)], 1: [("a", 1), ("d", 1)]}


@pytest.mark.parametrize("stage", ["reduce"])
def test_version_mismatch_is_fatal(tmp_path: Path, stage: str) -> None:
    pack = make_pack(input=["raw://x"], reduce=lambda i, p: i)
    pack.jobdata = pack.jobdata.replace(b"DISCO-PY 3.", b"DISCO-PY 2.", 1)
    node = FakeNode(tmp_path, pack)
    session = node.run(stage, [[0, "ok", 0, [[0, "raw://a"]]]], grouping="group_all")
    assert session.end == "FATAL"
    assert "Python version mismatch" in session.end_payload


EXTERNAL_PROGRAM = r'''#!{python}
import struct, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer

def read_int():
    data = inp.read(4)
    return struct.unpack("<I", data)[0] if len(data) == 4 else None

body = inp.read(int(inp.readline()))
params, at = {{}}, 0
while at < len(body):
    fields = []
    for _ in range(2):
        space = body.index(b" ", at)
        size = int(body[at:space])
        fields.append(body[space + 1:space + 1 + size])
        at = space + 2 + size
    params[fields[0]] = fields[1]
sys.stderr.write("**<MSG> external {{}} started\n".format(sys.argv[1]))
sys.stderr.flush()
while True:
    size = read_int()
    if size is None:
        break
    key = inp.read(size)
    value = inp.read(read_int())
    if value == b"die":
        sys.stderr.write("**<ERR> cannot handle die\n")
        sys.stderr.flush()
        sys.exit(1)
    pair = [value.upper(), params[b"suffix"]]
    out.write(struct.pack("<I", 1))
    for item in pair:
        out.write(struct.pack("<I", len(item)) + item)
    out.flush()
'''


def _external_map(tmp_path: Path) -> dict:
    from disco.util import external
    program = tmp_path / "ext_map"
    program.write_text(EXTERNAL_PROGRAM.format(python=sys.executable))
    return external([str(program)])


def test_external_map_program(tmp_path: Path) -> None:
    pack = make_pack(input=["raw://x"], map=_external_map(tmp_path),
                     ext_params={"suffix": "!"})
    node = FakeNode(tmp_path / "node", pack)
    session = node.run("map", [[0, "ok", 0, [[0, "raw://hello"]]]])
    assert session.end == "DONE", session.end_payload
    assert "external map started" in session.msgs()
    assert node.records(session.outputs[0]) == [("HELLO", "!")]


def test_external_program_error_fails_the_job(tmp_path: Path) -> None:
    pack = make_pack(input=["raw://x"], map=_external_map(tmp_path),
                     ext_params={"suffix": "!"})
    node = FakeNode(tmp_path / "node", pack)
    session = node.run("map", [[0, "ok", 0, [[0, "raw://die"]]]])
    assert session.end == "FATAL"
    assert "cannot handle die" in session.end_payload
