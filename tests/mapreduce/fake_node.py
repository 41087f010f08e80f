"""A node played by the test: it unpacks a job pack's job home, starts `run-worker` as the
node does (cwd = job home, DISCO_PYTHON set, stdout and stderr merged into one pipe),
answers the worker protocol and reads back the outputs. Used by test_client_worker.py and
test_client_job_functions.py."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from disco.job import Job
from disco.util import hexhash
from disco.worker.protocol import Parser, encode
from disco.worker.task_io import disco_input_stream

HOST = "nodeA"
JOBNAME = "Job@5a1:2b:3c"


@dataclass
class Session:
    messages: list[tuple[str, Any]] = field(default_factory=list)
    outputs: list[list[Any]] = field(default_factory=list)
    end: str = ""
    end_payload: Any = None
    exit_code: int | None = None
    raw: bytes = b""

    def msgs(self) -> list[str]:
        return [p for n, p in self.messages if n == "MSG"]


class FakeNode:
    """Just enough of a node to run one task of a job pack's worker."""

    def __init__(self, root: Path, pack: Any) -> None:
        self.root = root
        self.data = root / "data"
        self.home = self.data / HOST / hexhash(JOBNAME) / JOBNAME
        self.home.mkdir(parents=True)
        with zipfile.ZipFile(io.BytesIO(pack.jobhome)) as archive:
            for info in archive.infolist():
                archive.extract(info, self.home)
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    os.chmod(self.home / info.filename, mode)
        (self.home / "jobfile").write_bytes(pack.dumps())

    def local_url(self, relpath: str) -> str:
        """The disco:// URL the node would give a local output of this job."""
        return f"disco://{HOST}/disco/{HOST}/{hexhash(JOBNAME)}/{JOBNAME}/{relpath}"

    def write_index(self, name: str, outputs: list[list[Any]]) -> str:
        """A results index as the node writes it, and its dir:// URL."""
        index = self.home / ".disco" / name
        index.parent.mkdir(exist_ok=True)
        index.write_text("".join(f"{label} {self.local_url(path)} {size}\n"
                                 for label, path, size in outputs))
        return f"dir://{HOST}/disco/{HOST}/{hexhash(JOBNAME)}/{JOBNAME}/.disco/{name}"

    def run(self, stage: str, inputs: list[list[Any]], *, taskid: int = 0,
            grouping: str = "split", group: Any = None, retry: dict[int, list] | None = None,
            timeout: float = 60) -> Session:
        task = {"taskid": taskid, "master": "http://127.0.0.1:9", "disco_port": 8989,
                "put_port": 8990, "ddfs_data": str(self.root / "ddfs"),
                "disco_data": str(self.data), "stage": stage, "grouping": grouping,
                "group": group or [0, HOST], "jobfile": str(self.home / "jobfile"),
                "jobname": JOBNAME, "host": HOST}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCO_", "DDFS_"))}
        env["DISCO_PYTHON"] = sys.executable
        proc = subprocess.Popen([str(self.home / "run-worker")], cwd=self.home, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        session = Session()
        parser = Parser()
        retry = dict(retry or {})
        deadline = time.monotonic() + timeout
        try:
            while not session.end:
                left = deadline - time.monotonic()
                assert left > 0, f"worker did not finish; got {session.messages}"
                ready, _, _ = select.select([proc.stdout], [], [], left)
                if not ready:
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                session.raw += chunk
                for name, payload in parser.feed(chunk):
                    session.messages.append((name, payload))
                    reply = self.reply(name, payload, task, inputs, retry, session)
                    if reply is not None:
                        proc.stdin.write(encode(*reply))
                        proc.stdin.flush()
            session.exit_code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdin.close()
            proc.stdout.close()
        return session

    @staticmethod
    def reply(name: str, payload: Any, task: dict, inputs: list, retry: dict,
              session: Session) -> tuple[str, Any] | None:
        if name == "WORKER":
            assert payload["version"] == "1.1" and isinstance(payload["pid"], int)
            return "OK", "ok"
        if name == "TASK":
            return "TASK", task
        if name == "INPUT":
            if payload == "":
                return "INPUT", ["done", inputs]
            kind, ids = payload
            chosen = [i for i in inputs if (i[0] in ids) == (kind == "include")]
            return "INPUT", ["done", chosen]
        if name == "INPUT_ERR":
            input_id, _failed = payload
            if retry.get(input_id):
                return "RETRY", retry.pop(input_id)
            return "FAIL", ""
        if name == "OUTPUT":
            session.outputs.append(payload)
            return "OK", "ok"
        if name in ("DONE", "ERROR", "FATAL"):
            session.end, session.end_payload = name, payload
            return "OK", "ok"
        return "OK", "ok" if name != "PING" else "pong"

    def records(self, output: list[Any]) -> list[Any]:
        path = self.home / output[1]
        assert path.stat().st_size == output[2]
        with open(path, "rb") as file:
            return list(disco_input_stream(file, None, str(path)))


def make_pack(**jobargs: Any) -> Any:
    worker = jobargs.pop("worker", None)
    job = Job(worker=worker) if worker is not None else Job()
    return job.worker.jobpack(job, **jobargs)
