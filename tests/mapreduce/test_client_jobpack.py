"""Job packs built by the client: jobdict, job home, and job data that a fresh process
(as on a node) can load."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from disco.error import DiscoError
from disco.job import Job, JobPack
from disco.jobpack import VERSION_CLASSIC, VERSION_PIPELINE, JobPackError
from disco.worker import Params, load_worker
from disco.worker.pipeline.worker import Stage
from disco.worker.pipeline.worker import Worker as PipelineWorker


def fun_map(entry, params):
    return [(entry, 1)]


def test_classic_jobdict_and_job_home() -> None:
    job = Job(name="WordCount")
    pack = job.worker.jobpack(job, input=["http://h/a", ["http://r1/b", "http://r2/b"]],
                              map=fun_map, reduce=lambda it, p: it, partitions=4,
                              owner="me@here", scheduler={"max_cores": 3}, save_results=True)
    assert pack.version == VERSION_CLASSIC
    d = pack.jobdict
    assert d["input"] == ["http://h/a", ["http://r1/b", "http://r2/b"]]
    assert d["worker"] == "run-worker" and d["prefix"] == "WordCount"
    assert d["map"] is d["map?"] is True and d["reduce"] is d["reduce?"] is True
    assert d["nr_reduces"] == 4 and d["owner"] == "me@here"
    assert d["scheduler"] == {"max_cores": 3} and d["save_results"] is True
    loaded = JobPack.loads(pack.dumps())
    assert loaded.jobdict == d and loaded.version == VERSION_CLASSIC
    with zipfile.ZipFile(io.BytesIO(loaded.jobhome)) as archive:
        info = archive.getinfo("run-worker")
        assert (info.external_attr >> 16) & 0o111
        script = archive.read("run-worker").decode()
    assert script == ('#!/bin/sh\nexec "${DISCO_PYTHON:-python3}" -m '
                      'disco.worker.classic.worker "$@"\n')
    assert loaded.jobdata.startswith(b"DISCO-PY %d.%d\n" % sys.version_info[:2])


def test_defaults_and_map_only_job() -> None:
    job = Job()
    pack = job.worker.jobpack(job, input=["raw://a"], map=fun_map)
    d = pack.jobdict
    assert d["prefix"] == "Job" and d["nr_reduces"] == 1 and d["reduce?"] is False
    assert d["owner"] and d["save_results"] is False


def test_job_subclass_attributes_resolve_after_jobargs() -> None:
    class Counting(Job):
        partitions = 3
        sort = True
        params = Params(limit=5)

        @staticmethod
        def map(entry, params):
            return [(entry, params.limit)]

    job = Counting()
    worker = job.worker
    assert worker.getitem("partitions", job, {}) == 3
    assert worker.getitem("partitions", job, {"partitions": 8}) == 8
    assert worker.getitem("combiner", job, {}) is None
    assert worker.getitem("map", job, {})("x", Params(limit=2)) == [("x", 2)]
    pack = worker.jobpack(job, input=["raw://a"])
    assert pack.jobdict["prefix"] == "Counting" and pack.jobdict["nr_reduces"] == 3


def test_save_as_a_job_attribute_saves_the_results() -> None:
    # Disco's short name `save` works as a Job class attribute, not only as run(save=...).
    class Saving(Job):
        save = True
        map = staticmethod(fun_map)

    job = Saving()
    assert job.worker.jobpack(job, input=["raw://a"]).jobdict["save_results"] is True
    assert job.worker.jobpack(job, input=["raw://a"], save=False).jobdict["save_results"] is False


def test_header_builder_and_refusals_in_discos_words() -> None:
    # Disco's class-level names; its tests build headers with them.
    size = JobPack.HEADER_SIZE
    assert size == 128 and JobPack.MAGIC == 0xD5C0
    pack = JobPack({"prefix": "P", "worker": "w", "input": [], "map?": True}).dumps()
    offsets = list(struct.unpack_from("!4I", pack, 4))
    assert pack[:size] == JobPack.header(offsets)
    with pytest.raises(JobPackError, match="bad magic"):
        JobPack.loads(JobPack.header(offsets, magic=0) + pack[size:])
    for bad, phrase in [(pack[:size - 1], "invalid header"),
                        (JobPack.header([size + 1] * 4) + b"0", "invalid header"),
                        (JobPack({"worker": "w"}).dumps(), "missing key 'prefix'"),
                        (JobPack({"prefix": "a.b", "worker": "w"}).dumps(), "invalid prefix")]:
        with pytest.raises(JobPackError) as caught:
            JobPack.loads(bad)
        assert str(caught.value).startswith(phrase)


def test_both_argument_orders_make_the_same_pack() -> None:
    from disco.job import JOBPACK_VERSION1, JOBPACK_VERSION2
    jobdict = {"prefix": "P", "worker": "w", "input": ["raw://a"], "map?": True}
    ours = JobPack(jobdict, {"A": "1"}, b"", b"data", VERSION_CLASSIC)
    discos = JobPack(JOBPACK_VERSION1, jobdict, {"A": "1"}, b"", b"data")
    assert discos == ours and discos.dumps() == ours.dumps()
    assert JobPack.loads(discos.dumps()).jobdata == b"data"
    pipeline = {"prefix": "P", "worker": "w", "pipeline": [["map", "split"]], "inputs": []}
    assert JobPack(JOBPACK_VERSION2, pipeline).version == VERSION_PIPELINE
    assert JobPack(pipeline, version=VERSION_PIPELINE) == JobPack(VERSION_PIPELINE, pipeline)
    assert JobPack(jobdict=jobdict, jobdata=b"x").jobdata == b"x"
    for args, kwargs in [((1, jobdict), {"version": 2}), ((jobdict, {}), {"jobenvs": {}}),
                         ((), {"jobenvs": {}}), ((jobdict,), {"colour": "red"}),
                         ((jobdict, {}, b"", b"", 1, 2), {})]:
        with pytest.raises(TypeError):
            JobPack(*args, **kwargs)


def test_bad_jobs_are_refused_before_submission() -> None:
    job = Job(name="bad.name")
    with pytest.raises(DiscoError):
        job.worker.jobpack(job, input=["raw://a"], map=fun_map)
    with pytest.raises(DiscoError):
        Job().worker.jobpack(Job(), input=["raw://a"])  # neither map nor reduce
    # No input at all is not an error: Disco runs such a job, and its results are empty.
    assert Job().worker.jobpack(Job(), input=[], map=fun_map).jobdict["input"] == []


def test_pipeline_pack() -> None:
    job = Job(worker=PipelineWorker())
    pipeline = [("split", Stage("map", process=lambda i, s, l, inp: None)),
                ("group_label", Stage("reduce", process=lambda i, s, l, inp: None), True)]
    pack = job.worker.jobpack(job, input=["raw://a", ["http://r1/x", "http://r2/x"]],
                              pipeline=pipeline)
    assert pack.version == VERSION_PIPELINE
    d = pack.jobdict
    assert d["pipeline"] == [["map", "split", False], ["reduce", "group_label", True]]
    assert d["inputs"] == [[0, 0, "raw://a"], [0, 0, "http://r1/x", "http://r2/x"]]
    assert JobPack.loads(pack.dumps()).jobdict == d
    with zipfile.ZipFile(io.BytesIO(pack.jobhome)) as archive:
        assert b"disco.worker.pipeline.worker" in archive.read("run-worker")
    with pytest.raises(DiscoError):
        job.worker.jobpack(job, input=["raw://a"], pipeline=[("nope", Stage("x"))])
    with pytest.raises(DiscoError):
        job.worker.jobpack(job, input=["raw://a"],
                           pipeline=[("split", Stage("x")), ("split", Stage("x"))])


BUILD_SCRIPT = textwrap.dedent('''
    import functools, re, sys
    from disco.job import Job
    from disco.worker import Params
    import mylib

    WORD = re.compile(r"\\w+")

    def words(line, params):
        return [(w, params.weight) for w in WORD.findall(line)]

    def make_scaler(factor):
        def scale(key, value):
            return key, value * factor
        return scale

    def tagged(tag, entry, params):
        return [(tag, mylib.double(len(entry)))]

    class MainJob(Job):
        partitions = 2

        @staticmethod
        def map(entry, params):
            return words(entry, params)

    job = MainJob()
    pack = job.worker.jobpack(job, input=["raw://x"],
                              reduce=lambda it, params: sorted(it),
                              combiner=make_scaler(10),
                              map_init=functools.partial(tagged, "init"),
                              params=Params(weight=3))
    open(sys.argv[1], "wb").write(pack.dumps())
''')

LOAD_SCRIPT = textwrap.dedent('''
    import io, json, os, sys, zipfile
    from disco.jobpack import JobPack
    from disco.worker import load_worker, Params
    home = sys.argv[2]
    pack = JobPack.loads(open(sys.argv[1], "rb").read())
    zipfile.ZipFile(io.BytesIO(pack.jobhome)).extractall(home)
    sys.path.insert(0, os.path.join(home, "lib"))
    worker = load_worker(sys.argv[1])
    params = worker["params"]
    print(json.dumps({
        "class": type(worker).__module__ + "." + type(worker).__name__,
        "map": worker["map"]("to be or", params),
        "reduce": worker["reduce"]([("b", 1), ("a", 2)], params),
        "combiner": worker["combiner"]("k", 2),
        "init": worker["map_init"]("abc", params),
        "partitions": worker["partitions"],
        "modules": worker["required_modules"],
        "main_loaded": "MainJob" in dir(sys.modules["__main__"]),
    }))
''')


def test_job_data_loads_in_a_fresh_process(tmp_path: Path) -> None:
    """Lambdas, closures, partials, __main__ functions and Job subclasses, module-level
    imports and the user's own modules all survive the trip to a node."""
    (tmp_path / "mylib.py").write_text("def double(x):\n    return 2 * x\n")
    (tmp_path / "build.py").write_text(BUILD_SCRIPT)
    (tmp_path / "load.py").write_text(LOAD_SCRIPT)
    jobfile = tmp_path / "jobpack"
    subprocess.run([sys.executable, "build.py", str(jobfile)], cwd=tmp_path, check=True,
                   timeout=60)
    with zipfile.ZipFile(io.BytesIO(JobPack.loads(jobfile.read_bytes()).jobhome)) as archive:
        assert "lib/mylib.py" in archive.namelist()
    node = tmp_path / "node"
    node.mkdir()
    (node / "load.py").write_text(LOAD_SCRIPT)
    out = subprocess.run([sys.executable, "load.py", str(jobfile), str(node / "home")],
                         cwd=node, check=True, capture_output=True, timeout=60)
    result = json.loads(out.stdout)
    assert result["class"] == "disco.worker.classic.worker.Worker"
    assert result["map"] == [["to", 3], ["be", 3], ["or", 3]]
    assert result["reduce"] == [["a", 2], ["b", 1]]
    assert result["combiner"] == ["k", 20]
    assert result["init"] == [["init", 6]]
    assert result["partitions"] == 2
    assert result["modules"] == ["mylib"]
    assert result["main_loaded"] is False


def test_explicit_required_modules_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "helper_mod.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data_file = tmp_path / "table.txt"
    data_file.write_text("data")
    job = Job()
    pack = job.worker.jobpack(job, input=["raw://a"], map=fun_map,
                              required_modules=["helper_mod", "json",
                                                ("other", str(tmp_path / "helper_mod.py"))],
                              required_files=[str(data_file)])
    with zipfile.ZipFile(io.BytesIO(pack.jobhome)) as archive:
        names = set(archive.namelist())
    assert {"lib/helper_mod.py", "lib/table.txt", "run-worker"} <= names
    assert not any("json" in name for name in names)
    pack = job.worker.jobpack(job, input=["raw://a"], map=fun_map,
                              required_files={"conf.ini": b"[x]"})
    with zipfile.ZipFile(io.BytesIO(pack.jobhome)) as archive:
        assert archive.read("conf.ini") == b"[x]"


def test_load_worker_rejects_foreign_job_data(tmp_path: Path) -> None:
    pack = JobPack({"prefix": "x", "worker": "w", "input": ["raw://a"], "map": True},
                   jobdata=b"not ours")
    path = tmp_path / "jobfile"
    path.write_bytes(pack.dumps())
    with pytest.raises(DiscoError):
        load_worker(str(path))
    assert os.path.exists(path)
