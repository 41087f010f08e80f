"""valid -> assimilated, exactly once: the canonical output is written atomically (a temporary
file, fsync, rename) under the project's output directory, named by the unit, and the unit's
compare-and-set commits in the same transaction. A crash between the two leaves the unit valid,
and the next pass writes the same bytes to the same name again: one file, one `assimilate`.
Projects whose output is a DDFS tag are left valid here: the loop assimilates them
(assimilate_ddfs.py), outside any transaction."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from disco.taskfarm.models import Instance, Project, Unit
from disco.taskfarm.store import OUTPUTS_KEY, FarmStore, cas, log


def output_path(root: Path, project_id: str, seq: int, unit_id: int) -> Path:
    return root / project_id / f"{seq:08d}-{unit_id}.out"


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_staged(session: Session, path: Path, data: bytes) -> None:
    """write_atomically, with its fsync and rename left to just before the transaction commits
    (store._write_outputs): the files of one group commit are fsynced in parallel, and still
    each before the commit that records it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    session.info.setdefault(OUTPUTS_KEY, []).append((Path(tmp), path))


def assimilate_one(session: Session, root: Path, unit_id: int, locked: Unit | None = None) -> bool:
    """`locked`: the unit, when this transaction holds its row already (a report just made it valid)."""
    unit = locked if locked is not None else session.get(Unit, unit_id, with_for_update=True)
    if unit is None or unit.state != "valid" or unit.canonical_instance_id is None:
        return False
    project = session.get(Project, unit.project_id)
    if project is not None and project.output is not None:
        return False  # a DDFS tag: assimilate_ddfs.py
    canonical = session.get(Instance, unit.canonical_instance_id)
    assert canonical is not None
    path = output_path(root, unit.project_id, unit.seq, unit.id)
    write_staged(session, path, canonical.output or b"")
    if not cas(session, Unit, unit.id, "valid", state="assimilated", output_path=str(path)):
        return False
    log(session, "assimilate", unit.project_id, unit_id=unit.id, instance_id=canonical.id,
        client_id=canonical.client_id, attempt=canonical.attempt, detail=str(path))
    return True


def assimilate_ready(store: FarmStore, root: Path, limit: int = 500) -> int:
    """Every valid unit of a files-output project (up to `limit`), each in a transaction of its own."""
    with store.session() as s:
        ids = s.scalars(select(Unit.id).join(Project, Project.id == Unit.project_id)
                        .where(Unit.state == "valid", Project.output.is_(None)).order_by(Unit.id).limit(limit)).all()
    done = 0
    for unit_id in ids:
        with store.session() as s:
            done += assimilate_one(s, root, unit_id)
    return done
