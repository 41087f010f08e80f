"""Black-box compatibility, core tier: what goes wrong and what Disco users see of it.
Inputs that fail once, dead replicas, tasks that print anything at all, events and job
info, killing a job, malformed job packs, maps that raise."""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from compat_helpers import JobList, event_text, job_results

from disco import comm
from disco.core import Disco, Job, result_iterator
from disco.error import DataError, DiscoError, JobError
from disco.jobpack import JobPack
from disco.settings import DiscoSettings
from disco.test import FailedReply, TestCase, TestJob
from disco.worker.classic.worker import Worker as ClassicWorker


def int_map(line: Any, params: Any) -> Iterator[tuple[str, int]]:
    yield "n", int(line)


def sum_reduce(iter: Any, params: Any) -> Iterator[tuple[str, int]]:
    yield "sum", sum(value for _key, value in iter)


# -- inputs that fail once ----------------------------------------------------------------
class TempFailTestCase(TestCase):
    """Every other input answers HTTP 500 the first time it is asked for: the map task
    fails, is retried, and the job still sees every input exactly once."""

    def setUp(self) -> None:
        self.failed: set[str] = set()
        self.lock = threading.Lock()
        super().setUp()

    def serve(self, path: str) -> str:
        with self.lock:
            if int(path) % 2 and path not in self.failed:
                self.failed.add(path)
                raise FailedReply(f"{path} is not ready yet")
        return f"{path}\n"

    def test_sum_is_exact_despite_failures(self) -> None:
        numbers = range(1, 21)
        self.job = Job().run(input=self.test_server.urls(numbers), map=int_map,
                             reduce=sum_reduce)
        self.assertResults(self.job, [("sum", sum(numbers))])
        self.assertEqual(self.failed, {str(n) for n in numbers if n % 2})
        self.assertIn("failed on", event_text(self.job))  # the retries show in the events


# -- replicas ------------------------------------------------------------------------------
class RedundantTestCase(TestCase):
    def serve(self, path: str) -> str:
        if path.startswith("dead/"):
            raise FailedReply("this replica is gone")
        return f"{path}\n"

    def test_a_dead_first_replica_falls_back_to_the_next(self) -> None:
        host = self.test_server_address[0]
        unreachable = f"http://{host}:1/nothing-listens-here"
        inputs = [[f"dead/{n}", str(n)] for n in range(1, 5)]
        urls = [[unreachable, *replicas] for replicas in self.test_server.urls(inputs)]
        self.job = Job().run(input=urls, map=int_map, reduce=sum_reduce)
        self.assertResults(self.job, [("sum", 10)])
        self.assertIn("dead/1", event_text(self.job))  # warned about, then skipped

    def test_results_read_back_from_replicas(self) -> None:
        """result_iterator tries each replica of a result in turn."""
        self.job = Job().run(input=self.test_server.urls(["3", "4"]), map=int_map)
        results = self.job.wait()
        dead = f"http://{self.test_server_address[0]}:1/gone"
        self.assertEqual(sorted(v for _k, v in result_iterator(
            [[dead, *replicas] for replicas in results])), [3, 4])
        with self.assertRaises(DataError):
            list(result_iterator([[dead]]))


# -- what tasks print -------------------------------------------------------------------
def chatty_map(line: Any, params: Any) -> Iterator[tuple[str, int]]:
    import sys
    print(f"snowman \u2603 says {line}")
    print(b"\x00\xff raw bytes")               # printed as their repr, as print does
    sys.stdout.write(b"undecodable \xff\xfe bytes\n")  # written as bytes: decoded leniently
    sys.stdout.buffer.write(b"through the buffer \xe2\x98\x83 \xff\n")
    os.write(1, b"straight to fd 1: \xc3\x28 not utf-8\n")
    # Something that looks like the worker protocol, written where the task's output goes:
    # it must be taken as text, not as a message that ends the task.
    sys.stderr.write('DONE 2 ""\n')
    os.write(2, b'FATAL 6 "boom"\n')
    yield line, 1


def test_whatever_a_task_prints_becomes_a_message(jobs: JobList) -> None:
    job = jobs(Job().run(input=["raw://hello"], map=chatty_map))
    assert job_results(job) == [("hello", 1)]
    text = event_text(job)
    assert "snowman \u2603 says hello" in text
    assert "b'\\x00\\xff raw bytes'" in text
    assert "undecodable \ufffd\ufffd bytes" in text
    assert "through the buffer \u2603 \ufffd" in text
    assert "straight to fd 1: \ufffd( not utf-8" in text
    assert 'DONE 2 ""' in text and 'FATAL 6 "boom"' in text
    assert job.jobinfo()["active"] == "ready"


class NoisyStartWorker(ClassicWorker):
    """The classic worker started by a script that, the first time it runs on a node, says
    hello on stdout (like a chatty login script) and exits: garbage on the protocol
    channel. The node gives up on that task ("Worker died. Last words: ...") and the
    master runs it again."""

    script = ('#!/bin/sh\n'
              'if [ ! -e noisy-once ]; then\n'
              '  : > noisy-once\n'
              '  echo "hello from a login script"\n'
              '  exit 1\n'
              'fi\n'
              'exec "${DISCO_PYTHON:-python3}" -m disco.worker.classic.worker "$@"\n')

    @property
    def bin(self) -> str:
        return "noisy-run-worker"

    def jobzip(self, job: Any, params: dict[str, Any]) -> Any:
        jobzip = super().jobzip(job, params)
        jobzip.writebytes(self.bin, self.script, executable=True)
        return jobzip


def test_garbage_on_the_protocol_channel_fails_the_task_not_the_job(jobs: JobList) -> None:
    job = jobs(Job(worker=NoisyStartWorker()).run(input=["raw://1", "raw://2"], map=int_map,
                                                  reduce=sum_reduce))
    assert job_results(job) == [("sum", 3)]
    text = event_text(job)
    assert "Worker died. Last words:" in text
    assert "hello from a login script" in text


# -- events and job info -------------------------------------------------------------------
def greeting_map(line: Any, params: Any) -> Iterator[tuple[str, int]]:
    print(f"greetings from {line}")
    yield line, 1


class EventsTestCase(TestCase):
    def test_events_and_jobinfo(self) -> None:
        self.job = TestJob().run(input=["raw://first", "raw://second"], map=greeting_map,
                                 reduce=sum_reduce)
        self.assertTrue(self.job.name.startswith("TestJob@"))
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            results = self.job.wait(show=True)  # prints the events as they come
        self.assertIn("greetings from second", shown.getvalue())
        self.assertIn("READY", shown.getvalue())
        events = list(self.job.events())
        offsets = [offset for offset, _event in events]
        self.assertEqual(offsets, sorted(set(offsets)))
        messages = [message for _offset, (_ts, _host, message) in events]
        self.assertTrue(messages[0].startswith("New job"))
        self.assertTrue(messages[-1].startswith("READY"))
        self.assertTrue(any("greetings from first" in m for m in messages))
        hosts = {host for _offset, (_ts, host, _m) in events}
        self.assertTrue({"master"} < hosts <= {"master", *self.nodes})
        # Reading on from an offset gives exactly the events after it.
        middle = len(events) // 2
        later = list(self.job.events(offset=offsets[middle - 1]))
        self.assertEqual(later, events[middle:])

        info = self.job.jobinfo()
        self.assertEqual(info["active"], "ready")
        self.assertEqual([stage[0] for stage in info["pipeline"]],
                         ["map", "map_shuffle", "reduce"])
        self.assertEqual(info["pipeline"][0][4], 2)  # two maps done
        self.assertEqual(info["worker"], "run-worker")
        self.assertEqual(info["owner"], DiscoSettings()["DISCO_JOB_OWNER"])
        self.assertTrue(set(info["hosts"]) <= set(self.nodes))
        self.assertEqual(sorted(info["results"]), sorted(url for [url] in results))
        self.assertIn(self.job.name, [name for _ts, _status, name in self.disco.joblist()])
        self.assertEqual(self.job.results(), ("ready", results))

    def test_cluster_properties(self) -> None:
        self.assertEqual(len(self.nodes), 2)
        self.assertEqual(self.num_workers, 4)  # two nodes of two slots
        self.assertEqual(self.disco.master, self.disco_master_url)
        self.assertTrue(self.disco.master_version())
        self.assertEqual(self.ddfs.master, self.disco.master)


# -- kill ------------------------------------------------------------------------------------
def sleepy_map(line: Any, params: Any) -> Iterator[tuple[str, int]]:
    with open(os.path.join(params, f"pid-{os.getpid()}"), "w"):
        pass
    time.sleep(60)
    yield line, 1


def test_kill_stops_a_running_job(jobs: JobList, tmp_path: Path) -> None:
    import psutil
    job = jobs(Job().run(input=["raw://a", "raw://b"], map=sleepy_map, params=str(tmp_path)))
    deadline = time.monotonic() + 30
    while len(list(tmp_path.glob("pid-*"))) < 2:
        assert time.monotonic() < deadline, event_text(job)
        time.sleep(0.1)
    pids = [int(p.name[4:]) for p in tmp_path.glob("pid-*")]
    try:
        job.wait(timeout=0.5, poll_interval=0.2)
    except JobError as exc:
        assert "Timeout" in str(exc)
    else:
        raise AssertionError("wait(timeout=...) returned while the maps still slept")
    job.kill()
    assert job.results()[0] == "dead"
    try:
        job.wait()
    except JobError as exc:
        assert exc.name == job.name
    else:
        raise AssertionError("waiting on a killed job did not raise JobError")
    deadline = time.monotonic() + 15
    while any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
              for pid in pids):
        assert time.monotonic() < deadline, "the killed job's workers are still running"
        time.sleep(0.1)


# -- malformed job packs --------------------------------------------------------------------
def _post_pack(data: bytes) -> Any:
    return json.loads(comm.download(f"{DiscoSettings()['DISCO_MASTER']}/disco/job/new", data))


def test_malformed_job_packs_are_refused_and_the_master_goes_on(jobs: JobList) -> None:
    jobdict = {"prefix": "Bad", "worker": "run-worker", "owner": "compat", "input": [],
               "map?": True, "reduce?": False, "nr_reduces": 1, "scheduler": {}}
    good = JobPack(jobdict, {}, b"", b"").dumps()
    header = struct.Struct("!IIIII")
    magic, *offsets = header.unpack(good[:header.size])
    no_worker = {k: v for k, v in jobdict.items() if k != "worker"}
    bad_packs = {
        "not a job pack at all": b"hello, master",
        "truncated header": good[:10],
        "wrong magic": header.pack(0xBAD0 << 16 | 1, *offsets) + good[header.size:],
        "offsets out of order": header.pack(magic, offsets[0], offsets[2], offsets[1],
                                            offsets[3]) + good[header.size:],
        "jobdict not JSON": good[:128] + b"{not json" + good[128 + 9:],
        "jobdict without a worker": JobPack(no_worker, {}, b"", b"").dumps(),
        "jobhome not a ZIP": JobPack(jobdict, {}, b"not a zip file", b"").dumps(),
        "unknown grouping": JobPack({**jobdict, "pipeline": [["map", "group_by_mood"]],
                                     "inputs": []}, {}, b"", b"", version=2).dumps(),
    }
    for what, pack in bad_packs.items():
        reply = _post_pack(pack)
        assert isinstance(reply, list) and reply[0] == "error", (what, reply)
    try:
        Disco().submit(b"\x00" * 200)
    except DiscoError as exc:
        assert "Failed to submit jobpack" in str(exc)
    else:
        raise AssertionError("the master accepted zeros as a job pack")
    # The master still takes and runs good jobs.
    job = jobs(Job().run(input=["raw://7"], map=int_map, reduce=sum_reduce))
    assert job_results(job) == [("sum", 7)]


# -- failing maps ----------------------------------------------------------------------------
def raising_map(line: Any, params: Any) -> Iterator[tuple[str, int]]:
    raise ValueError(f"cannot map {line!r}")


def test_a_map_that_raises_fails_the_job_with_its_traceback(jobs: JobList) -> None:
    job = jobs(Job().run(input=["raw://oops"], map=raising_map))
    try:
        job.wait()
    except JobError as exc:
        assert exc.name == job.name and "dead" in str(exc)
    else:
        raise AssertionError("a job whose map raises finished")
    text = event_text(job)
    assert "Traceback (most recent call last)" in text
    assert "ValueError: cannot map 'oops'" in text
    assert "in raising_map" in text
    assert job.results()[0] == "dead"


def data_error_once_map(line: Any, params: Any) -> Iterator[tuple[str, int]]:
    from disco.error import DataError
    marker = os.path.join(params, f"tried-{line}")
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise DataError("the data is not there yet", f"raw://{line}")
    yield "n", int(line)


def test_data_error_makes_the_task_run_again(jobs: JobList, tmp_path: Path) -> None:
    job = jobs(Job().run(input=["raw://5", "raw://6"], map=data_error_once_map,
                         reduce=sum_reduce, params=str(tmp_path)))
    assert job_results(job) == [("sum", 11)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tried-5", "tried-6"]
    text = event_text(job)
    assert "the data is not there yet" in text
    assert text.count("failed on") >= 2  # one failed attempt of each map


# -- tasks that flood messages ----------------------------------------------------------------
def printing_map(line: Any, params: Any) -> Iterator[tuple[Any, str]]:
    print(line)
    yield line.strip(), ""


class FloodTestCase(TestCase):
    """A map that prints every one of its 100 records: 10 messages in a second fail the
    task, as under Disco, unless the job gathers its prints (batch_messages=True)."""

    def serve(self, path: str) -> bytes:
        return b"badger\n" * 100

    def test_flooding_task_fails_the_job(self) -> None:
        self.job = TestJob().run(input=self.test_server.urls([1]), map=printing_map)
        try:
            self.job.wait(poll_interval=0.2)
        except JobError:
            pass
        else:
            self.fail(f"the job did not fail:\n{event_text(self.job)}")
        self.assertEqual(self.job.jobinfo()["active"], "dead")
        self.assertIn("behaving badly", event_text(self.job))

    def test_batched_prints_pass(self) -> None:
        self.job = TestJob().run(input=self.test_server.urls([1]), map=printing_map,
                                 batch_messages=True)
        self.assertEqual(list(result_iterator(self.job.wait(poll_interval=0.2))),
                         [(b"badger", "")] * 100)
        self.assertIn("badger", event_text(self.job))



# -- Ctrl-C in a test ---------------------------------------------------------------------------
def napping_map(line: Any, params: Any) -> Iterator[tuple[str, int]]:
    time.sleep(30)
    yield "never", 1


def test_sigint_skips_the_test_and_its_job_is_purged() -> None:
    import signal
    import unittest
    seen: dict[str, Any] = {}

    class Interrupted(TestCase):
        def runTest(self) -> None:
            self.job = TestJob().run(input=["raw://a", "raw://b"], map=napping_map)
            seen["name"] = self.job.name
            signal.raise_signal(signal.SIGINT)  # as Ctrl-C would
            seen["went on"] = True

    before = signal.getsignal(signal.SIGINT)
    result = unittest.TestResult()
    Interrupted().run(result)
    assert not result.errors and not result.failures, result.errors + result.failures
    assert [reason for _case, reason in result.skipped] == [
        "test interrupted (SIGINT): it may not have finished cleaning up"]
    assert "went on" not in seen
    assert signal.getsignal(signal.SIGINT) is before  # put back after the test
    names = [name for _ts, _status, name in Disco().joblist()]
    assert seen["name"] not in names  # tearDown purged it, running as it was


def test_second_sigint_in_a_test_goes_to_the_previous_handler() -> None:
    import signal
    import unittest

    class Twice(TestCase):
        def runTest(self) -> None:
            try:
                signal.raise_signal(signal.SIGINT)
            except unittest.SkipTest:
                pass
            signal.raise_signal(signal.SIGINT)

    calls: list[int] = []

    def before(signum: int, frame: object) -> None:
        calls.append(signum)
        raise KeyboardInterrupt  # the one exception unittest lets out of a test

    # The handler before the test is this one, whatever an earlier test of this process left.
    outer = signal.signal(signal.SIGINT, before)
    try:
        try:
            Twice().run(unittest.TestResult())
        except KeyboardInterrupt:
            pass
        assert calls == [signal.SIGINT], "a second SIGINT did not reach the handler that was there before"
        assert signal.getsignal(signal.SIGINT) is before  # and it is put back
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            Twice().run(unittest.TestResult())
        except KeyboardInterrupt:
            pass
        else:
            raise AssertionError("a second SIGINT did not reach the default handler")
    finally:
        signal.signal(signal.SIGINT, outer)
