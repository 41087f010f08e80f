"""Black-box compatibility, pipeline tier: jobs run by the pipeline worker (`TestPipe`,
`Stage`), through every grouping, with combine and sort, and a concurrent stage."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from compat_helpers import JobList, event_text, job_results

from disco.core import Job
from disco.test import TestCase, TestPipe
from disco.worker.classic.func import chain_reader, task_input_stream
from disco.worker.pipeline.worker import Stage

LABELS = 3


# -- stage functions: process(interface, state, label, inp), init(interface, params),
# -- done(interface, state) ------------------------------------------------------------
def split_words(interface: Any, state: Any, label: Any, inp: Any) -> None:
    """Each word goes to a label of its own choosing: its length modulo LABELS."""
    for line in inp:
        text = line.decode() if isinstance(line, bytes) else line
        for word in text.split():
            interface.output(len(word) % LABELS).add(word, 1)


def counts_init(interface: Any, params: Any) -> dict[str, Any]:
    return {"counts": {}, "order": []}


def count_sorted(interface: Any, state: dict[str, Any], label: Any, inp: Any) -> None:
    """With combine=True and sort=True, one call per label with every record, sorted."""
    from disco.util import kvgroup
    for word, ones in kvgroup(inp):  # no sorting here: the stage sorted for us
        state["order"].append(word)
        state["counts"][word] = state["counts"].get(word, 0) + sum(ones)


def counts_done(interface: Any, state: dict[str, Any]) -> None:
    out = interface.output(0)
    for word in state["order"]:
        out.add(word, state["counts"][word])
    out.add("__order__", state["order"])


class WordCountPipe(TestPipe):
    pipeline = [("split", Stage("map", process=split_words)),
                ("group_label", Stage("reduce", init=counts_init, process=count_sorted,
                                      done=counts_done, combine=True, sort=True))]


class PipelineWordCountTestCase(TestCase):
    texts = {"a": "one two three four\nfive six\n", "b": "seven eight nine ten one\n",
             "c": "two three five seven eleven\n"}

    def serve(self, path: str) -> str:
        return self.texts[path]

    def test_word_count_by_label(self) -> None:
        self.job = WordCountPipe().run(input=self.test_server.urls(sorted(self.texts)))
        results = list(self.results(self.job))
        orders = [value for key, value in results if key == "__order__"]
        counts = {key: value for key, value in results if key != "__order__"}
        self.assertEqual(counts, dict(Counter(" ".join(self.texts.values()).split())))
        # One reduce task per label, each seeing its words once and in sorted order.
        self.assertEqual(len(orders), LABELS)
        for order in orders:
            self.assertEqual(order, sorted(set(order)))
        stages = {row[0]: row for row in self.job.jobinfo()["pipeline"]}
        self.assertEqual(list(stages), ["map", "reduce"])
        self.assertEqual(stages["map"][4], 3)       # done: one task per input
        self.assertEqual(stages["reduce"][4], LABELS)  # done: one task per label


def test_raw_inputs_through_a_single_stage(jobs: JobList) -> None:
    def echo(interface: Any, state: Any, label: Any, inp: Any) -> None:
        out = interface.output(0)
        for record in inp:
            out.add(record, "")

    class RawPipe(TestPipe):
        pipeline = [("split", Stage("map", process=echo))]

    names = ["eeny", "meeny", "miny", "moe"]
    job = jobs(RawPipe().run(input=[f"raw://{name}" for name in names]))
    assert sorted(job_results(job)) == [(name, "") for name in names]  # raw:// gives str


# -- the groupings -----------------------------------------------------------------------
def tag_each(interface: Any, state: Any, label: Any, inp: Any) -> None:
    """Each raw input n goes to label n % 2."""
    for record in inp:
        interface.output(int(record) % 2).add(int(record), this_host())  # noqa: F821


def census(interface: Any, state: Any, label: Any, inp: Any) -> None:
    """Without combine: called once per input, each time with that input's label."""
    state.append((label, [key for key, _host in inp]))


def census_init(interface: Any, params: Any) -> list[Any]:
    return []


def census_done(interface: Any, state: list[Any]) -> None:
    numbers = sorted(n for _label, keys in state for n in keys)
    labels = sorted({label for label, _keys in state})
    interface.output(0).add(this_host(), (labels, numbers))  # noqa: F821


def grouped_by(grouping: str) -> list[Any]:
    return [("split", Stage("tag", process=tag_each)),
            (grouping, Stage("census", init=census_init, process=census, done=census_done))]


NUMBERS = list(range(12))


def _run_grouping(jobs: JobList, grouping: str) -> tuple[list[Any], Any]:
    job = jobs(TestPipe().run(input=[f"raw://{n}" for n in NUMBERS],
                              pipeline=grouped_by(grouping)))
    tasks = job_results(job)
    every = sorted(n for _host, (_labels, numbers) in tasks for n in numbers)
    assert every == NUMBERS, event_text(job)  # each record reaches exactly one task
    return tasks, job


def _tag_outputs(job: Any) -> set[tuple[str, int]]:
    """(host, label) of every output of the "tag" stage, from its results indexes."""
    from disco.util import read_index
    return {(url.split("/")[2], label) for [url] in job.stageresults("tag")
            for label, _data, _size in read_index(url)}


def _tag_hosts(job: Any) -> set[str]:
    return {host for host, _label in _tag_outputs(job)}


def test_group_label_makes_one_task_per_label(jobs: JobList) -> None:
    tasks, _job = _run_grouping(jobs, "group_label")
    assert sorted(labels for _host, (labels, _n) in tasks) == [[0], [1]]


def test_group_node_makes_one_task_per_node(jobs: JobList) -> None:
    tasks, job = _run_grouping(jobs, "group_node")
    # Each task ran on the node whose outputs it read, and saw both labels there.
    assert sorted(host for host, _result in tasks) == sorted(_tag_hosts(job))
    for host, (labels, numbers) in tasks:
        assert labels == sorted({n % 2 for n in numbers})


def test_group_node_label_makes_one_task_per_node_and_label(jobs: JobList) -> None:
    tasks, job = _run_grouping(jobs, "group_node_label")
    pairs = [(host, labels) for host, (labels, _n) in tasks]
    assert all(len(labels) == 1 for _host, labels in pairs)
    assert sorted((host, label) for host, [label] in pairs) == sorted(_tag_outputs(job))


def test_group_all_makes_one_task(jobs: JobList) -> None:
    tasks, _job = _run_grouping(jobs, "group_all")
    assert len(tasks) == 1 and tasks[0][1][0] == [0, 1]


def test_split_after_split_keeps_one_task_per_output(jobs: JobList) -> None:
    tasks, job = _run_grouping(jobs, "split")
    assert len(tasks) == len(NUMBERS)  # each tag task wrote one output
    assert job.jobinfo()["pipeline"][1][4] == len(NUMBERS)


# -- many stages, and what records may hold ------------------------------------------------
def bump(interface: Any, state: Any, label: Any, inp: Any) -> None:
    """Every stage after the first adds one to each value and moves it to the next label."""
    for key, value in inp:
        interface.output((label + 1) % 3).add(key, value + 1)


def seed(interface: Any, state: Any, label: Any, inp: Any) -> None:
    for record in inp:
        interface.output(int(record) % 3).add(int(record), 0)


def test_a_long_pipeline_of_alternating_groupings(jobs: JobList) -> None:
    groupings = ["group_node_label", "group_label", "group_node_label", "group_label",
                 "group_node"]
    pipeline = [("split", Stage("seed", process=seed))] + [
        (grouping, Stage(f"bump{n}", process=bump)) for n, grouping in enumerate(groupings)]
    job = jobs(TestPipe().run(input=[f"raw://{n}" for n in range(9)], pipeline=pipeline))
    assert sorted(job_results(job)) == [(n, len(groupings)) for n in range(9)]
    assert [row[0] for row in job.jobinfo()["pipeline"]] == \
        ["seed"] + [f"bump{n}" for n in range(len(groupings))]


ODD_RECORDS = [
    (b"\x00\xffbinary", "caf\u00e9 \u2603"),
    ("", None),
    (3, 2.5),
    ((1, ("nested", b"x")), {"a": [1, 2], "b": {3}}),
    (None, True),
    ("x" * 100_000, list(range(1000))),  # large records cross hunk boundaries fine
]


def replay(interface: Any, state: Any, label: Any, inp: Any) -> None:
    for _line in inp:
        for key, value in odd_records():
            interface.output(0).add(key, value)


def odd_records() -> list[Any]:
    return ODD_RECORDS


def passthrough(interface: Any, state: Any, label: Any, inp: Any) -> None:
    for key, value in inp:
        interface.output(0).add(key, value)


def test_records_keep_their_types_through_stages(jobs: JobList) -> None:
    pipeline = [("split", Stage("make", process=replay)),
                ("group_all", Stage("copy", process=passthrough))]
    job = jobs(TestPipe().run(input=["raw://go"], pipeline=pipeline))
    assert job_results(job) == ODD_RECORDS
    classic = jobs(Job().run(input=["raw://go"], map=lambda e, params: odd_records(),
                             reduce=lambda iter, params: list(iter)))
    assert job_results(classic) == ODD_RECORDS


# -- combine and sort in Stage; input_hook --------------------------------------------------
def emit_pairs(interface: Any, state: Any, label: Any, inp: Any) -> None:
    for record in inp:
        key, value = record.split(":")
        interface.output(0).add(key, int(value))


def collect(interface: Any, state: list[Any], label: Any, inp: Any) -> None:
    state.append(list(inp))


def collect_init(interface: Any, params: Any) -> list[Any]:
    return []


def emit_calls(interface: Any, state: list[Any]) -> None:
    interface.output(0).add("calls", state)


def test_combine_merges_inputs_and_sort_orders_them(jobs: JobList) -> None:
    inputs = ["raw://b:2", "raw://a:1", "raw://c:3", "raw://a:4"]

    def pipeline(combine: bool, sort: bool) -> list[Any]:
        return [("split", Stage("pairs", process=emit_pairs)),
                ("group_all", Stage("collect", init=collect_init, process=collect,
                                    done=emit_calls, combine=combine, sort=sort))]

    separate = jobs(TestPipe().run(input=inputs, pipeline=pipeline(False, False)))
    [(_key, calls)] = job_results(separate)
    assert sorted(calls) == [[("a", 1)], [("a", 4)], [("b", 2)], [("c", 3)]]

    combined = jobs(TestPipe().run(input=inputs, pipeline=pipeline(True, False)))
    [(_key, calls)] = job_results(combined)
    assert len(calls) == 1 and sorted(calls[0]) == [("a", 1), ("a", 4), ("b", 2), ("c", 3)]

    ordered = jobs(TestPipe().run(input=inputs, pipeline=pipeline(True, True)))
    [(_key, calls)] = job_results(ordered)
    assert [key for key, _value in calls[0]] == ["a", "a", "b", "c"]


def reverse_labels(state: Any, labels: Any) -> list[Any]:
    return sorted(labels, reverse=True)


def label_order(interface: Any, state: list[Any], label: Any, inp: Any) -> None:
    state.append(label)


def test_input_hook_orders_the_labels(jobs: JobList) -> None:
    pipeline = [("split", Stage("tag", process=tag_each)),
                ("group_all", Stage("order", init=collect_init, process=label_order,
                                    done=emit_calls, input_hook=reverse_labels,
                                    combine=True))]
    job = jobs(TestPipe().run(input=[f"raw://{n}" for n in range(4)], pipeline=pipeline))
    assert job_results(job) == [("calls", [1, 0])]


# -- a pipeline over partitioned results of a classic job ---------------------------------
def _label_map(line: Any, params: Any) -> Iterator[tuple[int, int]]:
    yield int(line), int(line)


def count_records(interface: Any, state: Any, label: Any, inp: Any) -> None:
    interface.output(0).add(label, sorted(key for key, _value in inp))


def test_first_stage_reads_each_label_of_an_index_once(jobs: JobList) -> None:
    classic = jobs(Job().run(input=[f"raw://{n}" for n in range(6)], map=_label_map,
                             partitions=2, partition=lambda key, n, params: key % n))
    pipeline = [("split", Stage("per_label", process=count_records,
                                input_chain=[task_input_stream, chain_reader]))]
    job = jobs(TestPipe().run(input=classic.wait(), pipeline=pipeline))
    seen = sorted(job_results(job))
    numbers = sorted(n for _label, keys in seen for n in keys)
    assert numbers == list(range(6))  # nothing read twice
    assert {label for label, _keys in seen} == {0, 1}
    assert all(n % 2 == label for label, keys in seen for n in keys)


# -- a concurrent stage -------------------------------------------------------------------
def slow_tag(interface: Any, state: Any, label: Any, inp: Any) -> None:
    for record in inp:
        time.sleep(0.6 * int(record))  # the tasks finish one after the other
        interface.output(0).add(int(record), time.time())


def gather_init(interface: Any, params: Any) -> dict[str, Any]:
    return {"started": time.time(), "finished": {}}


def gather(interface: Any, state: dict[str, Any], label: Any, inp: Any) -> None:
    for key, finished in inp:
        state["finished"][key] = finished


def gather_done(interface: Any, state: dict[str, Any]) -> None:
    interface.output(0).add(state["started"], state["finished"])


def test_concurrent_stage_starts_before_the_previous_one_ends(jobs: JobList) -> None:
    pipeline = [("split", Stage("tag", process=slow_tag)),
                ("group_all", Stage("gather", init=gather_init, process=gather,
                                    done=gather_done), True)]
    job = jobs(TestPipe().run(input=[f"raw://{n}" for n in range(4)], pipeline=pipeline))
    [(started, finished)] = job_results(job)
    assert sorted(finished) == [0, 1, 2, 3]  # its one task still read every output
    # Its task was running (init is called first) before the last tag task was done.
    assert started < max(finished.values()), (started, finished)
