"""disco.util, disco.settings, disco.func helpers and Params."""

from __future__ import annotations

import functools
import gzip
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from disco.error import CommError, DataError, DiscoError, JobError
from disco.func import (default_partition, make_range_partition, nop_map, nop_reduce,
                        persistent_hash, sum_combiner, sum_reduce)
from disco.settings import DiscoSettings
from disco.util import (argcount, chainify, decode, dsorted, encode, flatten, hexhash, iterify,
                        jobname, kvgroup, parse_dir, read_index, schemesplit, shuffled, urllist,
                        urlresolve, urlsplit)
from disco.worker import Params, Task, set_current_task


@pytest.fixture()
def settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("DISCO_", "DDFS_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DISCO_SETTINGS_FILE", "/nonexistent")


def test_kvgroup_groups_consecutive_keys_only() -> None:
    pairs = [("a", 1), ("a", 2), ("b", 3), ("a", 4)]
    assert [(k, list(vs)) for k, vs in kvgroup(pairs)] == [("a", [1, 2]), ("b", [3]), ("a", [4])]
    assert [(k, sum(vs)) for k, vs in kvgroup(sorted(pairs))] == [("a", 7), ("b", 3)]


def test_iteration_helpers() -> None:
    assert list(iterify("abc")) == ["abc"] and list(iterify(b"ab")) == [b"ab"]
    assert list(iterify([1, 2])) == [1, 2] and list(iterify(5)) == [5]
    assert list(flatten([1, [2, [3, ("x", [4])]], "yz"])) == [1, 2, 3, "x", 4, "yz"]
    assert chainify([[1, 2], [3], []]) == [1, 2, 3]
    items = list(range(100))
    mixed = shuffled(items)
    assert sorted(mixed) == items and mixed is not items


def test_urlsplit(settings_env: None) -> None:
    assert urlsplit("http://host/path") == ("http", ("host", ""), "path")
    assert urlsplit("http://host:port/path") == ("http", ("host", "port"), "path")
    assert urlsplit("disco://master/long/path") == ("http", ("master", "8989"), "long/path")
    assert urlsplit("disco://localhost/ddfs/path", localhost="localhost", ddfs_data="/dd") == \
        ("file", ("", ""), "/dd/path")
    assert urlsplit("disco://localhost/data/path", localhost="localhost", disco_data="/dt") == \
        ("file", ("", ""), "/dt/path")
    assert urlsplit("dir://n1/disco/n1/ab/j/x.results", localhost="n1", disco_data="/d") == \
        ("file", ("", ""), "/d/n1/ab/j/x.results")
    assert urlsplit("tag://tag", "") == ("tag", ("", ""), "tag")
    assert urlsplit("tag://host/tag", "") == ("tag", ("host", ""), "tag")
    assert urlsplit("tag://host:port/tag", "") == ("tag", ("host", "port"), "tag")
    assert urlsplit("tag://user:token@host/tag")[1] == ("host", "")


def test_urlresolve(settings_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCO_MASTER", "http://master:8989")
    assert urlresolve("http://host/path") == "http://host/path"
    assert urlresolve("disco://master/long/path") == "http://master:8989/long/path"
    assert urlresolve("dir://master/long/path") == "http://master:8989/long/path"
    assert urlresolve("tag://tag") == "http://master:8989/ddfs/tag/tag"
    assert urlresolve("tag://host/tag") == "http://host:8989/ddfs/tag/tag"
    assert urlresolve("tag://host:1234/tag") == "http://host:1234/ddfs/tag/tag"
    assert urlresolve("tag://t", master="http://other:1") == "http://other:1/ddfs/tag/t"
    # A master that is no URL cannot give one: said, not returned as a broken URL.
    for master in ("disco-master", "http://"):
        with pytest.raises(DiscoError, match="not a URL"):
            urlresolve("tag://t", master=master)
        with pytest.raises(DiscoError):
            urlresolve("dir://", master=master)
    assert urlresolve("tag://host/t", master="disco-master") == "http://host:8989/ddfs/tag/t"


def test_urls_given_as_bytes(settings_env: None) -> None:
    assert schemesplit(b"raw://cities.csv?0") == ("raw", "cities.csv?0")
    assert schemesplit(b"no-scheme") == ("", "no-scheme")
    assert urlsplit(b"raw://cities.csv?0") == urlsplit("raw://cities.csv?0") == \
        ("raw", ("cities.csv?0", ""), "")
    assert urlsplit(b"tag://host/t") == ("tag", ("host", ""), "t")
    assert urlsplit("http://h:1/p".encode()) == ("http", ("h", "1"), "p")


def test_encode_leaves_no_zero_bytes_and_decode_undoes_it() -> None:
    import random
    assert encode(b"\x00") == b"\x02\x01\x02" and encode(b"a\x01\x02") == b"a\x01\x01\x02\x02"
    rng = random.Random(7)
    samples = [b"", b"\x02\x01\x02", b"\x02\x00", b"\x01\x00\x02\x02\x01",
               pickle.dumps("\x00\x01\x00\x01\x00", 2), pickle.dumps("\xff\xff", 2)]
    samples += [bytes(rng.choice(b"\x00\x01\x02x") for _ in range(rng.randrange(60)))
                for _ in range(3000)]
    for data in samples:
        encoded = encode(data)
        assert b"\x00" not in encoded
        assert decode(encoded) == data


def test_ensure_free_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import disco.fileutils as fileutils
    fileutils.ensure_free_space(str(tmp_path))  # 1 MiB is free here
    stats = os.statvfs(tmp_path)
    free = stats.f_frsize * stats.f_bavail
    monkeypatch.setattr(fileutils, "MIN_DISK_SPACE", free + (1 << 40))
    with pytest.raises(DataError, match="disk space"):
        fileutils.ensure_free_space(str(tmp_path))


def test_jobname_and_hexhash() -> None:
    url = "dir://n1/disco/n1/a5/WordCount@5a1:2b:3c/.disco/map-0-123.results"
    assert jobname(url) == "WordCount@5a1:2b:3c"
    assert jobname("disco://n1/disco/n1/a5/Job@1:2:3/1b/map-0/map-0") == "Job@1:2:3"
    with pytest.raises(DiscoError):
        jobname("raw://x")
    assert hexhash("Job@1:2:3") == hexhash(b"Job@1:2:3") and len(hexhash("x")) == 2


def test_read_index_and_parse_dir_read_local_indexes(tmp_path: Path) -> None:
    home = tmp_path / "n1" / "ab" / "Job@1:2:3"
    home.mkdir(parents=True)
    lines = "1 disco://n1/disco/n1/ab/Job@1:2:3/b 10\n0 disco://n1/disco/n1/ab/Job@1:2:3/a 5\n"
    (home / "index").write_text(lines)
    (home / "index.gz").write_bytes(gzip.compress(lines.encode()))
    set_current_task(Task(host="n1", disco_data=str(tmp_path), disco_port=8989))
    try:
        for name in ("index", "index.gz"):
            url = f"dir://n1/disco/n1/ab/Job@1:2:3/{name}"
            assert sorted(read_index(url)) == [
                (0, "disco://n1/disco/n1/ab/Job@1:2:3/a", 5),
                (1, "disco://n1/disco/n1/ab/Job@1:2:3/b", 10)]
            assert parse_dir(url) == ["disco://n1/disco/n1/ab/Job@1:2:3/a",
                                      "disco://n1/disco/n1/ab/Job@1:2:3/b"]
            assert parse_dir(url, partition=1) == ["disco://n1/disco/n1/ab/Job@1:2:3/b"]
            assert urllist(url) == [["disco://n1/disco/n1/ab/Job@1:2:3/a"],
                                    ["disco://n1/disco/n1/ab/Job@1:2:3/b"]]
        with pytest.raises(DataError):
            list(read_index("dir://n1/disco/n1/ab/Job@1:2:3/missing"))
    finally:
        set_current_task(None)
    assert urllist(["http://a/x", "http://b/x"]) == [["http://a/x", "http://b/x"]]
    assert urllist("raw://data") == [["raw://data"]]


def test_settings_defaults_environment_and_types(settings_env: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    settings = DiscoSettings()
    assert settings["DISCO_PORT"] == 8989 and settings["DDFS_PUT_PORT"] == 8990
    assert settings["DISCO_TEST_PORT"] == 9444 and settings["DDFS_BLOB_REPLICAS"] == 1
    assert settings["DISCO_MASTER"] == f"http://{settings['DISCO_MASTER_HOST']}:8989"
    assert settings["DISCO_DATA"].endswith(os.path.join("root", "data"))
    monkeypatch.setenv("DISCO_PORT", "7000")
    monkeypatch.setenv("DISCO_ROOT", "/srv/disco")
    monkeypatch.setenv("DDFS_TAG_REPLICAS", "3")
    assert settings["DISCO_PORT"] == 7000
    assert settings["DISCO_MASTER"].endswith(":7000")
    assert settings["DISCO_DATA"] == "/srv/disco/data" and settings["DDFS_DATA"] == "/srv/disco/ddfs"
    assert settings["DDFS_TAG_REPLICAS"] == 3
    assert DiscoSettings(DISCO_MASTER="http://m:1")["DISCO_MASTER"] == "http://m:1"
    with pytest.raises(KeyError):
        settings["NO_SUCH_SETTING"]
    assert pickle.loads(pickle.dumps(DiscoSettings(DISCO_PORT=5)))["DISCO_PORT"] == 5


def test_settings_file_is_read_not_run(tmp_path: Path, settings_env: None) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "settings.py"
    path.write_text(f"DISCO_PORT = 1234\nDISCO_MASTER_HOST = 'filehost'\n"
                    f"DISCO_DATA = open({str(marker)!r}, 'w').name\nimport os\n")
    settings = DiscoSettings(str(path))
    assert settings["DISCO_PORT"] == 1234
    assert settings["DISCO_MASTER"] == "http://filehost:1234"
    assert not settings["DISCO_DATA"].endswith("ran")
    assert not marker.exists()


def test_params() -> None:
    params = Params(n=3, f=lambda x: x + 1)
    assert params.n == 3 and params.f(1) == 2 and params["n"] == 3
    params.state = []
    assert "state" in vars(params)


def test_errors() -> None:
    assert "Job W@1:2:3 failed: boom" == str(JobError("W@1:2:3", "boom"))
    error = CommError("not found", "http://x", 404)
    assert isinstance(error, DataError) and error.code == 404 and "404" in str(error)
    assert DataError("gone", "disco://h/x").url == "disco://h/x"


def test_partition_is_stable_across_processes() -> None:
    keys = ["word", b"bytes", 17, 1.5, ("tuple", 2), None, "\u00e4\u2603"]
    expected = [default_partition(key, 7) for key in keys]
    script = ("import json, sys; from disco.func import default_partition; "
              "keys = ['word', b'bytes', 17, 1.5, ('tuple', 2), None, '\\u00e4\\u2603']; "
              "print(json.dumps([default_partition(k, 7) for k in keys]))")
    for seed in ("1", "2", "random"):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}, timeout=60)
        assert json.loads(out.stdout) == expected
    assert default_partition(1, 7) == default_partition(1.0, 7) == default_partition(True, 7)
    assert persistent_hash("a") != persistent_hash("b")
    spread = {default_partition(f"key{i}", 4) for i in range(100)}
    assert spread == {0, 1, 2, 3}


def test_func_helpers() -> None:
    partition = make_range_partition(0, 100)
    assert [partition(k, 5, None) for k in (0, 25, 50, 100)] == [0, 1, 2, 4]
    assert list(nop_map(("k", "v"), None)) == [("k", "v")]
    buf: dict = {}
    for key in "abca":
        assert sum_combiner(key, 1, buf, False, None) is None
    assert sorted(sum_combiner(None, None, buf, True, None)) == [("a", 2), ("b", 1), ("c", 1)]
    assert sorted(sum_reduce([("a", 1), ("b", 2), ("a", 3)], None)) == [("a", 4), ("b", 2)]

    class Out:
        records: list = []

        def add(self, k, v):
            self.records.append((k, v))
    out = Out()
    nop_reduce([("x", 1)], out, None)
    assert out.records == [("x", 1)]


def test_argcount() -> None:
    def three(a, b, c=None):
        pass
    assert argcount(three) == 3
    assert argcount(functools.partial(three, 1)) == 2
    assert argcount(lambda it, params: None) == 2
    assert argcount(functools.partial(three, c=1)) == 2


def test_dsorted_spills_and_keeps_ties_in_order(tmp_path: Path) -> None:
    records = [((i * 7919) % 1000, i) for i in range(20000)]
    result = list(dsorted(records, key=lambda r: r[0], buffer_bytes=10_000,
                          tempdir=str(tmp_path)))
    assert result == sorted(records, key=lambda r: r[0])  # sorted() is stable too
    assert list(dsorted([3, 1, 2])) == [1, 2, 3]
