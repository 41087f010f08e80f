"""Black-box compatibility of the map side's fast paths: whatever route records take
(sum_combiner kept in one table, records grouped by key for a reduce, batched pickling,
counted progress), jobs get the results Disco's record-by-record semantics give."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from compat_helpers import JobList, event_text, job_results

from disco.core import Job
from disco.worker.classic.func import sum_combiner

LINES = ["b a c a", "c c d b", "a e", "", "d d d a"]


def word_map(line: Any, params: Any) -> Iterator[tuple[Any, Any]]:
    for word in line.split():
        yield word, 1


def mixed_map(line: Any, params: Any) -> Iterator[tuple[Any, Any]]:
    """Keys of types that cannot be ordered together, float and int values, one key per
    line twice as many times."""
    for i, word in enumerate(line.split()):
        yield word, 0.5
        yield (i, word), 2
        yield i, True


def unhashable_map(line: Any, params: Any) -> Any:
    """Keys that cannot be hashed in the middle of a call's records, which come from a
    generator or (params "list") a list."""
    words = line.split()
    pairs = [(w, 1) for w in words[:1]] + [([w], 2) for w in words[1:2]] + \
        [(w, 3) for w in words[2:]]
    return pairs if params == "list" else (pair for pair in pairs)


def plain_sum_combiner(key: Any, value: Any, buf: dict[Any, Any], done: bool,
                       params: Any) -> Any:
    """sum_combiner's documented behaviour, as a user would write it: no fast path."""
    if not done:
        buf[key] = buf.get(key, 0) + value
        return None
    return list(buf.items())


def order_reduce(iter: Any, out: Any, params: Any) -> None:
    """Write the keys in the order they arrive, one record per run of equal keys."""
    last = object()
    for key, _value in iter:
        if key != last:
            out.add(key, 1)
            last = key


def total_reduce(iter: Any, params: Any) -> Iterator[tuple[Any, Any]]:
    totals: dict[Any, Any] = {}
    for key, value in iter:
        totals[key] = totals.get(key, 0) + value
    yield from totals.items()


def records_reduce(iter: Any, params: Any) -> Iterator[tuple[str, int]]:
    for record in iter:
        yield repr(record), 1


def progress_reduce(iter: Any, params: Any) -> Iterator[tuple[str, int]]:
    yield "records", sum(1 for _ in iter)


def inputs() -> list[str]:
    return [f"raw://{line}" for line in LINES]


def test_sum_combiner_gives_what_the_combiner_per_record_gives(jobs: JobList) -> None:
    for fn in (word_map, mixed_map):
        fast = jobs(Job().run(input=inputs(), map=fn, reduce=total_reduce, partitions=3,
                              combiner=sum_combiner))
        slow = jobs(Job().run(input=inputs(), map=fn, reduce=total_reduce, partitions=3,
                              combiner=plain_sum_combiner))
        fast_results, slow_results = job_results(fast), job_results(slow)
        assert sorted(map(repr, fast_results)) == sorted(map(repr, slow_results))
        if fn is word_map:
            expected = Counter(" ".join(LINES).split())
            assert dict(fast_results) == dict(expected)


def test_a_reduce_gets_each_map_tasks_records_grouped_by_key_in_order(jobs: JobList) -> None:
    # One map task (one input) so that the reduce reads one run: keys in order, each once.
    job = jobs(Job().run(input=["raw://b a c a c c d b a e d d d a"], map=word_map,
                         reduce=order_reduce))
    assert [key for key, _ in job_results(job)] == ["a", "b", "c", "d", "e"]


def test_a_users_combiner_gives_the_reduce_its_records_in_key_order(jobs: JobList) -> None:
    # The combiner's final records (its buffer's insertion order here) are written sorted.
    job = jobs(Job().run(input=["raw://b a c a c c d b a e d d d a"], map=word_map,
                         combiner=plain_sum_combiner, reduce=order_reduce))
    assert [key for key, _ in job_results(job)] == ["a", "b", "c", "d", "e"]


def test_keys_that_cannot_be_compared_are_still_grouped(jobs: JobList) -> None:
    job = jobs(Job().run(input=["raw://x y x"], map=mixed_map, reduce=order_reduce))
    keys = [key for key, _ in job_results(job)]
    assert len(keys) == len(set(map(repr, keys)))  # each key's records came together
    assert Counter(map(repr, keys)) == Counter(map(repr, ["x", "y", (0, "x"), (1, "y"),
                                                           (2, "x"), 0, 1, 2]))


def test_records_with_unhashable_keys_reach_the_reduce_with_the_rest(jobs: JobList) -> None:
    expected = Counter(repr(pair) for line in LINES for pair in unhashable_map(line, None))
    for params in ("list", "generator"):
        job = jobs(Job().run(input=inputs(), map=unhashable_map, reduce=records_reduce,
                             params=params, partitions=2))
        assert Counter(key for key, _ in job_results(job)) == expected, params


def test_a_map_only_job_keeps_the_order_the_map_gave(jobs: JobList) -> None:
    job = jobs(Job().run(input=["raw://b a c a"], map=word_map))
    assert job_results(job) == [("b", 1), ("a", 1), ("c", 1), ("a", 1)]


def test_progress_messages_never_hold_a_task_back(jobs: JobList) -> None:
    # A status line every record is far over the MSG rate limit: the extra ones are left
    # out (sent at the limit's pace, 3000 would take over ten minutes).
    job = jobs(Job().run(input=[f"raw://{' '.join(['w'] * 3000)}"], map=word_map,
                         reduce=progress_reduce, status_interval=1))
    assert job_results(job) == [("records", 3000)]
    events = event_text(job)
    assert "Done: 3000 entries reduced" in events
    assert events.count("entries reduced") < 100


def flushing_combiner(key: Any, value: Any, buf: dict[Any, Any], done: bool,
                      params: Any) -> Any:
    """Sums, but hands its buffer on whenever it holds two keys (records mid-task)."""
    if done:
        return list(buf.items())
    buf[key] = buf.get(key, 0) + value
    if len(buf) >= 2:
        records = list(buf.items())
        buf.clear()
        return records
    return None


def passing_combiner(key: Any, value: Any, buf: dict[Any, Any], done: bool,
                     params: Any) -> Any:
    """Keeps nothing: every record straight on (unhashable keys too)."""
    return None if done else [(key, value)]


def test_a_users_combiner_gets_each_labels_buffer_and_its_records_are_kept(jobs: JobList) -> None:
    job = jobs(Job().run(input=inputs(), map=word_map, reduce=total_reduce, partitions=3,
                         combiner=flushing_combiner))
    assert dict(job_results(job)) == dict(Counter(" ".join(LINES).split()))
    expected = Counter(repr(pair) for line in LINES for pair in unhashable_map(line, None))
    job = jobs(Job().run(input=inputs(), map=unhashable_map, reduce=records_reduce,
                         params="list", partitions=2, combiner=passing_combiner))
    assert Counter(key for key, _ in job_results(job)) == expected
