"""A process that cannot start: the failure reason quotes its log's cause line and whole last
lines, not a fixed number of bytes cut mid-word."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from disco.cluster.log_tail import MAX_LINE_CHARS, SCAN_BYTES, cause_lines, describe_exit, last_lines
from sm_fixtures import TEST_FRAMEWORKS, ServiceManager, cluster_processes, wait_state

# A real Dask scheduler told to listen on a port of 127.0.0.1 that the test holds. (Not a
# cluster's own address: the service manager does not hand out a slot whose addresses are
# in use, so a clash there cannot be arranged from outside.)
FIXED_PORT_DASK = """
name: fixedportdask
description: A Dask scheduler on a port chosen by the request.
properties:
  port: {type: int, default: 8786, min: 1024, max: 65535}
roles:
  master:
    processes:
      - name: scheduler
        command: ["{{ python }}", "-m", "dask", "scheduler", "--host", "127.0.0.1",
                  "--port", "{{ props.port }}", "--no-dashboard"]
readiness:
  kind: http_json
  url: "http://{{ master.host }}:9/never"
  ready_when: "false"
  timeout_s: 60
"""


@pytest.fixture(scope="module")
def clash_sm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceManager]:
    frameworks = tmp_path_factory.mktemp("frameworks")
    (frameworks / "fixedportdask").mkdir()
    (frameworks / "fixedportdask" / "framework.yaml").write_text(FIXED_PORT_DASK)
    manager = ServiceManager(tmp_path_factory.mktemp("disco-data"), extra_env={
        "DISCO_FRAMEWORKS_PATH": f"{TEST_FRAMEWORKS}:{frameworks}"}).start()
    try:
        yield manager
    finally:
        manager.cleanup()


def test_port_clash_names_its_cause(clash_sm: ServiceManager) -> None:
    with socket.socket() as holder, clash_sm.client() as api:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        made = api.post("/api/v1/clusters", json={
            "frameworks": [{"name": "fixedportdask", "properties": {"port": port}}], "workers": 0})
        assert made.status_code == 201, made.text
        cluster = wait_state(api, made.json()["id"], {"ready", "failed"}, 90)
    reason = cluster["status_reason"]
    assert cluster["state"] == "failed", reason
    assert "fixedportdask-scheduler on master" in reason and "exited with code" in reason
    assert "Address already in use" in reason  # the cause, although a second traceback follows it
    assert "RuntimeError: Scheduler failed to start." in reason  # and the whole last line
    assert cluster_processes(cluster["id"]) == []


def test_cause_lines_and_whole_last_lines() -> None:
    log = (b"INFO starting\n" * 50 + b"Traceback (most recent call last):\n  File \"x.py\", line 1\n"
           b"OSError: [Errno 98] Address already in use\n\nThe above exception was the direct cause\n"
           + b"  frame line\n" * 20 + b"RuntimeError: Scheduler failed to start.\n")
    assert cause_lines(log) == ["OSError: [Errno 98] Address already in use",
                                "RuntimeError: Scheduler failed to start."]
    assert last_lines(log)[-1] == "RuntimeError: Scheduler failed to start."
    text = describe_exit(log)
    assert text.startswith("cause: OSError: [Errno 98] Address already in use; last log lines:\n")
    assert text.count("RuntimeError") == 1  # a cause already among the last lines is not repeated


def test_java_cause_and_long_logs() -> None:
    log = (b"x" * (SCAN_BYTES + 10) + b"\njava.net.BindException: Address already in use\n"
           + b"\tat sun.nio.ch.Net.bind(Net.java:555)\n" * 10 + b"y" * (MAX_LINE_CHARS * 3) + b"\n")
    # The partial first line of the scanned window is dropped, a long line is clipped, not cut
    # from the front.
    assert cause_lines(log) == ["java.net.BindException: Address already in use"]
    assert last_lines(log)[-1] == "y" * MAX_LINE_CHARS + " …"
    assert describe_exit(b"") == "no log output"
    assert describe_exit(b"\n\n  \n") == "no log output"


def test_nothing_looks_like_a_cause() -> None:
    log = b"".join(f"line {i}\n".encode() for i in range(20))
    assert cause_lines(log) == []
    assert describe_exit(log) == "last log lines:\n" + "\n".join(f"line {i}" for i in range(14, 20))
