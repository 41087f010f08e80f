"""`disco farm client` against a real `disco farm server`: process slots run a cloudpickled
function on every unit, one line per unit and a summary; the identity is kept in a 0600 state
file and re-used on restart; the key never appears on the command line; SIGTERM stops it cleanly;
an unreachable server is retried with backoff."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm_clients import ClientProc, audit, enrollment_key, expected, rows, submit, wait_done
from farm_fixtures import FarmServer
from sm_fixtures import free_port


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[FarmServer]:
    server = FarmServer(tmp_path / "farm", f"sqlite:///{tmp_path / 'farm.sqlite'}",
                        extra_args=("--min-lease", "1")).start()
    try:
        yield server
    finally:
        server.stop()


def test_process_slots_run_every_unit_and_keep_their_identity(farm: FarmServer, tmp_path: Path) -> None:
    key = enrollment_key(farm, tmp_path / "key")
    project, lines = submit(farm, tmp_path, 200)
    client = ClientProc(farm.url, key, tmp_path / "client-a", slots=4)
    try:
        started = time.monotonic()
        wait_done(farm, project, 60, [client])
        took = time.monotonic() - started
        assert key.read_text() not in " ".join(client.proc.args)  # type: ignore[arg-type]
    finally:
        assert client.stop() == 0
    found = audit(farm, project, lines)
    assert found["units"] == 200 and found["lost"] == 0 and found["twice"] == 0, found
    log = client.log
    assert log.count(" done: ") == 200 and "summary: 200 units done, 0 failed" in log, log[-1000:]
    print(f"\n4 process slots: 200 tiny units in {took:.1f} s = {200 / took:.0f} units/s (incl. startup)")
    state_file = tmp_path / "client-a" / "client.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    first = json.loads(state_file.read_text())["client_id"]
    assert key.read_text() not in state_file.read_text()
    # A restart is the same client: no second enrollment.
    project2, lines2 = submit(farm, tmp_path, 5)
    again = ClientProc(farm.url, key, tmp_path / "client-a", slots=1, extra=("--max-units", "5"))
    assert again.proc.wait(60) == 0, again.log
    assert "enrolled as" not in again.log.split("summary: 200")[-1]
    assert rows(farm, "select count(*) from farm_clients")[0][0] == 1
    assert {r[0] for r in rows(farm, "select distinct client_id from farm_instances where project_id = :p",
                               p=project2)} == {first}
    assert audit(farm, project2, lines2)["lost"] == 0


def test_sigterm_stops_running_units_and_reports(farm: FarmServer, tmp_path: Path) -> None:
    key = enrollment_key(farm, tmp_path / "key")
    project, _ = submit(farm, tmp_path, 4, unit_seconds=0.5)
    client = ClientProc(farm.url, key, tmp_path / "slow", slots=2, env={"FARM_TEST_SLEEP": "30"})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not rows(
                farm, "select count(*) from farm_instances where project_id = :p and state = 'leased'", p=project)[0][0]:
            time.sleep(0.1)
        time.sleep(0.5)
        started = time.monotonic()
        assert client.stop() == 0
        assert time.monotonic() - started < 10  # it did not wait 30 s for its units
    finally:
        client.stop()
    assert "stopped" in client.log and "summary: 0 units done" in client.log, client.log


def test_no_key_and_no_identity_is_an_error(farm: FarmServer, tmp_path: Path) -> None:
    client = ClientProc(farm.url, tmp_path / "missing-key", tmp_path / "nokey")
    assert client.proc.wait(30) == 2
    assert "cannot read the key file" in client.log


def test_an_unreachable_server_is_retried_with_backoff(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("fk_whatever")
    client = ClientProc(f"http://127.0.0.1:{free_port()}", tmp_path / "key", tmp_path / "lonely")
    try:
        time.sleep(3)
    finally:
        assert client.stop() == 0
    waits = [float(line.rsplit("retrying in ", 1)[1].split()[0]) for line in client.log.splitlines()
             if "retrying in" in line]
    assert len(waits) >= 2 and all(0 <= w <= 2 ** i for i, w in enumerate(waits)), client.log


def _baked_rootfs() -> str | None:
    import shutil

    from disco.testbed.images import list_images

    if shutil.which("podman") is None:
        return None
    for image in list_images():
        if str(image["image"]).startswith("baked-"):
            return str(image["path"])
    return None


def test_container_slots_run_units_in_the_client_image(farm: FarmServer, tmp_path: Path) -> None:
    rootfs = _baked_rootfs()
    if rootfs is None:
        pytest.skip("needs podman and the baked test-host image (disco testbed image build baked)")
    key = enrollment_key(farm, tmp_path / "key")
    project, lines = submit(farm, tmp_path, 6)
    client = ClientProc(farm.url, key, tmp_path / "boxed", slots=2,
                        extra=("--containers", "--engine", "podman", "--image", rootfs, "--memory-mb", "512"))
    try:
        wait_done(farm, project, 120, [client])
    finally:
        assert client.stop() == 0
    assert audit(farm, project, lines)["lost"] == 0
    assert client.log.count(" done: ") == 6, client.log[-2000:]


def test_outputs_over_the_inline_cap_are_uploaded(farm: FarmServer, tmp_path: Path) -> None:
    key = enrollment_key(farm, tmp_path / "key")
    project, lines = submit(farm, tmp_path, 2)
    client = ClientProc(farm.url, key, tmp_path / "big", slots=2, env={"FARM_TEST_BIG": "16000"},
                        extra=("--max-units", "2"))
    assert client.proc.wait(60) == 0, client.log
    with farm.owner() as owner:
        results = owner.get(f"/api/v1/farm/projects/{project}/results").json()
    import base64
    outputs = [base64.b64decode(r["output"]) for r in results["results"]]
    assert results["complete"] and outputs == [expected(line) * 16000 for line in lines]  # 1,024,000 bytes each
