"""Picks instances for a client: by seconds of work wanted (BOINC), oldest first, never two
instances of one unit to one client, only its own tenant's open projects. Every pick is a
compare-and-set (unsent -> leased), so two clients asking at once never get the same instance.
Adaptive replication happens here: a client with a clean record of >= 10 consecutive valid
results on a project gets a unit at quorum 1, spot-checked with probability 1/consecutive_valid."""

from __future__ import annotations

import base64
import random
from typing import Any

from sqlalchemy import Row, bindparam, case, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from disco.taskfarm.models import Client, ClientRecord, Instance, Project, Unit
from disco.taskfarm.store import log

MAX_LEASES = 200  # per request, whatever the seconds asked
INLINE_INPUT_BYTES = 64 * 1024  # larger units are fetched from the unit's input URL
TRUSTED_AFTER = 10  # BOINC's CONS_VALID_UNREPLICATED


I = Instance.__table__
U = Unit.__table__
P = Project.__table__
CR = ClientRecord.__table__


def lease(session: Session, client: Client, seconds: float, slots: int, now: float,
          input_url: str) -> list[dict[str, Any]]:
    """The leases of one /work answer. `input_url` has `{unit_id}` for units not sent inline.
    Candidates another request took between our read and our write are skipped, and the next
    candidates read again (a few passes), so a busy farm does not answer "no work" while it has some.
    A pass is three statements whatever its size: the candidates, their units locked (ascending
    id), and one compare-and-set UPDATE … RETURNING of the instances still unsent."""
    conn = session.connection()
    leases: list[dict[str, Any]] = []
    wanted = max(seconds, 0.0)
    tried: set[int] = set()
    limit = min(MAX_LEASES, max(slots, int(seconds) + 1)) * 4
    for _ in range(PASSES):
        chosen: list[Row[Any]] = []
        units: set[int] = set()
        rows = _candidates(conn, client, tried, limit)
        for row in rows:
            tried.add(row.id)
            if row.unit_id in units or (row.deadline is not None and row.deadline <= now):
                continue
            units.add(row.unit_id)
            chosen.append(row)
            wanted -= row.unit_seconds
            if _enough(wanted, len(leases) + len(chosen), slots):
                break
        granted = _lease_all(session, client, chosen, now, input_url)
        leases.extend(granted)
        got = {g["instance_id"] for g in granted}
        wanted += sum(row.unit_seconds for row in chosen if row.id not in got)
        if not rows or _enough(wanted, len(leases), slots):
            break
    return leases


PASSES = 4


def _enough(wanted: float, count: int, slots: int) -> bool:
    # Enough seconds of work and at least one unit per free slot, or the most one answer carries.
    return (wanted <= 0 and count >= slots) or count >= MAX_LEASES


# The oldest unsent instances a client may have: its tenant's open projects, units still open, none
# of a unit it ever had a copy of (and, after the first pass, none it tried already).
_CANDIDATES = (select(I.c.id, I.c.unit_id, P.c.id.label("project_id"), P.c.deadline, P.c.unit_seconds, P.c.lease_s,
                      P.c.code)
               .select_from(I.join(P, P.c.id == I.c.project_id).join(U, U.c.id == I.c.unit_id))
               .where(I.c.state == "unsent", P.c.tenant == bindparam("tenant"), P.c.state == "open",
                      U.c.state.in_(("open", "validating")),
                      I.c.unit_id.not_in(select(I.c.unit_id).where(I.c.client_id == bindparam("client"))))
               .order_by(I.c.id).limit(bindparam("limit")))
_CANDIDATES_UNTRIED = _CANDIDATES.where(I.c.id.not_in(bindparam("tried", expanding=True)))
_UNITS = select(U.c.id, U.c.state, U.c.quorum, U.c.sha256, U.c.size,
                case((U.c.size <= INLINE_INPUT_BYTES, U.c.data), else_=None).label("data"))
_LEASED = update(I).values(state="leased", client_id=bindparam("b_client"), leased_at=bindparam("b_now"),
                           lease_expires=bindparam("b_expires")).returning(I.c.id, I.c.attempt)
# Each in two forms: for one id (a plain parameter) and for several (an expanding IN, whose SQL is
# rendered again at every execution: the one-unit request, the most frequent, skips that).
_LOCK_UNITS = {True: _UNITS.where(U.c.id == bindparam("b_id")).with_for_update(),
               False: _UNITS.where(U.c.id.in_(bindparam("ids", expanding=True))).order_by(U.c.id).with_for_update()}
_LEASE = {True: _LEASED.where(I.c.id == bindparam("b_id"), I.c.state == "unsent"),
          False: _LEASED.where(I.c.id.in_(bindparam("ids", expanding=True)), I.c.state == "unsent")}


def _ids(ids: list[int]) -> tuple[bool, dict[str, Any]]:
    return (True, {"b_id": ids[0]}) if len(ids) == 1 else (False, {"ids": ids})


def _candidates(conn: Connection, client: Client, tried: set[int], limit: int) -> list[Row[Any]]:
    params: dict[str, Any] = {"tenant": client.tenant, "client": client.id, "limit": limit}
    if tried:
        params["tried"] = list(tried)
    return list(conn.execute(_CANDIDATES_UNTRIED if tried else _CANDIDATES, params).all())


def _lease_all(session: Session, client: Client, chosen: list[Row[Any]], now: float,
               input_url: str) -> list[dict[str, Any]]:
    if not chosen:
        return []
    conn = session.connection()
    # Units locked in ascending order everywhere (see transitions.py): no deadlock between requests.
    one, params = _ids([row.unit_id for row in chosen])
    units = {u.id: u for u in conn.execute(_LOCK_UNITS[one], params)}
    open_ = [row for row in chosen if row.unit_id in units and units[row.unit_id].state in ("open", "validating")]
    attempts: dict[int, int] = {}
    for lease_s in {row.lease_s for row in open_}:
        ids = [row.id for row in open_ if row.lease_s == lease_s]
        # The compare-and-set of all of them at once: an instance another client took between our
        # read and this write is not returned, and so not leased.
        one, params = _ids(ids)
        attempts.update(conn.execute(_LEASE[one], {**params, "b_client": client.id, "b_now": now,
                                                   "b_expires": now + lease_s}).tuples().all())
    out = []
    for row in sorted(open_, key=lambda r: r.unit_id):
        if row.id not in attempts:
            continue
        unit = units[row.unit_id]
        adaptive = unit.quorum > 1 and _maybe_trust(conn, client, row.project_id, unit.id, row.id)
        log(session, "lease", row.project_id, unit_id=unit.id, instance_id=row.id, client_id=client.id,
            attempt=attempts[row.id], detail="quorum 1 (trusted client)" if adaptive else "")
        out.append(_lease_view(row, attempts[row.id], unit, now + row.lease_s, input_url))
    return out


def _maybe_trust(conn: Connection, client: Client, project_id: str, unit_id: int, instance_id: int) -> bool:
    """Quorum 1 for this unit when the client has earned it and no other copy is out yet."""
    record = conn.execute(select(CR.c.consecutive_valid, CR.c.invalid_total).where(
        CR.c.client_id == client.id, CR.c.project_id == project_id)).first()
    if record is None or record.invalid_total > 0 or record.consecutive_valid < TRUSTED_AFTER:
        return False
    if random.random() < 1.0 / record.consecutive_valid:
        return False  # the spot check: this one is replicated as usual
    others = conn.execute(select(I.c.state).where(I.c.unit_id == unit_id, I.c.id != instance_id)).scalars().all()
    if any(state != "unsent" for state in others):
        return False
    conn.execute(update(U).where(U.c.id == unit_id).values(quorum=1))
    conn.execute(update(I).where(I.c.unit_id == unit_id, I.c.id != instance_id, I.c.state == "unsent")
                 .values(state="cancelled"))
    return True


def _lease_view(row: Row[Any], attempt: int, unit: Row[Any], expires: float, input_url: str) -> dict[str, Any]:
    data: dict[str, Any] = {"sha256": unit.sha256, "bytes": unit.size}
    if unit.size <= INLINE_INPUT_BYTES:
        data["inline"] = base64.b64encode(unit.data).decode()
    else:
        data["url"] = input_url.format(unit_id=unit.id)
    code = dict(row.code)
    if code.get("kind") == "python":
        code["url"] = code_url(input_url, code["sha256"])
    return {"instance_id": row.id, "unit_id": unit.id, "project_id": row.project_id, "attempt": attempt,
            "lease_expires": expires, "input": data, "code": code}


def code_url(input_url: str, sha256: str) -> str:
    return input_url.replace("units/{unit_id}/input", f"code/{sha256}")
