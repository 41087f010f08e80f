"""The farm's output files (taskfarm/output_files.py), on SQLite and PostgreSQL: queued by the
transaction that assimilates their units and written by the loop; a project is done only once its
files are on disk; at the next start, files a crash took away, cut short or never wrote are
written again from the database, and temporary files it left are removed. A real crash of the
machine cannot be made here: the test takes the files away itself, as such a crash would."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from farm_fixtures import db_url  # noqa: F401  (a fixture)
from disco.taskfarm import output_files
from disco.taskfarm.models import Project
from disco.taskfarm.output_files import MARK, OutputFiles
from disco.taskfarm.schemas import ProjectSpec
from disco.taskfarm.service import Farm, FarmConfig
from disco.taskfarm.store import FarmStore

URL = "http://127.0.0.1:1/api/v1/farm/units/{unit_id}/input"


@pytest.fixture
def store(db_url: str) -> Iterator[FarmStore]:  # noqa: F811
    store = FarmStore(db_url)
    try:
        yield store
    finally:
        store.close()


def run_project(farm: Farm, lines: int) -> str:
    """A quorum-1 project of `lines` units, each done by one client whose output is its input upper-cased."""
    spec = ProjectSpec.model_validate({
        "code": {"kind": "container", "image": "busybox", "command": ["cat"]},
        "input": {"kind": "inline", "text": "".join(f"line {n}\n" for n in range(lines))},
        "split": {"by": "lines", "size": 1}})
    project_id = farm.create_project("t", spec)[0]
    _, key = farm.create_key("t", "test")
    client = farm.client(farm.enroll(key, "c", 1, "linux", 1, 0)[1])
    leases = farm.work(client, lines, lines, URL)
    items = [{"instance_id": lease["instance_id"], "attempt": lease["attempt"], "status": "ok",
              "output": base64.b64encode(base64.b64decode(lease["input"]["inline"]).upper()).decode()}
             for lease in leases]
    assert {answer["status"] for answer in farm.report(client, items)} == {"accepted"}
    return project_id


def state(farm: Farm, project_id: str) -> str:
    with farm.store.session() as s:
        return s.scalar(select(Project.state).where(Project.id == project_id)) or ""


def test_files_are_written_by_the_loop_and_the_project_is_done_after(store: FarmStore, tmp_path: Path) -> None:
    farm = Farm(store, FarmConfig(output_dir=tmp_path / "out"))
    project_id = run_project(farm, 5)
    assert not (tmp_path / "out" / project_id).exists()  # queued by the commit, not written by it
    assert state(farm, project_id) == "open"
    assert farm.results("t", project_id)["complete"]  # the database holds the outputs already
    farm.tick()
    files = sorted((tmp_path / "out" / project_id).iterdir())
    assert [path.read_bytes() for path in files] == [f"LINE {n}\n".encode() for n in range(5)]
    assert state(farm, project_id) == "done"
    assert json.loads((tmp_path / "out" / MARK).read_text())["written_before"] > 0


def test_files_a_crash_lost_are_written_again_at_start(store: FarmStore, tmp_path: Path) -> None:
    farm = Farm(store, FarmConfig(output_dir=tmp_path / "out"))
    project_id = run_project(farm, 6)
    farm.tick()
    files = sorted((tmp_path / "out" / project_id).iterdir())
    files[0].unlink()  # never flushed: gone
    files[1].write_bytes(b"")  # cut short
    files[2].write_bytes(b"LINE 9\n")  # garbled
    leftover = tmp_path / "out" / project_id / ".tmp-123-4-00000003-4.out"
    leftover.write_bytes(b"half")
    restarted = Farm(store, FarmConfig(output_dir=tmp_path / "out"))
    assert restarted.recover() == 3
    assert [path.read_bytes() for path in sorted((tmp_path / "out" / project_id).iterdir())] == \
        [f"LINE {n}\n".encode() for n in range(6)]
    assert restarted.recover() == 0  # nothing left to do, and no temporary file


def test_queued_files_a_killed_server_never_wrote_are_written_at_start(store: FarmStore, tmp_path: Path) -> None:
    farm = Farm(store, FarmConfig(output_dir=tmp_path / "out"))
    project_id = run_project(farm, 4)  # committed; the loop never ran (the server was killed)
    restarted = Farm(store, FarmConfig(output_dir=tmp_path / "out"))
    assert restarted.recover() == 4
    assert len(list((tmp_path / "out" / project_id).glob("*.out"))) == 4


def test_a_loop_that_falls_behind_has_the_committer_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output_files, "MAX_QUEUED", 3)  # memory stays bounded: at most this many wait
    files = OutputFiles(tmp_path)
    files.queue([(tmp_path / "p" / f"{n}.out", b"x") for n in range(3)])
    assert not (tmp_path / "p").exists()
    files.queue([(tmp_path / "p" / "3.out", b"x")])
    assert sorted(path.name for path in (tmp_path / "p").iterdir()) == ["0.out", "1.out", "2.out", "3.out"]


def test_a_failed_write_is_tried_again_at_the_next_flush(tmp_path: Path) -> None:
    files = OutputFiles(tmp_path)
    blocker = tmp_path / "p"
    blocker.write_bytes(b"a file where the project's directory goes")
    files.queue([(blocker / "0.out", b"x")])
    with pytest.raises(OSError):
        files.flush()
    blocker.unlink()
    files.flush()
    assert (blocker / "0.out").read_bytes() == b"x"
