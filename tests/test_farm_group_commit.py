"""Group commit (taskfarm/groupcommit.py) on SQLite and PostgreSQL: many requests at once each get
their own answer after a commit; one that fails leaves nothing behind and undoes nobody else's
work; the attempts log and staged output files are written at commit, dropped on rollback."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from farm_fixtures import db_url  # noqa: F401  (a fixture)
from disco.errors import NotFound
from disco.taskfarm.assimilate import write_staged
from disco.taskfarm.models import Attempt, Project
from disco.taskfarm.store import FarmStore, log


def _project(pid: str) -> Project:
    return Project(id=pid, tenant="t", code={"kind": "container", "image": "x", "command": ["true"]},
                   comparator={"name": "exact"})


def test_one_failing_request_undoes_only_itself(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out"  # the SQLite database lives in tmp_path too
    farm = FarmStore(db_url)
    answers: dict[int, object] = {}
    go = threading.Barrier(24)

    def request(i: int) -> None:
        def work(s: Session) -> str:
            s.add(_project(f"p{i}"))
            log(s, "test", f"p{i}")
            write_staged(s, out / f"out{i}", str(i).encode())
            s.flush()
            if i == 7:
                raise NotFound("request 7 fails")
            return f"p{i}"
        go.wait()
        try:
            answers[i] = farm.write(work)
        except NotFound as exc:
            answers[i] = exc

    try:
        threads = [threading.Thread(target=request, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert isinstance(answers[7], NotFound)
        assert {i: a for i, a in answers.items() if i != 7} == {i: f"p{i}" for i in range(24) if i != 7}
        with farm.session() as s:
            assert set(s.scalars(select(Project.id))) == {f"p{i}" for i in range(24) if i != 7}
            assert s.scalar(select(func.count()).select_from(Attempt)) == 23
        assert sorted(p.name for p in out.iterdir()) == sorted(f"out{i}" for i in range(24) if i != 7)
        assert (out / "out3").read_bytes() == b"3"
    finally:
        farm.close()


def test_a_failing_transaction_drops_its_staged_output(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    farm = FarmStore(db_url)
    try:
        with pytest.raises(RuntimeError):
            with farm.session() as s:
                write_staged(s, tmp_path / "out" / "never", b"x")
                raise RuntimeError("rolled back")
        assert not (tmp_path / "out").exists()
    finally:
        farm.close()
