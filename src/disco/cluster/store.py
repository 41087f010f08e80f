"""Persistent state of the service manager: SQLite (WAL) by default, PostgreSQL when asked.

Every method opens its own short transaction and returns detached rows, so callers in
the API and the reconciler never share a session.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from disco.cluster.models import Cluster, Event, Node, Token, utcnow
from disco.database import hash_secret, make_engine
from disco.errors import NotFound

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
LIVE_STATES_EXCLUDED = ("deleted",)


hash_token = hash_secret  # the name the service manager's modules know


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Store:
    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        if migrate:
            upgrade(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # -- tokens ---------------------------------------------------------------------

    def create_token(self, tenant: str, description: str = "", *, admin: bool = False) -> str:
        token = secrets.token_urlsafe(32)
        with self.session() as s:
            s.add(Token(tenant=tenant, token_hash=hash_token(token), description=description, admin=admin))
        return token

    def tenant_for_token(self, token: str) -> str | None:
        found = self.token_identity(token)
        return found[0] if found else None

    def token_identity(self, token: str) -> tuple[str, bool] | None:
        """(tenant, admin) of a token, None when no such token exists."""
        return self.identity_for_hash(hash_token(token))

    def identity_for_hash(self, token_hash: str) -> tuple[str, bool] | None:
        """As token_identity, from the token's hash (all a dashboard session keeps of it)."""
        with self.session() as s:
            row = s.scalar(select(Token).where(Token.token_hash == token_hash))
            return (row.tenant, bool(row.admin)) if row else None

    def count_tokens(self) -> int:
        with self.session() as s:
            return len(s.scalars(select(Token.id)).all())

    # -- clusters -------------------------------------------------------------------

    def add_cluster(self, cluster: Cluster, node_names: list[tuple[str, str, int]],
                    slot_free: Callable[[int], bool] = lambda _slot: True) -> Cluster:
        """Insert a cluster with the lowest free slot (one no live cluster has and `slot_free`
        accepts); retried when another insert races us."""
        for _ in range(20):
            try:
                with self.session() as s:
                    cluster.slot = _lowest_free_slot(s, slot_free)
                    cluster.nodes = [Node(name=n, role=r, index=i) for n, r, i in node_names]
                    s.add(cluster)
                return self.get_cluster(cluster.id)
            except IntegrityError:
                cluster = _fresh_copy(cluster)
        raise RuntimeError("could not allocate a cluster slot")

    def free_slot(self, slot_free: Callable[[int], bool] = lambda _slot: True) -> int:
        """The slot add_cluster would give a cluster now (a plan; another create may take it)."""
        with self.session() as s:
            return _lowest_free_slot(s, slot_free)

    def get_cluster(self, cluster_id: str, tenant: str | None = None) -> Cluster:
        """The cluster; with `tenant`, only if it is that tenant's.

        The tenant is compared in the query itself, so another tenant's id costs the same
        single empty look-up as an id that does not exist: the answer's timing tells nothing.
        """
        query = select(Cluster).options(selectinload(Cluster.nodes)).where(Cluster.id == cluster_id)
        if tenant is not None:
            query = query.where(Cluster.tenant == tenant)
        with self.session() as s:
            row = s.scalar(query)
            if row is None:
                raise NotFound(f"no cluster {cluster_id}", details={"cluster": cluster_id})
            return row

    def list_clusters(self, tenant: str | None = None, *, include_deleted: bool = False) -> list[Cluster]:
        query = select(Cluster).options(selectinload(Cluster.nodes)).order_by(Cluster.created_at)
        if tenant is not None:
            query = query.where(Cluster.tenant == tenant)
        if not include_deleted:
            query = query.where(Cluster.state.not_in(LIVE_STATES_EXCLUDED))
        with self.session() as s:
            return list(s.scalars(query))

    def update_cluster(self, cluster_id: str, **fields: Any) -> Cluster:
        with self.session() as s:
            row = s.get(Cluster, cluster_id)
            if row is None:
                raise NotFound(f"no cluster {cluster_id}")
            for key, value in fields.items():
                setattr(row, key, value)
        return self.get_cluster(cluster_id)

    # -- nodes ----------------------------------------------------------------------

    def add_nodes(self, cluster_id: str, nodes: list[tuple[str, str, int]]) -> None:
        with self.session() as s:
            for name, role, index in nodes:
                s.add(Node(cluster_id=cluster_id, name=name, role=role, index=index))

    def update_node(self, cluster_id: str, name: str, **fields: Any) -> None:
        with self.session() as s:
            row = s.scalar(select(Node).where(Node.cluster_id == cluster_id, Node.name == name))
            if row is not None:
                for key, value in fields.items():
                    setattr(row, key, value)

    def remove_node(self, cluster_id: str, name: str) -> None:
        with self.session() as s:
            row = s.scalar(select(Node).where(Node.cluster_id == cluster_id, Node.name == name))
            if row is not None:
                s.delete(row)

    # -- events ---------------------------------------------------------------------

    def add_event(self, cluster_id: str, step: str, message: str, *,
                  duration_s: float | None = None, level: str = "info") -> Event:
        with self.session() as s:
            row = Event(cluster_id=cluster_id, step=step, message=message,
                        duration_s=duration_s, level=level)
            s.add(row)
        return row

    def events(self, cluster_id: str, after_id: int = 0) -> list[Event]:
        with self.session() as s:
            return list(s.scalars(
                select(Event).where(Event.cluster_id == cluster_id, Event.id > after_id).order_by(Event.id)
            ))


def _fresh_copy(cluster: Cluster) -> Cluster:
    columns = {c.key: getattr(cluster, c.key) for c in Cluster.__table__.columns if c.key != "slot"}
    return Cluster(**columns)


def age_seconds(since: dt.datetime | None) -> float:
    if since is None:
        return 0.0
    if since.tzinfo is None:  # SQLite hands back naive datetimes
        since = since.replace(tzinfo=dt.timezone.utc)
    return (utcnow() - since).total_seconds()


def _lowest_free_slot(session: Session, slot_free: Callable[[int], bool]) -> int:
    """The lowest slot no live cluster has and `slot_free` accepts."""
    used = set(session.scalars(select(Cluster.slot).where(Cluster.slot.is_not(None))))
    return next(i for i in range(1, 1 << 16) if i not in used and slot_free(i))
