"""Jobs and DDFS, with Disco's own client on a real master and two nodes: `tag://` inputs
(with tokens too), results saved in a tag with `save_results`, out-of-band data, and tags
given to the master directly in a job pack."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from runtime_fixtures import Cluster, client_cluster, pipeline_pack  # noqa: E402

from disco.core import Disco, Job, result_iterator  # noqa: E402
from disco.ddfs import DDFS  # noqa: E402
from disco.error import CommError, DiscoError  # noqa: E402
from disco.worker.classic.func import chain_reader  # noqa: E402

WORDS = {"part1": b"a b\nc\n", "part2": b"b c d\n"}
COUNTS = [(b"a", 1), (b"b", 2), (b"c", 2), (b"d", 1)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with client_cluster("ddfs-jobs", nodes=2,
                        master_args=["--ddfs-blob-replicas", "2", "--ddfs-tag-replicas", "2",
                                     "--ddfs-delayed-flush", "0.2"]) as c:
        yield c


@pytest.fixture(scope="module")
def ddfs(cluster: Cluster) -> Iterator[DDFS]:
    client = DDFS(cluster.url)
    client.push("jobs:words", [(data, name) for name, data in WORDS.items()])
    client.push("jobs:secret", [(data, name) for name, data in WORDS.items()], token="r")
    yield client
    client.delete("jobs:words")
    client.delete("jobs:secret", token="r")


def count_words(inputs: list[str], **jobargs: object) -> Job:
    # Job functions are defined here, so that they are shipped by value (cloudpickle) and
    # the nodes need not import this test module.
    def fun_map(line: bytes, params: object) -> Iterator[tuple[bytes, int]]:
        for word in line.split():
            yield word, 1

    def fun_reduce(iter: Iterator[tuple[bytes, int]], params: object) -> Iterator[tuple[bytes, int]]:
        from disco.util import kvgroup
        for word, counts in kvgroup(sorted(iter)):
            yield word, sum(counts)

    return Job(name="ddfsjob").run(input=inputs, map=fun_map, reduce=fun_reduce, **jobargs)


def test_job_reads_a_tag(ddfs: DDFS) -> None:
    job = count_words(["tag://jobs:words"])
    assert sorted(result_iterator(job.wait(poll_interval=0.2))) == COUNTS
    job.purge()


def test_job_reads_a_tag_with_a_token(ddfs: DDFS) -> None:
    job = count_words(["tag://token:r@/jobs:secret"])
    assert sorted(result_iterator(job.wait(poll_interval=0.2))) == COUNTS
    job.purge()
    with pytest.raises(CommError) as refused:
        count_words(["tag://jobs:secret"])  # the client cannot expand it without the token
    assert refused.value.code == 401


def test_save_results_in_a_tag(ddfs: DDFS) -> None:
    job = count_words(["tag://jobs:words"], save_results=True)
    results = job.wait(poll_interval=0.2)
    tag = f"disco:results:{job.name}"
    assert results == [[f"tag://{tag}"]]
    assert sorted(result_iterator(results)) == COUNTS
    assert ddfs.exists(tag) and tag in ddfs.list("disco:results:")
    # One entry per output file (as Disco tags them), not the results indexes.
    saved = ddfs.urls(tag)
    assert saved and all(len(r) == 1 and r[0].startswith("disco://") for r in saved)
    # A later job reads the saved results through the tag.

    def scale(kv: tuple[bytes, int], params: object) -> list[tuple[bytes, int]]:
        return [(kv[0], kv[1] * 10)]

    second = Job(name="ddfsjob2").run(input=[f"tag://{tag}"], map=scale, map_reader=chain_reader)
    assert sorted(result_iterator(second.wait(poll_interval=0.2))) == \
        [(w, n * 10) for w, n in COUNTS]
    assert any("Results saved to tag://" in msg for _o, (_t, _h, msg) in job.events())
    for j in (job, second):
        j.purge()
    ddfs.delete(tag)


def test_saved_map_only_results_keep_one_blob_per_task(ddfs: DDFS) -> None:
    # Disco saves every task's output as a blob; the per-node shuffle must not merge them.
    def shout(line: str, params: object) -> list[tuple[str, str]]:
        return [(line + "!", "")]

    inputs = [f"raw://{n}" for n in range(6)]
    job = Job(name="savemap").run(input=inputs, map=shout, save_results=True)
    results = job.wait(poll_interval=0.2)
    tag = f"disco:results:{job.name}"
    assert results == [[f"tag://{tag}"]]
    assert sorted(result_iterator(results)) == [(f"{n}!", "") for n in range(6)]
    assert len(ddfs.urls(tag)) == len(inputs)
    job.purge()
    ddfs.delete(tag)


def test_out_of_band_data(ddfs: DDFS, cluster: Cluster) -> None:
    def store(line: str, params: object) -> list[tuple[str, int]]:
        Task.put(f"len-{line}", str(len(line)).encode())  # noqa: F821 - a task global
        return [(line, 1)]

    job = Job(name="oobjob").run(input=["raw://abc", "raw://hello"], map=store)
    job.wait(poll_interval=0.2)
    assert job.oob_list() == ["len-abc", "len-hello"]
    assert job.oob_get("len-hello") == b"5"
    with pytest.raises(DiscoError):
        Disco(cluster.url).oob_get(job.name, "len-nothing")
    assert ddfs.exists(f"disco:job:oob:{job.name}")
    job.purge()
    ddfs.delete(f"disco:job:oob:{job.name}")


def test_master_expands_tags_in_job_packs(ddfs: DDFS, cluster: Cluster) -> None:
    """A job pack naming a tag (no client expanded it): the master reads the tag and gives
    each blob to a task; the test worker reads the blobs over HTTP from the nodes."""
    name = cluster.submit(pipeline_pack(["tag://token:r@/jobs:secret"], [["map", "split"]]))
    status, results = cluster.wait(name)
    assert status == "ready", cluster.event_text(name)
    assert len(results) == 2  # one task per blob
    assert sorted(data for _label, data in cluster.result_data(results)) == \
        sorted(d.upper() for d in WORDS.values())
    refused = cluster.submit(pipeline_pack(["tag://jobs:secret"], [["map", "split"]]))
    status, _results = cluster.wait(refused)
    assert status == "dead"
    assert "Tag operation requires token" in cluster.event_text(refused)
    missing = cluster.submit(pipeline_pack(["tag://jobs:nothere"], [["map", "split"]]))
    assert cluster.wait(missing)[0] == "dead"
    assert "Tag not found" in cluster.event_text(missing)
