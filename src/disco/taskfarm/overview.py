"""The numbers of a tenant's farm at a glance (GET /api/v1/farm/overview and the dashboard's
farm page): per project units done, in flight, failed and assimilated per minute; per client
whether it is online, its slots with the CPU and memory its last heartbeat measured, and its
valid, invalid and failed results. Only the tenant's projects and its own clients (the feeder
gives a client only its enrollment key's tenant's work, so no other client works on them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, cast, distinct, func, select
from sqlalchemy.orm import Session

from disco.taskfarm.models import Attempt, Client, Instance, Project, Unit

MINUTES = 10  # the per-minute series' length
RATE_WINDOW_S = 300.0  # units_per_minute is averaged over this much (or the project's age, if younger)
MIN_RATE_WINDOW_S = 10.0  # a project seconds old: no rate blown up by a tiny window


def overview(s: Session, tenant: str, t: float, online_s: float) -> dict[str, Any]:
    projects = s.scalars(select(Project).where(Project.tenant == tenant).order_by(Project.created_at)).all()
    ids = [p.id for p in projects]
    units = _grouped(s, select(Unit.project_id, Unit.state, func.count()).where(Unit.project_id.in_(ids))
                     .group_by(Unit.project_id, Unit.state))
    flying = {p: (u, n) for p, u, n in s.execute(
        select(Instance.project_id, func.count(distinct(Instance.unit_id)), func.count())
        .where(Instance.project_id.in_(ids), Instance.state == "leased").group_by(Instance.project_id)).tuples()}
    # Minutes ago (0 = the minute now running) of each assimilation in the last MINUTES minutes:
    # milliseconds as an integer, then integer division, which truncates on SQLite and PostgreSQL
    # alike (a float cast rounds on PostgreSQL and truncates on SQLite).
    ago = cast((t - Attempt.at) * 1000, Integer) // 60000
    done_per_minute = _grouped(s, select(Attempt.project_id, ago, func.count()).where(
        Attempt.project_id.in_(ids), Attempt.kind == "assimilate", Attempt.at >= t - MINUTES * 60, Attempt.at <= t)
        .group_by(Attempt.project_id, ago))
    rated = dict(s.execute(select(Attempt.project_id, func.count()).where(
        Attempt.project_id.in_(ids), Attempt.kind == "assimilate", Attempt.at >= t - RATE_WINDOW_S)
        .group_by(Attempt.project_id)).tuples().all())
    project_rows = []
    for p in projects:
        counts = units.get(p.id, {})
        in_units, in_instances = flying.get(p.id, (0, 0))
        window = min(RATE_WINDOW_S, max(t - p.created_at, MIN_RATE_WINDOW_S))
        buckets: dict[int, int] = {}
        for minute, count in done_per_minute.get(p.id, {}).items():
            last = min(int(minute), MINUTES - 1)  # a millisecond rounded up at the window's start
            buckets[last] = buckets.get(last, 0) + count
        project_rows.append({
            "project_id": p.id, "name": p.name, "state": p.state, "units_total": p.units_total,
            "units_done": counts.get("assimilated", 0), "units_in_flight": in_units,
            "units_failed": counts.get("failed", 0),
            "units_waiting": sum(counts.get(k, 0) for k in ("open", "validating", "valid")),
            "instances_in_flight": in_instances,
            "units_per_minute": round(rated.get(p.id, 0) * 60.0 / window, 2),
            "per_minute": [buckets.get(m, 0) for m in range(MINUTES - 1, -1, -1)]})
    clients = s.scalars(select(Client).where(Client.tenant == tenant).order_by(Client.created_at, Client.id)).all()
    by_client = _grouped(s, select(Instance.client_id, Instance.state, func.count()).where(
        Instance.project_id.in_(ids), Instance.client_id.in_([c.id for c in clients]))
        .group_by(Instance.client_id, Instance.state))
    client_rows = []
    for c in clients:
        counts = by_client.get(c.id, {})
        client_rows.append({
            "client_id": c.id, "name": c.name, "platform": c.platform, "cpus": c.cpus, "memory_mb": c.memory_mb,
            "slots": c.slots, "online": c.last_seen >= t - online_s, "last_seen": c.last_seen,
            "stats_at": c.stats_at, "containers": [_slot(x) for x in c.slot_stats or []],
            "units_done": counts.get("success", 0), "in_flight": counts.get("leased", 0),
            "invalid": counts.get("invalid", 0), "errors": counts.get("error", 0)})
    return {"generated_at": t, "online_window_s": online_s, "rate_window_s": RATE_WINDOW_S, "minutes": MINUTES,
            "clients_online": sum(1 for c in client_rows if c["online"]), "projects": project_rows,
            "clients": client_rows}


def _grouped(s: Session, query: Any) -> dict[Any, dict[Any, int]]:
    """(key, sub-key, count) rows as {key: {sub-key: count}}."""
    out: dict[Any, dict[Any, int]] = {}
    for key, sub, count in s.execute(query).tuples():
        out.setdefault(key, {})[sub] = count
    return out


def _slot(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: stats.get(k) for k in ("slot", "kind", "busy", "instance_id", "cpu_percent", "memory_mb")}
