"""Runtime pieces that need no processes: names, pipelines, groupings, the worker protocol's
framing, inputs and outputs on a node, and the scheduler's choices (on a master object driven
directly, without HTTP)."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from disco.jobpack import VERSION_CLASSIC, VERSION_PIPELINE, JobPack
from disco.mapreduce.master import node_desk
from disco.mapreduce.master.config import MasterConfig, Settings, expand_hostspec, slots_from_table
from disco.mapreduce.master.coordinator import Job
from disco.mapreduce.master.data import DataOutput, DirOutput, InputRef
from disco.mapreduce.master.grouping import pack_consecutive, route
from disco.mapreduce.master.jobnames import new_jobname
from disco.mapreduce.master.master import Master
from disco.mapreduce.master.pipeline import JobSpecError, StageSpec, job_spec
from disco.mapreduce.node.inputs import TaskInputs
from disco.mapreduce.node.outputs import OutputError, ResultsIndex
from disco.mapreduce.node.slots import SlotGate
from disco.mapreduce.node.throttle import MsgThrottle
from disco.mapreduce.node.wire import FrameParser, encode
from disco.mapreduce.urls import disco_to_http, hexhash, job_path, url_host


def test_jobname_format_and_uniqueness() -> None:
    micros = 0x56D * 10**12 + 0x5C41B * 10**6 + 0xD9C99
    assert new_jobname("ChainJobA", set(), now_ns=micros * 1000) == "ChainJobA@56d:5c41b:d9c99"
    taken = {"J@56d:5c41b:d9c99"}
    assert new_jobname("J", taken, now_ns=micros * 1000) == "J@56d:5c41b:d9c9a"
    assert re.fullmatch(r"X@[0-9a-f]+:[0-9a-f]+:[0-9a-f]+", new_jobname("X", set()))


def test_urls_and_job_paths() -> None:
    assert hexhash("job") == "9d"  # md5("job") = 9d15ff88...
    assert job_path("n1", "job") == "n1/9d/job"
    assert url_host("disco://n1/disco/x") == "n1"
    assert url_host("http://web:80/x") == "web"
    assert url_host("raw://disco://n1/x") is None
    assert url_host("tag://data") is None
    assert disco_to_http("dir://n1/disco/n1/a.results", 8989) == "http://n1:8989/disco/n1/a.results"


def _pack(jobdict: dict, version: int) -> JobPack:
    base = {"prefix": "p", "worker": "w", "owner": "o"}
    return JobPack({**base, **jobdict}, version=version)


@pytest.mark.parametrize(("jobdict", "stages"), [
    ({"map?": True}, [("map", "split"), ("map_shuffle", "group_node")]),
    ({"map?": True, "reduce?": True, "nr_reduces": 1},
     [("map", "split"), ("map_shuffle", "group_node"), ("reduce", "group_all")]),
    ({"map?": True, "reduce?": True, "nr_reduces": 4},
     [("map", "split"), ("map_shuffle", "group_node"), ("reduce", "group_label")]),
    ({"map?": True, "reduce?": True, "nr_reduces": 4, "reduce_shuffle?": True},
     [("map", "split"), ("map_shuffle", "group_node"), ("reduce", "group_label"),
      ("reduce_shuffle", "group_node")]),
    ({"reduce?": True, "nr_reduces": 1}, [("reduce", "group_all")]),
    ({"reduce?": True, "nr_reduces": 3}, [("reduce", "group_label")]),
])
def test_classic_jobdicts_become_pipelines(jobdict: dict, stages: list) -> None:
    spec = job_spec(_pack({"input": ["raw://a", ["disco://n1/x", "disco://n2/x"]], **jobdict},
                          VERSION_CLASSIC))
    assert [(s.name, s.grouping) for s in spec.pipeline] == stages
    assert spec.inputs == [DataOutput(0, 0, ("raw://a",)),
                           DataOutput(0, 0, ("disco://n1/x", "disco://n2/x"))]


def test_pipeline_jobdicts() -> None:
    spec = job_spec(_pack({"pipeline": [["a", "split"], ["b", "group_all", True]],
                           "inputs": [[3, 10, "raw://x"], [0, 0, ["http://h/1", "http://g/1"]]],
                           "scheduler": {"max_cores": 2}}, VERSION_PIPELINE))
    assert spec.pipeline == [StageSpec("a", "split"), StageSpec("b", "group_all", True)]
    assert spec.inputs[0] == DataOutput(3, 10, ("raw://x",))
    assert spec.inputs[1].hosts == ["h", "g"]
    assert spec.max_cores == 2
    for bad in ({"pipeline": [["a", "shuffle"]], "inputs": []},
                {"pipeline": [["a", "split"], ["a", "group_all"]], "inputs": []},
                {"pipeline": [["a", "split"]], "inputs": [["x", 0, "raw://"]]}):
        with pytest.raises(JobSpecError):
            job_spec(_pack(bad, VERSION_PIPELINE))


def test_inputs_per_task_is_a_positive_integer_in_the_scheduler_options() -> None:
    def spec(scheduler: dict) -> object:
        return job_spec(_pack({"pipeline": [["a", "split"]], "inputs": [[0, 0, "raw://x"]],
                               "scheduler": scheduler}, VERSION_PIPELINE))

    assert spec({}).inputs_per_task == 1  # Disco's one task per input
    assert spec({"inputs_per_task": 40}).inputs_per_task == 40
    for bad in (0, -3, 2.5, "8", True, None):
        with pytest.raises(JobSpecError, match="inputs_per_task"):
            spec({"inputs_per_task": bad})


def test_packing_joins_runs_of_consecutive_inputs_of_one_host() -> None:
    outputs = [DataOutput(0, 0, (u,)) for u in (
        "raw://a", "raw://b", "raw://c", "raw://d", "raw://e",
        "disco://n1/x", "disco://n1/y", "disco://n2/z", "raw://f", "disco://n1/w")]
    routed = [t for i, o in enumerate(outputs) for t in route("split", None, i, o)]
    tasks: dict = {}
    for key, group, ref in pack_consecutive(routed, 3):
        tasks.setdefault(key, (group, []))[1].append(ref.index)
    # runs of at most 3, never across hosts, never moving an input away from its host
    assert list(tasks.values()) == [((0, None), [0, 1, 2]), ((0, None), [3, 4]), ((0, "n1"), [5, 6]),
                                    ((0, "n2"), [7]), ((0, None), [8]), ((0, "n1"), [9])]
    assert [k for k, _g, _r in pack_consecutive(routed, 1)] == [k for k, _g, _r in routed]


def test_groupings_route_outputs_as_disco_does() -> None:
    d = DirOutput("n1", "dir://n1/i.results", ((0, 5), (2, 7)))
    data = DataOutput(1, 3, ("disco://n2/f",))

    def routes(grouping: str, out) -> list:
        return list(route(grouping, 7, 0, out))

    assert [(g, r.label) for _k, g, r in routes("split", d)] == [((0, "n1"), 0), ((2, "n1"), 2)]
    assert [(k, g) for k, g, _r in routes("group_label", d)] == [(0, (0, None)), (2, (2, None))]
    assert [(k, g, r) for k, g, r in routes("group_node", d)] == [("n1", (0, "n1"), InputRef(7, 0, "all"))]
    assert [(k, g) for k, g, _r in routes("group_node_label", d)] == [((0, "n1"), (0, "n1")),
                                                                       ((2, "n1"), (2, "n1"))]
    assert [(k, g, r.label) for k, g, r in routes("group_all", d)] == [(0, (0, None), "all")]
    assert [(g, r.label) for _k, g, r in routes("split", data)] == [((1, "n2"), 1)]
    assert [g for _k, g, _r in routes("group_node", data)] == [(0, "n2")]
    assert routes("group_all", DirOutput("n1", "dir://x", ())) == []  # empty index: nothing


def test_frame_parser_handles_split_messages_and_garbage() -> None:
    parser = FrameParser()
    data = encode("WORKER", {"version": "1.1", "pid": 1}) + encode("TASK", "")
    frames = []
    for i in range(len(data)):  # one byte at a time
        frames += parser.feed(data[i:i + 1])
    assert [f.name for f in frames] == ["WORKER", "TASK"] and not parser.partial
    assert frames[1].payload == b'""'

    parser = FrameParser()
    assert parser.feed(encode("MSG", "hi") + b"Traceback (most recent call last)\n")[0].name == "MSG"
    assert parser.error is not None
    assert bytes(parser.buffer).startswith(b"Traceback")
    for garbage in (b"MSG 3 \"x\"X", b"MSG abc ", b"VERYLONGNAME1 2 \"\"\n", b"ok 2 \"\"\n"):
        p = FrameParser()
        p.feed(garbage)
        assert p.error is not None, garbage


def test_msg_throttle() -> None:
    # Disco's counting: 5 a second answered at once, the next ones held back 200 ms, the
    # tenth within one second fails the task.
    t = MsgThrottle()
    delays = [t.check(0.01 * i) for i in range(10)]
    assert delays[:5] == [0.0] * 5
    assert delays[5:9] == [0.2] * 4
    assert delays[9] is None and t.count == 10
    assert MsgThrottle().check(0) == 0.0
    # A worker that waits for its held-back replies still gets there within a second.
    t, now, delays = MsgThrottle(), 0.0, []
    while (delay := t.check(now)) is not None:
        delays.append(delay)
        now += delay + 0.001
    assert len(delays) == 9 and now < 1.0
    # Four a second, as the runtime paces its own messages, go on for ever undelayed.
    t = MsgThrottle()
    assert all(t.check(i * 0.25) == 0.0 for i in range(200))


def test_task_inputs_retry_then_fail() -> None:
    inputs = TaskInputs([[0, 0, [[0, "disco://a/x"], [1, "disco://b/x"]]], [1, "all", [[0, "raw://y"]]]],
                        done=True)
    assert inputs.listing(exclude=[1]) == [[0, "ok", 0, [[0, "disco://a/x"], [1, "disco://b/x"]]]]
    assert inputs.listing(include=[1]) == [[1, "ok", "all", [[0, "raw://y"]]]]
    assert inputs.report_failure(0, [0]) == [[1, "disco://b/x"]]
    assert inputs.listing(include=[0])[0][3] == [[1, "disco://b/x"], [0, "disco://a/x"]]
    assert inputs.report_failure(0, [0, 1]) == []
    assert inputs.failures() == [[0, ["a", "b"]]]


def test_task_inputs_list_this_nodes_replicas_first() -> None:
    """A worker reads the first replica it is given: this node's own is read from its disk,
    another node's over HTTP. A failed local replica still goes to the back."""
    inputs = TaskInputs([[0, 0, [[0, "disco://a/x"], [1, "disco://b/x"], [2, "http://c/x"]]]],
                        done=True, local_host="b")
    assert inputs.listing()[0][3] == [[1, "disco://b/x"], [0, "disco://a/x"], [2, "http://c/x"]]
    assert inputs.report_failure(0, [1]) == [[0, "disco://a/x"], [2, "http://c/x"]]
    assert inputs.listing()[0][3] == [[0, "disco://a/x"], [2, "http://c/x"], [1, "disco://b/x"]]


def test_results_index(tmp_path: Path) -> None:
    idx = ResultsIndex(tmp_path, "n1", "job", "map", 4)
    idx.add(0, "out/a", 10)
    idx.add(3, "./out/b", 5)
    idx.add(0, "out/c", 1)
    idx.add(1, "http://web/data", 7)
    with pytest.raises(OutputError):
        idx.add(0, "/etc/passwd", 1)
    with pytest.raises(OutputError):
        idx.add(0, "../elsewhere", 1)
    outputs = idx.close()
    host, url, labels = outputs[0]["dir"]
    assert host == "n1" and url.startswith("dir://n1/disco/n1/9d/job/.disco/map-4-")
    assert labels == [[0, 11], [3, 5]]
    assert outputs[1] == {"data": [1, 7, ["http://web/data"]]}
    index = (tmp_path / url.split("/job/", 1)[1]).read_text().splitlines()
    assert index == ["0 disco://n1/disco/n1/9d/job/out/a 10", "3 disco://n1/disco/n1/9d/job/out/b 5",
                     "0 disco://n1/disco/n1/9d/job/out/c 1"]


def test_config_table_and_settings() -> None:
    assert expand_hostspec("node08:11") == ["node08", "node09", "node10", "node11"]
    assert expand_hostspec("127.60.0.2") == ["127.60.0.2"]
    assert slots_from_table([["n1:2", "4"], ["x", 1]]) == {"n1": 4, "n2": 4, "x": 1}
    s = Settings()
    s.update({"max_failure_rate": "7", "accept_new_jobs": "0"})
    assert s.as_json() == {"max_failure_rate": 7, "accept_new_jobs": 0}


# ---------------------------------------------------------------------- scheduling


def _job(master: Master, prefix: str, inputs: list[str], tmp: Path) -> Job:
    pack = JobPack({"prefix": prefix, "worker": "w", "owner": "o",
                    "pipeline": [["map", "split"]], "inputs": [[0, 0, u] for u in inputs]},
                   version=VERSION_PIPELINE)
    name = new_jobname(prefix, master.jobs)
    job = Job(master, name, job_spec(pack), tmp / name)
    (tmp / name).mkdir(parents=True)
    master.jobs[name] = job
    return job


def _scheduled(policy: str, tmp: Path, nodes: dict[str, int],
               jobs: dict[str, list[str]]) -> dict[str, list[tuple[str, str]]]:
    """Which (job prefix, task group) each node gets in the first scheduling round."""
    async def run() -> dict[str, list[tuple[str, str]]]:
        master = Master(MasterConfig(data=tmp, scheduler=policy))
        for prefix, inputs in jobs.items():  # the jobs queue up before any node is there
            await _job(master, prefix, inputs, tmp).start()
        for host, slots in nodes.items():
            node_desk.register(master, {"host": host, "slots": slots, "port": 1})
        await asyncio.sleep(0.01)  # let the scheduling round run
        return {h: [(a["job"].split("@")[0], a["inputs"][0][2][0][1]) for a in n.outbox]
                for h, n in master.registry.nodes.items()}
    return asyncio.run(run())


def test_fifo_gives_the_oldest_job_every_slot(tmp_path: Path) -> None:
    got = _scheduled("fifo", tmp_path, {"n1": 2}, {"A": ["raw://1", "raw://2", "raw://3"],
                                                   "B": ["raw://4", "raw://5"]})
    assert [j for j, _ in got["n1"]] == ["A", "A"]


def test_fair_shares_slots_between_jobs(tmp_path: Path) -> None:
    got = _scheduled("fair", tmp_path, {"n1": 2}, {"A": ["raw://1", "raw://2", "raw://3"],
                                                   "B": ["raw://4", "raw://5"]})
    assert sorted(j for j, _ in got["n1"]) == ["A", "B"]


def test_tasks_go_where_their_data_is(tmp_path: Path) -> None:
    inputs = ["disco://n2/disco/a", "disco://n2/disco/b", "raw://c"]
    got = _scheduled("fair", tmp_path, {"n1": 2, "n2": 2}, {"A": inputs})
    assert sorted(u for _j, u in got["n2"]) == ["disco://n2/disco/a", "disco://n2/disco/b"]
    assert [u for _j, u in got["n1"]] == ["raw://c"]


def test_tasks_run_remotely_only_when_their_host_is_full(tmp_path: Path) -> None:
    inputs = ["disco://n2/disco/a", "disco://n2/disco/b"]
    got = _scheduled("fair", tmp_path, {"n1": 2, "n2": 1}, {"A": inputs})
    assert len(got["n2"]) == 1 and len(got["n1"]) == 1


def test_short_tasks_are_queued_on_nodes_beyond_their_slots(tmp_path: Path) -> None:
    async def run() -> tuple[int, int, int]:
        master = Master(MasterConfig(data=tmp_path))
        job = _job(master, "A", [f"raw://{i}" for i in range(200)], tmp_path)
        await job.start()
        node_desk.register(master, {"host": "n1", "slots": 2, "port": 1})
        await asyncio.sleep(0.01)
        unknown = len(master.registry.nodes["n1"].outbox)  # task times not known yet
        job.task_seconds = 0.05  # 0.25 s of work per slot: 5 more per slot
        master.scheduler.kick()
        await asyncio.sleep(0.01)
        short = len(master.registry.nodes["n1"].outbox)
        job.task_seconds = 0.0001
        master.scheduler.kick()
        await asyncio.sleep(0.01)
        return unknown, short, len(master.registry.nodes["n1"].outbox)
    unknown, short, tiny = asyncio.run(run())
    assert unknown == 2
    assert short == 2 * (1 + 5)
    assert tiny == 2 * (1 + 16)  # at most MAX_PIPELINE per slot


def test_slot_gate_lets_in_at_most_its_limit_in_order() -> None:
    async def run() -> tuple[list[int], int]:
        gate = SlotGate(2)
        order: list[int] = []
        peak = 0

        async def task(i: int) -> None:
            nonlocal peak
            async with gate:
                order.append(i)
                peak = max(peak, gate.held)
                await asyncio.sleep(0.005)

        waiters = [asyncio.create_task(task(i)) for i in range(6)]
        await asyncio.sleep(0)
        waiters[3].cancel()  # cancelled while waiting: it never runs, and holds nothing
        await asyncio.gather(*waiters, return_exceptions=True)
        assert gate.held == 0
        gate.limit = 3
        more = [asyncio.create_task(task(10 + i)) for i in range(6)]
        await asyncio.gather(*more)
        return order, peak
    order, peak = asyncio.run(run())
    assert order[:5] == [0, 1, 2, 4, 5]
    assert peak == 3


def test_slot_gate_waiter_cancelled_as_a_slot_frees() -> None:
    # kill_all cancels every runner at once: a release can meet a cancelled waiter's future
    # (and drop it) before that waiter runs. It must end cancelled, holding nothing.
    async def run() -> tuple[BaseException | None, int, int]:
        gate = SlotGate(1)
        release = asyncio.Event()

        async def holder() -> None:
            async with gate:
                await release.wait()
                second.cancel()  # its future is cancelled now; the task runs later

        async def waiter() -> None:
            async with gate:
                pass

        first = asyncio.create_task(holder())
        await asyncio.sleep(0)
        second = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        assert gate.waiting == 1
        release.set()  # the holder cancels the waiter and leaves: _wake drops its future
        await asyncio.gather(first, second, return_exceptions=True)
        exc = second.exception() if not second.cancelled() else None
        return exc, gate.held, gate.waiting
    exc, held, waiting = asyncio.run(run())
    assert exc is None  # cancelled, not a ValueError from the waiter list
    assert (held, waiting) == (0, 0)



def test_only_tasks_of_the_last_stage_are_final(tmp_path: Path) -> None:
    # A node syncs the results index of the job's last stage only: the outputs of earlier
    # stages are read by the next stage, and made again if lost.
    async def finals(pipeline: list[list[str]] | None, **classic: bool) -> set[bool]:
        master = Master(MasterConfig(data=tmp_path))
        if pipeline is None:  # a classic job: map, map_shuffle, then reduce if it has one
            pack = JobPack({"prefix": "F", "worker": "w", "owner": "o", "nr_reduces": 1,
                            "input": ["raw://1", "raw://2"], "map?": True, **classic},
                           version=VERSION_CLASSIC)
        else:
            pack = JobPack({"prefix": "F", "worker": "w", "owner": "o", "pipeline": pipeline,
                            "inputs": [[0, 0, "raw://1"], [0, 0, "raw://2"]]},
                           version=VERSION_PIPELINE)
        name = new_jobname("F", master.jobs)
        job = Job(master, name, job_spec(pack), tmp_path / name)
        (tmp_path / name).mkdir()
        await job.start()
        return {job.assignment(task)["final"] for task in job.stages[0].tasks}
    assert asyncio.run(finals([["map", "split"], ["reduce", "group_all"]])) == {False}
    assert asyncio.run(finals([["map", "split"]])) == {True}
    assert asyncio.run(finals(None, **{"reduce?": True})) == {False}  # map tasks of either
    assert asyncio.run(finals(None, **{"reduce?": False})) == {False}


def test_a_results_index_is_synced_only_when_asked(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    for sync in (True, False):
        index = ResultsIndex(tmp_path, "n1", "J@1:2:3", "map", int(sync), sync=sync)
        index.add(0, "map-0", 3)
        assert index.close()[0]["dir"][2] == [[0, 3]]
    assert len(synced) == 1
