"""Black-box compatibility, core tier: classic map/reduce jobs written as Disco users write
them (`from disco.core import Job, result_iterator`, `disco.test.TestCase`), run by the real
client and worker on a real master and two nodes."""

from __future__ import annotations

import random
import sys
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from compat_helpers import JobList, job_results, run_case

from disco.core import Job, Params, result_iterator
from disco.test import TestCase, TestJob
from disco.worker.classic.func import (
    chain_reader, disco_output_stream, make_range_partition, sum_combiner, task_input_stream,
    task_output_stream)
from disco.worker.task_io import DiscoOutputStream


# -- job functions, at module level as in Disco's examples ------------------------------
def fun_map(line: Any, params: Any) -> Iterator[tuple[Any, int]]:
    for word in line.split():
        yield word, 1


def fun_reduce(iter: Any, params: Any) -> Iterator[tuple[Any, int]]:
    from disco.util import kvgroup  # imported inside, as Disco's count_words.py does
    for word, counts in kvgroup(sorted(iter)):
        yield word, sum(counts)


def count_reduce(iter: Any, out: Any, params: Any) -> None:
    """The three-argument reduce form: count the records it was given."""
    out.add("records", sum(1 for _ in iter))


def ident_map(entry: Any, params: Any) -> list[tuple[Any, str]]:
    return [(entry, "")]


# -- simple word count -------------------------------------------------------------------
class WordCountTestCase(TestCase):
    texts = {"a": "the quick brown fox\n", "b": "jumps over the lazy dog\nthe end\n"}

    def serve(self, path: str) -> str:
        return self.texts[path]

    def test_word_count(self) -> None:
        self.job = Job().run(input=self.test_server.urls(["a", "b"]), map=fun_map,
                             reduce=fun_reduce)
        expected = Counter(" ".join(self.texts.values()).split())
        # http inputs are read as bytes lines under Python 3, so the words are bytes.
        self.assertResults(self.job, sorted((w.encode(), n) for w, n in expected.items()))

    def test_replicas_of_one_input_are_read_once(self) -> None:
        self.job = TestJob().run(input=self.test_server.urls([["a", "a"]]), map=fun_map,
                                 reduce=count_reduce)
        self.assertResults(self.job, [("records", 4)])


def test_megabyte_word_count_matches_counter() -> None:
    """About 1 MB of text in 8 inputs, 4 partitions with a combiner: every count right."""
    rng = random.Random(20240501)
    vocabulary = [f"w{n:04d}" for n in range(3000)]
    chunks = []
    for _ in range(8):
        lines = [" ".join(rng.choices(vocabulary, k=12)) for _ in range(2200)]
        chunks.append("\n".join(lines) + "\n")
    assert sum(map(len, chunks)) > 1_000_000
    expected = Counter(" ".join(chunks).split())

    class Megabyte(TestCase):
        def serve(self, path: str) -> str:
            return chunks[int(path)]

        def runTest(self) -> None:
            self.job = Job().run(input=self.test_server.urls(range(8)), map=fun_map,
                                 combiner=sum_combiner, partitions=4, reduce=fun_reduce)
            counts = {word.decode(): n for word, n in self.results(self.job)}
            self.assertEqual(counts, dict(expected))

    run_case(Megabyte())


# -- map only, reduce only ---------------------------------------------------------------
class FlowTestCase(TestCase):
    def serve(self, path: str) -> str:
        return f"{path}\n"

    def test_map_only(self) -> None:
        self.job = Job().run(input=self.test_server.urls(["x", "y", "z"]), map=ident_map)
        self.assertEqual(sorted(k for k, _v in self.results(self.job)), [b"x\n", b"y\n", b"z\n"])

    def test_reduce_only(self) -> None:
        # Without a map, the reduce reads the job's inputs: plain text here, so no
        # chain_reader (Disco's default reduce_reader, for records written by a map).
        self.job = Job().run(input=self.test_server.urls(["x", "y"]), reduce=_lines_reduce,
                             reduce_reader=None)
        self.assertResults(self.job, [("lines", [b"x\n", b"y\n"])])

    def test_map_only_results_feed_a_reduce_only_job(self) -> None:
        first = Job().run(input=self.test_server.urls(["1", "2", "3"]), map=_int_map)
        try:
            self.job = Job().run(input=first.wait(), reduce=_sum_values_reduce)
            self.assertResults(self.job, [("sum", 6)])
        finally:
            first.purge()


def _lines_reduce(iter: Any, params: Any) -> Iterator[tuple[str, list[bytes]]]:
    # Sorted: the inputs may arrive in any order.
    yield "lines", sorted(iter)


def _int_map(line: bytes, params: Any) -> list[tuple[str, int]]:
    return [("n", int(line))]


def _sum_values_reduce(iter: Any, params: Any) -> Iterator[tuple[str, int]]:
    yield "sum", sum(value for _key, value in iter)


# -- empty inputs ------------------------------------------------------------------------
class EmptyInputTestCase(TestCase):
    def serve(self, path: str) -> str:
        return "" if path.startswith("empty") else "word\n"

    def test_no_inputs_at_all(self) -> None:
        for jobargs in ({"map": fun_map}, {"reduce": count_reduce},
                        {"map": fun_map, "reduce": count_reduce, "partitions": 3}):
            self.job = Job().run(input=[], **jobargs)
            self.assertResults(self.job, [])
            self.job.purge()

    def test_all_inputs_empty(self) -> None:
        # Maps that output nothing leave no labels, so no reduce task runs at all (since
        # Disco 0.5 there is one reduce task per label the maps wrote).
        for partitions in (None, 3):
            self.job = Job().run(input=self.test_server.urls([f"empty{i}" for i in range(3)]),
                                 map=fun_map, reduce=count_reduce, partitions=partitions)
            self.assertResults(self.job, [])
            self.assertEqual(self.job.jobinfo()["active"], "ready")
            self.job.purge()

    def test_some_inputs_empty(self) -> None:
        inputs = self.test_server.urls(["empty0", "full0", "empty1", "full1"])
        for partitions in (None, 2):
            self.job = Job().run(input=inputs, map=fun_map, reduce=count_reduce,
                                 partitions=partitions)
            self.assertEqual(sum(n for _k, n in self.results(self.job)), 2)
            self.job.purge()


# -- raw:// inputs -----------------------------------------------------------------------
def test_raw_inputs_are_str_records(jobs: JobList) -> None:
    job = jobs(Job().run(input=["raw://one two", "raw://three"], map=fun_map,
                         reduce=fun_reduce))
    assert job_results(job) == [("one", 1), ("three", 1), ("two", 1)]


def test_inputs_per_task_packs_raw_inputs_into_fewer_map_tasks(jobs: JobList) -> None:
    """scheduler={"inputs_per_task": n}: DISCO's option (Disco has none) for many small
    inputs; the counts are those of one task per input."""
    texts = [f"w{i % 3} w{i % 5}" for i in range(10)]
    job = jobs(Job().run(input=[f"raw://{t}" for t in texts], map=fun_map, reduce=fun_reduce,
                         scheduler={"inputs_per_task": 4}))
    assert job_results(job) == sorted(Counter(" ".join(texts).split()).items())
    assert len(job.mapresults()) == 3  # 4 + 4 + 2 inputs


# -- mapresults / stageresults -----------------------------------------------------------
def test_mapresults_are_the_map_outputs(jobs: JobList) -> None:
    job = jobs(Job().run(input=["raw://a", "raw://b", "raw://c"], map=ident_map,
                         reduce=count_reduce))
    assert job_results(job) == [("records", 3)]
    mapped = job.mapresults()
    assert mapped == job.stageresults("map")
    assert len(mapped) == 3 and all(url.startswith("dir://") for [url] in mapped)
    assert sorted(result_iterator(mapped)) == [("a", ""), ("b", ""), ("c", "")]
    # An earlier stage's results can be the input of another job.
    again = jobs(Job().run(input=mapped, map=lambda kv, params: [(kv[0].upper(), 1)],
                           map_reader=chain_reader))
    assert sorted(k for k, _v in job_results(again)) == ["A", "B", "C"]


# -- params ------------------------------------------------------------------------------
def _params_map(entry: str, params: Any) -> list[tuple[str, Any]]:
    return [(entry, params.transform(entry) * params.times)]


class Threshold:
    """A plain object given as params."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def keep(self, value: int) -> bool:
        return value >= self.limit


def _threshold_map(entry: str, params: Threshold) -> list[tuple[str, int]]:
    return [(entry, int(entry))] if params.keep(int(entry)) else []


def test_params_object_carries_values_and_functions(jobs: JobList) -> None:
    params = Params(times=2, transform=str.upper)
    job = jobs(Job().run(input=["raw://ab", "raw://c"], map=_params_map, params=params))
    assert sorted(job_results(job)) == [("ab", "ABAB"), ("c", "CC")]


def test_plain_objects_as_params(jobs: JobList) -> None:
    job = jobs(Job().run(input=[f"raw://{n}" for n in range(6)], map=_threshold_map,
                         params=Threshold(3)))
    assert sorted(v for _k, v in job_results(job)) == [3, 4, 5]
    job = jobs(Job().run(input=["raw://x"], map=lambda e, params: [(e, params["k"])],
                         params={"k": [1, 2]}))
    assert job_results(job) == [("x", [1, 2])]


# -- functools.partial, lambdas, closures ------------------------------------------------
def _scaled_map(entry: str, params: Any, factor: int = 1) -> list[tuple[str, int]]:
    return [(entry, len(entry) * factor)]


def _offset_reduce(iter: Any, params: Any, offset: int = 0) -> Iterator[tuple[str, int]]:
    for key, value in sorted(iter):
        yield key, value + offset


def _mod_partition(key: str, nr_partitions: int, params: Any, modulus: int = 1) -> int:
    return len(key) % modulus


def test_partial_functions(jobs: JobList) -> None:
    job = jobs(Job().run(input=["raw://a", "raw://bb", "raw://ccc"],
                         map=partial(_scaled_map, factor=10),
                         reduce=partial(_offset_reduce, offset=1),
                         partition=partial(_mod_partition, modulus=2), partitions=2))
    assert sorted(job_results(job)) == [("a", 11), ("bb", 21), ("ccc", 31)]
    assert len(job.wait()) == 2  # the partial partition function made two partitions


def test_lambdas_and_closures(jobs: JobList) -> None:
    suffix = "!"
    seen_words = {"hello"}

    def shout(entry: str, params: Any) -> list[tuple[str, bool]]:
        return [(entry + suffix, entry in seen_words)]  # two closed-over variables

    job = jobs(Job().run(input=["raw://hello", "raw://bye"], map=shout,
                         reduce=lambda iter, params: sorted(iter)))
    assert job_results(job) == [("bye!", False), ("hello!", True)]


def test_functions_defined_in_a_users_main_script(tmp_path: Path) -> None:
    """A script run as `python script.py`: its functions and Job subclass live in __main__."""
    import subprocess
    script = tmp_path / "count_words.py"
    script.write_text(
        "from disco.core import Job, result_iterator\n"
        "\n"
        "def map(line, params):\n"
        "    for word in line.split():\n"
        "        yield word, 1\n"
        "\n"
        "def reduce(iter, params):\n"
        "    from disco.util import kvgroup\n"
        "    for word, counts in kvgroup(sorted(iter)):\n"
        "        yield word, sum(counts)\n"
        "\n"
        "class Capitals(Job):\n"
        "    @staticmethod\n"
        "    def map(line, params):\n"
        "        yield line.upper(), 1\n"
        "\n"
        "if __name__ == '__main__':\n"
        "    job = Job().run(input=['raw://to be or', 'raw://not to be'], map=map,\n"
        "                    reduce=reduce)\n"
        "    for word, count in result_iterator(job.wait()):\n"
        "        print(word, count)\n"
        "    job.purge()\n"
        "    job = Capitals().run(input=['raw://x'])\n"
        "    print(list(result_iterator(job.wait())))\n"
        "    job.purge()\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["be 2", "not 1", "or 1", "to 2", "[('X', 1)]"]


# -- map_init / reduce_init --------------------------------------------------------------
def _map_init(input_iter: Any, params: Any) -> None:
    params.prefix = "mapped-"


def _prefix_map(entry: str, params: Any) -> list[tuple[str, int]]:
    return [(params.prefix + entry, 1)]


def _reduce_init(input_iter: Any, params: Any) -> None:
    params.total = 100


def _total_reduce(iter: Any, params: Any) -> Iterator[tuple[str, int]]:
    for key, value in sorted(iter):
        yield key, params.total + value


def test_init_functions_run_before_map_and_reduce(jobs: JobList) -> None:
    job = jobs(Job().run(input=["raw://a", "raw://b"], map=_prefix_map, map_init=_map_init,
                         reduce=_total_reduce, reduce_init=_reduce_init))
    assert job_results(job) == [("mapped-a", 101), ("mapped-b", 101)]


# -- custom streams ----------------------------------------------------------------------
def upper_stream(fd: Any, size: Any, url: str, params: Any) -> Iterator[str]:
    """An input stream after task_input_stream: upper-cases every record."""
    return (line.upper() for line in fd)


def tagged_stream(fd: Any, size: Any, url: str) -> Iterator[str]:
    """A three-argument stream (no params): tags each record with where it came from."""
    return (f"{line}@{url.rsplit('/', 1)[-1]}" for line in fd)


class Doubling:
    """An output stream object after disco_output_stream: doubles every value it writes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def add(self, key: Any, value: Any) -> None:
        self.inner.add(key, value * 2)


def doubling_stream(fd: Any, partition: Any, url: str, params: Any) -> Doubling:
    return Doubling(fd)


def test_input_and_output_stream_chains(jobs: JobList) -> None:
    job = jobs(Job().run(input=["raw://abc", "raw://de"],
                         map_input_stream=(task_input_stream, upper_stream, tagged_stream),
                         map=lambda entry, params: [(entry, len(entry))],
                         map_output_stream=(task_output_stream, disco_output_stream,
                                            doubling_stream)))
    assert sorted(job_results(job)) == [("ABC@abc", 14), ("DE@de", 10)]


def test_reader_over_a_custom_format() -> None:
    """map_reader turns an input's bytes into records (here: Disco records from a file)."""
    import io
    buffer = io.BytesIO()
    out = DiscoOutputStream(buffer)
    for n in range(5):
        out.add(f"k{n}", n)
    out.close()

    class RecordsServed(TestCase):
        def serve(self, path: str) -> bytes:
            return buffer.getvalue()

        def runTest(self) -> None:
            self.job = Job().run(input=self.test_server.urls(["records"]),
                                 map_reader=chain_reader,
                                 map=lambda kv, params: [(kv[0], kv[1] * kv[1])])
            self.assertResults(self.job, [(f"k{n}", n * n) for n in range(5)])

    run_case(RecordsServed())


# -- sort, combiner, partitions ----------------------------------------------------------
def _in_order_reduce(iter: Any, params: Any) -> Iterator[tuple[str, list[Any]]]:
    yield "order", [key for key, _value in iter]


def test_sort_gives_the_reduce_sorted_keys(jobs: JobList) -> None:
    words = ["pear", "apple", "fig", "kiwi", "banana", "cherry"]
    job = jobs(Job().run(input=[f"raw://{' '.join(words[i::3])}" for i in range(3)],
                         map=fun_map, reduce=_in_order_reduce, sort=True))
    assert job_results(job) == [("order", sorted(words))]


def _pairs_reduce(iter: Any, params: Any) -> Iterator[tuple[str, list[int]]]:
    by_key: dict[str, list[int]] = {}
    for key, value in iter:
        by_key.setdefault(key, []).append(value)
    for key in sorted(by_key):
        yield key, sorted(by_key[key])


def test_sum_combiner_sums_within_each_map(jobs: JobList) -> None:
    job = jobs(Job().run(input=["raw://a a b a", "raw://b b a"], map=fun_map,
                         combiner=sum_combiner, reduce=_pairs_reduce))
    # One (word, partial sum) per map task reaches the reduce, not one per word.
    assert job_results(job) == [("a", [1, 3]), ("b", [1, 2])]


def _where_reduce(iter: Any, params: Any) -> Iterator[tuple[int, int]]:
    for key, _value in iter:
        yield key, this_partition()  # noqa: F821  (a global the worker gives job functions)


def test_range_partition_puts_key_ranges_in_order(jobs: JobList) -> None:
    keys = list(range(0, 100, 3))
    job = jobs(Job().run(input=[f"raw://{' '.join(map(str, keys[i::4]))}" for i in range(4)],
                         map=lambda line, params: [(int(k), None) for k in line.split()],
                         partition=make_range_partition(0, 99), partitions=4,
                         reduce=_where_reduce))
    placed = dict(job_results(job))
    assert sorted(placed) == keys
    expected = make_range_partition(0, 99)
    assert all(placed[k] == expected(k, 4, None) for k in keys)
    assert sorted(set(placed.values())) == [0, 1, 2, 3]
    # Partitions hold contiguous, increasing key ranges.
    assert [placed[k] for k in keys] == sorted(placed[k] for k in keys)
