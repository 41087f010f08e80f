"""Helpers for tests with real `disco farm client` processes: a project from a Python function
(pickled as `disco farm submit` does), clients started and killed, and the audit read from the
server's database (the attempts log and the units): units lost, units assimilated twice."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from farm_fixtures import FarmServer

FUNCTION = '''
import hashlib
import os
import time


def work(data: bytes) -> bytes:
    """Each unit's SHA-256; slow when FARM_TEST_SLEEP is set, wrong when FARM_TEST_LIAR is (tests)."""
    time.sleep(float(os.environ.get("FARM_TEST_SLEEP", "0")))
    out = hashlib.sha256(data).hexdigest()
    if os.environ.get("FARM_TEST_BIG"):
        return out * int(os.environ["FARM_TEST_BIG"])
    return ("lie:" + out) if os.environ.get("FARM_TEST_LIAR") else out
'''


def expected(data: bytes) -> bytes:
    return hashlib.sha256(data).hexdigest().encode()


def submit(farm: FarmServer, tmp: Path, units: int, **spec: Any) -> tuple[str, list[bytes]]:
    """A project of `units` one-line units; returns its id and the units' inputs."""
    from disco.cli.farm_submit import load_function, pickle_function

    (tmp / "farmwork.py").write_text(FUNCTION)
    pickled = pickle_function(load_function(str(tmp / "farmwork.py") + ":work"))
    lines = [f"unit {i} {os.urandom(4).hex()}\n".encode() for i in range(units)]
    body = {"name": "faults", "code": {"kind": "python", "pickle": pickled},
            "input": {"kind": "inline", "text": b"".join(lines).decode()}, "split": {"by": "lines", "size": 1},
            **spec}
    with farm.owner() as owner:
        answer = owner.post("/api/v1/farm/projects", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()["project_id"], lines


def enrollment_key(farm: FarmServer, path: Path) -> Path:
    with farm.owner() as owner:
        answer = owner.post("/api/v1/farm/keys", json={"description": "test clients"})
    assert answer.status_code == 201, answer.text
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(answer.json()["key"])
    return path


class ClientProc:
    """`disco farm client` as a volunteer runs it; its output goes to a log file."""

    def __init__(self, url: str, key_file: Path, state_dir: Path, slots: int = 2, env: dict[str, str] | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = state_dir / "client.log"
        self.state_dir = state_dir
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "disco.cli.main", "farm", "client", "--server", url, "--slots", str(slots),
             "--key-file", str(key_file), "--state-dir", str(state_dir), "--name", state_dir.name, *extra],
            stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "NO_PROXY": "*", **(env or {})})

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM, as a volunteer's service manager stops it; kill -9 if it does not go."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def rows(farm: FarmServer, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(farm.db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def wait_done(farm: FarmServer, project: str, timeout: float, procs: list[ClientProc] = ()) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    with farm.owner() as owner:
        while time.monotonic() < deadline:
            try:
                view = owner.get(f"/api/v1/farm/projects/{project}").json()
            except Exception:  # the server may be restarting
                view = {}
            if view.get("state") == "done":
                return view
            time.sleep(0.2)
    logs = "\n".join(p.log[-2000:] for p in procs)
    raise AssertionError(f"project not done in {timeout} s: {view}\n{logs}")


def audit(farm: FarmServer, project: str, lines: list[bytes]) -> dict[str, int]:
    """From the database and the output files: units, lost (never assimilated, or output missing
    or wrong), assimilated twice (the attempts log), and the attempts log's counts by kind. The
    files are looked at once the project is no longer open (a project is done when its files are
    on disk; the farm's loop writes them), or after 15 s if it stays open (then what is missing
    counts as lost)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and rows(farm, "select state from farm_projects where id = :p",
                                               p=project) == [("open",)]:
        time.sleep(0.2)
    units = rows(farm, "select id, seq, state from farm_units where project_id = :p", p=project)
    assimilations = rows(farm, "select unit_id, count(*) from farm_attempts where project_id = :p "
                               "and kind = 'assimilate' group by unit_id", p=project)
    kinds = dict(rows(farm, "select kind, count(*) from farm_attempts where project_id = :p group by kind",
                      p=project))
    once = {unit_id for unit_id, n in assimilations if n == 1}
    lost = 0
    for unit_id, seq, state in units:
        path = farm.data_dir / "output" / project / f"{seq:08d}-{unit_id}.out"
        good = state == "assimilated" and unit_id in once and path.exists() and \
            path.read_bytes() == expected(lines[seq])
        lost += not good
    return {"units": len(units), "lost": lost, "twice": sum(1 for _, n in assimilations if n > 1),
            **{f"log_{k}": v for k, v in kinds.items()}}
