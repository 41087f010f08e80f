"""The `disco` command as users type it, against a real service manager."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sm_fixtures import ServiceManager, free_port


@pytest.fixture(scope="module")
def token(sm: ServiceManager) -> str:
    return sm.token("cli-user")


def disco(sm: ServiceManager, token: str | None, *args: str, url: str | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DISCO_URL": url or sm.url, "DISCO_DATA_DIR": str(sm.data_dir / "cli-home"),
           "XDG_CONFIG_HOME": str(sm.data_dir / "cli-config"), "COLUMNS": "200"}
    env.pop("DISCO_TOKEN", None)
    if token:
        env["DISCO_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "disco.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_create_scale_logs_suspend_delete(sm: ServiceManager, token: str) -> None:
    made = disco(sm, token, "cluster", "create", "-f", "webecho", "-w", "1", "-p", "webecho.greeting=hi",
                 "--name", "cli-demo", "--wait")
    assert made.returncode == 0, made.stderr
    assert "provisioning" in made.stderr and "ready" in made.stderr  # live progress
    assert "webecho url" in made.stdout and "http://127." in made.stdout

    listed = json.loads(disco(sm, token, "cluster", "list", "-o", "json").stdout)
    cluster = next(c for c in listed if c["name"] == "cli-demo")
    cid = cluster["id"]
    assert cluster["spec"]["properties"]["webecho"]["greeting"] == "hi"
    shown = disco(sm, token, "cluster", "show", cid)
    assert shown.returncode == 0 and "ready" in shown.stdout

    scaled = disco(sm, token, "cluster", "scale", cid, "3", "--wait", "-o", "json")
    assert scaled.returncode == 0, scaled.stderr
    assert len(json.loads(scaled.stdout)["nodes"]) == 4
    scaled = disco(sm, token, "cluster", "scale", cid, "1", "--wait", "-o", "json")
    assert [n["name"] for n in json.loads(scaled.stdout)["nodes"]] == ["master", "worker-1"]

    log = disco(sm, token, "cluster", "logs", cid)
    assert "provisioning" in log.stdout and "removed 2 worker(s)" in log.stdout
    names = disco(sm, token, "cluster", "logs", cid, "list").stdout.split()
    assert "master/webecho-web" in names
    served = disco(sm, token, "cluster", "logs", cid, "master/webecho-web")
    assert "starting:" in served.stdout and "http.server" in served.stdout

    suspended = disco(sm, token, "cluster", "suspend", cid, "--wait", "-o", "json")
    assert json.loads(suspended.stdout)["state"] == "suspended"
    resumed = disco(sm, token, "cluster", "resume", cid, "--wait", "-o", "json")
    assert json.loads(resumed.stdout)["state"] == "ready"

    follower = subprocess.Popen([sys.executable, "-m", "disco.cli.main", "cluster", "logs", cid, "--follow"],
                                env={**os.environ, "DISCO_URL": sm.url, "DISCO_TOKEN": token},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        gone = disco(sm, token, "cluster", "delete", cid, "--wait")
        assert gone.returncode == 0 and "deleted" in gone.stdout
        out, _ = follower.communicate(timeout=30)  # the stream ends by itself once deleted
        assert "deleted: all processes stopped" in out
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(5)


def test_frameworks_catalogue(sm: ServiceManager, token: str) -> None:
    result = disco(sm, token, "cluster", "frameworks", "-o", "json")
    catalogue = {fw["name"]: fw for fw in json.loads(result.stdout)}
    assert {"dask", "spark", "java", "webecho"} <= set(catalogue)
    assert catalogue["spark"]["depends"] == ["java"]
    assert catalogue["spark"]["properties"]["worker_memory"]["default"] == "1g"
    table = disco(sm, token, "cluster", "frameworks")
    assert "spark" in table.stdout and "worker_memory=1g" in table.stdout


@pytest.mark.parametrize("args, code, words", [
    (["cluster", "create", "-f", "nosuch"], 2, "unknown framework"),
    (["cluster", "create", "-f", "webecho", "-p", "webecho.size=99"], 2, "must be <= 10"),
    (["cluster", "create", "-f", "webecho", "-w", "-1"], 2, "workers"),
    (["cluster", "create", "-f", "webecho", "-p", "nodot=1"], 2, "FRAMEWORK.PROPERTY=VALUE"),
    (["cluster", "show", "00000000-0000-0000-0000-000000000000"], 2, "no cluster"),
    (["cluster", "scale", "00000000-0000-0000-0000-000000000000", "2"], 2, "no cluster"),
])
def test_bad_input_gives_exit_code_and_message(sm: ServiceManager, token: str, args: list[str], code: int,
                                               words: str) -> None:
    result = disco(sm, token, *args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert words in " ".join((result.stderr + result.stdout).split())
    assert "Traceback" not in result.stderr
    assert json.loads(disco(sm, token, "cluster", "list", "-o", "json").stdout) == []  # nothing was made


def test_missing_token_and_unreachable_service(sm: ServiceManager) -> None:
    no_token = disco(sm, None, "cluster", "list")
    assert no_token.returncode == 2 and "missing X-Auth-Token" in no_token.stderr
    unreachable = disco(sm, "x", "cluster", "list", url=f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1 and "cannot reach the service manager" in unreachable.stderr


def test_token_from_config_file(sm: ServiceManager, token: str) -> None:
    config = sm.data_dir / "cli-config" / "disco"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.yaml").write_text(f"url: {sm.url}\ntoken: {token}\n")
    try:
        result = disco(sm, None, "cluster", "list", "-o", "json")
        assert result.returncode == 0, result.stderr
        assert isinstance(json.loads(result.stdout), list)
    finally:
        (config / "config.yaml").unlink()
