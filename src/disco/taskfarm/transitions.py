"""What happens to a unit after anything changes: a result, an error, an expired lease, the
project's deadline. One function, `settle`, decides from the unit's instances (quorum by strict
majority, another instance on disagreement up to max_instances, dead letter after max_errors);
the loop runs expiry and deadlines every second, and reports call `settle` at once.

Lock order, everywhere: the unit's row (FOR UPDATE on PostgreSQL; SQLite has one writer), then its
instances; several units in ascending id. So two requests never wait on each other in a circle.

The hot path (reports, expiry) speaks SQLAlchemy Core on the transaction's connection: every read
goes to the database (no identity map to go stale inside a group commit), and each statement is
built once with bind parameters, so a report costs a handful of statements, not the ORM's ~17."""

from __future__ import annotations

import base64
import hashlib
from collections import namedtuple
from pathlib import Path
from typing import Any

from sqlalchemy import Row, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from disco.taskfarm import compare
from disco.taskfarm.assimilate import output_path, write_staged
from disco.taskfarm.models import OUTSTANDING, Client, Instance, Project, Unit
from disco.taskfarm.store import cas, defer, flush_deferred, log

SETTLED = ("valid", "assimilated", "failed", "cancelled")
I = Instance.__table__
U = Unit.__table__
P = Project.__table__

# A unit with what settling it needs of its project; callers lock it before they change anything of it.
LOCK_UNIT = (select(U.c.id, U.c.project_id, U.c.seq, U.c.state, U.c.quorum, P.c.max_errors, P.c.max_instances,
                    P.c.comparator, P.c.max_output_bytes, P.c.output.label("project_output"))
             .join(P, P.c.id == U.c.project_id).where(U.c.id == bindparam("uid")).with_for_update(of=U))
_BATCH_COLUMNS = (I.c.id.label("iid"), I.c.unit_id, I.c.client_id, I.c.attempt, I.c.state.label("inst_state"),
                  I.c.answer, I.c.output, *LOCK_UNIT.selected_columns)
_BATCH_ROWS = {
    True: (select(*_BATCH_COLUMNS).select_from(I.join(U, U.c.id == I.c.unit_id).join(P, P.c.id == U.c.project_id))
           .where(I.c.id.in_(bindparam("ids", expanding=True)))),
    False: (select(*_BATCH_COLUMNS).select_from(U.join(I, I.c.unit_id == U.c.id).join(P, P.c.id == U.c.project_id))
            .where(I.c.id.in_(bindparam("ids", expanding=True))).order_by(U.c.id, I.c.id)
            .with_for_update(of=(U, I))),
}
_SIBLINGS = (select(I.c.id, I.c.unit_id, I.c.state, I.c.client_id, I.c.attempt, I.c.output)
             .where(I.c.unit_id.in_(bindparam("uids", expanding=True))).order_by(I.c.id))
_UNIT_INSTANCES = (select(I.c.id, I.c.state, I.c.client_id, I.c.attempt, I.c.output)
                   .where(I.c.unit_id == bindparam("uid")).order_by(I.c.id))
_CANCEL_UNSENT = (update(I).where(I.c.unit_id == bindparam("uid"), I.c.state == "unsent")
                  .values(state="cancelled"))
_UNIT_STATE = update(U).where(U.c.id == bindparam("uid")).values(state=bindparam("b_state"), updated_at=bindparam("b_at"))
_UNIT_VALID = update(U).where(U.c.id == bindparam("uid")).values(
    state=bindparam("b_state"), canonical_instance_id=bindparam("b_canonical"), updated_at=bindparam("b_at"),
    output_path=bindparam("b_path"))
_FAIL = update(U).where(U.c.id == bindparam("uid")).values(state="failed", reason=bindparam("b_reason"),
                                                         updated_at=bindparam("b_at"))
_REPORTED = dict(answer=bindparam("b_answer"), reported_at=bindparam("b_at"), cpu_s=bindparam("b_cpu"),
                 error=bindparam("b_error"), output=bindparam("b_output"), output_sha256=bindparam("b_sha"))
_REPORT_WHERE = (I.c.id == bindparam("iid"), I.c.state == bindparam("b_leaving"))
# The report's compare-and-set, with and without a new state (a late copy's report keeps its state).
_REPORT = update(I).where(*_REPORT_WHERE).values(state=bindparam("b_state"), **_REPORTED)
_REPORT_KEEP_STATE = update(I).where(*_REPORT_WHERE).values(**_REPORTED)


def lock_unit(session: Session, unit_id: int) -> Row[Any] | None:
    return session.connection().execute(LOCK_UNIT, {"uid": unit_id}).first()


def settle(session: Session, unit: Row[Any], now: float, output_root: Path | None = None,
           instances: list[Any] | None = None, batch: bool = False) -> str:
    """Moves a locked unit on (`unit`: its LOCK_UNIT row, read under the lock); answers its state
    afterwards. With `output_root`, a unit that becomes valid is assimilated at once, in the same
    transaction (its output staged, assimilate.py). `instances`: the unit's instances (id order)
    as they are now, when the caller has them (report_many); read otherwise. `batch`: a unit
    made valid is written at the caller's flush_deferred (report_many's end), with the others."""
    if unit.state in SETTLED:
        return unit.state
    conn = session.connection()
    if instances is None:
        instances = list(conn.execute(_UNIT_INSTANCES, {"uid": unit.id}).all())
    successes = [i for i in instances if i.state == "success"]
    errors = sum(1 for i in instances if i.state == "error")
    outstanding = sum(1 for i in instances if i.state in OUTSTANDING)
    if errors >= unit.max_errors:
        return fail(session, unit.id, unit.project_id, f"{errors} errors (max_errors {unit.max_errors})", now)
    need = unit.quorum - len(successes) - outstanding
    state = unit.state
    if len(successes) >= unit.quorum:
        group = _largest_agreeing(unit.comparator, successes)
        if len(group) >= unit.quorum and 2 * len(group) > len(successes):
            return _make_valid(session, unit, instances, group, successes, now, output_root, batch)
        state = "validating"
        need = 1 - outstanding  # disagreement: one more opinion at a time
    room = unit.max_instances - len(instances)
    more = min(need, room)
    if more > 0:
        conn.execute(insert(I), [dict(unit_id=unit.id, project_id=unit.project_id, attempt=len(instances) + n + 1,
                                      state="unsent") for n in range(more)])
    if need > 0 and room <= 0 and outstanding == 0:
        return fail(session, unit.id, unit.project_id,
                    f"no quorum after {len(instances)} instances (max_instances {unit.max_instances})", now)
    conn.execute(_UNIT_STATE, {"uid": unit.id, "b_state": state, "b_at": now})
    return state


def _largest_agreeing(comparator: dict[str, Any], successes: list[Row[Any]]) -> list[Row[Any]]:
    name, args = comparator["name"], comparator.get("args", {})
    groups: list[list[Row[Any]]] = []
    for inst in successes:
        for group in groups:
            if compare.agree(name, args, group[0].output or b"", inst.output or b""):
                group.append(inst)
                break
        else:
            groups.append([inst])
    return max(groups, key=len)


def _make_valid(session: Session, unit: Row[Any], instances: list[Row[Any]], group: list[Row[Any]],
                successes: list[Row[Any]], now: float, output_root: Path | None, batch: bool = False) -> str:
    conn = session.connection()
    canonical = group[0]
    agreeing = {i.id for i in group}
    invalid = [i.id for i in successes if i.id not in agreeing]
    if invalid:
        conn.execute(update(I).where(I.c.id.in_(invalid)).values(state="invalid"))
    for inst in successes:
        if inst.client_id:
            _record(session, inst.client_id, unit.project_id, inst.id in agreeing)
    if any(i.state == "unsent" for i in instances):
        conn.execute(_CANCEL_UNSENT, {"uid": unit.id})
    log(session, "valid", unit.project_id, unit_id=unit.id, instance_id=canonical.id,
        detail=f"{len(group)} of {len(successes)} agree")
    values: dict[str, Any] = dict(uid=unit.id, b_state="valid", b_canonical=canonical.id, b_at=now, b_path="")
    if output_root is not None and unit.project_output is None:
        # valid -> assimilated in this same transaction (a DDFS tag's units stay valid: the loop
        # pushes them, assimilate_ddfs.py): the output file is staged, and written just before
        # the commit that says so (store._write_outputs; flushed by the loop: output_files.py).
        path = output_path(output_root, unit.project_id, unit.seq, unit.id)
        write_staged(session, path, canonical.output or b"")
        values.update(b_state="assimilated", b_path=str(path))
        log(session, "assimilate", unit.project_id, unit_id=unit.id, instance_id=canonical.id,
            client_id=canonical.client_id, attempt=canonical.attempt, detail=str(path))
    if batch:
        defer(session, _UNIT_VALID, values)
    else:
        conn.execute(_UNIT_VALID, values)
    return "valid"


# One upsert, the same SQL on SQLite (3.24+) and PostgreSQL: two units of one client may be judged
# at once (other clients' reports), and the row is made or changed atomically, never inserted twice.
_UPSERT = ("INSERT INTO farm_client_records (client_id, project_id, consecutive_valid, invalid_total) "
           "VALUES (:cid, :pid, {new}) ON CONFLICT (client_id, project_id) DO UPDATE SET {change}")
_RECORD = {
    True: text(_UPSERT.format(new="1, 0", change="consecutive_valid = farm_client_records.consecutive_valid + 1")),
    False: text(_UPSERT.format(new="0, 1", change="consecutive_valid = 0, "
                                                  "invalid_total = farm_client_records.invalid_total + 1")),
}


def _record(session: Session, client_id: str, project_id: str, valid: bool) -> None:
    # Read back only by feeder._maybe_trust, which flushes first: written in order, in batches.
    defer(session, _RECORD[valid], {"cid": client_id, "pid": project_id})


def fail(session: Session, unit_id: int, project_id: str, reason: str, now: float) -> str:
    """The dead letter: the unit fails with its reason; its instances keep their errors."""
    conn = session.connection()
    conn.execute(_FAIL, {"uid": unit_id, "b_reason": reason, "b_at": now})
    conn.execute(_CANCEL_UNSENT, {"uid": unit_id})
    log(session, "dead", project_id, unit_id=unit_id, detail=reason)
    return "failed"


# -- reports ----------------------------------------------------------------------------------------

Sibling = namedtuple("Sibling", "id state client_id attempt output")  # an instance as settle() reads it


def report_many(session: Session, requests: list[tuple[Client, list[dict[str, Any]]]], now: float,
                output_root: Path | None = None) -> list[list[dict[str, Any]]]:
    """The results of one or more clients' requests (/results, or a /work that carries results;
    several at once in a group commit: groupcommit.py), each request's answers in its items'
    order and as if it had run alone, after the ones before it. With `output_root`, a unit a
    result makes valid is assimilated in the same transaction (assimilate.py).

    The requests share statements: one read of every reported instance with its unit and project
    (on PostgreSQL it locks the units' rows, then the instances', in ascending unit id: the lock
    order above; on SQLite the transaction holds the only write lock), one read of those units'
    instances, the compare-and-sets as one executemany (psycopg pipelines it: one round trip),
    then the settling of the units. Requests are taken in runs that report on distinct units; a
    request reporting on a unit an earlier request of its run touched starts the next run, which
    reads its rows again after the first run's writes, as a request running after it would."""
    answers: list[list[dict[str, Any]]] = [[] for _ in requests]
    pending = [n for n, (_, items) in enumerate(requests) if items]
    if not pending:
        return answers
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    ids = sorted({item["instance_id"] for n in pending for item in requests[n][1]})
    rows = {r.iid: r for r in conn.execute(_BATCH_ROWS[sqlite], {"ids": ids})}
    for number, run in enumerate(_distinct_unit_runs(requests, pending, rows)):
        if number:  # units an earlier run settled: read as they are now
            flush_deferred(session)
            again = sorted({item["instance_id"] for n in run for item in requests[n][1]})
            rows = {r.iid: r for r in conn.execute(_BATCH_ROWS[sqlite], {"ids": again})}
        for n, request_answers in zip(run, _report_run(session, [requests[n] for n in run], rows, now, output_root)):
            answers[n] = request_answers
    return answers


def _distinct_unit_runs(requests: list[tuple[Client, list[dict[str, Any]]]], pending: list[int],
                        rows: dict[int, Row[Any]]) -> list[list[int]]:
    runs: list[list[int]] = []
    units: set[int] = set()
    for n in pending:
        mine = {rows[item["instance_id"]].unit_id for item in requests[n][1] if item["instance_id"] in rows}
        if not runs or units & mine:
            runs.append([])
            units = set()
        runs[-1].append(n)
        units |= mine
    return runs


def _report_run(session: Session, requests: list[tuple[Client, list[dict[str, Any]]]], rows: dict[int, Row[Any]],
                now: float, output_root: Path | None) -> list[list[dict[str, Any]]]:
    """Requests no two of which report on one unit: their answers."""
    conn = session.connection()
    mine = sorted({rows[item["instance_id"]].unit_id for client, items in requests for item in items
                   if item["instance_id"] in rows and rows[item["instance_id"]].client_id == client.id})
    siblings: dict[int, list[Sibling]] = {}
    if mine:
        for r in conn.execute(_SIBLINGS, {"uids": mine}):
            siblings.setdefault(r.unit_id, []).append(Sibling(r.id, r.state, r.client_id, r.attempt, r.output))
    changes: dict[bool, list[dict[str, Any]]] = {True: [], False: []}  # with a new state / keeping it
    to_settle: list[tuple[Row[Any], int, str | None, bytes | None]] = []
    out: list[list[dict[str, Any]]] = []
    for client, items in requests:
        answers: list[dict[str, Any]] = [{}] * len(items)
        applied: dict[int, str] = {}  # instance id -> the answer this request gave it
        for i in sorted(range(len(items)), key=lambda i: items[i]["instance_id"]):
            answers[i] = _report_one(session, client, items[i], rows.get(items[i]["instance_id"]), applied, now,
                                     changes, to_settle)
        out.append(answers)
    for with_state, values in changes.items():
        if values:
            # The compare-and-sets. Every row is current (locked, or under SQLite's write lock) and
            # a repeat within a request was answered without one, so each changes its row; if one
            # did not, the transaction is rolled back and the group committer runs each request alone.
            done = conn.execute(_REPORT if with_state else _REPORT_KEEP_STATE, values).rowcount
            if done != len(values):
                raise RuntimeError(f"report compare-and-set changed {done} of {len(values)} instances")
    settled: set[int] = set()
    for row, iid, new_state, kept in to_settle:
        if row.id in settled:  # another result of the same unit in this run: read it afresh
            flush_deferred(session)
            unit = lock_unit(session, row.id)
            if unit is not None:
                settle(session, unit, now, output_root)
            continue
        settled.add(row.id)
        after = [sib._replace(state=new_state, output=kept) if sib.id == iid else sib
                 for sib in siblings.get(row.id, [])]
        settle(session, row, now, output_root, after, batch=True)
    flush_deferred(session)  # the units made valid: what the group's next requests read
    return out


def _report_one(session: Session, client: Client, item: dict[str, Any], row: Row[Any] | None,
                applied: dict[int, str], now: float, changes: dict[bool, list[dict[str, Any]]],
                to_settle: list[tuple[Row[Any], int, str | None, bytes | None]]) -> dict[str, Any]:
    """One result's answer; its compare-and-set added to `changes`, its unit to `to_settle`."""
    iid = item["instance_id"]
    if row is None or row.client_id != client.id or row.attempt != item["attempt"]:
        return {"instance_id": iid, "status": "refused", "reason": "not an instance leased to this client"}
    first = applied.get(iid) or row.answer  # reported before, or earlier in this very request
    if first:
        return {"instance_id": iid, "status": "duplicate", "first": first}
    output, problem = _output_of(item, row.output, row.max_output_bytes)
    if problem:
        return {"instance_id": iid, "status": "refused", "reason": problem}
    ok = item["status"] == "ok"
    new_state: str | None
    if row.state in SETTLED or row.inst_state not in ("leased", "no_reply"):
        answer = "not_needed"
        # A copy still out when its unit settled: it ran for nothing, and stops counting as out.
        new_state = "cancelled" if row.inst_state == "leased" else None
    else:
        answer = "accepted" if row.inst_state == "leased" else "late_accepted"
        new_state = "success" if ok else "error"
    kept = output if ok else None
    changes[new_state is not None].append(dict(
        iid=iid, b_leaving=row.inst_state, b_state=new_state, b_answer=answer, b_at=now,
        b_cpu=float(item.get("cpu_s") or 0.0), b_error=(item.get("error") or "")[:10000], b_output=kept,
        b_sha=hashlib.sha256(output).hexdigest() if ok and output is not None else ""))
    applied[iid] = answer
    log(session, "report", row.project_id, unit_id=row.id, instance_id=iid, client_id=client.id,
        attempt=row.attempt, detail=f"{item['status']} {answer}")
    if answer != "not_needed":
        to_settle.append((row, iid, new_state, kept))
    return {"instance_id": iid, "status": answer}


def _output_of(item: dict[str, Any], uploaded: bytes | None, max_output_bytes: int) -> tuple[bytes | None, str]:
    if item["status"] != "ok":
        return None, ""
    if item.get("output") is not None:
        try:
            output = base64.b64decode(item["output"], validate=True)
        except ValueError:
            return None, "output is not base64"
    elif item.get("output_sha256"):
        output = uploaded  # uploaded before, by PUT …/instances/{id}/output
        if output is None:
            return None, "output_sha256 names an upload that was not made"
    else:
        output = b""
    if len(output) > max_output_bytes:
        return None, f"output over the project's max_output_bytes ({max_output_bytes})"
    if item.get("output_sha256") and hashlib.sha256(output).hexdigest() != item["output_sha256"]:
        return None, "output does not match output_sha256"
    return output, ""


# -- the loop: leases and deadlines -----------------------------------------------------------------

_EXPIRE = (update(I).where(I.c.id == bindparam("iid"), I.c.state == "leased", I.c.lease_expires < bindparam("now"))
           .values(state="no_reply"))


def expire_leases(session: Session, now: float, limit: int = 500) -> int:
    """Leases past their time: the instance becomes no_reply and its unit gets another."""
    conn = session.connection()
    rows = conn.execute(select(I.c.id, I.c.unit_id, I.c.client_id, I.c.attempt).where(
        I.c.state == "leased", I.c.lease_expires < now).order_by(I.c.unit_id).limit(limit)).all()
    count = 0
    for iid, unit_id, client_id, attempt in rows:
        unit = conn.execute(LOCK_UNIT, {"uid": unit_id}).first()
        # A heartbeat may have extended the lease since we looked: the condition is part of the update.
        done = conn.execute(_EXPIRE, {"iid": iid, "now": now})
        if done.rowcount != 1 or unit is None:
            continue
        log(session, "expire", unit.project_id, unit_id=unit_id, instance_id=iid, client_id=client_id,
            attempt=attempt)
        settle(session, unit, now)
        count += 1
    return count


def pass_deadlines(session: Session, now: float) -> int:
    """Open units of projects past their deadline fail."""
    conn = session.connection()
    projects = conn.execute(select(P.c.id).where(P.c.state == "open", P.c.deadline.is_not(None),
                                                 P.c.deadline < now)).scalars().all()
    count = 0
    for project_id in projects:
        units = conn.execute(select(U.c.id).where(U.c.project_id == project_id, U.c.state.in_(("open", "validating")))
                             .order_by(U.c.id).with_for_update()).scalars().all()
        for unit_id in units:
            fail(session, unit_id, project_id, "the project's deadline passed", now)
            count += 1
    return count


def finished_projects(session: Session) -> list[str]:
    """Open projects whose every unit is assimilated or failed."""
    conn = session.connection()
    return [project_id for project_id in conn.execute(select(P.c.id).where(P.c.state == "open")).scalars().all()
            if not conn.execute(select(func.count()).select_from(U).where(
                U.c.project_id == project_id, U.c.state.in_(("open", "validating", "valid")))).scalar()]


def finish_projects(session: Session, now: float, project_ids: list[str]) -> None:
    """Those projects done (they were finished_projects: a unit never goes back to open)."""
    conn = session.connection()
    for project_id in project_ids:
        cas(conn, P, project_id, "open", state="done", finished_at=now)
