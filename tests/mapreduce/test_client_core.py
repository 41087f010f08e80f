"""The client against a stand-in master on loopback: submission, waiting, events, results,
job control, tag expansion and result_iterator."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from disco.core import Disco, result_iterator
from disco.error import CommError, DataError, DiscoError, JobError
from disco.job import Job, JobChain
from disco.jobpack import JobPack
from disco.worker.task_io import DiscoOutputStream


def records_blob(records: list[tuple[Any, Any]]) -> bytes:
    buffer = io.BytesIO()
    out = DiscoOutputStream(buffer)
    for key, value in records:
        out.add(key, value)
    out.close()
    return buffer.getvalue()


class FakeMaster:
    """Answers the master's documented HTTP API from in-memory state."""

    def __init__(self) -> None:
        self.packs: list[JobPack] = []
        self.posts: list[tuple[str, Any]] = []
        self.status: dict[str, list[tuple[str, list]]] = {}  # name -> successive replies
        self.events: dict[str, bytes] = {}
        self.files: dict[str, bytes] = {}
        self.tags: dict[str, dict] = {}
        self.blob_count = 0
        master = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, body: Any, status: int = 200, raw: bool = False) -> None:
                data = body if raw else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/disco/ctrl/rawevents":
                    data = master.events.get(query["name"], b"")
                    start = int(self.headers.get("Range", "bytes=0-")[6:].rstrip("-") or 0)
                    self.reply(data[start:], 206 if start else 200, raw=True)
                elif url.path == "/disco/ctrl/jobinfo":
                    self.reply({"active": "active", "worker": "run-worker"})
                elif url.path == "/disco/ctrl/joblist":
                    self.reply([[1, "ready", name] for name in master.status])
                elif url.path == "/disco/version":
                    self.reply("0.5-disco")
                elif url.path.startswith("/ddfs/new_blob/"):
                    name = url.path[len("/ddfs/new_blob/"):]
                    self.reply([f"{master.url}/put/{name}"] * int(query.get("replicas", 1)))
                elif url.path.startswith("/ddfs/tag/"):
                    tag = master.tags.get(url.path[len("/ddfs/tag/"):])
                    self.reply(tag) if tag else self.reply("unknown tag", 404)
                elif url.path in master.files:
                    self.reply(master.files[url.path], raw=True)
                else:
                    self.reply("not found", 404)

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                name = urlparse(self.path).path[len("/put/"):]
                master.blob_count += 1
                blob = f"/ddfs/vol0/blob/ab/{name}${master.blob_count}"
                master.files[blob] = body
                self.reply(f"disco://127.0.0.1{blob}", 201)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path = urlparse(self.path).path
                if path == "/disco/job/new":
                    pack = JobPack.loads(body)
                    master.packs.append(pack)
                    name = f"{pack.jobdict['prefix']}@5a1:{len(master.packs):x}:0"
                    master.status.setdefault(name, [("active", []), ("ready", [["raw://r"]])])
                    self.reply(["ok", name])
                elif path.startswith("/ddfs/tag/"):
                    tag = master.tags.setdefault(path[len("/ddfs/tag/"):], {"urls": []})
                    tag["urls"].extend(json.loads(body))
                    self.reply(path)
                elif path == "/disco/ctrl/get_results":
                    _timeout, names = json.loads(body)
                    out = []
                    for name in names:
                        replies = master.status.get(name)
                        if not replies:
                            out.append([name, ["unknown job", []]])
                            continue
                        status = replies.pop(0) if len(replies) > 1 else replies[0]
                        out.append([name, list(status)])
                    self.reply(out)
                else:
                    master.posts.append((path, json.loads(body)))
                    self.reply("ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeMaster":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture()
def master(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMaster]:
    with FakeMaster() as fake:
        monkeypatch.setenv("DISCO_MASTER", fake.url)
        monkeypatch.setenv("DISCO_PORT", str(fake.port))  # disco:// URLs reach it too
        monkeypatch.setenv("DISCO_EVENTS", "")
        yield fake


def test_run_and_wait(master: FakeMaster, capsys: pytest.CaptureFixture[str]) -> None:
    job = Job().run(input=["raw://a"], map=lambda e, p: [(e, 1)])
    assert job.name == "Job@5a1:1:0"
    assert master.packs[0].jobdict["input"] == ["raw://a"]
    master.events[job.name] = (b'["2024/01/01 00:00:00","master","New job!"]\n'
                               b'["2024/01/01 00:00:01","nodeA","MSG: [map:0] hi"]\n')
    assert job.wait(poll_interval=0.01, show=True) == [["raw://r"]]
    shown = capsys.readouterr().out
    assert "New job!" in shown and "MSG: [map:0] hi" in shown


def test_wait_raises_when_the_job_died(master: FakeMaster) -> None:
    master.status["Dead@1:2:3"] = [("dead", [])]
    with pytest.raises(JobError) as info:
        Disco().wait("Dead@1:2:3", poll_interval=0.01)
    assert "Dead@1:2:3" in str(info.value) and "dead" in str(info.value)
    master.status["Slow@1:2:3"] = [("active", [])]
    with pytest.raises(JobError, match="Timeout"):
        Disco().wait("Slow@1:2:3", poll_interval=0.01, timeout=0.05)


def test_results_for_one_and_many_jobs(master: FakeMaster) -> None:
    master.status["A@1:1:1"] = [("ready", [["dir://a"]])]
    master.status["B@1:1:1"] = [("active", [])]
    disco = Disco(master.url)
    assert disco.results("A@1:1:1") == ("ready", [["dir://a"]])
    inactive, active = disco.results(["A@1:1:1", "B@1:1:1"])
    assert inactive == [("A@1:1:1", ("ready", [["dir://a"]]))]
    assert active == [("B@1:1:1", ("active", []))]
    assert disco.results("Nope@1:1:1")[0] == "unknown job"


def test_events_resume_from_offset(master: FakeMaster) -> None:
    first = b'["t1","h","one"]\n'
    master.events["E@1:1:1"] = first
    disco = Disco()
    events = list(disco.events("E@1:1:1"))
    assert events == [(len(first), ("t1", "h", "one"))]
    master.events["E@1:1:1"] = first + b'["t2","h","two"]\n["t3","h",'
    more = list(disco.events("E@1:1:1", offset=events[-1][0]))
    assert [event for _offset, event in more] == [("t2", "h", "two")]


def test_job_control_posts_json_names(master: FakeMaster) -> None:
    job = Job(name="Ctl@1:2:3")
    job.kill()
    job.purge()
    job.clean()
    Disco().blacklist("nodeA")
    assert master.posts == [("/disco/ctrl/kill_job", "Ctl@1:2:3"),
                            ("/disco/ctrl/purge_job", "Ctl@1:2:3"),
                            ("/disco/ctrl/clean_job", "Ctl@1:2:3"),
                            ("/disco/ctrl/blacklist", "nodeA")]
    assert job.jobinfo()["worker"] == "run-worker"
    assert Disco().master_version() == "0.5-disco"


def test_unreachable_master_is_a_comm_error() -> None:
    with pytest.raises(CommError) as info:
        Disco("http://127.0.0.1:9").joblist()
    assert info.value.code is None and "is the disco master running" in info.value.msg


def test_tag_inputs_are_expanded_to_blobs(master: FakeMaster) -> None:
    master.tags["data"] = {"urls": [["disco://n1/ddfs/a", "disco://n2/ddfs/a"],
                                    ["tag://more"]]}
    master.tags["more"] = {"urls": [["disco://n1/ddfs/b"]]}
    Job().run(input=["tag://data"], map=lambda e, p: [])
    assert master.packs[0].jobdict["input"] == [["disco://n1/ddfs/a", "disco://n2/ddfs/a"],
                                                "disco://n1/ddfs/b"]
    with pytest.raises(CommError):
        Job().run(input=["tag://missing"], map=lambda e, p: [])


def test_result_iterator_expands_indexes_and_falls_back(master: FakeMaster) -> None:
    host = f"127.0.0.1:{master.port}"
    master.files["/disco/n/part-0"] = records_blob([("a", 1), ("b", 2)])
    master.files["/disco/n/part-1"] = records_blob([("c", 3)])
    master.files["/disco/n/index"] = (b"1 disco://127.0.0.1/disco/n/part-1 10\n"
                                      b"0 disco://127.0.0.1/disco/n/part-0 10\n")
    assert list(result_iterator([f"dir://{host}/disco/n/index"])) == [
        ("a", 1), ("b", 2), ("c", 3)]
    replicas = [f"http://{host}/disco/n/gone", f"http://{host}/disco/n/part-1"]
    assert list(result_iterator([replicas])) == [("c", 3)]
    with pytest.raises(DataError):
        list(result_iterator([[f"http://{host}/disco/n/gone"]]))
    master.files["/plain"] = b"line one\nline two\n"
    assert list(result_iterator([f"http://{host}/plain"], reader=None)) == [
        b"line one\n", b"line two\n"]


def test_job_chain_runs_jobs_when_inputs_are_ready(master: FakeMaster) -> None:
    first, second = Job(name="First"), Job(name="Second")
    for job in (first, second):
        job.run = _with_defaults(job.run, map=lambda e, p: [(e, 1)])  # type: ignore[method-assign]
    chain = JobChain({first: ["raw://x"], second: first})
    chain.wait(poll_interval=0.01)
    assert [pack.jobdict["prefix"] for pack in master.packs] == ["First", "Second"]
    assert master.packs[1].jobdict["input"] == ["raw://r"]


def _with_defaults(run: Any, **defaults: Any) -> Any:
    def wrapped(**jobargs: Any) -> Any:
        return run(**{**defaults, **jobargs})
    return wrapped


def test_submission_error_is_reported(master: FakeMaster, monkeypatch: pytest.MonkeyPatch) -> None:
    disco = Disco()
    monkeypatch.setattr(disco, "request", lambda *a, **k: b'["error", "bad pack"]')
    with pytest.raises(DiscoError, match="bad pack"):
        disco.submit(b"x")


def test_out_of_band_data_through_ddfs(master: FakeMaster) -> None:
    from disco.worker import Task, put, set_current_task
    set_current_task(Task(host="nodeB", master=master.url, jobname="Oob@1:2:3",
                          disco_port=master.port))
    try:
        put("answer", b"41")
        Task_ = Task(host="nodeB", master=master.url, jobname="Oob@1:2:3")
        Task_.put("answer", b"42")
        Task_.put("other", b"x")
        assert Task_.get("answer") == b"42"
        with pytest.raises(DiscoError):
            Task_.put("bad key/", b"x")
    finally:
        set_current_task(None)
    disco = Disco()
    assert disco.oob_get("Oob@1:2:3", "answer") == b"42"
    assert disco.oob_list("Oob@1:2:3") == ["answer", "other"]
    with pytest.raises(DiscoError, match="Unknown key"):
        disco.oob_get("Oob@1:2:3", "missing")
