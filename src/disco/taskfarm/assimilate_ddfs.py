"""valid -> assimilated for projects whose output is a DDFS tag: each unit's canonical output
one blob in the tag, exactly once, across restarts of the farm server.

Network calls never run inside a transaction (the report path leaves these units valid; the
loop assimilates them), so the order of what is recorded carries the guarantee:

1. push: the output is uploaded as a blob named `<project id>-<seq>`, untagged; its replica
   URLs are then recorded on the unit (`output_path`, only if none are recorded yet). A stop
   before the record leaves an untagged blob, which DDFS's garbage collector removes; the
   next pass pushes again.
2. tag: the recorded URLs are added to the tag with `update=1`, which drops a blob whose name
   the tag has already. A stop after the tag but before step 3 tags the same name again next
   pass: DDFS keeps one.
3. mark: valid -> assimilated (compare-and-set) and the attempts log's `assimilate`, in one
   transaction.

Two servers on one database push a unit twice at worst: only the first record counts, and the
tag holds one blob of that name either way.

A recorded blob still untagged after REPUSH_AFTER_S (DDFS down, or the server stopped for long)
is pushed again rather than tagged: DDFS's garbage collector may remove an untagged blob after
its orphan grace (DDFS_ORPHAN_GRACE, 5 days by default; it must stay above this)."""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from disco.taskfarm.ddfs_io import DdfsAccess, comm_failure
from disco.taskfarm.models import Instance, Project, Unit
from disco.taskfarm.store import FarmStore, cas, log

logger = logging.getLogger(__name__)
BATCH = 200
REPUSH_AFTER_S = 3600.0


def blob_name(project_id: str, seq: int) -> str:
    return f"{project_id}-{seq:08d}"


def pending(store: FarmStore, limit: int = BATCH) -> list[tuple[int, str, int, str, str]]:
    """Valid units of DDFS-output projects: (unit id, project id, seq, tag, recorded URLs)."""
    with store.session() as s:
        found = s.execute(select(Unit.id, Unit.project_id, Unit.seq, Project.output, Unit.output_path)
                          .join(Project, Project.id == Unit.project_id)
                          .where(Unit.state == "valid", Project.output.is_not(None))
                          .order_by(Unit.id).limit(limit)).all()
    return [(uid, pid, seq, out["tag"], path) for uid, pid, seq, out, path in found
            if isinstance(out, dict) and out.get("kind") == "ddfs"]


def push(store: FarmStore, access: DdfsAccess, units: list[tuple[int, str, int, str, str]]) -> None:
    """Step 1 for the units with no recorded blob yet."""
    ddfs = access.client()
    for unit_id, project_id, seq, tag, recorded in units:
        if recorded:
            continue
        with store.session() as s:
            unit = s.get(Unit, unit_id)
            canonical = s.get(Instance, unit.canonical_instance_id) if unit and unit.canonical_instance_id else None
            data = (canonical.output or b"") if canonical else b""
        if canonical is None:
            continue
        try:
            urls = ddfs.upload(data, blob_name(project_id, seq))
        except Exception as exc:  # noqa: BLE001 - any failure: the unit stays valid, tried next pass
            logger.warning("DDFS output: %s", comm_failure(exc, tag, "write").message)
            return
        with store.session() as s:
            s.execute(update(Unit).where(Unit.id == unit_id, Unit.state == "valid", Unit.output_path == "")
                      .values(output_path=json.dumps({"urls": urls, "pushed_at": time.time()})))


def tag(store: FarmStore, access: DdfsAccess, unit_ids: list[int]) -> list[int]:
    """Step 2: every recorded blob of these units added to its project's tag; the units tagged."""
    with store.session() as s:
        rows = s.execute(select(Unit.id, Unit.output_path, Project.output)
                         .join(Project, Project.id == Unit.project_id)
                         .where(Unit.id.in_(unit_ids), Unit.state == "valid", Unit.output_path != "")).all()
    by_tag: dict[str, list[tuple[int, list[str]]]] = defaultdict(list)
    stale: list[tuple[int, str]] = []
    for uid, path, out in rows:
        record = json.loads(path)
        if time.time() - record["pushed_at"] > REPUSH_AFTER_S:
            stale.append((uid, path))
        else:
            by_tag[out["tag"]].append((uid, record["urls"]))
    if stale:  # pushed again next pass (the same name: the tag keeps one)
        with store.session() as s:
            for uid, path in stale:
                s.execute(update(Unit).where(Unit.id == uid, Unit.state == "valid", Unit.output_path == path)
                          .values(output_path=""))
    ddfs = access.client()
    tagged: list[int] = []
    for name, entries in by_tag.items():
        try:
            ddfs.tag(name, [urls for _, urls in entries], update=True)
        except Exception as exc:  # noqa: BLE001 - any failure: these units stay valid, tagged next pass
            logger.warning("DDFS output: %s", comm_failure(exc, name, "write").message)
            continue
        tagged.extend(uid for uid, _ in entries)
    return tagged


def mark(session: Session, unit_ids: list[int]) -> int:
    """Step 3, in one transaction: tagged units assimilated, each logged once."""
    done = 0
    for unit_id in sorted(unit_ids):
        unit = session.get(Unit, unit_id, with_for_update=True)
        if unit is None or unit.state != "valid" or unit.canonical_instance_id is None:
            continue
        canonical = session.get(Instance, unit.canonical_instance_id)
        assert canonical is not None
        if not cas(session, Unit, unit.id, "valid", state="assimilated"):
            continue
        log(session, "assimilate", unit.project_id, unit_id=unit.id, instance_id=canonical.id,
            client_id=canonical.client_id, attempt=canonical.attempt, detail=unit.output_path)
        done += 1
    return done


def assimilate_ready(store: FarmStore, access: DdfsAccess | None) -> int:
    """One pass of the loop: push, tag, mark."""
    if access is None:
        return 0
    units = pending(store)
    if not units:
        return 0
    push(store, access, units)
    tagged = tag(store, access, [u[0] for u in units])
    if not tagged:
        return 0
    with store.session() as s:
        return mark(s, tagged)
