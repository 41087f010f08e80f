"""Helpers for the task farm's tests: a fresh database on SQLite or PostgreSQL, and
`disco farm server` as a real subprocess (started, killed with -9, restarted)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from sm_fixtures import free_port

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _postgres_reason() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to reach the server means: no PostgreSQL here
        return f"PostgreSQL at 127.0.0.1:5432 not reachable: {type(exc).__name__}"


PG_SKIP = _postgres_reason()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own for one test, on each of the two the farm supports."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'farm.sqlite'}"
        return
    if PG_SKIP:
        pytest.skip(PG_SKIP)
    name = f"disco_farm_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class FarmServer:
    """`disco farm server` as users run it; the owner's token is read from its admin token file."""

    def __init__(self, data_dir: Path, db_url: str, *, extra_args: tuple[str, ...] = (),
                 host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.db_url = db_url
        self.extra_args = extra_args
        self.host = host
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "farm.log"

    def start(self) -> "FarmServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "disco.cli.main", "farm", "server", "--db", self.db_url,
             "--data-dir", str(self.data_dir), "--host", self.host, "--port", str(self.port),
             *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "NO_PROXY": "*"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v1/farm/health", timeout=1, trust_env=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"farm server did not start:\n{self.log_path.read_text()[-3000:]}")

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def owner(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-Auth-Token": self.admin_token}, timeout=30,
                            trust_env=False)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
