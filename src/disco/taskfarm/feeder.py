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

from sqlalchemy import Row, TextClause, bindparam, case, select, text, update
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


@dataclass(frozen=True)
class Want:
    """What one request asks for: seconds of work, for at least `slots` free slots."""
    client: Client
    seconds: float
    slots: int
    input_url: str  # with `{unit_id}`, for units not sent inline


def lease(session: Session, client: Client, seconds: float, slots: int, now: float,
          input_url: str, candidates: Candidates) -> list[dict[str, Any]]:
    """The leases of one /work answer (lease_many of one request)."""
    return lease_many(session, [Want(client, seconds, slots, input_url)], now, candidates)[0]


def lease_many(session: Session, wants: list[Want], now: float, candidates: Candidates) -> list[list[dict[str, Any]]]:
    """The leases of several requests (a group commit's), each request's as if it had asked
    alone, after the ones before it. Candidates a client may not have (a unit it had a copy of)
    or that another request took are skipped, and the next ones tried (a few passes), so a busy
    farm does not answer "no work" while it has some. A pass is two statements for all the
    requests, whatever their number: the candidates' units locked (ascending id), and one
    compare-and-set UPDATE … RETURNING of the instances still unsent and of units their client
    never had; a third per client, its history of the units it missed, only when it missed some."""
    conn = session.connection()
    pools = {tenant: candidates.get(conn, tenant) for tenant in {w.client.tenant for w in wants}}
    picks = [_Pick(w) for w in wants]
    _passes(session, picks, {tenant: pool for tenant, (pool, _) in pools.items()}, now)
    # Nothing for a client in a queue read a while ago: is there work it does not know of yet?
    again = [p for p in picks if not p.leases and not pools[p.want.client.tenant][1]]
    if again:
        tenants = {p.want.client.tenant for p in again}
        fresh = {tenant: candidates.get(conn, tenant, fresh=True)[0] for tenant in tenants}
        retried = [_Pick(p.want) for p in again]
        _passes(session, retried, fresh, now)
        for old, new in zip(again, retried):
            old.leases = new.leases
    return [p.leases for p in picks]


class _Pick:
    """One request's progress through the passes."""

    def __init__(self, want: Want) -> None:
        self.want = want
        self.leases: list[dict[str, Any]] = []
        self.wanted = max(want.seconds, 0.0)
        self.limit = min(MAX_LEASES, max(want.slots, int(want.seconds) + 1)) * 4
        self.tried: set[int] = set()
        self.had: set[int] = set()  # units of candidates this client had a copy of, as learnt here
        self.done = False

    def choose(self, pool: dict[int, Candidate], taken: set[int], pairs: set[tuple[str, int]],
               now: float) -> list[Candidate]:
        """This pass's candidates: not tried before, not taken by an earlier request of the
        pass, and never two of one unit for one client (the pass's compare-and-set is one
        statement: it cannot see its own rows)."""
        chosen: list[Candidate] = []
        looked = 0
        client = self.want.client.id
        for row in pool.values():
            if row.id in self.tried or row.id in taken:
                continue
            if looked >= self.limit:
                break
            looked += 1
            self.tried.add(row.id)
            if ((client, row.unit_id) in pairs or row.unit_id in self.had
                    or (row.deadline is not None and row.deadline <= now)):
                continue
            pairs.add((client, row.unit_id))
            taken.add(row.id)
            chosen.append(row)
            self.wanted -= row.unit_seconds
            if _enough(self.wanted, len(self.leases) + len(chosen), self.want.slots):
                break
        if not looked:
            self.done = True
        return chosen


def _passes(session: Session, picks: list[_Pick], pools: dict[str, dict[int, Candidate]], now: float) -> None:
    conn = session.connection()
    for _ in range(PASSES):
        active = [p for p in picks if not p.done]
        if not active:
            return
        taken: set[int] = set()
        pairs: set[tuple[str, int]] = set()
        chosen = [(p, p.choose(pools[p.want.client.tenant], taken, pairs, now)) for p in active]
        granted = _lease_all(session, chosen, now)
        for pick, rows in chosen:
            got = granted.get(pick, {})
            pick.leases.extend(got.values())
            missed = {row.unit_id for row in rows if row.id not in got}
            if missed:  # why: the client had the unit (the candidate stays for others), or it is gone
                pick.had |= _had(conn, pick.want.client, missed)
            pool = pools[pick.want.client.tenant]
            for row in rows:
                if row.id in got or row.unit_id not in pick.had:
                    pool.pop(row.id, None)
            pick.wanted += sum(row.unit_seconds for row in rows if row.id not in got)
            if _enough(pick.wanted, len(pick.leases), pick.want.slots):
                pick.done = True


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
# Each in two forms: for one id (a plain parameter) and for several (an expanding IN, whose SQL is
# rendered again at every execution: the one-unit request, the most frequent, skips that).
_LOCK_UNITS = {True: _UNITS.where(U.c.id == bindparam("b_id")).with_for_update(),
               False: _UNITS.where(U.c.id.in_(bindparam("ids", expanding=True))).order_by(U.c.id).with_for_update()}
CAS_ROWS = 1000  # instances per compare-and-set statement (SQLite allows 32,766 parameters)


def _ids(ids: list[int]) -> tuple[bool, dict[str, Any]]:
    return (True, {"b_id": ids[0]}) if len(ids) == 1 else (False, {"ids": ids})


def _had(conn: Connection, client: Client, unit_ids: set[int]) -> set[int]:
    if not unit_ids:
        return set()
    one, params = _ids(sorted(unit_ids))
    return set(conn.execute(_HAD[one], {**params, "client": client.id}).scalars())


def _cas_statement(rows: int) -> TextClause:
    """The compare-and-set of `rows` (instance, client, lease end) at once, the same SQL on
    SQLite (3.33+) and PostgreSQL: leased only if still unsent and (read under the unit's lock)
    no copy of the unit is with that client; answers the (id, attempt) of those it leased."""
    values = ", ".join(f"(:i{n}, :c{n}, :e{n})" for n in range(rows))
    return text(
        f"WITH wanted (iid, cid, expires) AS (VALUES {values}) "
        "UPDATE farm_instances SET state = 'leased', client_id = wanted.cid, leased_at = :now, "
        "lease_expires = wanted.expires FROM wanted "
        "WHERE farm_instances.id = wanted.iid AND farm_instances.state = 'unsent' AND NOT EXISTS "
        "(SELECT 1 FROM farm_instances AS other WHERE other.unit_id = farm_instances.unit_id "
        "AND other.client_id = wanted.cid) RETURNING id, attempt")


def _compare_and_set(conn: Connection, leases: list[tuple[int, str, float]], now: float) -> dict[int, int]:
    attempts: dict[int, int] = {}
    for start in range(0, len(leases), CAS_ROWS):
        part = leases[start:start + CAS_ROWS]
        params: dict[str, Any] = {"now": now}
        for n, (iid, client_id, expires) in enumerate(part):
            params |= {f"i{n}": iid, f"c{n}": client_id, f"e{n}": expires}
        attempts.update(conn.execute(_cas_statement(len(part)), params).all())
    return attempts


def _lease_all(session: Session, chosen: list[tuple[_Pick, list[Candidate]]],
               now: float) -> dict[_Pick, dict[int, dict[str, Any]]]:
    """The leases granted of this pass's candidates: by pick, by instance id."""
    wanted = [(pick, row) for pick, rows in chosen for row in rows]
    if not wanted:
        return {}
    conn = session.connection()
    # Units locked in ascending order everywhere (see transitions.py): no deadlock between requests.
    one, params = _ids(sorted({row.unit_id for _, row in wanted}))
    units = {u.id: u for u in conn.execute(_LOCK_UNITS[one], params)}
    open_ = [(pick, row) for pick, row in wanted
             if row.unit_id in units and units[row.unit_id].state in ("open", "validating")]
    # All of them at once: an instance another client took between our read and this write is not
    # returned, and so not leased.
    attempts = _compare_and_set(conn, [(row.id, pick.want.client.id, now + row.lease_s) for pick, row in open_], now)
    granted: dict[_Pick, dict[int, dict[str, Any]]] = {}
    for pick, row in sorted(open_, key=lambda pair: pair[1].unit_id):
        if row.id not in attempts:
            continue
        unit, client = units[row.unit_id], pick.want.client
        adaptive = unit.quorum > 1 and _maybe_trust(session, conn, client, row.project_id, unit.id, row.id)
        log(session, "lease", row.project_id, unit_id=unit.id, instance_id=row.id, client_id=client.id,
            attempt=attempts[row.id], detail="quorum 1 (trusted client)" if adaptive else "")
        granted.setdefault(pick, {})[row.id] = _lease_view(row, attempts[row.id], unit, now + row.lease_s,
                                                               pick.want.input_url)
    return granted


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
