"""What the service manager's store and the task farm's share of a database: an engine from a
URL (SQLite in WAL mode, or PostgreSQL through psycopg 3) and the hash secrets are kept as.
Neutral ground, so that the farm needs nothing of `disco.cluster`."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine


def hash_secret(secret: str) -> str:
    # Tokens and keys are 256-bit random strings: a fast hash suffices, there is no dictionary.
    return hashlib.sha256(secret.encode()).hexdigest()


def make_engine(url: str, *, sqlite_synchronous: str = "NORMAL", **pool: Any) -> Engine:
    """An engine for `url`. SQLite: WAL, foreign keys, and `sqlite_synchronous` (FULL where a
    committed row must survive a power cut, not only a kill -9). PostgreSQL: a plain
    `postgresql://` URL is taken as psycopg 3's; `pool` goes to create_engine."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_pre_ping=True, **pool)
