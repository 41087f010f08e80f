"""Picks instances for a client: by seconds of work wanted (BOINC), oldest first, never two
instances of one unit to one client, only its own tenant's open projects. Every pick is a
compare-and-set (unsent -> leased), so two clients asking at once never get the same instance.
Adaptive replication happens here: a client with a clean record of >= 10 consecutive valid
results on a project gets a unit at quorum 1, spot-checked with probability 1/consecutive_valid."""

from __future__ import annotations

import base64
import random
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from disco.taskfarm.models import Client, ClientRecord, Instance, Project, Unit
from disco.taskfarm.store import cas, log

MAX_LEASES = 200  # per request, whatever the seconds asked
INLINE_INPUT_BYTES = 64 * 1024  # larger units are fetched from the unit's input URL
TRUSTED_AFTER = 10  # BOINC's CONS_VALID_UNREPLICATED


def lease(session: Session, client: Client, seconds: float, slots: int, now: float,
          input_url: str) -> list[dict[str, Any]]:
    """The leases of one /work answer. `input_url` has `{unit_id}` for units not sent inline.
    Candidates another request took between our read and our write are skipped, and the next
    candidates read again (a few passes), so a busy farm does not answer "no work" while it has some."""
    leases: list[dict[str, Any]] = []
    wanted = max(seconds, 0.0)
    tried: set[int] = set()
    limit = min(MAX_LEASES, max(slots, int(seconds) + 1)) * 4
    for _ in range(PASSES):
        chosen: list[tuple[int, int, Project]] = []
        units: set[int] = set()
        rows = _candidates(session, client, tried, limit)
        for instance_id, unit_id, project in rows:
            tried.add(instance_id)
            if unit_id in units or (project.deadline is not None and project.deadline <= now):
                continue
            units.add(unit_id)
            chosen.append((instance_id, unit_id, project))
            wanted -= project.unit_seconds
            if _enough(wanted, len(leases) + len(chosen), slots):
                break
        # Units locked in ascending order everywhere (see transitions.py): no deadlock between requests.
        for instance_id, unit_id, project in sorted(chosen, key=lambda c: c[1]):
            granted = _lease_one(session, client, project, instance_id, unit_id, now, input_url)
            if granted is None:
                wanted += project.unit_seconds
            else:
                leases.append(granted)
        if not rows or _enough(wanted, len(leases), slots):
            break
    return leases


PASSES = 4


def _enough(wanted: float, count: int, slots: int) -> bool:
    # Enough seconds of work and at least one unit per free slot, or the most one answer carries.
    return (wanted <= 0 and count >= slots) or count >= MAX_LEASES


def _candidates(session: Session, client: Client, tried: set[int], limit: int) -> list[Any]:
    """The oldest unsent instances this client may have: its tenant's open projects, units still
    open, none of a unit it ever had a copy of."""
    mine = select(Instance.unit_id).where(Instance.client_id == client.id)
    query = (select(Instance.id, Instance.unit_id, Project)
             .join(Project, Project.id == Instance.project_id)
             .join(Unit, Unit.id == Instance.unit_id)
             .where(Instance.state == "unsent", Project.tenant == client.tenant, Project.state == "open",
                    Unit.state.in_(("open", "validating")), Instance.unit_id.not_in(mine)))
    if tried:
        query = query.where(Instance.id.not_in(tried))
    return list(session.execute(query.order_by(Instance.id).limit(limit)).all())


def _lease_one(session: Session, client: Client, project: Project, instance_id: int, unit_id: int, now: float,
               input_url: str) -> dict[str, Any] | None:
    unit = session.get(Unit, unit_id, with_for_update=True)
    if unit is None or unit.state not in ("open", "validating"):
        return None
    expires = now + project.lease_s
    if not cas(session, Instance, instance_id, "unsent", state="leased", client_id=client.id,
               leased_at=now, lease_expires=expires):
        return None  # another client took it between our read and our write
    adaptive = _maybe_trust(session, client, project, unit, instance_id)
    instance = session.get(Instance, instance_id)
    assert instance is not None
    log(session, "lease", project.id, unit_id=unit_id, instance_id=instance_id, client_id=client.id,
        attempt=instance.attempt, detail="quorum 1 (trusted client)" if adaptive else "")
    return _lease_view(instance, unit, project, expires, input_url)


def _maybe_trust(session: Session, client: Client, project: Project, unit: Unit, instance_id: int) -> bool:
    """Quorum 1 for this unit when the client has earned it and no other copy is out yet."""
    if unit.quorum <= 1:
        return False
    record = session.get(ClientRecord, (client.id, project.id))
    if record is None or record.invalid_total > 0 or record.consecutive_valid < TRUSTED_AFTER:
        return False
    if random.random() < 1.0 / record.consecutive_valid:
        return False  # the spot check: this one is replicated as usual
    others = session.scalars(select(Instance.state).where(Instance.unit_id == unit.id, Instance.id != instance_id)).all()
    if any(state != "unsent" for state in others):
        return False
    unit.quorum = 1
    session.execute(update(Instance).where(Instance.unit_id == unit.id, Instance.id != instance_id,
                                           Instance.state == "unsent").values(state="cancelled")
                    .execution_options(synchronize_session=False))
    return True


def _lease_view(instance: Instance, unit: Unit, project: Project, expires: float, input_url: str) -> dict[str, Any]:
    data: dict[str, Any] = {"sha256": unit.sha256, "bytes": unit.size}
    if unit.size <= INLINE_INPUT_BYTES:
        data["inline"] = base64.b64encode(unit.data).decode()
    else:
        data["url"] = input_url.format(unit_id=unit.id)
    code = dict(project.code)
    if code.get("kind") == "python":
        code["url"] = code_url(input_url, code["sha256"])
    return {"instance_id": instance.id, "unit_id": unit.id, "project_id": project.id, "attempt": instance.attempt,
            "lease_expires": expires, "input": data, "code": code}


def code_url(input_url: str, sha256: str) -> str:
    return input_url.replace("units/{unit_id}/input", f"code/{sha256}")
