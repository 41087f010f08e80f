"""disco.compat: the Python 2/3 names that job scripts written for Disco 0.5 import."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest

from disco import compat


@pytest.mark.parametrize(("given", "as_bytes", "as_str"), [
    ("plain", b"plain", "plain"),
    ("h\u00e4rk\u00e4", "h\u00e4rk\u00e4".encode("utf-8"), "h\u00e4rk\u00e4"),
    (b"\x00raw", b"\x00raw", "\x00raw"),
])
def test_text_and_bytes_both_ways(given: str | bytes, as_bytes: bytes, as_str: str) -> None:
    assert compat.str_to_bytes(given) == as_bytes
    assert compat.bytes_to_str(given) == as_str
    assert compat.bytes_to_str(compat.str_to_bytes(given)) == as_str


def test_bytes_like_values_and_other_objects() -> None:
    assert compat.str_to_bytes(bytearray(b"ab")) == b"ab"
    assert type(compat.str_to_bytes(memoryview(b"cd"))) is bytes
    assert compat.bytes_to_str(bytearray(b"ef")) == "ef"
    # Anything that is neither text nor bytes is handed back as it came.
    assert compat.str_to_bytes(7) == 7 and compat.bytes_to_str(None) is None


def test_single_bytes_and_python3_names() -> None:
    assert compat.bytes_of_int(255) == b"\xff" and compat.bytes_of_int(65) == b"A"
    assert compat.int_of_byte(b"A"[0]) == 65
    assert compat.basestring is str and compat.integer_types == (int,)
    assert compat.force_utf8("\u00e4") == "\u00e4" and compat.force_ascii("x") == "x"
    assert compat.StringIO is io.StringIO and compat.BytesIO is io.BytesIO
    assert compat.pickle_loads(compat.pickle_dumps({"k": [1]})) == {"k": [1]}
    assert compat.UnpicklingError is pickle.UnpicklingError
    assert compat.urlencode({"a": "b c"}) == "a=b+c"
    assert list(compat.zip_longest([1], [2, 3])) == [(1, 2), (None, 3)]
    assert compat.http_server.BaseHTTPRequestHandler and compat.httplib.HTTPConnection
    assert compat.socket_server.ThreadingMixIn


def test_file_means_an_open_local_file(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"12345")
    opened = compat.file(str(path), "rb")
    try:
        assert isinstance(opened, io.FileIO) and opened.read() == b"12345"
    finally:
        opened.close()
    # What open() gives, buffered or text, is a local file too; memory streams are not.
    with open(path, "rb") as binary, open(path) as text:
        assert isinstance(binary, compat.file) and isinstance(text, compat.file)
    assert not isinstance(io.BytesIO(b"12345"), compat.file)
    assert not isinstance(io.StringIO("12345"), compat.file)
    assert not isinstance(b"12345", compat.file)
