"""Splitting input into units (lines, bytes, records; SHA-256 each) and the comparators."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from disco.errors import DiscoError
from disco.taskfarm import compare
from disco.taskfarm.split import read_file, split


def test_lines_bytes_and_records() -> None:
    data = b"a\nb\nc\nd\ne"
    assert [c.data for c in split(data, "lines", 2)] == [b"a\nb\n", b"c\nd\n", b"e"]
    assert [c.data for c in split(data, "bytes", 4)] == [b"a\nb\n", b"c\nd\n", b"e"]
    assert [c.data for c in split(b'{"a":1}\n{"a":2}\n{"a":3}\n', "records", 2)] == [b'{"a":1}\n{"a":2}\n', b'{"a":3}\n']
    assert [c.data for c in split(b"x;y;z;", "records", 1, b";")] == [b"x;", b"y;", b"z;"]
    chunks = split(b"one\ntwo\n", "lines", 1)
    assert [c.seq for c in chunks] == [0, 1] and chunks[1].sha256 == hashlib.sha256(b"two\n").hexdigest()
    assert split(b"", "lines", 10) == []
    # Nothing lost or added, whatever the split.
    blob = bytes(range(256)) * 40
    for by in ("lines", "bytes", "records"):
        assert b"".join(c.data for c in split(blob, by, 7)) == blob


def test_files_only_under_the_allowed_directories(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data").write_bytes(b"x")
    (tmp_path / "secret").write_bytes(b"s")
    assert read_file(str(tmp_path / "in" / "data"), [tmp_path / "in"], 10) == b"x"
    for path in (tmp_path / "secret", tmp_path / "in" / ".." / "secret"):
        with pytest.raises(DiscoError) as err:
            read_file(str(path), [tmp_path / "in"], 10)
        assert err.value.code == "input_path_not_allowed"
    with pytest.raises(DiscoError) as err:
        read_file(str(tmp_path / "in" / "data"), [tmp_path / "in"], 0)
    assert err.value.status == 413


@pytest.mark.parametrize(("name", "args", "a", "b", "same"), [
    ("exact", {}, b"1.0", b"1.0", True),
    ("exact", {}, b"1.0", b"1.00", False),
    ("json", {}, b'{"a": 1, "b": [2]}', b'{"b":[2],"a":1}', True),
    ("json", {}, b'{"a": 1}', b'{"a": 2}', False),
    ("float", {"rel": 1e-6}, b"[1.0, 2.0]", b"[1.0000001, 2.0]", True),
    ("float", {"rel": 1e-9}, b"[1.0, 2.0]", b"[1.0001, 2.0]", False),
    ("float", {"abs": 0.01}, b"1.0 2.0\n", b"1.001 2.0", True),
    ("float", {"abs": 0.01}, b'{"x": [1, 2]}', b'{"x": [1, 2, 3]}', False),
    ("float", {}, b"not json", b"not json", True),
])
def test_comparators(name: str, args: dict[str, float], a: bytes, b: bytes, same: bool) -> None:
    assert compare.agree(name, args, a, b) is same
    assert compare.agree(name, args, b, a) is same
