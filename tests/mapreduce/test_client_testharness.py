"""disco.test on its own (no cluster): the test server, the assertions, the aliases old
tests need, and what tearDown purges."""

from __future__ import annotations

import unittest
from typing import Any

import httpx
import pytest

from disco.error import CommError
from disco.job import Job
from disco.test import FailedReply, TestCase, TestPipe, TestServer


@pytest.fixture()
def server() -> Any:
    def serve(path: str) -> Any:
        if path == "fail":
            raise FailedReply("not now")
        if path == "bug":
            raise KeyError(path)
        if path == "bytes":
            return b"\x00\xff"
        return f"<{path}>"

    test_server = TestServer(("127.0.0.1", 0), serve)
    test_server.start()
    yield test_server
    test_server.stop()


def test_server_serves_what_serve_returns(server: TestServer) -> None:
    [[a], [b, c]] = server.urls(["a b", ["x/y", 7]])
    assert a == f"{server.address}/a%20b"
    assert (b, c) == (f"{server.address}/x/y", f"{server.address}/7")
    with httpx.Client(trust_env=False) as http:
        assert http.get(a).text == "<a b>"  # the path comes back unquoted
        assert http.get(c).text == "<7>"
        assert http.get(f"{server.address}/bytes").content == b"\x00\xff"
        failed = http.get(f"{server.address}/fail")
        assert failed.status_code == 500 and failed.text == "not now"
        assert http.get(f"{server.address}/bug").status_code == 500
    assert [type(e) for e in server.errors] == [KeyError]


def _outcome(test: unittest.TestCase) -> unittest.TestResult:
    result = unittest.TestResult()
    test.run(result)
    return result


def test_assert_all_equal_notices_length_and_content() -> None:
    class Checks(TestCase):
        def test_equal(self) -> None:
            self.assertAllEqual(iter([1, 2]), [1, 2])

        def test_shorter(self) -> None:
            self.assertAllEqual([1], [1, 2])

        def test_different(self) -> None:
            self.assertAllEqual([1, 3], [1, 2])

    outcomes = {name: _outcome(Checks(name)) for name in
                ("test_equal", "test_shorter", "test_different")}
    assert outcomes["test_equal"].wasSuccessful()
    assert "<missing> != 2" in outcomes["test_shorter"].failures[0][1]
    assert "at position 1" in outcomes["test_different"].failures[0][1]


def test_assert_comm_error_code() -> None:
    def raise_404() -> None:
        raise CommError("gone", "http://h/x", 404)

    class Checks(TestCase):
        def test_right_code(self) -> None:
            self.assertCommErrorCode(404, raise_404)

        def test_wrong_code(self) -> None:
            self.assertCommErrorCode(403, raise_404)

        def test_no_error(self) -> None:
            self.assertCommErrorCode(404, lambda: None)

    assert _outcome(Checks("test_right_code")).wasSuccessful()
    assert _outcome(Checks("test_wrong_code")).failures
    assert _outcome(Checks("test_no_error")).failures


def test_old_assertion_names_still_work() -> None:
    class Old(TestCase):
        def runTest(self) -> None:
            self.assertEquals(1, 1)
            self.assertNotEquals(1, 2)
            self.assertItemsEqual([1, 2], [2, 1])
            self.assertRaisesRegexp(ValueError, "x", int, "x")
            self.failUnless(True)
            self.assertDictContainsSubset({"a": 1}, {"a": 1, "b": 2})

    assert _outcome(Old()).wasSuccessful()


class _FakeDisco:
    def __init__(self) -> None:
        self.purged: list[str] = []

    def purge(self, name: str) -> None:
        self.purged.append(name)


@pytest.mark.parametrize("setting, purged", [("purge", ["Job@1:2:3"]), ("", [])])
def test_teardown_purges_the_job_unless_told_not_to(monkeypatch: pytest.MonkeyPatch,
                                                    setting: str, purged: list[str]) -> None:
    monkeypatch.setenv("DISCO_TEST_PURGE", setting)
    fake = _FakeDisco()
    job = Job(master="http://127.0.0.1:1")
    job.disco = fake  # type: ignore[assignment]
    job.name = "Job@1:2:3"

    class Ran(TestCase):
        def runTest(self) -> None:
            self.job = job

    assert _outcome(Ran()).wasSuccessful()
    assert fake.purged == purged


def test_test_server_runs_for_classes_that_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCO_TEST_HOST", "127.0.0.1")
    monkeypatch.setenv("DISCO_TEST_PORT", "0")  # any free port
    seen: list[str] = []

    class Serving(TestCase):
        def serve(self, path: str) -> str:
            return path.upper()

        def runTest(self) -> None:
            [[url]] = self.test_server.urls(["hi"])
            seen.append(httpx.get(url, trust_env=False).text)

    assert _outcome(Serving()).wasSuccessful()
    assert seen == ["HI"]
    assert TestPipe().worker.jobpack_version == 2
