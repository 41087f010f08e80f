"""Picks instances for a client: by seconds of work wanted (BOINC), oldest first, never two
instances of one unit to one client, only its own tenant's open projects. Every pick is a
compare-and-set (unsent -> leased), so two clients asking at once never get the same instance.
Adaptive replication happens here: a client with a clean record of >= 10 consecutive valid
results on a project gets a unit at quorum 1, spot-checked with probability 1/consecutive_valid."""

from __future__ import annotations

import base64
import random
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, bindparam, case, exists, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from disco.taskfarm.models import Client, ClientRecord, Instance, Project, Unit
from disco.taskfarm.store import flush_deferred, log

MAX_LEASES = 200  # per request, whatever the seconds asked
INLINE_INPUT_BYTES = 64 * 1024  # larger units are fetched from the unit's input URL
TRUSTED_AFTER = 10  # BOINC's CONS_VALID_UNREPLICATED


I = Instance.__table__
U = Unit.__table__
P = Project.__table__
CR = ClientRecord.__table__


@dataclass(frozen=True)
class Candidate:
    id: int
    unit_id: int
    project_id: str
    deadline: float | None
    unit_seconds: float
    lease_s: float
    code: dict[str, Any]


class Candidates:
    """Per tenant, the oldest unsent instances of its open projects, kept in memory and read again
    in bulk (one indexed read per open project, `ix_farm_instances_feed`) when used up or older
    than REFILL_S. A lease then reads only the client's history of the units it looks at, where a
    query over every unsent instance (what this replaced) cost PostgreSQL tens of milliseconds a
    request at a few thousand units. The cache is a hint, never the truth: every lease is still a
    compare-and-set (unsent -> leased) on the database, the client's history is read in the
    lease's transaction, and an instance taken or cancelled meanwhile simply fails the
    compare-and-set. A new instance (a reissue, another opinion, a new project) is seen at the
    next refill, or at once when nothing in the queue fits the client asking (lease reads again).
    Used by one thread at a time (the group committer's)."""

    REFILL_S = 1.0
    SIZE = 1000

    def __init__(self) -> None:
        self._by_tenant: dict[str, tuple[float, dict[int, Candidate]]] = {}

    def get(self, conn: Connection, tenant: str, fresh: bool = False) -> tuple[dict[int, Candidate], bool]:
        """The tenant's queue, and whether it was read just now (`fresh`: read it now)."""
        entry = self._by_tenant.get(tenant)
        if fresh or entry is None or not entry[1] or time.monotonic() - entry[0] >= self.REFILL_S:
            entry = (time.monotonic(), _read_unsent(conn, tenant, self.SIZE))
            self._by_tenant[tenant] = entry
            return entry[1], True
        return entry[1], False


_OPEN_PROJECTS = select(P.c.id, P.c.deadline, P.c.unit_seconds, P.c.lease_s, P.c.code).where(
    P.c.tenant == bindparam("tenant"), P.c.state == "open")
_UNSENT = (select(I.c.id, I.c.unit_id).where(I.c.project_id == bindparam("pid"), I.c.state == "unsent")
           .order_by(I.c.id).limit(bindparam("limit")))


def _read_unsent(conn: Connection, tenant: str, size: int) -> dict[int, Candidate]:
    found: list[Candidate] = []
    projects = conn.execute(_OPEN_PROJECTS, {"tenant": tenant}).all()
    each = max(64, size // max(1, len(projects)))  # many open projects: a share each, not size each
    for p in projects:
        found.extend(Candidate(iid, uid, p.id, p.deadline, p.unit_seconds, p.lease_s, p.code)
                     for iid, uid in conn.execute(_UNSENT, {"pid": p.id, "limit": each}))
    found.sort(key=lambda c: c.id)  # oldest first across the tenant's projects
    return {c.id: c for c in found[:size]}


def lease(session: Session, client: Client, seconds: float, slots: int, now: float,
          input_url: str, candidates: Candidates) -> list[dict[str, Any]]:
    """The leases of one /work answer. `input_url` has `{unit_id}` for units not sent inline.
    Candidates the client may not have (a unit it had a copy of) or that another request took
    are skipped, and the next ones tried (a few passes), so a busy farm does not answer "no work"
    while it has some. A pass is two statements whatever its size: the candidates' units locked
    (ascending id), and one compare-and-set UPDATE … RETURNING of the instances still unsent and
    of units the client never had; a third, the client's history of the units it missed, only
    when it missed some."""
    conn = session.connection()
    pool, fresh = candidates.get(conn, client.tenant)
    leases = _lease_from(session, client, seconds, slots, now, input_url, pool)
    if not leases and not fresh:  # nothing for this client in the queue: is there work it does not know of yet?
        pool, _ = candidates.get(conn, client.tenant, fresh=True)
        leases = _lease_from(session, client, seconds, slots, now, input_url, pool)
    return leases


def _lease_from(session: Session, client: Client, seconds: float, slots: int, now: float, input_url: str,
                pool: dict[int, Candidate]) -> list[dict[str, Any]]:
    conn = session.connection()
    leases: list[dict[str, Any]] = []
    wanted = max(seconds, 0.0)
    tried: set[int] = set()
    had: set[int] = set()  # units of candidates this client had a copy of, as learnt in this request
    limit = min(MAX_LEASES, max(slots, int(seconds) + 1)) * 4
    for _ in range(PASSES):
        chosen: list[Candidate] = []
        units: set[int] = set()
        looked = 0
        for row in pool.values():
            if row.id in tried:
                continue
            if looked >= limit:
                break
            looked += 1
            tried.add(row.id)
            if row.unit_id in units or row.unit_id in had or (row.deadline is not None and row.deadline <= now):
                continue
            units.add(row.unit_id)
            chosen.append(row)
            wanted -= row.unit_seconds
            if _enough(wanted, len(leases) + len(chosen), slots):
                break
        granted = _lease_all(session, client, chosen, now, input_url)
        leases.extend(granted)
        got = {g["instance_id"] for g in granted}
        missed = {row.unit_id for row in chosen if row.id not in got}
        if missed:  # why: the client had the unit (the candidate stays for others), or it is gone
            had |= _had(conn, client, missed)
        for row in chosen:
            if row.id in got or row.unit_id not in had:
                pool.pop(row.id, None)
        wanted += sum(row.unit_seconds for row in chosen if row.id not in got)
        if not looked or _enough(wanted, len(leases), slots):
            break
    return leases


PASSES = 4


def _enough(wanted: float, count: int, slots: int) -> bool:
    # Enough seconds of work and at least one unit per free slot, or the most one answer carries.
    return (wanted <= 0 and count >= slots) or count >= MAX_LEASES


# The units (of those given) the client ever had a copy of: never two instances of a unit to one client.
_HAD = {True: select(I.c.unit_id).where(I.c.client_id == bindparam("client"), I.c.unit_id == bindparam("b_id")),
        False: select(I.c.unit_id).where(I.c.client_id == bindparam("client"),
                                         I.c.unit_id.in_(bindparam("ids", expanding=True)))}
_UNITS = select(U.c.id, U.c.state, U.c.quorum, U.c.sha256, U.c.size,
                case((U.c.size <= INLINE_INPUT_BYTES, U.c.data), else_=None).label("data"))
_OTHER = I.alias("other")
_LEASED = update(I).values(state="leased", client_id=bindparam("b_client"), leased_at=bindparam("b_now"),
                           lease_expires=bindparam("b_expires")).returning(I.c.id, I.c.attempt)
# The compare-and-set: still unsent, and (read under the unit's lock) no copy of the unit with this client.
_LEASABLE = (I.c.state == "unsent",
             ~exists().where(_OTHER.c.unit_id == I.c.unit_id, _OTHER.c.client_id == bindparam("b_client")))
# Each in two forms: for one id (a plain parameter) and for several (an expanding IN, whose SQL is
# rendered again at every execution: the one-unit request, the most frequent, skips that).
_LOCK_UNITS = {True: _UNITS.where(U.c.id == bindparam("b_id")).with_for_update(),
               False: _UNITS.where(U.c.id.in_(bindparam("ids", expanding=True))).order_by(U.c.id).with_for_update()}
_LEASE = {True: _LEASED.where(I.c.id == bindparam("b_id"), *_LEASABLE),
          False: _LEASED.where(I.c.id.in_(bindparam("ids", expanding=True)), *_LEASABLE)}


def _ids(ids: list[int]) -> tuple[bool, dict[str, Any]]:
    return (True, {"b_id": ids[0]}) if len(ids) == 1 else (False, {"ids": ids})


def _had(conn: Connection, client: Client, unit_ids: set[int]) -> set[int]:
    if not unit_ids:
        return set()
    one, params = _ids(sorted(unit_ids))
    return set(conn.execute(_HAD[one], {**params, "client": client.id}).scalars())


def _lease_all(session: Session, client: Client, chosen: list[Candidate], now: float,
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
                                                   "b_expires": now + lease_s}).all())
    out = []
    for row in sorted(open_, key=lambda r: r.unit_id):
        if row.id not in attempts:
            continue
        unit = units[row.unit_id]
        adaptive = unit.quorum > 1 and _maybe_trust(session, conn, client, row.project_id, unit.id, row.id)
        log(session, "lease", row.project_id, unit_id=unit.id, instance_id=row.id, client_id=client.id,
            attempt=attempts[row.id], detail="quorum 1 (trusted client)" if adaptive else "")
        out.append(_lease_view(row, attempts[row.id], unit, now + row.lease_s, input_url))
    return out


def _maybe_trust(session: Session, conn: Connection, client: Client, project_id: str, unit_id: int,
                 instance_id: int) -> bool:
    """Quorum 1 for this unit when the client has earned it and no other copy is out yet."""
    flush_deferred(session)  # the record upserts of this transaction's reports so far
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


def _lease_view(row: Candidate, attempt: int, unit: Row[Any], expires: float, input_url: str) -> dict[str, Any]:
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
