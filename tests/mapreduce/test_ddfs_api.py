"""DDFS through its Python client (`disco.ddfs.DDFS`) on a real master and two real nodes,
blobs and tags kept in two copies: what Disco's test_ddfs.py checks (push, tag, put,
delete, blobs, pull, walk, findtags, attributes, update and delayed semantics, tokens),
and where the copies land."""

from __future__ import annotations

import io
import json
import random
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from runtime_fixtures import Cluster, client_cluster  # noqa: E402

from disco.core import Disco, result_iterator  # noqa: E402
from disco.ddfs import DDFS, InvalidTag  # noqa: E402
from disco.error import CommError  # noqa: E402
from disco.mapreduce.ddfs.names import parse_url  # noqa: E402

DDFS_ARGS = ["--ddfs-blob-replicas", "2", "--ddfs-tag-replicas", "2",
             "--ddfs-delayed-flush", "0.2"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with client_cluster("ddfs-api", nodes=2, master_args=DDFS_ARGS) as c:
        yield c


@pytest.fixture()
def ddfs(cluster: Cluster) -> DDFS:
    return DDFS(cluster.url)


def data(text: str) -> io.BytesIO:
    return io.BytesIO(text.encode())


def names(ddfs: DDFS, tag: str, token: str | None = None) -> list[str]:
    """Blob names of the tag, oldest first (tags list their newest urls first)."""
    return [DDFS.blob_name(replicas[0]) for replicas in ddfs.blobs(tag, token=token)][::-1]


def code(fn: Any) -> int | None:
    with pytest.raises(CommError) as caught:
        fn()
    return caught.value.code


def on_disk(cluster: Cluster, url: str) -> Path:
    """The file a disco://<node>/ddfs/... URL names, in that node's DDFS_DATA."""
    parsed = parse_url(url)
    assert parsed is not None, url
    path = url.split("/ddfs/", 1)[1]
    return cluster.data(parsed.host) / "ddfs" / path


def test_push_exists_delete(ddfs: DDFS) -> None:
    ddfs.push("test:push", [(data("blobdata"), "blobdata")])
    ddfs.push("tag://test:push2", [(data("blobdata"), "blobdata")])
    assert ddfs.exists("test:push") and ddfs.exists("tag://test:push2")
    assert {"test:push", "test:push2"} <= set(ddfs.list("test:push"))
    assert ddfs.delete("test:push") == "deleted"
    assert ddfs.delete("tag://test:push2") == "deleted"
    assert not ddfs.exists("test:push") and not ddfs.exists("test:push2")
    assert ddfs.list("test:push") == []
    assert ddfs.delete("test:notag") == "deleted"  # deleting what is not there is fine


def test_copies_land_on_both_nodes(ddfs: DDFS, cluster: Cluster) -> None:
    locations, [replicas] = ddfs.push("test:copies", [(data("two copies"), "twice")])
    assert {parse_url(u).host for u in replicas} == set(cluster.node_hosts)
    assert len({parse_url(u).objname for u in replicas}) == 1  # one blob, two copies
    for url in replicas:
        assert on_disk(cluster, url).read_bytes() == b"two copies"
    assert {parse_url(u).host for u in locations} == set(cluster.node_hosts)
    for url in locations:
        stored = json.loads(on_disk(cluster, url).read_text())
        assert stored["urls"] == [replicas] and stored["id"].startswith("test:copies$")
        assert set(stored) >= {"version", "id", "last-modified", "read-token", "write-token",
                               "urls", "user-data"}
    # More copies than nodes cannot be had.
    assert code(lambda: ddfs.push("test:copies", [(data("x"), "x")], replicas=3)) == 403
    ddfs.delete("test:copies")


def test_tag_put_get(ddfs: DDFS) -> None:
    ddfs.tag("test:tag", [["urls"]])
    ddfs.tag("tag://test:tag", [["more_urls"]])
    assert sorted(ddfs.get("test:tag")["urls"]) == [["more_urls"], ["urls"]]
    assert ddfs.get(["test:tag"])["urls"] == ddfs.urls("test:tag")
    tag = ddfs.get("test:tag")
    assert "read-token" not in tag and "write-token" not in tag  # tokens are never shown
    assert tag["id"].startswith("test:tag$") and tag["version"] == 1
    ddfs.put("test:tag", [["replaced"]])
    assert ddfs.urls("test:tag") == [["replaced"]]
    ddfs.put("test:tag", [])
    assert ddfs.urls("test:tag") == []
    ddfs.delete("test:tag")
    assert code(lambda: ddfs.get("test:tag")) == 404


def test_reading_blobs_and_tag_graphs(ddfs: DDFS) -> None:
    ddfs.push("test:blobs", [(data("datablob"), "blobdata")])
    ddfs.push("test:blobs", [(data("datablob2"), "blobdata2")])
    ddfs.push("test:emptyblob", [(data(""), "empty")])
    ddfs.tag("test:metatag", [["tag://test:blobs"], ["tag://test:metatag"],
                              ["tag://test:nothere"]])
    try:
        assert names(ddfs, "test:blobs") == ["blobdata", "blobdata2"]
        assert [(DDFS.blob_name(f.url), f.read()) for f in ddfs.pull("test:blobs")] == \
            [("blobdata2", b"datablob2"), ("blobdata", b"datablob")]
        assert [f.read() for f in ddfs.pull("test:blobs", blobfilter=lambda b: "2" in b)] \
            == [b"datablob2"]
        assert [(len(f), f.read()) for f in ddfs.pull("test:emptyblob")] == [(0, b"")]
        assert code(lambda: next(ddfs.pull("test:notag"))) == 404
        assert list(ddfs.blobs("test:notag")) == []
        assert code(lambda: list(ddfs.blobs("test:notag", ignore_missing=False))) == 404
        # The metatag refers to itself and to a missing tag: neither loops nor fails.
        found = {tag: (tags, len(blobs)) for tag, tags, blobs in
                 ddfs.findtags(["test:metatag"])}
        assert found == {"tag://test:metatag": (["tag://test:blobs", "tag://test:metatag",
                                                 "tag://test:nothere"], 0),
                         "tag://test:blobs": ([], 2)}
        paths = [path for path, _tags, _blobs in ddfs.walk("test:metatag")]
        assert paths == [("tag://test:metatag",),
                         ("tag://test:metatag", "tag://test:blobs"),
                         ("tag://test:metatag", "tag://test:nothere")]
        assert sorted(DDFS.blob_name(r[0]) for r in ddfs.blobs("test:metatag")) == \
            ["blobdata", "blobdata2"]
        assert ddfs.exists("test:metatag") and not ddfs.exists("test:nothere")
        assert not ddfs.exists("!!") and not ddfs.exists("")
        assert {"test:blobs", "test:emptyblob", "test:metatag"} <= set(ddfs.list("test:"))
        assert ddfs.list("test:nothere") == []
    finally:
        for tag in ("test:blobs", "test:emptyblob", "test:metatag"):
            ddfs.delete(tag)


def test_update_skips_names_already_there(ddfs: DDFS) -> None:
    for _ in range(3):
        ddfs.push("test:update", [(data("x"), "dup")] * 2, update=True)
    assert names(ddfs, "test:update") == ["dup"]
    for _ in range(3):
        ddfs.push("test:update", [(data("x"), "dup2")], update=True, delayed=True)
    assert names(ddfs, "test:update") == ["dup", "dup2"]
    ddfs.delete("test:update")

    keys = [str(random.randint(1, 12)) for _ in range(25)]
    for key in keys:
        ddfs.push("test:update", [(data("x"), key)], update=True)
    assert names(ddfs, "test:update") == list(dict.fromkeys(keys))  # first appearance order
    ddfs.delete("test:update")


def test_plain_update_and_delayed_mix(ddfs: DDFS) -> None:
    expected = []
    for key in map(str, range(4)):
        ddfs.push("test:mixed", [(data("x"), key)] * 2)
        expected += [key] * 2
    for key in map(str, range(6)):
        ddfs.push("test:mixed", [(data("x"), key)] * 2, update=True)
        if int(key) > 3:
            expected.append(key)
    for key in map(str, range(4)):
        ddfs.push("test:mixed", [(data("x"), key)] * 2, delayed=True)
        expected += [key] * 2
    assert names(ddfs, "test:mixed") == expected
    ddfs.delete("test:mixed")


def test_attributes(ddfs: DDFS) -> None:
    ddfs.push("test:attrs", [(data("datablob"), "blobdata")])
    ddfs.setattr("test:attrs", "a1", "v1")
    ddfs.setattr("test:attrs", "a2", "v2")
    assert ddfs.getattr("test:attrs", "a1") == "v1"
    assert ddfs.attrs("test:attrs") == {"a1": "v1", "a2": "v2"}
    ddfs.setattr("test:attrs", "a1", "v1.2")
    assert ddfs.getattr("test:attrs", "a1") == "v1.2"
    ddfs.delattr("test:attrs", "a2")
    ddfs.delattr("test:attrs", "unknown")  # deleting what is not there is fine
    assert ddfs.attrs("test:attrs") == {"a1": "v1.2"}
    assert code(lambda: ddfs.getattr("test:attrs", "a2")) == 404
    assert code(lambda: ddfs.setattr("test:attrs", "ddfs:a1", "v")) == 404  # reserved
    assert ddfs.getattr("test:attrs", "ddfs:urls") == ddfs.urls("test:attrs")
    assert code(lambda: ddfs.delattr("test:nothere", "a1")) == 404
    ddfs.delete("test:attrs")


def test_tokens(ddfs: DDFS) -> None:
    for tag in ("test:authrd", "test:authwr", "test:authempty"):
        ddfs.push(tag, [(data("datablob"), "blobdata")])
        ddfs.setattr(tag, "a", "v")
    ddfs.setattr("test:authrd", "ddfs:read-token", "rdr")
    ddfs.setattr("test:authwr", "ddfs:write-token", "wtr")
    ddfs.setattr("test:authempty", "ddfs:read-token", "")
    ddfs.setattr("test:authempty", "ddfs:write-token", "")
    try:
        # A read token: nothing can be read without it, but the tag exists.
        assert code(lambda: ddfs.get("test:authrd")) == 401
        assert code(lambda: ddfs.getattr("test:authrd", "a", token="rand")) == 401
        assert ddfs.getattr("test:authrd", "a", token="rdr") == "v"
        assert ddfs.exists("test:authrd")
        ddfs.setattr("test:authrd", "a2", "v2")  # no write token: anyone may write
        assert ddfs.getattr("test:authrd", "a2", token="rdr") == "v2"
        # A write token: anyone reads, only its holder writes.
        assert ddfs.getattr("test:authwr", "a") == "v"
        assert code(lambda: ddfs.setattr("test:authwr", "a2", "v2")) == 401
        assert code(lambda: ddfs.setattr("test:authwr", "a2", "v2", token="rand")) == 401
        assert code(lambda: ddfs.delete("test:authwr")) == 401
        ddfs.setattr("test:authwr", "ddfs:read-token", "r", token="wtr")
        assert code(lambda: ddfs.getattr("test:authwr", "a")) == 401
        assert ddfs.getattr("test:authwr", "a", token="r") == "v"
        assert ddfs.tokens("test:authwr", token="wtr") == ("r", "wtr")
        assert ddfs.tokens("test:authwr", token="r") == ("r", None)  # r cannot see wtr
        # Empty tokens are tokens too.
        assert code(lambda: ddfs.getattr("test:authempty", "a")) == 401
        assert ddfs.getattr("test:authempty", "a", token="") == "v"
        # A tag created with a token has it as both its read and its write token.
        ddfs.push("test:atomic", [(data("abc"), "atom")], update=True, delayed=True,
                  token="secret1")
        assert code(lambda: ddfs.getattr("test:atomic", "foobar")) == 401
        assert ddfs.getattr("test:atomic", "ddfs:write-token", token="secret1") == "secret1"
        ddfs.put("test:notoken", [])
        assert ddfs.getattr("test:notoken", "ddfs:write-token") is None
        ddfs.chtok("test:atomic", "secret2", token="secret1")
        assert ddfs.tokens("test:atomic", token="secret2") == ("secret2", "secret2")
        assert code(lambda: ddfs.get("test:atomic", token="secret1")) == 401
        # The token may come in the tag URL.
        assert ddfs.get("tag://token:secret2@/test:atomic")["urls"]
    finally:
        ddfs.delete("test:authrd")
        ddfs.delete("test:authwr", token="wtr")
        ddfs.delete("test:authempty", token="")
        ddfs.delete("test:atomic", token="secret2")
        ddfs.delete("test:notoken")


def test_delete_and_create_again(ddfs: DDFS) -> None:
    ddfs.push("test:again", [(data("datablob"), "blobdata")])
    ddfs.delete("test:again")
    assert ["tag://test:again"] in ddfs.urls("+deleted")  # readable, never writable
    assert code(lambda: ddfs.tag("+deleted", [["x"]])) == 403
    ddfs.push("test:again", [(data("abc"), "atom")], token="secret1")
    assert ddfs.exists("test:again") and "test:again" in ddfs.list("test:again")
    assert names(ddfs, "test:again", token="secret1") == ["atom"]  # nothing old is back
    assert ["tag://test:again"] not in ddfs.urls("+deleted")
    ddfs.delete("test:again", token="secret1")


def test_invalid_requests(ddfs: DDFS, cluster: Cluster) -> None:
    with pytest.raises(InvalidTag):
        ddfs.get("")
    assert code(lambda: ddfs.get("bad!name")) == 403
    assert code(lambda: ddfs.tag("bad!name", [["x"]])) == 403
    http = cluster.http
    assert http.get(f"{cluster.url}/ddfs/new_blob/bad!name").status_code == 403
    assert http.post(f"{cluster.url}/ddfs/tag/test:bad", content=b"{not json").status_code == 403
    assert http.post(f"{cluster.url}/ddfs/tag/test:bad", content=b'"not lists"').status_code == 403
    assert http.post(f"{cluster.url}/ddfs/tag/test:bad", content=b"[[1]]").status_code == 403
    assert http.put(f"{cluster.url}/ddfs/tag/test:bad/a", content=b"[1]").status_code == 403
    assert not ddfs.exists("test:bad")


def test_chunk_stores_records(ddfs: DDFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [f"line {i} {'x' * (i % 50)}\n" for i in range(3000)]
    (tmp_path / "input.txt").write_text("".join(lines))
    monkeypatch.chdir(tmp_path)
    _locations, blobs = ddfs.chunk("test:chunk", ["./input.txt"], chunk_size=20_000)
    assert 3 <= len(blobs) <= 30
    assert all(DDFS.blob_name(r[0]).startswith("input_txt-") for r in blobs)
    records = list(result_iterator(["tag://test:chunk"]))
    assert sorted(records) == sorted(line.encode() for line in lines)
    # Every chunk holds whole records and reads on its own.
    per_blob = [list(result_iterator([replicas])) for replicas in blobs]
    assert sum(len(r) for r in per_blob) == len(lines) and all(per_blob)
    ddfs.delete("test:chunk")


def test_blacklisted_node_gets_no_new_data(ddfs: DDFS, cluster: Cluster) -> None:
    disco = Disco(cluster.url)
    spared, blacklisted = cluster.node_hosts
    disco.blacklist(blacklisted)
    try:
        for i in range(4):
            _loc, [replicas] = ddfs.push("test:blacklist", [(data("x"), f"b{i}")], replicas=1)
            assert [parse_url(u).host for u in replicas] == [spared]
        assert code(lambda: ddfs.push("test:blacklist", [(data("x"), "two")])) == 403
        locations = ddfs.tag("test:blacklist", [["y"]])
        assert {parse_url(u).host for u in locations} == {spared}
    finally:
        disco.whitelist(blacklisted)
    _loc, [replicas] = ddfs.push("test:blacklist", [(data("x"), "both")])
    assert {parse_url(u).host for u in replicas} == set(cluster.node_hosts)
    ddfs.delete("test:blacklist")


def test_delayed_updates_are_committed_together(ddfs: DDFS, cluster: Cluster) -> None:
    locations = ddfs.tag("test:delayed", [["raw://0"]])
    tag_dir = on_disk(cluster, locations[0]).parent.parent

    def versions() -> int:
        return sum(1 for p in tag_dir.rglob("test:delayed$*"))

    before = versions()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: ddfs.tag("test:delayed", [[f"raw://{i}"]],
                                                   delayed=True), range(1, 9)))
    # Eight updates arriving within one flush interval make one new version (two, if they
    # straddle a flush), and every caller is told where the committed tag is.
    assert 1 <= versions() - before <= 2
    assert all(len(a) == 2 for a in answers)
    assert sorted(ddfs.urls("test:delayed")) == [[f"raw://{i}"] for i in range(9)]
    ddfs.delete("test:delayed")


def test_download_answers_json_of_tags_and_master_urls(ddfs: DDFS, cluster: Cluster) -> None:
    # `DDFS._download` is the low-level call Disco's own scripts use (test_gc.py polls
    # `master + "/ddfs/ctrl/gc_status"` with it): a tag URL or a master URL, JSON back.
    ddfs.tag("test:download", [["raw://a"]])
    assert ddfs._download("tag://test:download")["urls"] == [["raw://a"]]
    assert ddfs._download(cluster.url + "/ddfs/tags/test:down") == ["test:download"]
    status = ddfs._download(ddfs.master + "/ddfs/ctrl/gc_status")
    assert status == json.loads(cluster.http.get(cluster.url + "/ddfs/ctrl/gc_status").text)
    assert status == ""  # no GC runs: an empty JSON string, not "no answer" (None)
    # A body goes as it is given, already encoded; tokens apply as with every call.
    attr = ddfs.master + "/ddfs/tag/test:download/"
    ddfs._download(attr + "ddfs:write-token", data=json.dumps("w1"), method="PUT")
    assert code(lambda: ddfs._download(attr + "a1", data='"v"', method="PUT")) == 401
    ddfs._download(attr + "a1", data='"v"', method="PUT", token="w1")
    assert ddfs.getattr("test:download", "a1") == "v"
    assert code(lambda: ddfs._download("tag://test:nosuchtag")) == 404
    ddfs.delete("test:download", token="w1")
