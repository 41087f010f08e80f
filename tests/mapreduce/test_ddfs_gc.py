"""DDFS garbage collection on a real master and three real nodes (two copies of every blob
and tag): orphaned blobs, old tag versions, deleted tags and unfinished uploads go, tagged
and young data stays; after a node is killed, its blobs and tags are copied again until two
live nodes hold each."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from starlette.requests import Request

sys.path.insert(0, str(Path(__file__).parent))
from runtime_fixtures import Cluster, client_cluster, wait_until  # noqa: E402

from disco.ddfs import DDFS  # noqa: E402
from disco.mapreduce.ddfs import routes  # noqa: E402
from disco.mapreduce.ddfs.names import parse_url  # noqa: E402

GRACE = 1.0
GC_ARGS = ["--ddfs-blob-replicas", "2", "--ddfs-tag-replicas", "2",
           "--ddfs-orphan-grace", str(GRACE), "--ddfs-partial-grace", str(GRACE),
           "--ddfs-gc-initial-wait", "3600", "--ddfs-delayed-flush", "0.2"]


@pytest.fixture()
def cluster() -> Iterator[Cluster]:
    with client_cluster("ddfs-gc", nodes=3, master_args=GC_ARGS) as c:
        yield c


def run_gc(cluster: Cluster) -> dict[str, Any]:
    reply = cluster.http.post(f"{cluster.url}/ddfs/ctrl/gc_start", params={"wait": "1"})
    reply.raise_for_status()
    return reply.json()["stats"]


def copies(cluster: Cluster, replicas: list[str]) -> set[str]:
    """The nodes holding a file of the blob whose replica URLs are given."""
    objname = parse_url(replicas[0]).objname
    return {h for h in cluster.node_hosts
            if any(p.name == objname for p in (cluster.data(h) / "ddfs").rglob("*"))}


def tag_versions(cluster: Cluster, host: str, tag: str) -> list[str]:
    return sorted(p.name for p in (cluster.data(host) / "ddfs" / "vol0" / "tag").rglob("*")
                  if p.name.startswith(f"{tag}$"))


def upload_untagged(cluster: Cluster, name: str) -> list[str]:
    """A blob nobody tags: uploaded as a client would, never added to a tag."""
    targets = cluster.http.get(f"{cluster.url}/ddfs/new_blob/{name}").json()
    return [cluster.http.put(url, content=b"untagged").json() for url in targets]


def test_gc_removes_what_no_tag_needs(cluster: Cluster) -> None:
    ddfs = DDFS(cluster.url)
    _loc, [kept] = ddfs.push("gc:keep", [(io.BytesIO(b"kept"), "kept")])
    for value in ("1", "2"):
        locations = ddfs.setattr("gc:keep", "a", value)  # two more versions of the tag
    keep_holders = {parse_url(u).host for u in locations}
    _loc, [gone] = ddfs.push("gc:gone", [(io.BytesIO(b"gone"), "gone")])
    ddfs.delete("gc:gone")
    untagged = upload_untagged(cluster, "untagged")
    holder = parse_url(kept[0]).host
    partial = cluster.data(holder) / "ddfs" / "vol0" / "blob" / "00" / "!partial-x$1-2-3-abcd"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"half an upload")
    os.utime(partial, (time.time() - 3600, time.time() - 3600))
    time.sleep(GRACE + 0.2)
    young = upload_untagged(cluster, "young")  # untagged too, but not for long enough

    stats = run_gc(cluster)
    assert "deletion" not in stats and stats["unreachable"] == []
    assert stats["blobs_deleted"] == 4  # gone and untagged, two copies each
    assert stats["partials_deleted"] == 1
    assert copies(cluster, kept) == {parse_url(u).host for u in kept}
    assert copies(cluster, gone) == set() and copies(cluster, untagged) == set()
    assert len(copies(cluster, young)) == 2
    assert not partial.exists()
    # One version of gc:keep is left on each node holding it; none of gc:gone anywhere.
    current = ddfs.get("gc:keep")["id"]
    for host in cluster.node_hosts:
        assert tag_versions(cluster, host, "gc:keep") == ([current] if host in keep_holders
                                                         else [])
        assert tag_versions(cluster, host, "gc:gone") == []
    assert ["tag://gc:gone"] in ddfs.urls("+deleted")  # remembered, in case a node comes back
    assert [f.read() for f in ddfs.pull("gc:keep")] == [b"kept"]
    assert cluster.http.get(f"{cluster.url}/ddfs/ctrl/gc_stats").json()["stats"] == stats
    # Disco's idle answer, which its scripts poll for ("" once no run is going on).
    assert cluster.http.get(f"{cluster.url}/ddfs/ctrl/gc_status").json() == ""


def test_node_loss_is_repaired(cluster: Cluster) -> None:
    ddfs = DDFS(cluster.url)
    contents = {f"b{i}": f"blob {i}".encode() for i in range(4)}
    locations, blobs = ddfs.push("gc:rr", [(io.BytesIO(d), n) for n, d in contents.items()])
    tag_holders = [parse_url(u).host for u in locations]
    held = {h: sum(h in {parse_url(u).host for u in r} for r in blobs) for h in tag_holders}
    victim = max(held, key=lambda h: held[h])  # holds the tag and at least one blob
    assert held[victim] >= 1
    survivors = set(cluster.node_hosts) - {victim}
    # Tags of URLs only (no blobs to copy): those on the victim are copied as they are.
    on_victim: list[str] = []
    for i in range(30):  # tags go to two random nodes of three: soon two are on the victim
        if len(on_victim) == 2:
            break
        locations = ddfs.tag(f"gc:plain{i}", [["raw://x"]])
        if victim in {parse_url(u).host for u in locations}:
            on_victim.append(f"gc:plain{i}")
    cluster.nodes[victim].kill9()
    wait_until(lambda: not cluster.get("nodeinfo")[victim]["connected"], 15,
               "the master to notice the dead node")

    stats = run_gc(cluster)
    assert stats["unreachable"] == [victim] and "deletion" not in stats
    assert stats["replicated_blobs"] == held[victim] and stats["lost_blobs"] == 0
    assert stats["retagged"] == 1  # the tag lists the new copies (in a version of its own)
    assert stats["replicated_tags"] == len(on_victim)
    for name in on_victim:
        for host in survivors:
            assert tag_versions(cluster, host, name) == [ddfs.get(name)["id"]]
    tag = ddfs.get("gc:rr")
    assert len(tag["urls"]) == 4
    for replicas in tag["urls"]:
        live = [u for u in replicas if parse_url(u).host in survivors]
        assert len(live) == 2, replicas
        assert replicas[:2] == live  # the live copies are listed first
        name = DDFS.blob_name(replicas[0])
        for url in live:
            assert cluster.http.get(f"http://{parse_url(url).host}:{cluster.port}/"
                             f"{url.split('/', 3)[3]}").content == contents[name]
    for host in survivors:  # both live nodes hold the tag's current version
        assert tag_versions(cluster, host, "gc:rr")[-1] == tag["id"]
    assert sorted(f.read() for f in ddfs.pull("gc:rr")) == sorted(contents.values())
    # Once repaired, a second run finds nothing to copy.
    again = run_gc(cluster)
    assert again["replicated_blobs"] == 0 and again["replicated_tags"] == 0


def test_gc_status_names_the_phase_of_a_running_collection() -> None:
    # A run is over in a blink on a test cluster, so the route is asked with a stand-in
    # collector in the middle of one, and once it is done.
    gc = SimpleNamespace(running=True, phase="rr_blobs")
    request = cast(Request, SimpleNamespace(
        app=SimpleNamespace(state=SimpleNamespace(master=SimpleNamespace(
            ddfs=SimpleNamespace(gc=gc))))))

    def answer() -> Any:
        return json.loads(asyncio.run(routes.gc_status(request)).body)

    assert answer() == "GC is running (phase: rr_blobs)"
    gc.phase = None  # started, no phase entered yet
    assert answer() == "GC is running (phase: starting)"
    gc.running = False
    assert answer() == ""
