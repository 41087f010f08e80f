"""valid -> assimilated, exactly once: the canonical output is queued to be written atomically (a
temporary file renamed, by the loop: output_files.py) under the project's output directory,
named by the unit, and the unit's compare-and-set commits in the same transaction. A crash
between the two leaves the unit valid, and the next pass writes the same bytes to the same name
again: one file, one `assimilate`. Projects whose output is a DDFS tag are left valid here: the
loop assimilates them (assimilate_ddfs.py), outside any transaction."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from disco.taskfarm.models import Instance, Project, Unit, now
from disco.taskfarm.store import OUTPUTS_KEY, FarmStore, cas, log

I = Instance.__table__
P = Project.__table__
U = Unit.__table__


def output_path(root: Path, project_id: str, seq: int, unit_id: int) -> Path:
    return root / project_id / f"{seq:08d}-{unit_id}.out"


def write_staged(session: Session, path: Path, data: bytes) -> None:
    """`data` to be written to `path` atomically (a temporary file renamed), handed over just
    before the transaction commits (store._write_outputs): the farm's loop writes and flushes it
    (output_files.py). Nothing is handed over if the transaction rolls back first."""
    session.info.setdefault(OUTPUTS_KEY, []).append((path, data))


def assimilate_one(session: Session, root: Path, unit_id: int) -> bool:
    """A valid unit's canonical output staged, and the unit assimilated, in this transaction."""
    conn = session.connection()
    unit = conn.execute(select(U.c.id, U.c.project_id, U.c.seq, U.c.state, U.c.canonical_instance_id)
                        .where(U.c.id == unit_id).with_for_update()).first()
    if unit is None or unit.state != "valid" or unit.canonical_instance_id is None:
        return False
    if conn.execute(select(P.c.output).where(P.c.id == unit.project_id)).scalar() is not None:
        return False  # a DDFS tag: assimilate_ddfs.py
    canonical = conn.execute(select(I.c.id, I.c.output, I.c.client_id, I.c.attempt)
                             .where(I.c.id == unit.canonical_instance_id)).first()
    assert canonical is not None
    path = output_path(root, unit.project_id, unit.seq, unit.id)
    if not cas(conn, U, unit.id, "valid", state="assimilated", output_path=str(path), updated_at=now()):
        return False
    write_staged(session, path, canonical.output or b"")
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
