"""What the farm's routes do, apart from HTTP: owners' projects and enrollment keys, clients'
enrollment, work, heartbeats and results. Each operation is one short transaction (see
store.retrying), so the API holds no state of its own between requests."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from disco.errors import DiscoError, InvalidSpec, NotFound, Unauthorized
from disco.taskfarm import assimilate_ddfs, ddfs_io, feeder, overview, split, transitions
from disco.taskfarm.assimilate import assimilate_ready
from disco.taskfarm.ddfs_io import DdfsAccess
from disco.taskfarm.exchange import Exchange, Exchanger
from disco.taskfarm.output_files import OutputFiles
from disco.taskfarm.models import Attempt, Blob, Client, EnrollmentKey, Instance, Project, Unit, now
from disco.taskfarm.schemas import ProjectSpec
from disco.database import hash_secret
from disco.taskfarm.store import FarmStore, retrying

I = Instance.__table__
U = Unit.__table__
MAX_UNITS = 100_000
MAX_INPUT_BYTES = 256 * 1024 * 1024
THROUGHPUT_WINDOW_S = 60.0
SEEN_EVERY_S = 5.0  # far below the online window (online_s, 60 s by default)


class TooManyUnits(DiscoError):
    status = 413
    code = "too_many_units"


@dataclass
class FarmConfig:
    output_dir: Path
    input_dirs: list[Path] = field(default_factory=list)  # files projects may name (none: refused)
    url_hosts: list[str] = field(default_factory=list)  # hosts input URLs may name (none: refused)
    min_lease_s: float = 30.0
    retry_after_s: float = 10.0  # what a client with no work is told to wait
    ddfs: DdfsAccess | None = None  # the DDFS master projects' tags live on (none: tags refused)
    online_s: float = 60.0  # a client heard from within this long is online (agents heartbeat every 10 s)


class Farm:
    def __init__(self, store: FarmStore, config: FarmConfig) -> None:
        self.store = store
        self.config = config
        # Token hash -> enrolled client, filled on first use: a client row never changes or goes
        # away once committed (there is no revocation yet; one must clear this cache).
        self._clients: dict[str, Client] = {}
        self._seen_written: dict[str, float] = {}  # client id -> when work() last wrote its last_seen
        # Unsent instances by tenant, for the leases; with the output directory, what the
        # protocol's exchanges share (exchange.py).
        self.exchanger = Exchanger(config.output_dir, feeder.Candidates())
        # Output files queued by their commit, written and flushed by the loop (output_files.py).
        self.outputs = OutputFiles(config.output_dir)
        store.write_outputs = self.outputs.queue

    # -- owners ---------------------------------------------------------------------------------

    def create_project(self, tenant: str, spec: ProjectSpec) -> tuple[str, int]:
        output = None
        if spec.output.kind == "ddfs":
            output = {"kind": "ddfs", "tag": spec.output.tag}
            self._check_output_tag(spec.output.tag)
        data = self._input_bytes(spec)
        chunks = split.split(data, spec.split.by, spec.split.size, spec.split.delimiter.encode())
        if len(chunks) > MAX_UNITS:
            raise TooManyUnits(f"the input splits into {len(chunks)} units, over the limit of {MAX_UNITS}: "
                               "make the split size larger")
        code: dict[str, Any]
        blob = None
        if spec.code.kind == "python":
            pickled = base64.b64decode(spec.code.pickle)
            blob = Blob(sha256=hashlib.sha256(pickled).hexdigest(), data=pickled)
            code = {"kind": "python", "sha256": blob.sha256, "python": spec.code.python}
        else:
            code = {"kind": "container", "image": spec.code.image, "command": list(spec.code.command)}
        quorum = spec.quorum
        project = Project(
            id=str(uuid.uuid4()), tenant=tenant, name=spec.name, state="open", code=code, quorum=quorum,
            max_errors=spec.max_errors, max_instances=max(quorum, spec.max_instances or quorum + 4),
            unit_seconds=spec.unit_seconds,
            lease_s=max(self.config.min_lease_s, spec.lease_s or 3 * spec.unit_seconds),
            deadline=time.time() + spec.deadline_s if spec.deadline_s else None,
            comparator=spec.comparator.model_dump(), max_output_bytes=spec.max_output_bytes, output=output,
            units_total=len(chunks), created_at=now())

        def work(s: Session) -> None:
            if blob is not None and s.get(Blob, blob.sha256) is None:
                s.add(Blob(sha256=blob.sha256, data=blob.data))
            s.add(project)
            s.flush()
            # Core executemany, not an ORM object per row: a 100,000-unit project in seconds.
            conn = s.connection()
            t = now()
            if chunks:
                conn.execute(insert(U), [dict(project_id=project.id, seq=chunk.seq, quorum=quorum, sha256=chunk.sha256,
                                              size=len(chunk.data), data=chunk.data, state="open", updated_at=t)
                                         for chunk in chunks])
            # Quorum instances up front: the feeder only ever hands out what exists.
            units = conn.execute(select(U.c.id).where(U.c.project_id == project.id).order_by(U.c.seq)).scalars().all()
            if units:
                conn.execute(insert(I), [dict(unit_id=uid, project_id=project.id, attempt=a, state="unsent")
                                         for uid in units for a in range(1, quorum + 1)])
            if not chunks:
                project.state, project.finished_at = "done", now()

        with self.store.session() as s:
            work(s)
        return project.id, len(chunks)

    def _input_bytes(self, spec: ProjectSpec) -> bytes:
        source = spec.input
        if source.kind == "inline":
            return source.text.encode()
        if source.kind == "inline_base64":
            return base64.b64decode(source.data)
        if source.kind == "files":
            parts = [split.read_file(p, self.config.input_dirs, MAX_INPUT_BYTES) for p in source.paths]
            return b"".join(parts)
        if source.kind == "ddfs":
            return ddfs_io.read_tag(ddfs_io.require(self.config.ddfs), source.tag, MAX_INPUT_BYTES)
        return split.fetch_url(source.url, self.config.url_hosts, MAX_INPUT_BYTES)

    def _check_output_tag(self, tag: str) -> None:
        """Before any unit exists: DDFS is configured and answers (a missing tag is fine: the
        first tagging creates it)."""
        from disco.error import DataError

        ddfs = ddfs_io.require(self.config.ddfs).client()
        try:
            ddfs.get(tag)
        except (DataError, OSError) as exc:
            if getattr(exc, "code", None) != 404:
                raise ddfs_io.comm_failure(exc, tag, "reach") from None

    def _project(self, s: Session, tenant: str, project_id: str) -> Project:
        project = s.get(Project, project_id)
        if project is None or project.tenant != tenant:  # another tenant's looks like a missing one
            raise NotFound(f"no project {project_id}", code="project_not_found")
        return project

    def list_projects(self, tenant: str) -> list[dict[str, Any]]:
        with self.store.session() as s:
            projects = s.scalars(select(Project).where(Project.tenant == tenant).order_by(Project.created_at)).all()
            return [self._view(s, p) for p in projects]

    def project(self, tenant: str, project_id: str) -> dict[str, Any]:
        with self.store.session() as s:
            return self._view(s, self._project(s, tenant, project_id))

    def _view(self, s: Session, p: Project) -> dict[str, Any]:
        counts = dict(s.execute(select(Unit.state, func.count()).where(Unit.project_id == p.id)
                                .group_by(Unit.state)).all())
        in_flight = s.scalar(select(func.count()).select_from(Instance).where(
            Instance.project_id == p.id, Instance.state == "leased")) or 0
        t = now()
        recent = s.scalar(select(func.count()).select_from(Attempt).where(
            Attempt.project_id == p.id, Attempt.kind == "assimilate", Attempt.at >= t - THROUGHPUT_WINDOW_S)) or 0
        window = min(THROUGHPUT_WINDOW_S, max(t - p.created_at, 1.0))
        rate = recent / window
        left = sum(counts.get(k, 0) for k in ("open", "validating", "valid"))
        eta = 0.0 if left == 0 else (left / rate if rate > 0 else None)
        return {"project_id": p.id, "name": p.name, "state": p.state, "quorum": p.quorum,
                "units": {k: counts.get(k, 0) for k in ("open", "validating", "valid", "assimilated", "failed",
                                                        "cancelled")},
                "instances_in_flight": in_flight, "throughput_units_per_s": round(rate, 3),
                "eta_s": None if eta is None else round(eta, 1), "created_at": p.created_at,
                "finished_at": p.finished_at}

    def results(self, tenant: str, project_id: str) -> dict[str, Any]:
        with self.store.session() as s:
            project = self._project(s, tenant, project_id)
            # The canonical outputs as the database keeps them: the bytes of the project's output
            # files (written by the loop, output_files.py) or of its DDFS tag.
            units = s.execute(select(Unit.seq, Unit.id, Instance.output).join(
                Instance, Instance.id == Unit.canonical_instance_id).where(
                Unit.project_id == project_id, Unit.state == "assimilated").order_by(Unit.seq)).all()
            left = s.scalar(select(func.count()).select_from(Unit).where(
                Unit.project_id == project_id, Unit.state.in_(("open", "validating", "valid")))) or 0
        out = [{"seq": seq, "unit_id": uid, "output": base64.b64encode(data or b"").decode()}
               for seq, uid, data in units]
        return {"project_id": project.id, "complete": left == 0, "results": out}

    def dead(self, tenant: str, project_id: str) -> dict[str, Any]:
        with self.store.session() as s:
            self._project(s, tenant, project_id)
            units = s.scalars(select(Unit).where(Unit.project_id == project_id, Unit.state == "failed")
                              .order_by(Unit.seq)).all()
            dead = []
            for unit in units:
                insts = s.scalars(select(Instance).where(Instance.unit_id == unit.id).order_by(Instance.attempt)).all()
                dead.append({"seq": unit.seq, "unit_id": unit.id, "reason": unit.reason, "errors": [
                    {"instance_id": i.id, "attempt": i.attempt, "client_id": i.client_id, "state": i.state,
                     "error": i.error} for i in insts if i.state in ("error", "no_reply", "invalid")]})
        return {"project_id": project_id, "dead": dead}

    def cancel(self, tenant: str, project_id: str) -> dict[str, Any]:
        def work(s: Session) -> None:
            project = self._project(s, tenant, project_id)
            if project.state != "open":
                return
            project.state, project.finished_at = "cancelled", now()
            units = s.scalars(select(Unit).where(Unit.project_id == project_id, Unit.state.in_(("open", "validating")))
                              .order_by(Unit.id).with_for_update()).all()
            for unit in units:
                unit.state, unit.reason = "cancelled", "the project was cancelled"
                s.execute(Instance.__table__.update().where(Instance.unit_id == unit.id,
                                                            Instance.state == "unsent").values(state="cancelled"))
            transitions.log(s, "cancel", project_id, detail=f"{len(units)} units cancelled")

        retrying(self.store, work)
        return self.project(tenant, project_id)

    def overview(self, tenant: str) -> dict[str, Any]:
        return retrying(self.store, lambda s: overview.overview(s, tenant, now(), self.config.online_s))

    def create_key(self, tenant: str, description: str) -> tuple[str, str]:
        key = "fk_" + secrets.token_urlsafe(32)
        key_id = str(uuid.uuid4())
        with self.store.session() as s:
            s.add(EnrollmentKey(id=key_id, tenant=tenant, key_hash=hash_secret(key), description=description))
        return key_id, key

    def ensure_key(self, tenant: str, key: str, description: str) -> None:
        """Registers a key its holder already has (a cluster's workers: the framework hands them
        the same key file): added once, and a revoked one stays revoked across restarts."""
        digest = hash_secret(key)

        def work(s: Session) -> None:
            if s.scalar(select(EnrollmentKey.id).where(EnrollmentKey.key_hash == digest)) is None:
                s.add(EnrollmentKey(id=str(uuid.uuid4()), tenant=tenant, key_hash=digest, description=description))

        retrying(self.store, work)

    def list_clients(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's enrolled clients, each with its instances by state (what it leased and
        how that ended): how an owner sees who works for the farm and what each did."""
        with self.store.session() as s:
            clients = s.scalars(select(Client).where(Client.tenant == tenant).order_by(Client.created_at)).all()
            counts: dict[str, dict[str, int]] = {c.id: {} for c in clients}
            if clients:
                rows = s.execute(select(Instance.client_id, Instance.state, func.count())
                                 .where(Instance.client_id.in_(list(counts)))
                                 .group_by(Instance.client_id, Instance.state))
                for client_id, state, count in rows:
                    counts[client_id][state] = count
            return [{"client_id": c.id, "name": c.name, "slots": c.slots, "platform": c.platform, "cpus": c.cpus,
                     "enrolled_at": c.created_at, "instances": counts[c.id]}
                    for c in clients]

    def code_blob(self, sha256: str) -> bytes:
        with self.store.session() as s:
            blob = s.get(Blob, sha256)
            if blob is None:
                raise NotFound("no such code", code="code_not_found")
            return blob.data

    # -- clients --------------------------------------------------------------------------------

    def enroll(self, key: str | None, name: str, slots: int, platform: str, cpus: int, memory_mb: int) -> tuple[str, str]:
        if not key:
            raise Unauthorized("missing X-Farm-Key header (an enrollment key: disco farm key create)",
                               code="missing_key")
        token = "fc_" + secrets.token_urlsafe(32)
        client_id = str(uuid.uuid4())
        with self.store.session() as s:
            found = s.scalar(select(EnrollmentKey).where(EnrollmentKey.key_hash == hash_secret(key),
                                                         EnrollmentKey.revoked.is_(False)))
            if found is None:
                raise Unauthorized("invalid enrollment key", code="invalid_key")
            s.add(Client(id=client_id, tenant=found.tenant, name=name, token_hash=hash_secret(token), slots=slots,
                         platform=platform, cpus=cpus, memory_mb=memory_mb))
        return client_id, token

    def client(self, token: str | None) -> Client:
        if not token:
            raise Unauthorized("missing Authorization: Bearer <client token>", code="missing_token")
        digest = hash_secret(token)
        found = self._clients.get(digest)
        if found is None:
            found = retrying(self.store, lambda s: s.scalar(select(Client).where(Client.token_hash == digest)))
            if found is None:
                raise Unauthorized("invalid client token", code="invalid_token")
            self._clients[digest] = found
        return found

    def cached_client(self, token: str) -> Client | None:
        """The client of a token seen before, without touching the database (fastpath.py)."""
        return self._clients.get(hash_secret(token))

    def work(self, client: Client, seconds: float, slots: int, input_url: str) -> list[dict[str, Any]]:
        return self.work_future(client, seconds, slots, input_url).result()

    def work_future(self, client: Client, seconds: float, slots: int, input_url: str) -> Future[list[dict[str, Any]]]:
        return self.store.write_future(self._exchange(client, [], feeder.Want(client, seconds, slots, input_url)))

    def exchange(self, client: Client, items: list[dict[str, Any]], seconds: float, slots: int,
                 input_url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return self.exchange_future(client, items, seconds, slots, input_url).result()

    def exchange_future(self, client: Client, items: list[dict[str, Any]], seconds: float, slots: int,
                        input_url: str) -> Future[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        """POST …/work carrying results (BOINC's scheduler RPC): the results recorded exactly as
        POST …/results records them, then the new leases picked, in one transaction, answered
        after its commit. (answers in the items' order, leases)."""
        return self.store.write_future(self._exchange(client, items, feeder.Want(client, seconds, slots, input_url),
                                                      both=True))

    def _exchange(self, client: Client, items: list[dict[str, Any]], want: feeder.Want | None,
                  both: bool = False) -> Exchange:
        seen = False
        if want is not None:
            # A client asking for work is online (the overview); its last_seen is written at most
            # every SEEN_EVERY_S seconds, not on each of a busy client's many asks.
            t = now()
            seen = t - self._seen_written.get(client.id, 0.0) >= SEEN_EVERY_S
            if seen:
                self._seen_written[client.id] = t
        return Exchange(self.exchanger, client, items, want, seen, both)

    def unit_input(self, client: Client, unit_id: int) -> bytes:
        """A unit's input, for a client holding one of its instances."""
        with self.store.session() as s:
            held = s.scalar(select(func.count()).select_from(Instance).where(
                Instance.unit_id == unit_id, Instance.client_id == client.id))
            unit = s.get(Unit, unit_id)
            if not held or unit is None:
                raise NotFound("no such unit leased to this client", code="unit_not_found")
            return unit.data

    def heartbeat(self, client: Client, ids: list[int],
                  slots: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Leases extended; the client's last_seen, and its slots' stats when it sent them (an
        older client sends none: the last ones stay, with their time)."""
        def work(s: Session) -> list[dict[str, Any]]:
            conn = s.connection()
            t = now()
            seen: dict[str, Any] = {"last_seen": t}
            if slots is not None:
                seen |= {"slot_stats": slots, "stats_at": t}
            s.execute(Client.__table__.update().where(Client.id == client.id).values(**seen))
            out = []
            for iid in ids:
                row = conn.execute(_HEARTBEAT_READ, {"iid": iid}).first()
                if (row is None or row.client_id != client.id or row.state != "leased"
                        or row.unit_state not in ("open", "validating")):
                    out.append({"instance_id": iid, "gone": True})
                    continue
                expires = t + row.lease_s
                done = conn.execute(_HEARTBEAT, {"iid": iid, "expires": expires})
                out.append({"instance_id": iid, "lease_expires": expires} if done.rowcount == 1
                           else {"instance_id": iid, "gone": True})
            return out

        return self.store.write(work)

    def upload(self, client: Client, instance_id: int, data: bytes, declared_sha256: str) -> None:
        if hashlib.sha256(data).hexdigest() != declared_sha256:
            raise InvalidSpec("the upload does not match its declared SHA-256", code="checksum_mismatch")

        def work(s: Session) -> None:
            inst = s.get(Instance, instance_id, with_for_update=True)
            if inst is None or inst.client_id != client.id:
                raise NotFound("no such instance leased to this client", code="instance_not_found")
            project = s.get(Project, inst.project_id)
            assert project is not None
            if len(data) > project.max_output_bytes:
                raise OutputTooLarge(f"output over the project's max_output_bytes ({project.max_output_bytes})")
            if not inst.answer:  # after the report, the stored output is the reported one
                inst.output = data

        retrying(self.store, work)

    def report(self, client: Client, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.report_future(client, items).result()

    def report_future(self, client: Client, items: list[dict[str, Any]]) -> Future[list[dict[str, Any]]]:
        """Answers given back in the client's order (transitions.report_many)."""
        return self.store.write_future(self._exchange(client, items, None))

    # -- the loop ---------------------------------------------------------------------------------

    def tick(self) -> None:
        """Once a second: expired leases, deadlines, assimilation, the output files queued since
        the last tick written and flushed to disk, finished projects."""
        t = now()
        retrying(self.store, lambda s: transitions.expire_leases(s, t))
        retrying(self.store, lambda s: transitions.pass_deadlines(s, t))
        assimilate_ready(self.store, self.config.output_dir)
        assimilate_ddfs.assimilate_ready(self.store, self.config.ddfs)
        # A project is done once its files are on disk: the ones whose units were all settled
        # before the files queued so far were written.
        finishing = retrying(self.store, transitions.finished_projects)
        self.outputs.flush()
        retrying(self.store, lambda s: transitions.finish_projects(s, t, finishing))

    def recover(self) -> int:
        """At start, before any request: output files a crash of the machine lost written again."""
        return self.outputs.recover(self.store)


_HEARTBEAT_READ = (select(I.c.client_id, I.c.state, U.c.state.label("unit_state"), Project.__table__.c.lease_s)
                   .select_from(I.join(U, U.c.id == I.c.unit_id).join(Project.__table__,
                                                                        Project.__table__.c.id == I.c.project_id))
                   .where(I.c.id == bindparam("iid")))
_HEARTBEAT = (update(I).where(I.c.id == bindparam("iid"), I.c.state == "leased")
              .values(lease_expires=bindparam("expires")))


class OutputTooLarge(DiscoError):
    status = 413
    code = "output_too_large"
