"""Black-box compatibility, core tier: jobs that feed jobs (JobChain, and by hand with
chain_reader), jobs run asynchronously, and waiting on many jobs at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from compat_helpers import JobList, job_results

from disco.core import Disco, Job, result_iterator
from disco.error import JobError
from disco.job import JobChain
from disco.test import TestCase
from disco.worker.classic.func import chain_reader


# -- Job subclasses: a JobChain runs each job with only `input=`, so the functions (and
# -- anything else) are class attributes, as in Disco's chained examples.
class Squares(Job):
    @staticmethod
    def map(line: Any, params: Any) -> Iterator[tuple[int, int]]:
        number = int(line)
        yield number, number * number


class AddOne(Job):
    map_reader = staticmethod(chain_reader)

    @staticmethod
    def map(record: tuple[int, int], params: Any) -> Iterator[tuple[int, int]]:
        key, value = record
        yield key, value + 1


class Total(Job):
    @staticmethod
    def reduce(iter: Any, params: Any) -> Iterator[tuple[str, int]]:
        yield "total", sum(value for _key, value in iter)


class Halves(Job):
    partitions = 2

    @staticmethod
    def map(line: Any, params: Any) -> Iterator[tuple[int, int]]:
        yield int(line), int(line)


class MergedTotal(Total):
    merge_partitions = True  # one reduce over every partition of its input


class Failing(Job):
    @staticmethod
    def map(line: Any, params: Any) -> Iterator[tuple[str, int]]:
        raise ValueError("this job cannot work")


def test_job_chain_runs_jobs_as_their_inputs_become_ready(jobs: JobList) -> None:
    numbers = [f"raw://{n}" for n in range(1, 6)]
    first, second, third, total = Squares(), Squares(), AddOne(), Total()
    chain = JobChain({first: numbers, second: numbers[:2], third: [first, second],
                      total: [third]})
    jobs.extend(chain)  # purged afterwards
    chain.wait(poll_interval=0.2)
    assert all(job.results()[0] == "ready" for job in chain)
    squares = [n * n for n in range(1, 6)] + [1, 4]
    assert sorted(job_results(third)) == sorted(zip([1, 2, 3, 4, 5, 1, 2],
                                                    [s + 1 for s in squares]))
    assert job_results(total) == [("total", sum(squares) + len(squares))]


def test_reduce_only_jobs_over_partitioned_results(jobs: JobList) -> None:
    halves, per_partition, merged = Halves(), Total(), MergedTotal()
    chain = JobChain({halves: [f"raw://{n}" for n in range(10)], per_partition: [halves],
                      merged: [halves]})
    jobs.extend(chain)
    chain.wait(poll_interval=0.2)
    assert len(halves.wait()) == 2  # two partitions: two result indexes
    # One reduce per partition label, unless the partitions are merged.
    totals = job_results(per_partition)
    assert len(totals) == 2 and sum(total for _key, total in totals) == sum(range(10))
    assert job_results(merged) == [("total", sum(range(10)))]


def test_job_chain_reports_a_dead_job(jobs: JobList) -> None:
    failing, after = Failing(), Total()
    chain = JobChain({failing: ["raw://1"], after: [failing]})
    jobs.extend(chain)
    try:
        chain.wait(poll_interval=0.2)
    except JobError as exc:
        assert exc.name == failing.name
        assert failing.results()[0] == "dead"
    else:
        raise AssertionError("JobChain.wait did not notice the dead job")
    assert "@" not in after.name  # never submitted: its input never became ready


# -- chaining by hand -------------------------------------------------------------------
def _words_map(line: Any, params: Any) -> Iterator[tuple[Any, int]]:
    for word in line.split():
        yield word, 1


def _count_reduce(iter: Any, params: Any) -> Iterator[tuple[Any, int]]:
    from disco.util import kvgroup
    for word, counts in kvgroup(sorted(iter)):
        yield word, sum(counts)


def _swap_map(record: tuple[Any, int], params: Any) -> Iterator[tuple[int, Any]]:
    word, count = record
    yield count, word


class HandChainTestCase(TestCase):
    text = "b a c a b a\n"

    def serve(self, path: str) -> str:
        return self.text

    def test_results_of_one_job_are_the_input_of_the_next(self) -> None:
        first = Job().run(input=self.test_server.urls(["text"]), map=_words_map,
                          reduce=_count_reduce)
        try:
            self.job = Job().run(input=first.wait(), map=_swap_map, map_reader=chain_reader,
                                 reduce=_count_by_size, sort=True)
            self.assertResults(self.job, [(1, [b"c"]), (2, [b"b"]), (3, [b"a"])])
        finally:
            first.purge()


def _count_by_size(iter: Any, params: Any) -> Iterator[tuple[int, list[Any]]]:
    from disco.util import kvgroup
    for count, words in kvgroup(iter):  # sort=True: equal keys arrive together, in order
        yield count, sorted(words)


# -- asynchronous jobs, waiting on many --------------------------------------------------
SLOW_MAP_S = 5.0


def _slow_map(line: Any, params: Any) -> Iterator[tuple[str, int]]:
    time.sleep(params)
    yield line, len(line)


def test_jobs_run_asynchronously_and_are_waited_for_in_any_order(jobs: JobList) -> None:
    started = time.monotonic()
    slow = jobs(Job().run(input=["raw://slow"], map=_slow_map, params=SLOW_MAP_S))
    fast = [jobs(Job().run(input=[f"raw://{word}"], map=_slow_map, params=0.0))
            for word in ("one", "three")]
    # run() returns as soon as the master has the job: the slow one is still running (its map
    # sleeps well beyond the time these calls may take on a loaded machine).
    assert time.monotonic() - started < 2.0
    status = slow.results()[0]
    assert status == "active" or time.monotonic() - started > SLOW_MAP_S, status
    assert [job_results(job) for job in fast] == [[("one", 3)], [("three", 5)]]
    assert job_results(slow) == [("slow", 4)]


def test_disco_results_waits_for_many_jobs(jobs: JobList) -> None:
    disco = Disco()
    delays = [0.0, 0.5, 1.0]
    running = [jobs(Job().run(input=[f"raw://{n}"], map=_slow_map, params=delay))
               for n, delay in enumerate(delays)]
    names = {job.name for job in running}
    finished: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    pending: list[Any] = list(running)
    while pending:
        assert time.monotonic() < deadline, f"still active: {pending}"
        inactive, active = disco.results(pending, timeout=2000)
        for name, (status, results) in inactive:
            finished[name] = (status, results)
        pending = [name for name, _status in active]
        # Jobs may be given as Job objects or as names; both work.
    assert set(finished) == names
    for name, (status, results) in finished.items():
        assert status == "ready"
        assert len(list(result_iterator(results))) == 1
    assert disco.results("NoSuchJob@0:0:0") == ("unknown job", [])
