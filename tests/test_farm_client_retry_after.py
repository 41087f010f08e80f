"""`disco farm client` honours Retry-After, in both of its forms (seconds, an HTTP date), when
what answers in front of the farm server is a proxy saying the server is away (503) or a
throttle (429): no request comes before the time the answer named, though the client's own
jittered backoff would have come sooner. The front is a plain HTTP server of this test's (a
stand-in for a reverse proxy, not for the farm server); the client is the real command."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from farm_clients import ClientProc
from disco.taskfarm.client.backoff import retry_after

ADDRESS = "127.0.0.1"  # a port of its own (0: the kernel picks a free one)


@contextmanager
def front(status: int, header: Callable[[], str]) -> Iterator[tuple[str, list[float]]]:
    """A server answering every request with `status` and Retry-After: header(); yields its URL
    and the monotonic times the requests came at."""
    seen: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            seen.append(time.monotonic())
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Retry-After", header())
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((ADDRESS, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{ADDRESS}:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


@pytest.mark.parametrize("status", [503, 429])
def test_retry_after_seconds_is_waited_out(tmp_path: Path, status: int) -> None:
    (tmp_path / "key").write_text("fk_whatever")
    with front(status, lambda: "3") as (url, seen):
        client = ClientProc(url, tmp_path / "key", tmp_path / "waiting")
        try:
            time.sleep(7.5)
        finally:
            assert client.stop() == 0, client.log
    # Without Retry-After the first waits would be under 1 s and 2 s (full jitter from 1 s).
    assert len(seen) >= 2 and all(g >= 2.9 for g in gaps(seen)), (gaps(seen), client.log)
    waits = [float(line.rsplit("retrying in ", 1)[1].split()[0]) for line in client.log.splitlines()
             if "retrying in" in line]
    assert waits and all(w >= 3.0 for w in waits), client.log


def test_retry_after_as_an_http_date_is_waited_out(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("fk_whatever")
    with front(503, lambda: formatdate(time.time() + 4, usegmt=True)) as (url, seen):
        client = ClientProc(url, tmp_path / "key", tmp_path / "dated")
        try:
            time.sleep(7.5)
        finally:
            assert client.stop() == 0, client.log
    # An HTTP date has whole seconds: "in 4 s" is at least 3 s away.
    assert len(seen) >= 2 and all(g >= 2.9 for g in gaps(seen)), (gaps(seen), client.log)


def test_retry_after_values_read() -> None:
    assert retry_after("7") == 7.0 and retry_after("-2") == 0.0
    assert retry_after(formatdate(time.time() - 60, usegmt=True)) == 0.0
    assert 8 < (retry_after(formatdate(time.time() + 10, usegmt=True)) or 0) <= 10
    # Not a Retry-After: absent, so the client's own backoff applies.
    for bad in (None, "", "soon", "inf", "nan", "Wed, 21 Oct 2015 07:28:00"):
        assert retry_after(bad) is None, bad
