"""The SSH host pool, store side: hosts an admin registered, handed out whole to clusters' nodes.

Admin operations (add, list, get, remove, check) and what the SSH provider asks of the pool
(`acquire`, `assigned`, `release`, `clusters`; see `disco.providers.ssh.HostPool`). A host's
private key is kept sealed by the service manager's secret box and opened only into the
`HostSpec` handed to the provider, in memory.

Taking hosts is atomic without table locks: each host moves from `free` to `in_use` by an
UPDATE that names `state = 'free'` in its WHERE clause, so of two clusters racing for a host
one changes a row and the other changes none, rolls back and looks again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncssh
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from disco.cluster.models import Host, utcnow
from disco.cluster.secrets import SecretBox
from disco.cluster.store import Store
from disco.errors import Conflict, InvalidSpec, NotFound, ProviderError
from disco.providers.ssh_transport import HostSpec, public_key_line

FREE, IN_USE, UNREACHABLE = "free", "in_use", "unreachable"
DEFAULT_PREFIX = "/opt/disco"
ACQUIRE_TRIES = 50


class HostsUnavailable(ProviderError):
    """The pool cannot give a cluster the hosts it needs (too few free, or named ones taken)."""

    status = 409
    code = "no_free_hosts"


class _Raced(Exception):
    """Another transaction took a host between our look and our update: look again."""


def normalize_host_key(text: str) -> str:
    """`<algorithm> <base64>` of a public host key given as text (a comment is dropped);
    InvalidSpec when it is not one."""
    try:
        return public_key_line(asyncssh.import_public_key(text.strip()))
    except (ValueError, asyncssh.KeyImportError):
        raise InvalidSpec("host_key is not an OpenSSH public key line (e.g. `ssh-ed25519 AAAA…`)",
                          code="invalid_host_key") from None


def check_private_key(text: str) -> None:
    """InvalidSpec unless `text` is a private key usable without a passphrase. The message never
    repeats the key."""
    try:
        asyncssh.import_private_key(text)
    except asyncssh.KeyEncryptionError:
        raise InvalidSpec("private_key is protected by a passphrase; give a key without one",
                          code="invalid_private_key") from None
    except (ValueError, asyncssh.KeyImportError):
        raise InvalidSpec("private_key is not a private key DISCO can read (OpenSSH or PEM format)",
                          code="invalid_private_key") from None


class HostPool:
    def __init__(self, store: Store, box: SecretBox) -> None:
        self.store = store
        self.box = box

    # -- admin -------------------------------------------------------------------------------

    def add(self, *, name: str, address: str, port: int, user: str, private_key: str, host_key: str = "",
            prefix: str = DEFAULT_PREFIX, labels: list[str] | None = None) -> Host:
        check_private_key(private_key)
        recorded = normalize_host_key(host_key) if host_key.strip() else ""
        row = Host(name=name, address=address, port=port, user=user, private_key_enc=self.box.seal(private_key),
                   host_key=recorded, host_key_source="given" if recorded else "", prefix=prefix,
                   labels=sorted(set(labels or [])), state=UNREACHABLE, check_result={}, check_error="not checked yet")
        try:
            with self.store.session() as s:
                s.add(row)
        except IntegrityError:
            raise self._duplicate(name, address, port) from None
        return self.get(row.id)

    def _duplicate(self, name: str, address: str, port: int) -> Conflict:
        with self.store.session() as s:
            same = s.scalar(select(Host).where(Host.name == name))
            if same is not None:
                return Conflict(f"a host named {name!r} is in the pool already (id {same.id})",
                                code="host_exists", details={"id": same.id})
            same = s.scalar(select(Host).where(Host.address == address, Host.port == port))
        if same is not None:
            return Conflict(f"{address}:{port} is in the pool already, as {same.name!r} (id {same.id})",
                            code="host_exists", details={"id": same.id})
        return Conflict("the host conflicts with one in the pool", code="host_exists")

    def list(self) -> list[Host]:
        with self.store.session() as s:
            return list(s.scalars(select(Host).order_by(Host.id)))

    def get(self, host_id: int) -> Host:
        with self.store.session() as s:
            row = s.get(Host, host_id)
        if row is None:
            raise NotFound(f"no host {host_id} in the pool", code="no_such_host", details={"id": host_id})
        return row

    def remove(self, host_id: int) -> None:
        """Forget a host; refused while a cluster holds it (the WHERE clause decides, so a
        concurrent `acquire` either takes it first or finds it gone)."""
        with self.store.session() as s:
            gone = s.execute(delete(Host).where(Host.id == host_id, Host.state != IN_USE)).rowcount
        if gone:
            return
        row = self.get(host_id)  # NotFound when it never was
        raise Conflict(f"host {row.name} is in use by node {row.node} of cluster {row.cluster_id}; "
                       "delete or scale down that cluster first", code="host_in_use",
                       details={"cluster_id": row.cluster_id, "node": row.node})

    def record_host_key(self, host_id: int, host_key: str, source: str) -> None:
        """Record the key a host presented on first contact, unless one was recorded meanwhile."""
        with self.store.session() as s:
            s.execute(update(Host).where(Host.id == host_id, Host.host_key == "")
                      .values(host_key=host_key, host_key_source=source))

    def record_check(self, host_id: int, ok: bool, error: str, result: dict[str, Any]) -> Host:
        """A check's outcome; the state follows it unless a cluster holds the host."""
        with self.store.session() as s:
            s.execute(update(Host).where(Host.id == host_id)
                      .values(checked_at=utcnow(), check_error=error, check_result={"ok": ok, **result}))
            s.execute(update(Host).where(Host.id == host_id, Host.state != IN_USE)
                      .values(state=FREE if ok else UNREACHABLE))
        return self.get(host_id)

    def spec(self, row: Host) -> HostSpec:
        """The host as the SSH code needs it, its key opened (in memory only)."""
        return HostSpec(name=row.name, address=row.address, port=row.port, user=row.user,
                        private_key=str(self.box.open(row.private_key_enc)), host_key=row.host_key,
                        prefix=row.prefix)

    # -- the provider's side -----------------------------------------------------------------

    def acquire(self, cluster_id: str, nodes: list[str], names: list[str] | None = None,
                labels: list[str] | None = None) -> dict[str, HostSpec]:
        """Hosts for these nodes: those they hold already, else free ones (only among `names`,
        or among hosts carrying every one of `labels`, when given). All or none."""
        for _ in range(ACQUIRE_TRIES):
            try:
                self._take(cluster_id, nodes, names, labels)
                break
            except (_Raced, IntegrityError):
                continue
            except OperationalError as exc:  # SQLite: another writer committed under our snapshot
                if "locked" not in str(exc).lower():
                    raise
        else:
            raise HostsUnavailable(f"could not take hosts for cluster {cluster_id}: "
                                   f"other clusters kept taking them first ({ACQUIRE_TRIES} tries)")
        held = self.assigned(cluster_id)
        return {node: held[node] for node in nodes}

    def _take(self, cluster_id: str, nodes: list[str], names: list[str] | None,
              labels: list[str] | None) -> None:
        with self.store.session() as s:
            held = {row.node for row in s.scalars(select(Host).where(Host.cluster_id == cluster_id))}
            missing = [node for node in nodes if node not in held]
            if not missing:
                return
            rows = list(s.scalars(select(Host).order_by(Host.name)))
            eligible, free = _choosable(rows, names, labels)
            if len(free) < len(missing):
                raise HostsUnavailable(_shortage(len(missing), free, eligible, names, labels),
                                       details={"needed": len(missing), "free": len(free)})
            for node, row in zip(missing, free):
                taken = s.execute(update(Host).where(Host.id == row.id, Host.state == FREE)
                                  .values(state=IN_USE, cluster_id=cluster_id, node=node)).rowcount
                if taken != 1:
                    raise _Raced()

    def preview(self, nodes: list[str], names: list[str] | None = None,
                labels: list[str] | None = None) -> dict[str, Host]:
        """The hosts `acquire` would give these nodes now (a plan), without taking any: node ->
        host row (its key stays sealed). Fewer than asked for when the pool is short."""
        with self.store.session() as s:
            rows = list(s.scalars(select(Host).order_by(Host.name)))
        _, free = _choosable(rows, names, labels)
        return dict(zip(nodes, free))

    def assigned(self, cluster_id: str) -> dict[str, HostSpec]:
        with self.store.session() as s:
            rows = list(s.scalars(select(Host).where(Host.cluster_id == cluster_id)))
        return {str(row.node): self.spec(row) for row in rows}

    def release(self, cluster_id: str, nodes: list[str] | None = None) -> None:
        query = update(Host).where(Host.cluster_id == cluster_id)
        if nodes is not None:
            query = query.where(Host.node.in_(nodes))
        with self.store.session() as s:
            s.execute(query.values(state=FREE, cluster_id=None, node=None))

    def shortage(self, needed: int, names: list[str] | None = None, labels: list[str] | None = None) -> str | None:
        """Why `needed` more hosts cannot be had now (None when they can): for refusing a
        create or a scale up front instead of failing the cluster half-way."""
        with self.store.session() as s:
            rows = list(s.scalars(select(Host).order_by(Host.name)))
        eligible = [row for row in rows if _matches(row, names, labels)]
        free = [row for row in eligible if row.state == FREE and row.host_key]
        return None if len(free) >= needed else _shortage(needed, free, eligible, names, labels)

    def quarantine(self, cluster_id: str, nodes: list[str], reason: str) -> None:
        """Hosts the cluster is done with that could not be cleaned (unreachable, refused us):
        out of the cluster, but not free: `unreachable` until a check succeeds, and a check
        removes what the cluster may have left there before the host is free again."""
        with self.store.session() as s:
            s.execute(update(Host).where(Host.cluster_id == cluster_id, Host.node.in_(nodes))
                      .values(state=UNREACHABLE, cluster_id=None, node=None, check_error=reason))

    def clusters(self) -> set[str]:
        with self.store.session() as s:
            return {cid for cid in s.scalars(select(Host.cluster_id).where(Host.cluster_id.is_not(None))) if cid}


def _choosable(rows: list[Host], names: list[str] | None,
               labels: list[str] | None) -> tuple[list[Host], list[Host]]:
    """(eligible, free) hosts in the order acquire hands them out: named hosts in the order
    named (the master first), else by name."""
    eligible = [row for row in rows if _matches(row, names, labels)]
    free = [row for row in eligible if row.state == FREE and row.host_key]
    if names:
        free.sort(key=lambda row: names.index(row.name))
    return eligible, free


def _matches(row: Host, names: list[str] | None, labels: list[str] | None) -> bool:
    if names and row.name not in names:
        return False
    return not labels or set(labels) <= set(row.labels or [])


def _shortage(needed: int, free: list[Host], eligible: list[Host], names: list[str] | None,
              labels: list[str] | None) -> str:
    among = ""
    if names:
        among = f" among the hosts named {', '.join(names)}"
        unknown = sorted(set(names) - {row.name for row in eligible})
        if unknown:
            among += f" ({', '.join(unknown)} not in the pool)"
    elif labels:
        among = f" among the hosts labelled {', '.join(labels)}"
    busy = sum(1 for row in eligible if row.state == IN_USE)
    down = sum(1 for row in eligible if row.state != IN_USE and row not in free)
    return (f"the host pool has {len(free)} free host(s){among} but {needed} are needed "
            f"({busy} in use, {down} unreachable or not checked); add hosts with `disco hosts add` "
            "or check them with `disco hosts check`")


def as_view(row: Host, *, host_key_just_recorded: bool = False) -> dict[str, Any]:
    """What the API shows of a host: never its private key."""
    return {
        "host_key_just_recorded": host_key_just_recorded,
        "id": row.id, "name": row.name, "address": row.address, "port": row.port, "user": row.user,
        "host_key": row.host_key or None, "host_key_source": row.host_key_source or None,
        "prefix": row.prefix, "labels": list(row.labels or []), "state": row.state,
        "cluster_id": row.cluster_id, "node": row.node,
        "last_check": {"at": _iso(row.checked_at), "ok": bool(row.check_result.get("ok")),
                       "error": row.check_error or None, "facts": row.check_result.get("facts") or None,
                       "problems": row.check_result.get("problems", [])} if row.checked_at else None,
        "created_at": _iso(row.created_at),
    }


def _iso(when: dt.datetime | None) -> str | None:
    if when is None:
        return None
    if when.tzinfo is None:  # SQLite hands back naive datetimes
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.isoformat()

