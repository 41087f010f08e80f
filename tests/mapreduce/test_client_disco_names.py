"""Names of Disco's client modules that job scripts import and ours lacked:
disco.comm.open_remote, disco.fileutils.Chunker and CHUNK_SIZE, disco.dPickle."""

from __future__ import annotations

import base64
import datetime
import functools
import io
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count, islice
from typing import Any

import pytest

from disco import dPickle
from disco.comm import open_remote
from disco.ddfs import chunks
from disco.error import CommError
from disco.fileutils import CHUNK_SIZE, Chunker
from disco.worker.task_io import disco_input_stream

BODY = b"first line\nsecond line\n"


@pytest.fixture()
def server() -> Iterator[tuple[str, list[str | None]]]:
    """An HTTP server on loopback serving BODY at /data (404 elsewhere); the Authorization
    header of every request is recorded."""
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            seen.append(self.headers.get("Authorization"))
            found = self.path == "/data"
            self.send_response(200 if found else 404)
            self.send_header("Content-Length", str(len(BODY) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(BODY)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_open_remote_streams_a_url_with_an_optional_token(
        server: tuple[str, list[str | None]]) -> None:
    url, seen = server
    with open_remote(url + "/data") as stream:
        assert stream.size == len(BODY) and list(stream) == BODY.splitlines(keepends=True)
    with open_remote(url + "/data", token="secret") as stream:
        assert stream.read() == BODY
    assert seen == [None, "Basic " + base64.b64encode(b"token:secret").decode()]
    with pytest.raises(CommError) as caught:
        open_remote(url + "/missing")
    assert caught.value.code == 404


def test_chunker_cuts_records_into_readable_pieces() -> None:
    records = [(i, f"value {i}" * 20) for i in range(2000)]
    pieces = list(Chunker(chunk_size=16 << 10).chunks(iter(records)))
    assert len(pieces) > 3 and all(isinstance(piece, io.BytesIO) for piece in pieces)
    # Each piece starts at a record: read on its own, they give the records back in order.
    assert [r for piece in pieces for r in disco_input_stream(piece)] == records
    assert [p.getvalue() for p in pieces] == list(chunks(records, 16 << 10))
    # Few records: one piece, as big as Disco's default makes them (64 MiB).
    assert CHUNK_SIZE == 64 << 20 and Chunker().chunk_size == CHUNK_SIZE
    assert len(list(Chunker().chunks(islice(zip(count(), count()), 100)))) == 1


def _closure_maker() -> Any:
    def inner(x: int) -> tuple[str, int]:
        return "inner", x
    return inner


def _keywords(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    return args, kwargs


def test_dpickle_round_trips_functions_and_data() -> None:
    now = datetime.datetime.now()
    assert dPickle.loads(dPickle.dumps(now)) == now
    assert dPickle.loads(dPickle.dumps(_closure_maker()))(4) == ("inner", 4)
    assert dPickle.loads(dPickle.dumps(lambda x: x * 3))(5) == 15  # by value
    partial = functools.partial(_keywords, 1, extra="d")
    assert dPickle.loads(dPickle.dumps(partial))("a", b="b") == \
        ((1, "a"), {"extra": "d", "b": "b"})
    pattern = re.compile(r"pat+ern.*!")
    assert dPickle.loads(dPickle.dumps(pattern, protocol=2)) == pattern
