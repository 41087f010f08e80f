"""The harness Disco's own test suite is written against (``from disco.test import TestCase``).

A test is a :class:`TestCase` that runs jobs on a live cluster: the master named by
``DISCO_MASTER`` and its nodes. Inputs usually come from a small HTTP server the test runs
itself: a test class that defines ``serve(self, path)`` gets, for each test, a threaded
server on ``DISCO_TEST_HOST:DISCO_TEST_PORT`` (the nodes must be able to reach it) that
answers ``GET /<path>`` with whatever ``serve(path)`` returns, or with HTTP 500 when it
raises :class:`FailedReply`::

    from disco.core import result_iterator
    from disco.test import TestCase, TestJob

    class WordsTestCase(TestCase):
        def serve(self, path):
            return f"{path} {path}\\n"

        def test_words(self):
            self.job = TestJob().run(input=self.test_server.urls(["a", "b"]), map=fun_map)
            self.assertResults(self.job, [("a", 1), ...])

``tearDown`` purges ``self.job`` (when the test set one) unless ``DISCO_TEST_PURGE`` is
empty, so failed jobs can be kept around for a look.
"""

from __future__ import annotations

import signal
import threading
import unittest
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import zip_longest
from typing import Any
from urllib.parse import quote, unquote

from disco.core import Disco, result_iterator
from disco.error import CommError, DiscoError, JobError
from disco.job import Job
from disco.settings import DiscoSettings
from disco.util import iterify

__all__ = ["FailedReply", "TestServer", "TestCase", "TestJob", "TestPipe", "DiscoTestCase"]


# What zip_longest pads the shorter side with in assertAllEqual.
_MISSING = type("_Missing", (), {"__repr__": lambda self: "<missing>"})()


def _last_events(job: Any, count: int = 20) -> str:
    try:
        events = [event for _offset, event in job.events()][-count:]
    except DiscoError as exc:
        return f" (its events could not be read: {exc})"
    lines = "\n".join(f"  {host} {message}" for _ts, host, message in events)
    return f"; its last events:\n{lines}"


class _InterruptTest:
    """The SIGINT handler while a :class:`TestCase` runs: the first signal skips the test."""

    def __init__(self, test: unittest.TestCase) -> None:
        self.test = test
        self.previous: Any = signal.default_int_handler
        self.fired = False

    def __call__(self, signum: int, frame: Any) -> None:
        if not self.fired:
            self.fired = True
            raise unittest.SkipTest("test interrupted (SIGINT): it may not have finished "
                                    "cleaning up")
        if callable(self.previous):
            self.previous(signum, frame)
        elif self.previous == signal.SIG_DFL:
            raise KeyboardInterrupt


class FailedReply(Exception):
    """Raised by ``serve(path)`` to make the test server answer that request with HTTP 500."""


class _Handler(BaseHTTPRequestHandler):
    server: "TestServer"
    protocol_version = "HTTP/1.1"
    # The headers and the body go out in two writes: with Nagle's algorithm the body waits
    # for the client's delayed ACK of the headers, 40 ms a request on Linux (test_50k's
    # 50,000 inputs spent most of their time there).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # the test output is no place for an access log

    def do_GET(self) -> None:
        path = unquote(self.path[1:].split("?", 1)[0])
        try:
            data = self.server.data_generator(path)
        except FailedReply as exc:
            self._send(500, str(exc).encode("utf-8") or b"failed on purpose")
            return
        except Exception as exc:  # a bug in serve(): say so to the node, do not hang it
            self.server.errors.append(exc)
            self._send(500, f"serve({path!r}) raised {exc!r}".encode("utf-8"))
            return
        self._send(200, _as_bytes(data))

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    if data is None:
        return b""
    if isinstance(data, Iterable):
        return b"".join(_as_bytes(part) for part in data)
    return str(data).encode("utf-8")


class TestServer(ThreadingHTTPServer):
    """A threaded HTTP server answering ``GET /<path>`` with ``data_generator(path)``."""

    __test__ = False
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, server_address: tuple[str, int],
                 data_generator: Callable[[str], Any]) -> None:
        super().__init__(server_address, _Handler)
        self.data_generator = data_generator
        self.errors: list[Exception] = []
        self._thread: threading.Thread | None = None

    @classmethod
    def create(cls, server_address: tuple[str, int],
               data_generator: Callable[[str], Any]) -> "TestServer":
        return cls(server_address, data_generator)

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def urls(self, inputs: Iterable[Any]) -> list[list[str]]:
        """One input per item of ``inputs``, each a list of replica URLs on this server (an
        item that is itself a list gives an input with several replicas)."""
        return [[f"{self.address}/{quote(str(path), safe='/:@!$&()*+,;=~')}"
                 for path in iterify(item)] for item in inputs]

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="disco-test-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(5)
            self._thread = None
        self.server_close()


class TestCase(unittest.TestCase):
    """A test that runs jobs on the cluster at ``DISCO_MASTER``; see the module docstring."""

    @property
    def settings(self) -> DiscoSettings:
        # Read afresh each time: the environment (DISCO_MASTER, DISCO_TEST_*) is the
        # configuration, and test runners set it before the tests run.
        return DiscoSettings()

    @property
    def disco_master_url(self) -> str:
        return self.settings["DISCO_MASTER"]

    @property
    def disco(self) -> Disco:
        return Disco(settings=self.settings)

    @property
    def ddfs(self) -> Any:
        from disco.ddfs import DDFS  # imported here: the map/reduce client does without it
        return DDFS(master=self.disco_master_url, settings=self.settings)

    @property
    def nodes(self) -> dict[str, int]:
        """Host -> max_workers of every node that is not blacklisted."""
        return {host: int(info["max_workers"])
                for host, info in self.disco.nodeinfo().items() if not info.get("blacklisted")}

    @property
    def num_workers(self) -> int:
        return sum(self.nodes.values())

    @property
    def test_server_address(self) -> tuple[str, int]:
        return str(self.settings["DISCO_TEST_HOST"]), int(self.settings["DISCO_TEST_PORT"])

    # -- assertions ----------------------------------------------------------------------
    def results(self, job: Any, **kwargs: Any) -> Any:
        """The records of ``job``'s results (waits for the job to finish). When the job
        failed, the JobError says why: the job's last events are added to its message."""
        try:
            urls = job.wait()
        except JobError as exc:
            exc.message += _last_events(job)
            raise
        return result_iterator(urls, **kwargs)

    def assertAllEqual(self, results: Iterable[Any], answers: Iterable[Any]) -> None:
        """Equal item by item, and equally long."""
        for position, (result, answer) in enumerate(zip_longest(results, answers,
                                                                fillvalue=_MISSING)):
            self.assertEqual(result, answer, f"at position {position}")

    def assertResults(self, job: Any, answers: Iterable[Any], **kwargs: Any) -> None:
        self.assertAllEqual(self.results(job, **kwargs), answers)

    def assertCommErrorCode(self, code: int, callable: Callable[[], Any]) -> None:  # noqa: A002
        """``callable()`` raises a CommError with HTTP status ``code``."""
        try:
            callable()
        except CommError as exc:
            self.assertEqual(code, exc.code)
        except Exception as exc:
            raise AssertionError(f"CommError not raised, got {exc!r}") from exc
        else:
            raise AssertionError("CommError not raised")

    # Python 3.12 removed these aliases; Disco's tests (and their users') still call them.
    assertEquals = unittest.TestCase.assertEqual
    assertNotEquals = unittest.TestCase.assertNotEqual
    assertAlmostEquals = unittest.TestCase.assertAlmostEqual
    assertNotAlmostEquals = unittest.TestCase.assertNotAlmostEqual
    assert_ = unittest.TestCase.assertTrue
    failUnless = unittest.TestCase.assertTrue
    failIf = unittest.TestCase.assertFalse
    failUnlessEqual = unittest.TestCase.assertEqual
    failIfEqual = unittest.TestCase.assertNotEqual
    failUnlessRaises = unittest.TestCase.assertRaises
    assertItemsEqual = unittest.TestCase.assertCountEqual
    assertRegexpMatches = unittest.TestCase.assertRegex
    assertNotRegexpMatches = unittest.TestCase.assertNotRegex
    assertRaisesRegexp = unittest.TestCase.assertRaisesRegex

    def assertDictContainsSubset(self, subset: dict[Any, Any], dictionary: dict[Any, Any],
                                 msg: str | None = None) -> None:
        missing = {k: v for k, v in subset.items() if k not in dictionary or dictionary[k] != v}
        if missing:
            self.fail(msg or f"{missing!r} not in {dictionary!r}")

    # -- Ctrl-C ----------------------------------------------------------------------------
    def run(self, result: Any = None) -> Any:
        """Run the test with SIGINT made a skip, as Disco's harness does: the test stops,
        is reported skipped ("interrupted"), and tearDown still purges its job. A second
        SIGINT in the same test goes to the handler that was there before (Ctrl-C twice
        still stops the whole run). Outside the main thread signals cannot be caught, and
        the test runs as it is."""
        interrupt = _InterruptTest(self)
        try:
            previous = signal.signal(signal.SIGINT, interrupt)
        except ValueError:  # not the main thread
            return super().run(result)
        interrupt.previous = previous
        try:
            return super().run(result)
        finally:
            signal.signal(signal.SIGINT, previous)

    # -- fixture -------------------------------------------------------------------------
    def setUp(self) -> None:
        super().setUp()
        serve = getattr(self, "serve", None)
        if callable(serve):
            self.test_server = TestServer.create(self.test_server_address, serve)
            self.test_server.start()
            # Stopped even if the rest of setUp (in a subclass) fails.
            self.addCleanup(self.test_server.stop)

    def tearDown(self) -> None:
        try:
            job = getattr(self, "job", None)
            if self.settings["DISCO_TEST_PURGE"] and isinstance(job, Job) \
                    and "@" in str(job.name):
                try:
                    job.purge()
                except CommError as exc:
                    if exc.code != 404:  # 404: the test purged it already
                        raise
        finally:
            super().tearDown()


DiscoTestCase = TestCase


class TestJob(Job):
    """A classic map/reduce job."""

    __test__ = False  # a helper, not a test class, for pytest


class TestPipe(Job):
    """A job run by the pipeline worker (``pipeline=[(grouping, Stage), ...]``)."""

    __test__ = False

    from disco.worker.pipeline.worker import Worker
