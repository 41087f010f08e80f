"""Black-box compatibility: a node dies (SIGKILL to its supervisor and every worker it runs)
while a classic job runs. The job still finishes, with the same results as if nothing had
happened. This module has a cluster of its own, as it leaves one node dead."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from compat_helpers import JobList, event_text, job_results

from disco.core import Disco, Job

WORDS = "alpha beta gamma delta epsilon zeta eta theta".split()
TEXTS = [" ".join(WORDS[i:] + WORDS[:i][: i % 3]) for i in range(8)]


def slow_word_map(line: Any, params: Any) -> Iterator[tuple[str, int]]:
    # Tell the test where this map runs, then take long enough for a node to die under it.
    with open(os.path.join(params, f"{this_host()}-{os.getpid()}"), "w"):  # noqa: F821
        pass
    time.sleep(1.0)
    for word in line.split():
        yield word, 1


def word_reduce(iter: Any, params: Any) -> Iterator[tuple[str, int]]:
    from disco.util import kvgroup
    for word, counts in kvgroup(sorted(iter)):
        yield word, sum(counts)


def test_results_survive_a_node_killed_mid_job(compat_cluster: Any, jobs: JobList,
                                               tmp_path: Path) -> None:
    doomed = compat_cluster.node_hosts[1]
    job = jobs(Job().run(input=[f"raw://{text}" for text in TEXTS], map=slow_word_map,
                         reduce=word_reduce, params=str(tmp_path)))
    deadline = time.monotonic() + 30
    while not any(p.name.startswith(f"{doomed}-") for p in tmp_path.iterdir()):
        assert time.monotonic() < deadline, f"no map started on {doomed}:\n{event_text(job)}"
        time.sleep(0.05)
    compat_cluster.nodes[doomed].kill9()  # the supervisor and its workers, at once

    expected = sorted(Counter(" ".join(TEXTS).split()).items())
    assert job_results(job) == expected
    text = event_text(job)
    assert f"failed on {doomed}" in text  # its running maps were run again elsewhere
    info = Disco().nodeinfo()
    assert info[doomed]["connected"] is False
    assert all(url.split("/")[2] != doomed for [url] in job.wait())
