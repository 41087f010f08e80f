"""The supervisor, for real: a daemon that outlives its starter, runs the node's processes
as the cluster's user with the node's marks, restarts them then gives up, serves logs behind
the token, takes over after its own crash, and leaves nothing behind on destroy."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from node_fixtures import NodeUnderTest, fresh_host, listening, marked_pids, user_of, wait_until

PY = "/usr/bin/python3"


def tcp_server(host: str, port: int) -> list[str]:
    """A process that listens on host:port until killed."""
    return [PY, "-c", "import socket,sys,time; s=socket.create_server((sys.argv[1], int(sys.argv[2]))); "
            "print('listening', flush=True); time.sleep(10**6)", host, str(port)]


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def proc_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


def environ(pid: int) -> dict[str, str]:
    items = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in items if b"=" in item)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def get(url: str, auth: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_supervisor_outlives_its_starter(installed: NodeUnderTest) -> None:
    started = installed.cli("supervise")
    assert started["started"] is True
    pid = started["pid"]
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    assert int(stat[3]) != os.getsid(0)  # a session of its own: no terminal or SSH session ends it
    assert environ(pid)["DISCO_CLUSTER"] == installed.cluster_id
    time.sleep(0.3)
    again = installed.cli("supervise")
    assert alive(pid) and again["started"] is False and again["pid"] == pid
    assert oct((installed.node_dir / "supervisor.sock").stat().st_mode & 0o777) == "0o600"


def test_processes_run_as_the_cluster_user_with_marks_and_private_files(installed: NodeUnderTest) -> None:
    node = installed
    node.cli("supervise")
    port = free_port(node.host)
    server = node.cli("start", stdin={"name": "server", "argv": tcp_server(node.host, port),
                                      "env": {"APP_SECRET": "s3cret-value"}, "files": {"conf/key.pem": "KEY"}})
    # waits for the server's port before it starts
    client = node.cli("start", stdin={"name": "client", "argv": ["sleep", "1000"],
                                      "wait_for_tcp": f"{node.host}:{port}"})
    assert listening(node.host, port)
    user = user_of(node.cluster_id)
    assert user is not None
    for pid in (server["pid"], client["pid"]):
        uid = int(proc_field(pid, "Uid").split()[0])
        assert uid != 0 and uid == int(subprocess.check_output(["id", "-u", user]))
        env = environ(pid)
        assert (env["DISCO_CLUSTER"], env["DISCO_NODE"]) == (node.cluster_id, node.name)
    assert environ(server["pid"])["APP_SECRET"] == "s3cret-value"
    key = node.node_dir / "work/conf/key.pem"
    assert key.read_text() == "KEY" and oct(key.stat().st_mode & 0o777) == "0o600"
    assert key.stat().st_uid == int(subprocess.check_output(["id", "-u", user]))
    # the supervisor's own files stay root's, and its copy of the launch (with the secret) too
    for own in ("state.json", "deploy.log", "launches/server.json", "logs/server.log"):
        assert (node.node_dir / own).stat().st_uid == 0
    assert oct((node.node_dir / "launches/server.json").stat().st_mode & 0o777) == "0o600"
    wait_until(lambda: b"listening" in (node.node_dir / "logs/server.log").read_bytes())
    # start is idempotent
    assert node.cli("start", stdin={"name": "server", "argv": ["false"]})["pid"] == server["pid"]
    processes = node.cli("status")["processes"]
    assert processes["server"] == {"state": "running", "pid": server["pid"], "exit_code": None, "restarts": 0}


def test_a_killed_process_is_restarted_then_reported_dead(installed: NodeUnderTest) -> None:
    node = installed
    node.cli("supervise")
    pid = node.cli("start", stdin={"name": "worker", "argv": ["sleep", "1000"],
                                   "restart": {"max": 2, "backoff_s": 0.1}})["pid"]
    for restart in (1, 2):
        os.kill(pid, signal.SIGKILL)
        status = wait_until(lambda: (s := node.status("worker"))["state"] == "running" and s["pid"] != pid and s)
        assert status["restarts"] == restart and alive(status["pid"])
        pid = status["pid"]
    os.kill(pid, signal.SIGKILL)
    dead = wait_until(lambda: (s := node.status("worker"))["state"] == "dead" and s)
    assert dead == {"state": "dead", "pid": None, "exit_code": -signal.SIGKILL, "restarts": 2}
    assert marked_pids(node.cluster_id) == [node.cli("status")["supervisor"]["pid"]]
    log = (node.node_dir / "logs/worker.log").read_text()
    assert log.count("[disco-node] started worker") == 3 and log.count("exited with -9") == 3


def test_logs_over_http_behind_the_token(installed: NodeUnderTest) -> None:
    node = installed
    node.cli("supervise")
    node.cli("start", stdin={"name": "talker", "argv": ["sh", "-c", "echo hello from talker; sleep 1000"]})
    base = f"http://{node.host}:{node.log_port}"
    basic = "Basic " + base64.b64encode(f"anyone:{node.token}".encode()).decode()
    wrong_basic = "Basic " + base64.b64encode(b"anyone:wrong").decode()
    for path in ("/status", "/deploy.log", "/logs/talker.log"):
        assert get(base + path)[0] == 401
        assert get(base + path, "Bearer wrong-token")[0] == 401
        assert get(base + path, wrong_basic)[0] == 401
    wait_until(lambda: b"hello from talker" in get(base + "/logs/talker.log", f"Bearer {node.token}")[1])
    assert get(base + "/logs/talker.log", basic)[0] == 200
    code, body = get(base + "/deploy.log", f"Bearer {node.token}")
    assert code == 200 and b"install of cluster" in body
    assert b'"talker"' in get(base + "/status", basic)[1]
    assert get(base + "/logs/nothing.log", basic)[0] == 404
    assert get(base + "/../bundle.json", basic)[0] == 404
    # the token is nowhere in clear on the node: not in a file, not in a process's environment
    token = node.token.encode()
    for path in node.prefix.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert token not in path.read_bytes(), path
    for pid in marked_pids(node.cluster_id):
        assert token not in Path(f"/proc/{pid}/environ").read_bytes()
        assert token not in Path(f"/proc/{pid}/cmdline").read_bytes()


def test_stop_goes_newest_first_and_kills_after_the_grace(installed: NodeUnderTest) -> None:
    node = installed
    node.cli("supervise")
    node.cli("start", stdin={"name": "first", "argv": ["sleep", "1000"]})
    stubborn = node.cli("start", stdin={"name": "stubborn", "argv": ["sh", "-c", "trap '' TERM; sleep 1000 & wait"]})
    started = time.monotonic()
    assert node.cli("stop", "--grace", "1")["stopped"] == ["stubborn", "first"]
    assert 0.9 < time.monotonic() - started < 10
    assert not alive(stubborn["pid"])
    processes = node.cli("status")["processes"]
    assert {name: p["state"] for name, p in processes.items()} == {"first": "stopped", "stubborn": "stopped"}
    assert marked_pids(node.cluster_id) == [node.cli("status")["supervisor"]["pid"]]
    # and started again on request
    assert node.cli("start", stdin={"name": "first", "argv": ["sleep", "1000"]})["pid"] > 0


def test_after_a_crash_of_the_supervisor_the_next_one_adopts_and_cleans_up(installed: NodeUnderTest) -> None:
    node = installed
    first = node.cli("supervise")["pid"]
    keeper = node.cli("start", stdin={"name": "keeper", "argv": ["sleep", "1000"],
                                      "restart": {"backoff_s": 0.1}})["pid"]
    # a process of the node that no record names (as if started by hand, or by a lost supervisor)
    ghost = subprocess.Popen(["sleep", "1000"], env={"DISCO_CLUSTER": node.cluster_id, "DISCO_NODE": node.name,
                                                     "DISCO_PROCESS": "ghost", "PATH": "/usr/bin:/bin"})
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: not alive(first))
    assert alive(keeper)  # the node's processes outlive their supervisor

    second = node.cli("supervise")
    assert second["started"] is True and second["pid"] != first
    assert node.status("keeper") == {"state": "running", "pid": keeper, "exit_code": None, "restarts": 0}
    assert ghost.wait(timeout=10) == -signal.SIGKILL
    # the new supervisor watches the adopted process like its own
    os.kill(keeper, signal.SIGKILL)
    restarted = wait_until(lambda: (s := node.status("keeper"))["state"] == "running" and s["pid"] != keeper and s)
    assert restarted["restarts"] == 1


def test_destroy_leaves_no_process_listener_dir_or_user(installed: NodeUnderTest) -> None:
    node = installed
    node.cli("supervise")
    port = free_port(node.host)
    node.cli("start", stdin={"name": "server", "argv": tcp_server(node.host, port)})
    # a child that leaves the process group (and so escapes a group kill)
    node.cli("start", stdin={"name": "escaper", "argv": ["sh", "-c", "setsid sleep 1000 & exec sleep 1000"]})
    wait_until(lambda: listening(node.host, port) and len(marked_pids(node.cluster_id)) >= 4)
    assert listening(node.host, node.log_port)

    report = node.cli("destroy", "--grace", "2")
    assert report["clean"] is True and report["left"] == []
    assert sorted(report["stopped"]) == ["escaper", "server"]
    assert any(found["process"] == "escaper" for found in report["found"])  # found by the /proc scan
    assert not any(found["process"] == "_supervisor" for found in report["found"])  # it left when asked
    assert marked_pids(node.cluster_id) == []
    assert not listening(node.host, port) and not listening(node.host, node.log_port)
    assert not node.node_dir.exists() and not node.node_dir.parent.exists()
    assert user_of(node.cluster_id) is None
    again = node.cli("destroy")  # idempotent
    assert again["clean"] is True and again["found"] == []


def test_run_and_log_commands(installed: NodeUnderTest) -> None:
    node = installed
    ran = node.cli("run", stdin={"argv": ["sh", "-c", "id -un; echo $DISCO_NODE; exit 3"]})
    assert ran["exit_code"] == 3 and ran["output"].split() == [user_of(node.cluster_id), node.name]
    slow = node.cli("run", stdin={"argv": ["sleep", "30"], "timeout_s": 0.5})
    assert slow["timed_out"] is True and slow["exit_code"] is None
    node.cli("supervise")
    node.cli("start", stdin={"name": "talker", "argv": ["sh", "-c", "echo 0123456789; sleep 1000"]})
    wait_until(lambda: b"0123456789" in (node.node_dir / "logs/talker.log").read_bytes())
    whole = node.cli("log", "talker")
    data = base64.b64decode(whole["data"])
    offset = data.index(b"0123456789")
    part = node.cli("log", "talker", "--offset", str(offset + 3), "--limit", "4")
    assert base64.b64decode(part["data"]) == b"3456" and part["next_offset"] == offset + 7
    assert b"install of cluster" in base64.b64decode(node.cli("log", "--deploy")["data"])
    missing = node.cli("log", "nothing", check=False)
    assert missing["_rc"] == 1 and "no log" in missing["error"]
    bad = node.cli("start", stdin={"name": "../x", "argv": ["true"]}, check=False)
    assert bad["_rc"] == 1 and "name" in bad["error"]


@pytest.mark.parametrize("command", ["status", "stop", "start"])
def test_commands_without_a_supervisor_say_so(installed: NodeUnderTest, command: str) -> None:
    answer = installed.cli(command, stdin={"name": "x", "argv": ["true"]} if command == "start" else None, check=False)
    assert answer["_rc"] == 1 and "no supervisor answers" in answer["error"]



def test_a_taken_log_port_fails_supervise_readably_and_leaves_no_daemon(installed: NodeUnderTest) -> None:
    node = installed
    with socket.create_server((node.host, node.log_port)):
        failed = node.cli("supervise", check=False)
    assert failed["_rc"] == 1 and "Address already in use" in failed["error"]
    assert marked_pids(node.cluster_id) == []
    assert not (node.node_dir / "supervisor.sock").exists()


def test_destroying_one_node_spares_another_node_of_the_cluster_on_the_host(installed: NodeUnderTest) -> None:
    first = installed
    second = NodeUnderTest(first.prefix, fresh_host(), token=first.token, cluster_id=first.cluster_id, name="worker-0")
    second.install(second.bundle(role="worker"))
    for node in (first, second):
        node.cli("supervise")
        node.cli("start", stdin={"name": "sleeper", "argv": ["sleep", "1000"]})
    survivor = second.status("sleeper")["pid"]
    assert first.cli("destroy")["clean"] is True
    assert alive(survivor) and second.status("sleeper")["state"] == "running"
    assert user_of(first.cluster_id) is not None and not first.node_dir.exists()
    assert second.cli("destroy")["user_removed"] is not None
    assert marked_pids(first.cluster_id) == [] and user_of(first.cluster_id) is None


def test_a_first_crash_in_start_up_is_forgiven_a_second_is_not(installed: NodeUnderTest, tmp_path: Path) -> None:
    """How the SSH provider reads the supervisor's states while a cluster starts: a daemon that
    gives up once on a slow host (as Ray's worker does after 30 s) is being retried and counts
    as alive; one that crashes twice in a row is a failure, reported within seconds."""
    from disco.providers.base import ProcessState
    from disco.providers.remote_nodes import supervisor_state as _state

    node = installed
    node.cli("supervise")
    marker = tmp_path / "tried-once"
    os.chmod(tmp_path, 0o777)  # the cluster's user leaves its mark here
    flaky = f"if [ -e {marker} ]; then exec sleep 1000; fi; touch {marker}; sleep 0.3; exit 1"
    node.cli("start", stdin={"name": "flaky", "argv": ["sh", "-c", flaky], "restart": {"max": 5, "backoff_s": 1.0}})
    crashed = wait_until(lambda: (s := node.status("flaky"))["state"] == "backoff" and s)
    assert crashed["restarts"] == 1 and _state(crashed) is ProcessState.RUNNING
    recovered = wait_until(lambda: (s := node.status("flaky"))["state"] == "running" and s["restarts"] == 1 and s)
    assert _state(recovered) is ProcessState.RUNNING and alive(recovered["pid"])

    node.cli("start", stdin={"name": "broken", "argv": ["sh", "-c", "exit 3"], "restart": {"max": 5, "backoff_s": 0.2}})
    second = wait_until(lambda: (s := node.status("broken"))["restarts"] >= 2 and s["state"] == "backoff" and s)
    assert _state(second) is ProcessState.EXITED and second["exit_code"] == 3
