"""The task farm with DDFS on a real Disco master and two real nodes (loopback): a project's
input read from a tag (every replica tried, the first that answers read), its results pushed
into a tag exactly once, also when the farm server is killed with -9 and restarted, and when
the server stops between the push, the tag and the record (in-process, at each step); the CLI
end to end; clear errors for a missing tag, a farm without DDFS and a DDFS that does not answer."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

sys.path.insert(0, str(Path(__file__).parent / "mapreduce"))
from runtime_fixtures import Cluster, write_token_file  # noqa: E402

from disco.ddfs import DDFS  # noqa: E402
from disco.settings import DiscoSettings  # noqa: E402
from disco.taskfarm import assimilate_ddfs  # noqa: E402
from disco.taskfarm.ddfs_io import DdfsAccess  # noqa: E402
from disco.taskfarm.models import Unit  # noqa: E402
from disco.taskfarm.schemas import ProjectSpec  # noqa: E402
from disco.taskfarm.service import Farm, FarmConfig  # noqa: E402
from disco.taskfarm.store import FarmStore  # noqa: E402
from farm_clients import FUNCTION, ClientProc, enrollment_key, expected, rows, wait_done  # noqa: E402
from farm_fixtures import FarmServer, db_url  # noqa: E402,F401  (db_url: a fixture)
from farm_protocol import ok, unit_input  # noqa: E402
from sm_fixtures import free_port  # noqa: E402

DDFS_ARGS = ["--ddfs-blob-replicas", "2", "--ddfs-tag-replicas", "2"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("farm-ddfs-cluster"), nodes=2, master_args=DDFS_ARGS)
    try:
        yield c.start()
    finally:
        c.stop()


@pytest.fixture(scope="module")
def token_file(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert cluster.token is not None
    return write_token_file(tmp_path_factory.mktemp("farm-ddfs-token") / "cluster.token", cluster.token)


@pytest.fixture(scope="module")
def ddfs(cluster: Cluster) -> DDFS:
    """The test's own DDFS client: the cluster token given explicitly (the farm server is never
    given it through the environment here, only through its token file)."""
    return DDFS(cluster.url, settings=DiscoSettings(DISCO_CLUSTER_TOKEN=cluster.token, DISCO_PORT=cluster.port,
                                                    DDFS_PUT_PORT=cluster.put_port))


def farm_server(cluster: Cluster, token_file: Path, tmp_path: Path, url: str) -> Iterator[FarmServer]:
    server = FarmServer(tmp_path / "farm", url,
                        extra_args=("--min-lease", "1", "--ddfs-master", cluster.url,
                                    "--ddfs-put-port", str(cluster.put_port), "--ddfs-token-file", str(token_file)))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def farm(cluster: Cluster, token_file: Path, tmp_path: Path) -> Iterator[FarmServer]:
    yield from farm_server(cluster, token_file, tmp_path, f"sqlite:///{tmp_path / 'farm.sqlite'}")


@pytest.fixture()
def farm_any_db(cluster: Cluster, token_file: Path, tmp_path: Path, db_url: str) -> Iterator[FarmServer]:
    """On SQLite and on PostgreSQL."""
    yield from farm_server(cluster, token_file, tmp_path, db_url)


def push_lines(ddfs: DDFS, tag: str, blobs: list[list[bytes]]) -> list[bytes]:
    """Each inner list one blob; returns every line, in the order the tag lists the blobs."""
    _, pushed = ddfs.push(tag, [(io.BytesIO(b"".join(lines)), f"in-{i}") for i, lines in enumerate(blobs)])
    by_url = {replicas[0]: lines for replicas, lines in zip(pushed, blobs)}
    return [line for replicas in ddfs.blobs(tag) for line in by_url[replicas[0]]]


def lines_of(tag: str, n: int) -> list[list[bytes]]:
    """`n` lines in blobs of 3 lines, each line unique to this tag."""
    lines = [f"{tag} line {i}\n".encode() for i in range(n)]
    return [lines[i:i + 3] for i in range(0, n, 3)]


def tag_content(cluster: Cluster, ddfs: DDFS, tag: str) -> dict[str, list[bytes]]:
    """Blob name -> the contents of every blob of that name in the tag (one, if exactly once)."""
    found: dict[str, list[bytes]] = {}
    for replicas in ddfs.blobs(tag):
        found.setdefault(DDFS.blob_name(replicas[0]), []).append(cluster.fetch(replicas[0]))
    return found


def pickled_function(tmp: Path) -> str:
    from disco.cli.farm_submit import load_function, pickle_function

    (tmp / "farmwork.py").write_text(FUNCTION)
    return pickle_function(load_function(str(tmp / "farmwork.py") + ":work"))


def create(farm: FarmServer, tmp: Path, in_tag: str, out_tag: str, **spec: Any) -> tuple[int, Any]:
    body = {"name": "ddfs", "code": {"kind": "python", "pickle": pickled_function(tmp)},
            "input": {"kind": "ddfs", "tag": in_tag}, "output": {"kind": "ddfs", "tag": out_tag},
            "split": {"by": "lines", "size": 1}, **spec}
    with farm.owner() as owner:
        answer = owner.post("/api/v1/farm/projects", json=body)
    return answer.status_code, answer.json()


def check_exactly_once(cluster: Cluster, ddfs: DDFS, farm: FarmServer, project: str, out_tag: str,
                       lines: list[bytes]) -> None:
    content = tag_content(cluster, ddfs, out_tag)
    assert content == {f"{project}-{seq:08d}": [expected(line)] for seq, line in enumerate(lines)}
    assimilated = rows(farm, "select unit_id, count(*) from farm_attempts where project_id = :p and kind = 'assimilate' "
                             "group by unit_id", p=project)
    assert len(assimilated) == len(lines) and {n for _, n in assimilated} == {1}
    with farm.owner() as owner:
        results = owner.get(f"/api/v1/farm/projects/{project}/results").json()
    assert results["complete"] is True
    assert [base64.b64decode(r["output"]) for r in results["results"]] == [expected(line) for line in lines]


def test_a_tag_in_and_a_tag_out_with_real_clients(cluster: Cluster, ddfs: DDFS, farm: FarmServer,
                                                  tmp_path: Path) -> None:
    push_lines(ddfs, "farm:in:a", lines_of("farm:in:a", 10))
    # One more blob whose first replica is gone from its node (404): the second is read.
    _, (good,) = ddfs.push("farm:scratch", [(io.BytesIO(b"replica line\n"), "in-replica")])
    gone = f"disco://{cluster.node_hosts[0]}/ddfs/vol0/blob/00/in-replica$0-0-0"
    ddfs.tag("farm:in:a", [[gone, *good]])
    lines = [line for replicas in ddfs.blobs("farm:in:a")
             for line in (cluster.fetch(replicas[-1]).splitlines(keepends=True))]
    assert b"replica line\n" in lines and len(lines) == 11
    status, body = create(farm, tmp_path, "farm:in:a", "farm:out:a")
    assert status == 201, body
    assert body["units"] == 11
    key = enrollment_key(farm, tmp_path / "farm.key")
    clients = [ClientProc(farm.url, key, tmp_path / f"c{i}", slots=2) for i in range(2)]
    try:
        wait_done(farm, body["project_id"], 120, clients)
    finally:
        for c in clients:
            c.stop()
    check_exactly_once(cluster, ddfs, farm, body["project_id"], "farm:out:a", lines)


def test_exactly_once_across_a_kill_9_of_the_farm_server(cluster: Cluster, ddfs: DDFS, farm_any_db: FarmServer,
                                                         tmp_path: Path) -> None:
    farm = farm_any_db
    in_tag, out_tag = fresh("farm:in:b"), fresh("farm:out:b")
    lines = push_lines(ddfs, in_tag, lines_of(in_tag, 40))
    status, body = create(farm, tmp_path, in_tag, out_tag, unit_seconds=0.05, lease_s=1)
    assert status == 201, body
    project = body["project_id"]
    key = enrollment_key(farm, tmp_path / "farm.key")
    clients = [ClientProc(farm.url, key, tmp_path / f"c{i}", slots=2, env={"FARM_TEST_SLEEP": "0.1"})
               for i in range(2)]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill the server once some, not all, units are in the tag
            done = rows(farm, "select count(*) from farm_units where project_id = :p and state = 'assimilated'",
                        p=project)[0][0]
            if done >= 5:
                break
            time.sleep(0.05)
        assert 5 <= done < 40, done
        farm.kill9()
        farm.start()
        wait_done(farm, project, 120, clients)
    finally:
        for c in clients:
            c.stop()
    check_exactly_once(cluster, ddfs, farm, project, out_tag, lines)


@pytest.fixture()
def local_farm(cluster: Cluster, token_file: Path, tmp_path: Path, db_url: str) -> Iterator[Farm]:
    """The farm's service in this process with no loop running: the test runs the assimilation's
    steps itself, stopping where a crash would. On SQLite and on PostgreSQL."""
    store = FarmStore(db_url)
    try:
        yield Farm(store, FarmConfig(output_dir=tmp_path / "out", ddfs=DdfsAccess(cluster.url, token_file, cluster.put_port)))
    finally:
        store.close()


def fresh(name: str) -> str:
    """A tag name no other test (or parameter) uses: the cluster is shared by the module."""
    return f"{name}:{uuid.uuid4().hex[:8]}"


def valid_units(farm: Farm, ddfs: DDFS, tmp: Path, in_tag: str, out_tag: str, n: int) -> tuple[str, list[bytes]]:
    """A project whose `n` units are all valid (reported through the service, never assimilated)."""
    lines = push_lines(ddfs, in_tag, lines_of(in_tag, n))
    spec = ProjectSpec.model_validate({
        "code": {"kind": "python", "pickle": pickled_function(tmp)}, "input": {"kind": "ddfs", "tag": in_tag},
        "output": {"kind": "ddfs", "tag": out_tag}, "split": {"by": "lines", "size": 1}})
    project, units = farm.create_project("admin", spec)
    assert units == n
    _, key = farm.create_key("admin", "")
    _, token = farm.enroll(key, "local", 4, "", 1, 0)
    client = farm.client(token)
    leases = farm.work(client, 100, 100, "http://127.0.0.1/{unit_id}")
    answers = farm.report(client, [ok(lease, expected(unit_input(lease))) for lease in leases])
    assert [a["status"] for a in answers] == ["accepted"] * n
    assert farm.project("admin", project)["units"]["valid"] == n  # DDFS output: not assimilated on report
    return project, lines


def log_count(farm: Farm, project: str) -> int:
    from sqlalchemy import func, select

    from disco.taskfarm.models import Attempt
    with farm.store.session() as s:
        return s.scalar(select(func.count()).select_from(Attempt).where(
            Attempt.project_id == project, Attempt.kind == "assimilate")) or 0


def test_a_stop_after_the_push_or_after_the_tag_neither_duplicates_nor_loses(
        cluster: Cluster, ddfs: DDFS, local_farm: Farm, tmp_path: Path) -> None:
    farm, access = local_farm, local_farm.config.ddfs
    assert access is not None
    in_tag, out_tag = fresh("farm:in:c"), fresh("farm:out:c")
    project, lines = valid_units(farm, ddfs, tmp_path, in_tag, out_tag, 6)
    units = assimilate_ddfs.pending(farm.store)
    assert len(units) == 6 and all(recorded == "" for *_, recorded in units)
    # 1. Pushed, then stopped before recording: the blobs are untagged and forgotten. The same
    # happens when it stops after recording: the recorded blobs are the ones tagged next pass.
    assimilate_ddfs.push(farm.store, access, units[:2])
    with farm.store.session() as s:  # forget the record of the first two, as a crash before it would
        s.execute(update(Unit).where(Unit.id.in_([u[0] for u in units[:2]])).values(output_path=""))
    assimilate_ddfs.push(farm.store, access, assimilate_ddfs.pending(farm.store)[:4])
    # 2. Tagged, then stopped before marking the units assimilated.
    tagged = assimilate_ddfs.tag(farm.store, access, [u[0] for u in units[:4]])
    assert sorted(tagged) == sorted(u[0] for u in units[:4])
    assert len(tag_content(cluster, ddfs, out_tag)) == 4
    assert farm.project("admin", project)["units"]["valid"] == 6 and log_count(farm, project) == 0
    # 3. Pushed and recorded long ago, never tagged (DDFS's GC may have removed the blob by now):
    # pushed again, not tagged as recorded.
    fifth = units[4][0]
    assimilate_ddfs.push(farm.store, access, assimilate_ddfs.pending(farm.store))
    with farm.store.session() as s:
        unit = s.get(Unit, fifth)
        old = json.loads(unit.output_path)
        unit.output_path = json.dumps({**old, "pushed_at": old["pushed_at"] - 2 * assimilate_ddfs.REPUSH_AFTER_S})
    # The next passes after the "restart": everything once.
    assert assimilate_ddfs.assimilate_ready(farm.store, access) == 5  # the fifth: pushed again first
    assert assimilate_ddfs.assimilate_ready(farm.store, access) == 1
    assert assimilate_ddfs.assimilate_ready(farm.store, access) == 0
    content = tag_content(cluster, ddfs, out_tag)
    assert content == {f"{project}-{seq:08d}": [expected(line)] for seq, line in enumerate(lines)}
    assert farm.project("admin", project)["units"]["assimilated"] == 6 and log_count(farm, project) == 6
    tagged_urls = {url for replicas in ddfs.blobs(out_tag) for url in replicas}
    with farm.store.session() as s:
        assert not tagged_urls & set(old["urls"])  # the stale record was not the one tagged
        assert set(json.loads(s.get(Unit, fifth).output_path)["urls"]) <= tagged_urls


def test_ddfs_down_leaves_units_valid_until_it_answers(cluster: Cluster, ddfs: DDFS, local_farm: Farm,
                                                       tmp_path: Path) -> None:
    farm = local_farm
    in_tag, out_tag = fresh("farm:in:d"), fresh("farm:out:d")
    project, lines = valid_units(farm, ddfs, tmp_path, in_tag, out_tag, 3)
    nowhere = DdfsAccess(f"http://127.0.0.1:{free_port()}", farm.config.ddfs.token_file)  # type: ignore[union-attr]
    assert assimilate_ddfs.assimilate_ready(farm.store, nowhere) == 0
    assert farm.project("admin", project)["units"]["valid"] == 3
    assert assimilate_ddfs.assimilate_ready(farm.store, farm.config.ddfs) == 3
    assert len(tag_content(cluster, ddfs, out_tag)) == 3


# -- the CLI ------------------------------------------------------------------------------------------

DIGEST = '''
import hashlib

def digest(data: bytes) -> bytes:
    return b"".join(hashlib.sha256(line).hexdigest().encode() + b"\\n" for line in data.splitlines())
'''


def disco(farm: FarmServer, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "disco.cli.main", "farm", *args, "--url", farm.url,
                           "--token", farm.admin_token], capture_output=True, text=True, timeout=120, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def test_the_cli_end_to_end(cluster: Cluster, ddfs: DDFS, farm: FarmServer, tmp_path: Path) -> None:
    lines = push_lines(ddfs, "farm:in:cli", lines_of("farm:in:cli", 8))
    (tmp_path / "mycode.py").write_text(DIGEST)
    done = disco(farm, "submit", "--function", "mycode.py:digest", "--input", "tag://farm:in:cli",
                 "--output-tag", "tag://farm:out:cli", "--split", "lines:3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    project = done.stdout.strip().splitlines()[-1]
    assert "3 units" in done.stderr
    key = disco(farm, "key", "create")
    key_file = tmp_path / "farm.key"
    key_file.write_text(key.stdout.strip().splitlines()[-1])
    client = ClientProc(farm.url, key_file, tmp_path / "client", slots=2)
    try:
        wait_done(farm, project, 120, [client])
    finally:
        client.stop()
    want = [b"".join(hashlib.sha256(line.rstrip(b"\n")).hexdigest().encode() + b"\n" for line in lines[i:i + 3])
            for i in range(0, 8, 3)]
    content = tag_content(cluster, ddfs, "farm:out:cli")
    assert content == {f"{project}-{seq:08d}": [data] for seq, data in enumerate(want)}
    results = disco(farm, "results", project)
    assert results.returncode == 0 and results.stdout.encode() == b"".join(want)


@pytest.mark.parametrize(("args", "code", "message"), [
    (("--input", "tag://farm:no:such:tag"), 2, "ddfs_tag_not_found"),
    (("--input", "ddfs://farm:in"), 1, "tag://NAME"),
    (("--input", "tag://bad/name"), 1, "--input takes a DDFS tag"),
    (("--input", "tag://farm:bad name"), 2, "invalid_request"),
])
def test_bad_tags_get_a_clear_error(farm: FarmServer, args: tuple[str, ...], code: int, message: str) -> None:
    done = disco(farm, "submit", "--image", "x", "--command", "true", *args)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert message in done.stderr
    assert farm.admin_token not in done.stdout + done.stderr


def test_a_replica_outside_the_cluster_is_never_fetched(cluster: Cluster, ddfs: DDFS, farm: FarmServer,
                                                       tmp_path: Path) -> None:
    """Whoever may write a tag may put any URL in it: the server reads only the cluster's nodes."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        ddfs.tag("farm:in:f", [[f"http://127.0.0.1:{port}/ddfs/vol0/blob/00/x$0-0-0"]])
        status, body = create(farm, tmp_path, "farm:in:f", "farm:out:f")
        assert status == 403 and body["error"]["code"] == "ddfs_replica_not_allowed", body
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing ever connected


def test_a_farm_without_ddfs_or_with_ddfs_down_says_so(cluster: Cluster, ddfs: DDFS, token_file: Path,
                                                       tmp_path: Path) -> None:
    ddfs.push("farm:in:e", [(io.BytesIO(b"a\n"), "in-0")])
    plain = FarmServer(tmp_path / "plain", f"sqlite:///{tmp_path / 'plain.sqlite'}").start()
    down = FarmServer(tmp_path / "down", f"sqlite:///{tmp_path / 'down.sqlite'}",
                      extra_args=("--ddfs-master", f"http://127.0.0.1:{free_port()}",
                                  "--ddfs-token-file", str(token_file))).start()
    try:
        for server, args, code, message in [
            (plain, ("--input", "tag://farm:in:e"), 2, "ddfs_not_configured"),
            (plain, ("--input", "-", "--output-tag", "farm:out:e"), 2, "ddfs_not_configured"),
            (down, ("--input", "tag://farm:in:e"), 1, "ddfs_unreachable"),
            (down, ("--input", "-", "--output-tag", "farm:out:e"), 1, "ddfs_unreachable"),
        ]:
            done = disco(server, "submit", "--image", "x", "--command", "true", *args)
            assert done.returncode == code, (args, done.stdout, done.stderr)
            assert message in done.stderr, done.stderr
            assert cluster.token not in done.stdout + done.stderr  # type: ignore[operator]
        with down.owner() as owner:
            assert owner.get("/api/v1/farm/projects").json()["projects"] == []  # nothing half made
    finally:
        plain.stop()
        down.stop()
