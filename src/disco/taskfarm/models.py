"""The farm's tables (prefix `farm_`), in a MetaData of their own so that the service manager's
schema and the farm's evolve apart in one database (docs/design/taskfarm.md).

Times a query compares (leases, deadlines) are epoch seconds (floats): the same on SQLite and
PostgreSQL, with no time-zone conversion in between."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

UNIT_STATES = ("open", "validating", "valid", "assimilated", "failed", "cancelled")
INSTANCE_STATES = ("unsent", "leased", "success", "error", "no_reply", "invalid", "cancelled")
# Instances whose unit may still need them.
OUTSTANDING = ("unsent", "leased")


def now() -> float:
    return time.time()


class FarmBase(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class Project(FarmBase):
    __tablename__ = "farm_projects"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    # open -> done (every unit assimilated or failed) | cancelled
    state: Mapped[str] = mapped_column(String(16), index=True, default="open")
    # {"kind": "python", "sha256": ...} or {"kind": "container", "image": ..., "command": [...]}
    code: Mapped[dict[str, Any]] = mapped_column(JSON)
    quorum: Mapped[int] = mapped_column(Integer, default=1)
    max_errors: Mapped[int] = mapped_column(Integer, default=3)
    max_instances: Mapped[int] = mapped_column(Integer, default=5)
    lease_s: Mapped[float] = mapped_column(Float, default=60.0)
    unit_seconds: Mapped[float] = mapped_column(Float, default=1.0)
    deadline: Mapped[float | None] = mapped_column(Float, nullable=True)
    comparator: Mapped[dict[str, Any]] = mapped_column(JSON)
    max_output_bytes: Mapped[int] = mapped_column(Integer, default=1 << 20)
    # Where assimilated outputs go: None, files under the server's output directory; or
    # {"kind": "ddfs", "tag": name}, blobs in that DDFS tag (assimilate_ddfs.py).
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True, default=None)
    units_total: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Blob(FarmBase):
    """Content-addressed bytes: a project's cloudpickled function."""

    __tablename__ = "farm_blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Unit(FarmBase):
    __tablename__ = "farm_units"
    __table_args__ = (UniqueConstraint("project_id", "seq"), Index("ix_farm_units_project_state", "project_id", "state"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("farm_projects.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)  # order in the input, and in the results
    state: Mapped[str] = mapped_column(String(16), default="open")
    # The quorum this unit needs: the project's, or 1 once adaptive replication trusts a client.
    quorum: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    canonical_instance_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Files output: the file's path. DDFS output: {"urls": the pushed blob's replica URLs,
    # "pushed_at"} (JSON), recorded before the blob is tagged, so that a restart tags that blob.
    output_path: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text, default="")  # why it failed
    updated_at: Mapped[float] = mapped_column(Float, default=now)


class Instance(FarmBase):
    __tablename__ = "farm_instances"
    __table_args__ = (UniqueConstraint("unit_id", "attempt"),
                      Index("ix_farm_instances_feed", "project_id", "state", "id"),
                      Index("ix_farm_instances_lease", "state", "lease_expires"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("farm_units.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(String(36))
    attempt: Mapped[int] = mapped_column(Integer)  # 1, 2, … within its unit
    state: Mapped[str] = mapped_column(String(16), default="unsent")
    client_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    leased_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    lease_expires: Mapped[float | None] = mapped_column(Float, nullable=True)
    reported_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The answer the first report got; a duplicate report gets it again.
    answer: Mapped[str] = mapped_column(String(16), default="")
    output: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    output_sha256: Mapped[str] = mapped_column(String(64), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    cpu_s: Mapped[float] = mapped_column(Float, default=0.0)


class Client(FarmBase):
    __tablename__ = "farm_clients"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)  # the enrollment key's owner
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    slots: Mapped[int] = mapped_column(Integer, default=1)
    platform: Mapped[str] = mapped_column(String(64), default="")
    cpus: Mapped[int] = mapped_column(Integer, default=1)
    memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    last_seen: Mapped[float] = mapped_column(Float, default=now)  # its last heartbeat or work request
    # Its slots as its last heartbeat measured them (schemas.SlotStats), and when.
    slot_stats: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    stats_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ClientRecord(FarmBase):
    """A client's validation record on one project (adaptive replication)."""

    __tablename__ = "farm_client_records"

    client_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    consecutive_valid: Mapped[int] = mapped_column(Integer, default=0)
    invalid_total: Mapped[int] = mapped_column(Integer, default=0)


class EnrollmentKey(FarmBase):
    __tablename__ = "farm_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Attempt(FarmBase):
    """The attempts log: every lease, report, expiry, verdict and assimilation (the evidence the
    fault tests read: nothing lost, nothing assimilated twice)."""

    __tablename__ = "farm_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, default=now)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    project_id: Mapped[str] = mapped_column(String(36), index=True)
    unit_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    instance_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    client_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
