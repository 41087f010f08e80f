"""Database tables of the service manager (SQLAlchemy 2 typed ORM)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    # Admin tokens may also manage what all tenants share (the SSH host pool).
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Cluster(Base):
    __tablename__ = "clusters"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Actual state (the lifecycle names) and the state the user asked for; the
    # reconciler moves `state` toward `target`.
    state: Mapped[str] = mapped_column(String(16), index=True)
    target: Mapped[str] = mapped_column(String(16))
    workers: Mapped[int] = mapped_column(Integer)
    # A small number unique among live clusters; providers derive addresses from it.
    slot: Mapped[int | None] = mapped_column(Integer, unique=True, nullable=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ssh_public_key: Mapped[str] = mapped_column(Text, default="")
    ssh_private_key_enc: Mapped[str] = mapped_column(Text, default="")
    secrets_enc: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    ready_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    last_active_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)

    nodes: Mapped[list["Node"]] = relationship(
        back_populates="cluster", cascade="all, delete-orphan", order_by="Node.index"
    )


class Node(Base):
    __tablename__ = "nodes"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    index: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255), default="")
    # "running": should exist with its processes; "absent": being removed (scale down).
    target: Mapped[str] = mapped_column(String(16), default="running")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    cluster: Mapped[Cluster] = relationship(back_populates="nodes")


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    step: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(8), default="info")
    message: Mapped[str] = mapped_column(Text)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)


class Host(Base):
    """A machine of the SSH host pool: taken whole by one node of one cluster at a time."""

    __tablename__ = "hosts"
    # One node holds one host; (address, port) is one machine, recorded once.
    __table_args__ = (UniqueConstraint("cluster_id", "node"), UniqueConstraint("address", "port"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=22)
    user: Mapped[str] = mapped_column(String(64))
    private_key_enc: Mapped[str] = mapped_column(Text)
    # `ssh-ed25519 AAAA…`; empty until the first contact records it (trust on first use).
    host_key: Mapped[str] = mapped_column(Text, default="")
    host_key_source: Mapped[str] = mapped_column(String(16), default="")
    prefix: Mapped[str] = mapped_column(String(255), default="/opt/disco")
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    # free, in_use (cluster_id and node say by whom) or unreachable (the last check failed).
    state: Mapped[str] = mapped_column(String(16), index=True, default="free")
    cluster_id: Mapped[str | None] = mapped_column(String(36), index=True, nullable=True)
    node: Mapped[str | None] = mapped_column(String(32), nullable=True)
    checked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    # {"ok", "facts", "problems"} of the last check; `check_error` why it failed.
    check_result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    check_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
