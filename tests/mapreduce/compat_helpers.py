"""Small helpers for the black-box compatibility tests (test_compat_*.py).

This module is imported by the test modules, whose job functions run on the nodes: the
client ships it with every job, so it imports nothing but disco and the standard library.
"""

from __future__ import annotations

import unittest
from typing import Any

from disco.core import result_iterator
from disco.error import CommError, JobError


def job_results(job: Any, **kwargs: Any) -> list[Any]:
    """Every record of a job's results; if the job failed, the error shows its events."""
    try:
        urls = job.wait(poll_interval=1)
    except JobError as exc:
        raise AssertionError(f"{exc}; its events:\n{event_text(job)}") from None
    return list(result_iterator(urls, **kwargs))


def event_text(job: Any) -> str:
    return "\n".join(f"  {host} {msg}" for _offset, (_ts, host, msg) in job.events())


class JobList(list):
    """Jobs a test ran; the `jobs` fixture purges them all afterwards."""

    def __call__(self, job: Any) -> Any:
        self.append(job)
        return job

    def purge(self) -> None:
        for job in self:
            if "@" not in str(job.name):
                continue  # never submitted (a JobChain job whose inputs never came)
            try:
                job.purge()
            except CommError as exc:
                if exc.code != 404:  # 404: purged by the test itself
                    raise


def run_case(case: unittest.TestCase) -> None:
    """Run one disco.test.TestCase built inside a pytest test; fail with its errors."""
    result = unittest.TestResult()
    case.run(result)
    problems = result.errors + result.failures
    assert not problems, "\n".join(text for _case, text in problems)
    assert result.testsRun == 1
