"""What the `taskfarm` framework needs of a standalone farm server, on a real one: an enrollment
key given as a file (accepted from the start, once, a revoked one staying revoked), the owner's
list of clients, and the farm verbs following DISCO_FARM_URL / DISCO_FARM_TOKEN."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from farm_fixtures import FarmServer
from farm_protocol import ProtoClient, ok, unit_input

KEY = "fk_cluster-key-for-tests-0123456789abcdef"


def farm_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "disco.cli.farm", *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=cwd, stdin=subprocess.DEVNULL)


def test_a_key_file_enrolls_clients_and_the_owner_lists_them(tmp_path: Path) -> None:
    key_file = tmp_path / "enrollment.key"
    key_file.write_text(KEY + "\n")
    db_url = f"sqlite:///{tmp_path / 'farm.sqlite'}"
    farm = FarmServer(tmp_path / "farm", db_url, extra_args=("--enrollment-key-file", str(key_file))).start()
    try:
        worker = ProtoClient(farm.url, KEY, "worker-1", slots=2)
        with farm.owner() as owner:
            made = owner.post("/api/v1/farm/projects", json={
                "code": {"kind": "container", "image": "busybox", "command": ["wc", "-c"]},
                "input": {"kind": "inline", "text": "a\nbb\n"}, "split": {"by": "lines", "size": 1}})
            assert made.status_code == 201, made.text
            leases = worker.work(seconds=10, slots=2)
            assert len(leases) == 2
            answers = worker.report([ok(lease, str(len(unit_input(lease))).encode()) for lease in leases])
            assert {a["status"] for a in answers} == {"accepted"}
            listed = owner.get("/api/v1/farm/clients")
            assert listed.status_code == 200, listed.text
            [client] = listed.json()["clients"]
            assert (client["client_id"], client["name"], client["slots"]) == (worker.client_id, "worker-1", 2)
            assert client["instances"] == {"success": 2}
        assert httpx.get(f"{farm.url}/api/v1/farm/clients", trust_env=False).status_code == 401
        worker.close()

        # The CLI as a cluster's tenant uses it: DISCO_FARM_URL and DISCO_FARM_TOKEN; the service
        # manager's token (DISCO_TOKEN) never goes to the farm server.
        env = {**os.environ, "DISCO_FARM_URL": farm.url, "DISCO_FARM_TOKEN": farm.admin_token,
               "DISCO_URL": "http://127.0.0.1:9", "DISCO_TOKEN": "sm-token-not-for-the-farm",
               "HOME": str(tmp_path / "home")}
        shown = farm_cli("clients", "--output", "json", env=env, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert [c["name"] for c in json.loads(shown.stdout)["clients"]] == ["worker-1"]
        table = farm_cli("clients", env=env, cwd=tmp_path)
        assert table.returncode == 0 and "worker-1" in table.stdout and "success 2" in table.stdout
        no_token = {k: v for k, v in env.items() if k != "DISCO_FARM_TOKEN"}
        refused = farm_cli("clients", env=no_token, cwd=tmp_path)
        assert refused.returncode == 2 and "missing_token" in refused.stderr
        # --url wins over DISCO_FARM_URL (here: nobody listens there).
        elsewhere = farm_cli("clients", "--url", "http://127.0.0.1:9", env=env, cwd=tmp_path)
        assert elsewhere.returncode == 1 and "unreachable" in elsewhere.stderr
    finally:
        farm.stop()

    # A restart registers nothing twice, and a key its owner revoked stays revoked.
    engine = create_engine(db_url)
    with engine.begin() as db:
        assert db.execute(text("SELECT count(*) FROM farm_keys")).scalar() == 1
        db.execute(text("UPDATE farm_keys SET revoked = 1"))
    farm.start()
    try:
        with engine.begin() as db:
            assert db.execute(text("SELECT count(*), sum(revoked) FROM farm_keys")).one() == (1, 1)
        refused = httpx.post(f"{farm.url}/api/v1/farm/clients", json={"name": "late"}, headers={"X-Farm-Key": KEY},
                             trust_env=False)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_key"
    finally:
        farm.stop()
        engine.dispose()


@pytest.mark.parametrize(("content", "message"), [(None, "No such file"), ("  \n", "is empty")])
def test_a_bad_key_file_stops_the_server_with_a_message(tmp_path: Path, content: str | None, message: str) -> None:
    key_file = tmp_path / "enrollment.key"
    if content is not None:
        key_file.write_text(content)
    done = subprocess.run([sys.executable, "-m", "disco.cli.farm", "server", "--data-dir", str(tmp_path / "farm"),
                           "--port", "9", "--enrollment-key-file", str(key_file)],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
