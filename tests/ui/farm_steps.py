"""Steps the farm's dashboard tests share: a tenant of the service manager seen as a farm (what
tests/farm_clients.py's helpers take), and a project of a function that spins on the CPU (so
that a slot's CPU shows) before answering each unit's SHA-256, or a lie when FARM_TEST_LIAR is set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from sm_fixtures import ServiceManager

# Busy for a while on the CPU (so a slot's CPU shows), then the input's SHA-256; the liar lies.
FUNCTION = '''
import hashlib
import os
import time


def work(data: bytes) -> bytes:
    end = time.process_time() + float(os.environ.get("FARM_TEST_SPIN", "0"))
    while time.process_time() < end:
        pass
    out = hashlib.sha256(data).hexdigest()
    return ("lie:" + out) if os.environ.get("FARM_TEST_LIAR") else out
'''


class Owner:
    """The farm of one tenant of the service manager, as the farm test helpers use a farm."""

    def __init__(self, sm: ServiceManager, tenant: str) -> None:
        self.sm, self.tenant = sm, tenant
        self.db_url = f"sqlite:///{Path(sm.data_dir) / 'disco.sqlite'}"

    def owner(self) -> httpx.Client:
        return self.sm.client(self.tenant)


def submit(owner: Owner, tmp: Path, name: str, units: int, **spec: Any) -> str:
    from disco.cli.farm_submit import load_function, pickle_function

    (tmp / "spin.py").write_text(FUNCTION)
    pickled = pickle_function(load_function(str(tmp / "spin.py") + ":work"))
    text = "".join(f"{name} unit {i}\n" for i in range(units))
    with owner.owner() as api:
        made = api.post("/api/v1/farm/projects", json={
            "name": name, "code": {"kind": "python", "pickle": pickled}, "input": {"kind": "inline", "text": text},
            "split": {"by": "lines", "size": 1}, **spec})
    assert made.status_code == 201, made.text
    return made.json()["project_id"]
