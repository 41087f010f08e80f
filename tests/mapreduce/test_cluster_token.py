"""The cluster token, on a real master and two real nodes started with `--token-file`.

With the token, Disco's own client runs jobs (a reduce reading the other node's map outputs
over HTTP), pushes to DDFS and reads `tag://` inputs back. Without it, or with a wrong one,
every door is shut: job submission, the ctrl API, DDFS reads and writes on the master and on
the nodes' upload port, the nodes' data, the web page; and a node with a wrong token cannot
join. The token goes to the cluster's own hosts only, never to another server a job reads."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from runtime_fixtures import (  # noqa: E402
    PYTHON,
    Cluster,
    Proc,
    _free_port,
    client_cluster,
    pipeline_pack,
    wait_until,
    write_token_file,
)

from disco import comm  # noqa: E402
from disco.core import Job, result_iterator  # noqa: E402
from disco.ddfs import DDFS  # noqa: E402
from disco.error import CommError  # noqa: E402
from disco.mapreduce.urls import url_host  # noqa: E402
from disco.settings import DiscoSettings  # noqa: E402

WRONG = "not-the-cluster-token-0123456789"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with client_cluster("token", nodes=2, slots=1) as c:
        yield c


def job_functions() -> dict[str, Any]:
    # Defined here, so that they are shipped by value (cloudpickle) and the nodes need not
    # import this test module.
    def host_map(line: Any, params: Any) -> Any:
        import time

        from disco.worker import this_host
        time.sleep(0.2)  # several tasks at once: both nodes get maps
        yield this_host(), 1

    def count_reduce(iter: Any, params: Any) -> Any:
        from disco.util import kvgroup
        for host, counts in kvgroup(sorted(iter)):
            yield host, sum(counts)

    def upper_map(line: Any, params: Any) -> Any:
        text = line.decode() if isinstance(line, bytes) else line
        yield text.strip().upper(), 1

    return {"host_map": host_map, "count_reduce": count_reduce, "upper_map": upper_map}


FN = job_functions()


def test_a_job_runs_and_reads_the_other_nodes_outputs(cluster: Cluster) -> None:
    job = Job().run(input=[f"raw://line{i}" for i in range(8)], map=FN["host_map"],
                    reduce=FN["count_reduce"])
    try:
        counts = dict(result_iterator(job.wait(timeout=120)))
        # Maps ran on both nodes, so the reduce, wherever it ran, read the other node's
        # outputs over HTTP with the token the node gave its worker.
        assert counts == {cluster.node_hosts[0]: counts.get(cluster.node_hosts[0]),
                          cluster.node_hosts[1]: counts.get(cluster.node_hosts[1])}
        assert sum(counts.values()) == 8 and all(counts.values())
    finally:
        job.purge()


def test_a_reduce_reads_the_other_nodes_outputs_without_loading_httpx(cluster: Cluster) -> None:
    """Plain http:// reads go through the standard library, the token included (disco.comm):
    httpx cost a small job's reduce task most of its time to import."""
    import plain_reads_job  # its module imports nothing (this one imports httpx)

    job = Job().run(input=[f"raw://line{i}" for i in range(8)], map=plain_reads_job.host_map,
                    reduce=plain_reads_job.httpx_reduce, partitions=1)
    try:
        assert dict(result_iterator(job.wait(timeout=120))) == {"read": 8, "hosts": 2, "httpx loaded": False}
    finally:
        job.purge()


def test_ddfs_push_and_a_tag_input(cluster: Cluster, tmp_path: Path) -> None:
    source = tmp_path / "words.txt"
    source.write_text("alpha\nbeta\n")
    ddfs = DDFS()
    ddfs.push("token:words", [str(source)])
    assert [b.read() for b in ddfs.pull("token:words")] == [b"alpha\nbeta\n"]
    job = Job().run(input=["tag://token:words"], map=FN["upper_map"])
    try:
        assert sorted(k for k, _v in result_iterator(job.wait(timeout=120))) == ["ALPHA", "BETA"]
    finally:
        job.purge()
        ddfs.delete("token:words")


def test_a_tag_token_still_works_beside_the_cluster_token(cluster: Cluster) -> None:
    ddfs = DDFS()
    ddfs.tag("token:locked", [["raw://x"]])
    try:
        ddfs.setattr("token:locked", "ddfs:read-token", "tagsecret")
        with pytest.raises(CommError) as refused:
            ddfs.get("token:locked")
        assert refused.value.code == 401
        assert ddfs.get("token:locked", token="tagsecret")["urls"] == [["raw://x"]]
    finally:
        ddfs.delete("token:locked", token="tagsecret")


# ------------------------------------------------------------------ refusals


def _a_result_file(cluster: Cluster) -> str:
    """An HTTP URL of a real file on a node (so a refusal is not a 404 in disguise)."""
    name = cluster.submit(pipeline_pack(["raw://data"], [["map", "split"]], prefix="TokenData"))
    status, results = cluster.wait(name)
    assert status == "ready"
    [index_url] = results[0]
    _lab, url, _size = cluster.index(index_url)[0]
    host, path = url.split("://", 1)[1].split("/", 1)
    return f"http://{host}:{cluster.port}/{path}"


CREDENTIALS = {
    "none": {},
    "wrong bearer": {"Authorization": f"Bearer {WRONG}"},
    "wrong basic": {"Authorization": "Basic " + base64.b64encode(f"u:{WRONG}".encode()).decode()},
    "not a scheme": {"Authorization": "Token whatever"},
}


@pytest.mark.parametrize("credential", list(CREDENTIALS))
def test_every_door_is_shut_without_the_token(cluster: Cluster, credential: str) -> None:
    data_url = _a_result_file(cluster)
    node = cluster.node_hosts[0]
    jobs_before = cluster.get("joblist")
    pack = pipeline_pack(["raw://x"], [["map", "split"]], prefix="Intruder")
    with httpx.Client(timeout=30, trust_env=False, headers=CREDENTIALS[credential]) as http:
        answers = {
            "submit": http.post(f"{cluster.url}/disco/job/new", content=pack),
            "joblist": http.get(f"{cluster.url}/disco/ctrl/joblist"),
            "purge": http.post(f"{cluster.url}/disco/ctrl/purge_job", content='"x"'),
            "node protocol": http.post(f"{cluster.url}/disco/node/register",
                                       json={"host": "evil", "slots": 1, "port": 1}),
            "ddfs read": http.get(f"{cluster.url}/ddfs/tags"),
            "ddfs write": http.post(f"{cluster.url}/ddfs/tag/intruder:tag",
                                    content=b'[["raw://x"]]'),
            "ddfs new blob": http.get(f"{cluster.url}/ddfs/new_blob/intruder"),
            "node data": http.get(data_url),
            "node status": http.get(f"http://{node}:{cluster.port}/"),
            "blob upload": http.put(f"http://{node}:{cluster.put_port}/ddfs/vol0/blob/aa/"
                                    f"intruder$5f0-1-2", content=b"x"),
            "node ddfs": http.get(f"http://{node}:{cluster.put_port}/ddfs/node/inventory"),
            "web page": http.get(f"{cluster.url}/"),
            "web kill": http.post(f"{cluster.url}/ui/purge?name=x"),
        }
    for what, reply in answers.items():
        assert reply.status_code == 401, (what, reply.status_code, reply.text)
        assert WRONG not in reply.text and cluster.token not in reply.text
    body = answers["joblist"].json()["error"]
    assert body["code"] == "unauthorized" and "Authorization: Bearer" in body["message"]
    assert answers["joblist"].headers["www-authenticate"] == 'Bearer realm="disco"'
    assert answers["web page"].headers["www-authenticate"] == 'Basic realm="disco"'
    # Nothing was made by the refused requests.
    assert cluster.get("joblist") == jobs_before
    assert "intruder:tag" not in cluster.http.get(f"{cluster.url}/ddfs/tags").json()
    assert "evil" not in cluster.get("nodeinfo")


def test_the_web_page_takes_the_token_as_a_basic_password(cluster: Cluster) -> None:
    assert cluster.token is not None
    basic = httpx.BasicAuth("anyone", cluster.token)
    with httpx.Client(timeout=30, trust_env=False, auth=basic) as browser:
        page = browser.get(f"{cluster.url}/")
        assert page.status_code == 200 and "<h1>Disco master</h1>" in page.text
        # Basic is for browsers on the web page; the API and the data want the bearer token.
        assert browser.get(f"{cluster.url}/disco/ctrl/joblist").status_code == 401
        # Its buttons work from the page itself, not from another site's page (the browser
        # would attach the credentials it holds either way).
        name = cluster.submit(pipeline_pack(["raw://web"], [["map", "split"]], prefix="WebJob"))
        assert cluster.wait(name)[0] == "ready"
        evil = browser.post(f"{cluster.url}/ui/purge?name={name}",
                            headers={"Origin": "http://attacker.example"})
        assert evil.status_code == 403 and name in {n for _t, _s, n in cluster.get("joblist")}
        own = browser.post(f"{cluster.url}/ui/purge?name={name}", headers={"Origin": cluster.url})
        assert own.status_code == 303
        assert name not in {n for _t, _s, n in cluster.get("joblist")}


def test_disco_clients_with_a_wrong_token_get_a_clear_error(cluster: Cluster) -> None:
    wrong = DiscoSettings(DISCO_CLUSTER_TOKEN=WRONG)
    with pytest.raises(CommError) as caught:
        Job(settings=wrong).run(input=["raw://x"], map=FN["upper_map"])
    assert caught.value.code == 401 and "needs its token" in str(caught.value)
    assert WRONG not in str(caught.value) and WRONG not in repr(wrong)
    env = {**os.environ, "DISCO_CLUSTER_TOKEN": WRONG}
    for command in (["disco", "jobs"], ["ddfs", "ls"]):
        run = subprocess.run([PYTHON, "-m", f"disco.cli.{'main' if command[0] == 'disco' else 'ddfs'}",
                              *command[1:]], env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 1, (command, run.stdout, run.stderr)
        assert "needs its token" in run.stderr and WRONG not in run.stderr + run.stdout


def test_a_node_with_a_wrong_or_no_token_cannot_register(cluster: Cluster, tmp_path: Path) -> None:
    host = f"127.{cluster.net}.0.9"
    for name, token_args in (("wrong", ["--token-file", str(write_token_file(tmp_path / "t", WRONG))]),
                             ("none", [])):
        node = Proc([PYTHON, "-m", "disco.mapreduce.node", "--master", cluster.url, "--host", host,
                     "--port", str(cluster.port), "--data", str(tmp_path / f"data-{name}"),
                     "--put-port", str(cluster.put_port), *token_args],
                    tmp_path / f"node-{name}.log", cluster.env)
        try:
            assert node.popen.wait(30) != 0
        finally:
            node.stop()
        assert "refused this node's cluster token" in node.output()
        assert WRONG not in node.output()
        assert host not in cluster.get("nodeinfo")


# ------------------------------------------------------------------ where the token goes


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        type(self).seen.append(self.headers.get("Authorization"))
        body = b"outside\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def outside_servers(cluster: Cluster) -> Iterator[list[str]]:
    """Two servers that are not part of the cluster: one on the master's own address, one
    on the cluster's DISCO_PORT at an address that is none of its nodes (as another
    cluster's node would be)."""
    stranger = f"127.{cluster.net}.0.20"
    places = [(cluster.master_host,
               _free_port([cluster.master_host], avoid={cluster.port, cluster.put_port})),
              (stranger, cluster.port)]
    _Recorder.seen = []
    servers = [ThreadingHTTPServer(place, _Recorder) for place in places]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield [f"http://{host}:{port}/data" for host, port in places]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_the_token_never_goes_to_other_servers(cluster: Cluster, outside_servers: list[str]) -> None:
    for url in outside_servers:
        assert comm.download(url) == b"outside\n"  # the client itself
    job = Job().run(input=outside_servers, map=FN["upper_map"])  # and workers on the nodes
    try:
        assert [k for k, _v in result_iterator(job.wait(timeout=120))] == ["OUTSIDE", "OUTSIDE"]
    finally:
        job.purge()
    assert _Recorder.seen == [None] * 4


def test_node_urls_and_the_masters_redirects_carry_it(cluster: Cluster) -> None:
    data_url = _a_result_file(cluster)
    assert comm.download(data_url) == cluster.http.get(data_url).content  # http:// on a node
    host = url_host(data_url)
    path = data_url.split(f"{host}:{cluster.port}/", 1)[1]
    # The master sends /disco/<host>/... to the node; the token follows to the node.
    assert comm.download(f"{cluster.url}/{path}") == cluster.http.get(data_url).content


def test_an_open_cluster_takes_anyone_and_says_so_at_start() -> None:
    open_one = Cluster(Path(tempfile.mkdtemp(prefix="mr-open-")), nodes=1, open_cluster=True)
    try:
        open_one.start()
        with httpx.Client(timeout=30, trust_env=False) as anyone:
            assert anyone.get(f"{open_one.url}/disco/ctrl/joblist").status_code == 200
        name = open_one.submit(pipeline_pack(["raw://open"], [["map", "split"]]))
        assert open_one.wait(name)[0] == "ready"
        assert open_one.master is not None
        wait_until(lambda: "no cluster token" in open_one.master.output(), 10, "the warning")
        node_log = next(iter(open_one.nodes.values())).output()
        assert "no cluster token" in node_log
    finally:
        open_one.stop()


def test_without_a_token_file_the_environment_gives_it(tmp_path: Path) -> None:
    host = "127.0.0.1"
    port = _free_port([host])
    token = "from-the-environment-0123456789"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DISCO_", "DDFS_"))},
           "DISCO_CLUSTER_TOKEN": token}
    master = Proc([PYTHON, "-m", "disco.mapreduce.master", "--host", host, "--port", str(port),
                   "--data", str(tmp_path / "master")], tmp_path / "master.log", env)
    url = f"http://{host}:{port}/disco/ctrl/joblist"
    try:
        with httpx.Client(timeout=5, trust_env=False) as http:
            def answers() -> int | None:
                try:
                    return http.get(url).status_code
                except httpx.HTTPError:
                    return None
            assert wait_until(answers, 20, "the master") == 401
            assert http.get(url, headers={"Authorization": f"Bearer {token}"}).json() == []
    finally:
        master.stop()
    assert "no cluster token" not in master.output() and token not in master.output()


@pytest.mark.parametrize("content, complaint", [
    ("", "is empty"), ("  \n", "is empty"), ("tok en", "printable ASCII"),
    ("jeton-é", "printable ASCII"), (None, "cannot read the token file"),
])
def test_a_bad_token_file_stops_the_start(tmp_path: Path, content: str | None,
                                          complaint: str) -> None:
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    for module, extra in (("disco.mapreduce.master", []),
                          ("disco.mapreduce.node", ["--master", "http://127.0.0.1:9"])):
        run = subprocess.run([PYTHON, "-m", module, *extra, "--data", str(tmp_path / "d"),
                              "--token-file", str(token_file)],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 2, (module, run.stderr)
        assert complaint in run.stderr
