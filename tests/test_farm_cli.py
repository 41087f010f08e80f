"""`disco farm …` against a real standalone farm server: a Python function submitted with
cloudpickle and run as a client would (code fetched by its URL, checked by SHA-256), status,
results, list, cancel, enrollment keys; bad input gets an exit code and a message."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

from farm_fixtures import FarmServer
from farm_protocol import ProtoClient, ok, unit_input

FUNCTION = '''
import hashlib

def digest(data: bytes) -> bytes:
    """Each line's SHA-256, one a line: code only this file has."""
    return b"".join(hashlib.sha256(line).hexdigest().encode() + b"\\n" for line in data.splitlines())
'''


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FarmServer]:
    data = tmp_path_factory.mktemp("farm")
    server = FarmServer(data, f"sqlite:///{data / 'farm.sqlite'}").start()
    try:
        yield server
    finally:
        server.stop()


def disco(farm: FarmServer, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "disco.cli.main", "farm", *args, "--url", farm.url,
                           "--token", farm.admin_token], capture_output=True, text=True, timeout=60, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def test_a_python_function_runs_on_every_unit(farm: FarmServer, tmp_path: Path) -> None:
    (tmp_path / "mycode.py").write_text(FUNCTION)
    lines = [f"record {i}".encode() for i in range(7)]
    (tmp_path / "input.txt").write_bytes(b"\n".join(lines) + b"\n")
    done = disco(farm, "submit", "--function", "mycode.py:digest", "--input", "input.txt", "--split", "lines:3",
                 "--name", "digests", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    project = done.stdout.strip().splitlines()[-1]
    assert "3 units" in done.stderr
    key = disco(farm, "key", "create", "--description", "cli test")
    assert key.returncode == 0 and "shown once" in key.stderr
    client = ProtoClient(farm.url, key.stdout.strip().splitlines()[-1], "py")
    try:
        leases = client.work(seconds=10, slots=3)
        assert len(leases) == 3
        code = leases[0]["code"]
        assert code["kind"] == "python"
        pickled = client.http.get(code["url"]).content  # an absolute URL on this server
        assert hashlib.sha256(pickled).hexdigest() == code["sha256"]
        func = cloudpickle.loads(pickled)  # in this process, where mycode.py was never imported
        answers = client.report([ok(lease, func(unit_input(lease))) for lease in leases])
        assert {a["status"] for a in answers} == {"accepted"}
    finally:
        client.close()
    results = disco(farm, "results", project)
    assert results.returncode == 0, results.stderr
    assert results.stdout == "".join(hashlib.sha256(line).hexdigest() + "\n" for line in lines)
    status = disco(farm, "status", project, "--output", "json")
    view = json.loads(status.stdout)
    assert view["units"]["assimilated"] == 3 and view["instances_in_flight"] == 0 and view["eta_s"] == 0
    listing = disco(farm, "list")
    assert project in listing.stdout and "digests" in listing.stdout


def test_cancel_stops_a_project(farm: FarmServer, tmp_path: Path) -> None:
    (tmp_path / "in.ndjson").write_text("".join(json.dumps({"n": i}) + "\n" for i in range(10)))
    done = disco(farm, "submit", "--image", "busybox", "--command", "wc -c", "--input", str(tmp_path / "in.ndjson"),
                 "--split", "records:5", "--quorum", "2", "--deadline", "1h")
    assert done.returncode == 0, done.stderr
    project = done.stdout.strip().splitlines()[-1]
    cancelled = disco(farm, "cancel", project, "--output", "json")
    assert json.loads(cancelled.stdout)["state"] == "cancelled"
    assert json.loads(disco(farm, "status", project, "-o", "json").stdout)["units"]["cancelled"] == 2


@pytest.mark.parametrize(("args", "code", "message"), [
    (("submit", "--image", "x", "--command", "true", "--input", "/nonexistent"), 1, "No such file"),
    (("submit", "--image", "x", "--command", "true", "--input", "-", "--split", "words:3"), 1, "--split is"),
    (("submit", "--image", "x", "--input", "ddfs://data:tag"), 1, "--image needs --command"),
    (("submit", "--image", "x", "--command", "true", "--input", "ddfs://tag"), 1, "tag://NAME"),
    (("submit", "--image", "x", "--command", "true", "--input", "http://10.1.2.3/x"), 2, "input_host_not_allowed"),
    (("status", "00000000-0000-0000-0000-000000000000"), 2, "project_not_found"),
    (("status", "not-an-id"), 2, "invalid_request"),
])
def test_bad_input_gets_an_exit_code_and_a_message(farm: FarmServer, args: tuple[str, ...], code: int,
                                                   message: str) -> None:
    done = disco(farm, *args)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert message in done.stderr
    assert farm.admin_token not in done.stdout + done.stderr
