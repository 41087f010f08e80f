"""What happens to a unit after anything changes: a result, an error, an expired lease, the
project's deadline. One function, `settle`, decides from the unit's instances (quorum by strict
majority, another instance on disagreement up to max_instances, dead letter after max_errors);
the loop runs expiry and deadlines every second, and reports call `settle` at once.

Lock order, everywhere: the unit's row (FOR UPDATE on PostgreSQL; SQLite has one writer), then its
instances; several units in ascending id. So two requests never wait on each other in a circle."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from disco.taskfarm import compare
from disco.taskfarm.assimilate import assimilate_one
from disco.taskfarm.models import OUTSTANDING, Client, ClientRecord, Instance, Project, Unit
from disco.taskfarm.store import cas, log

SETTLED = ("valid", "assimilated", "failed", "cancelled")


def new_instance(session: Session, unit: Unit, attempt: int) -> None:
    session.add(Instance(unit_id=unit.id, project_id=unit.project_id, attempt=attempt, state="unsent"))


def settle(session: Session, unit: Unit, project: Project, now: float) -> str:
    """Moves a locked, unsettled unit on; answers its state afterwards."""
    # Read the unit again: on SQLite its first read was outside the write lock (FOR UPDATE is a
    # no-op there, the transaction begins at its first write), so another transaction may have
    # settled it since; callers have written by now, so this read is current.
    session.refresh(unit)
    if unit.state in SETTLED:
        return unit.state
    # populate_existing: rows changed by a compare-and-set earlier in this transaction are read fresh.
    instances = session.scalars(select(Instance).where(Instance.unit_id == unit.id).order_by(Instance.id)
                                .execution_options(populate_existing=True)).all()
    successes = [i for i in instances if i.state == "success"]
    errors = [i for i in instances if i.state == "error"]
    outstanding = sum(1 for i in instances if i.state in OUTSTANDING)
    if len(errors) >= project.max_errors:
        return fail(session, unit, f"{len(errors)} errors (max_errors {project.max_errors})", now)
    need = unit.quorum - len(successes) - outstanding
    if len(successes) >= unit.quorum:
        group = _largest_agreeing(project, successes)
        if len(group) >= unit.quorum and 2 * len(group) > len(successes):
            _make_valid(session, unit, project, group, successes, now)
            return "valid"
        unit.state = "validating"
        need = 1 - outstanding  # disagreement: one more opinion at a time
    room = project.max_instances - len(instances)
    for n in range(min(need, room)):
        new_instance(session, unit, len(instances) + n + 1)
    if need > 0 and room <= 0 and outstanding == 0:
        return fail(session, unit, f"no quorum after {len(instances)} instances (max_instances {project.max_instances})", now)
    unit.updated_at = now
    return unit.state


def _largest_agreeing(project: Project, successes: list[Instance]) -> list[Instance]:
    name, args = project.comparator["name"], project.comparator.get("args", {})
    groups: list[list[Instance]] = []
    for inst in successes:
        for group in groups:
            if compare.agree(name, args, group[0].output or b"", inst.output or b""):
                group.append(inst)
                break
        else:
            groups.append([inst])
    return max(groups, key=len)


def _make_valid(session: Session, unit: Unit, project: Project, group: list[Instance], successes: list[Instance],
                now: float) -> None:
    unit.state = "valid"
    unit.canonical_instance_id = group[0].id
    unit.updated_at = now
    agreeing = {i.id for i in group}
    for inst in successes:
        ok = inst.id in agreeing
        if not ok:
            inst.state = "invalid"
        if inst.client_id:
            _record(session, inst.client_id, project.id, ok)
    _cancel_unsent(session, unit.id)
    log(session, "valid", project.id, unit_id=unit.id, instance_id=group[0].id,
        detail=f"{len(group)} of {len(successes)} agree")


def _record(session: Session, client_id: str, project_id: str, valid: bool) -> None:
    # Two units of one client may be judged at once (other clients' reports): the row is made with
    # ON CONFLICT DO NOTHING, then locked, never inserted twice.
    make = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(make(ClientRecord).values(client_id=client_id, project_id=project_id, consecutive_valid=0,
                                              invalid_total=0).on_conflict_do_nothing())
    record = session.get(ClientRecord, (client_id, project_id), with_for_update=True, populate_existing=True)
    assert record is not None
    if valid:
        record.consecutive_valid += 1
    else:
        record.consecutive_valid = 0
        record.invalid_total += 1


def _cancel_unsent(session: Session, unit_id: int) -> None:
    session.execute(update(Instance).where(Instance.unit_id == unit_id, Instance.state == "unsent")
                    .values(state="cancelled").execution_options(synchronize_session=False))


def fail(session: Session, unit: Unit, reason: str, now: float) -> str:
    """The dead letter: the unit fails with its reason; its instances keep their errors."""
    unit.state = "failed"
    unit.reason = reason
    unit.updated_at = now
    _cancel_unsent(session, unit.id)
    log(session, "dead", unit.project_id, unit_id=unit.id, detail=reason)
    return "failed"


# -- reports ----------------------------------------------------------------------------------------

def report(session: Session, client: Client, item: dict[str, Any], now: float,
           output_root: Path | None = None) -> dict[str, Any]:
    """One result of a /results batch: its answer, the same on every replay. With `output_root`,
    a unit this result makes valid is assimilated in the same transaction (assimilate.py)."""
    iid = item["instance_id"]
    found = session.get(Instance, iid)
    if found is None or found.client_id != client.id or found.attempt != item["attempt"]:
        return {"instance_id": iid, "status": "refused", "reason": "not an instance leased to this client"}
    unit = session.get(Unit, found.unit_id, with_for_update=True)
    inst = session.get(Instance, iid, with_for_update=True, populate_existing=True)
    project = session.get(Project, found.project_id)
    assert unit is not None and inst is not None and project is not None
    if inst.answer:
        return {"instance_id": iid, "status": "duplicate", "first": inst.answer}
    output, problem = _output_of(item, inst, project)
    if problem:
        return {"instance_id": iid, "status": "refused", "reason": problem}
    ok = item["status"] == "ok"
    if unit.state in SETTLED or inst.state not in ("leased", "no_reply"):
        answer = "not_needed"
        # A copy still out when its unit settled: it ran for nothing, and stops counting as out.
        values: dict[str, Any] = {"state": "cancelled"} if inst.state == "leased" else {}
    else:
        answer = "accepted" if inst.state == "leased" else "late_accepted"
        values = {"state": "success" if ok else "error"}
    leaving = inst.state
    values.update(answer=answer, reported_at=now, cpu_s=float(item.get("cpu_s") or 0.0),
                  error=(item.get("error") or "")[:10000], output=output if ok else None,
                  output_sha256=hashlib.sha256(output).hexdigest() if ok and output is not None else "")
    if not cas(session, Instance, iid, leaving, **values):
        return {"instance_id": iid, "status": "duplicate", "first": inst.answer or "accepted"}
    log(session, "report", project.id, unit_id=unit.id, instance_id=iid, client_id=client.id, attempt=inst.attempt,
        detail=f"{item['status']} {answer}")
    if answer != "not_needed" and settle(session, unit, project, now) == "valid" and output_root is not None:
        assimilate_one(session, output_root, unit.id, locked=unit)
    return {"instance_id": iid, "status": answer}


def _output_of(item: dict[str, Any], inst: Instance, project: Project) -> tuple[bytes | None, str]:
    if item["status"] != "ok":
        return None, ""
    if item.get("output") is not None:
        try:
            output = base64.b64decode(item["output"], validate=True)
        except ValueError:
            return None, "output is not base64"
    elif item.get("output_sha256"):
        output = inst.output  # uploaded before, by PUT …/instances/{id}/output
        if output is None:
            return None, "output_sha256 names an upload that was not made"
    else:
        output = b""
    if len(output) > project.max_output_bytes:
        return None, f"output over the project's max_output_bytes ({project.max_output_bytes})"
    if item.get("output_sha256") and hashlib.sha256(output).hexdigest() != item["output_sha256"]:
        return None, "output does not match output_sha256"
    return output, ""


# -- the loop: leases and deadlines -----------------------------------------------------------------

def expire_leases(session: Session, now: float, limit: int = 500) -> int:
    """Leases past their time: the instance becomes no_reply and its unit gets another."""
    rows = session.execute(select(Instance.id, Instance.unit_id).where(
        Instance.state == "leased", Instance.lease_expires < now).order_by(Instance.unit_id).limit(limit)).all()
    count = 0
    for iid, unit_id in rows:
        unit = session.get(Unit, unit_id, with_for_update=True)
        # A heartbeat may have extended the lease since we looked: the condition is part of the update.
        done = session.execute(update(Instance).where(Instance.id == iid, Instance.state == "leased",
                                                      Instance.lease_expires < now)
                               .values(state="no_reply").execution_options(synchronize_session=False))
        if done.rowcount != 1 or unit is None:  # type: ignore[attr-defined]
            continue
        inst = session.get(Instance, iid, populate_existing=True)
        project = session.get(Project, unit.project_id)
        assert inst is not None and project is not None
        log(session, "expire", unit.project_id, unit_id=unit_id, instance_id=iid, client_id=inst.client_id,
            attempt=inst.attempt)
        settle(session, unit, project, now)
        count += 1
    return count


def pass_deadlines(session: Session, now: float) -> int:
    """Open units of projects past their deadline fail."""
    projects = session.scalars(select(Project).where(Project.state == "open", Project.deadline.is_not(None),
                                                     Project.deadline < now)).all()
    count = 0
    for project in projects:
        units = session.scalars(select(Unit).where(Unit.project_id == project.id, Unit.state.in_(("open", "validating")))
                                .order_by(Unit.id).with_for_update()).all()
        for unit in units:
            fail(session, unit, "the project's deadline passed", now)
            count += 1
    return count


def finish_projects(session: Session, now: float) -> None:
    """A project whose every unit is assimilated or failed is done."""
    for project in session.scalars(select(Project).where(Project.state == "open")).all():
        left = session.scalar(select(func.count()).select_from(Unit).where(
            Unit.project_id == project.id, Unit.state.in_(("open", "validating", "valid"))))
        if left == 0:
            cas(session, Project, project.id, "open", state="done", finished_at=now)
