"""The `disco` command as users type it, against a real service manager."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer

from sm_fixtures import ServiceManager, free_port


@pytest.fixture(scope="module")
def token(sm: ServiceManager) -> str:
    return sm.token("cli-user")


def disco(sm: ServiceManager, token: str | None, *args: str, url: str | None = None,
          timeout: float = 120, columns: int = 200) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DISCO_URL": url or sm.url, "DISCO_DATA_DIR": str(sm.data_dir / "cli-home"),
           "XDG_CONFIG_HOME": str(sm.data_dir / "cli-config"), "COLUMNS": str(columns)}
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
    assert json.loads(scaled.stdout)["spec"]["workers"] == 3  # the spec follows the scale
    scaled = disco(sm, token, "cluster", "scale", cid, "1", "--wait", "-o", "json")
    assert [n["name"] for n in json.loads(scaled.stdout)["nodes"]] == ["master", "worker-1"]
    shown = json.loads(disco(sm, token, "cluster", "show", cid, "-o", "json").stdout)
    assert shown["workers"] == shown["spec"]["workers"] == 1

    log = disco(sm, token, "cluster", "logs", cid)
    assert "provisioning" in log.stdout and "removed 2 worker(s)" in log.stdout
    names = disco(sm, token, "cluster", "logs", cid, "list").stdout.split()
    assert "master/webecho-web" in names
    assert disco(sm, token, "cluster", "logs", cid, "--list").stdout.split() == names
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
    # Where the CLI looked, and what a second terminal needs (the service manager's data dir).
    assert str(sm.data_dir / "cli-home" / "token") in no_token.stderr and "DISCO_DATA_DIR" in no_token.stderr
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


def _make(sm: ServiceManager, token: str, name: str) -> str:
    made = disco(sm, token, "cluster", "create", "-f", "webecho", "-w", "0", "--name", name, "-o", "json")
    assert made.returncode == 0, made.stderr
    return str(json.loads(made.stdout)["id"])


def test_clusters_by_unique_prefix_or_name(sm: ServiceManager, token: str) -> None:
    first, second, third = (_make(sm, token, name) for name in ("lookup-one", "lookup-twin", "lookup-twin"))
    try:
        listed = json.loads(disco(sm, token, "cluster", "list", "-o", "json").stdout)
        assert {first, second, third} <= {c["id"] for c in listed}  # full ids
        assert all(len(c["id"]) == 36 for c in listed)

        by_name = disco(sm, token, "cluster", "show", "lookup-one", "-o", "json")
        assert by_name.returncode == 0, by_name.stderr
        assert json.loads(by_name.stdout)["id"] == first
        prefix = first[:8]
        assert not any(c["id"].startswith(prefix) for c in listed if c["id"] != first)
        by_prefix = disco(sm, token, "cluster", "logs", prefix)
        assert by_prefix.returncode == 0 and "requested: 1 master, 0 worker(s)" in by_prefix.stdout

        # Two clusters of one name: an error that lists both, as text and as the error envelope.
        twin = disco(sm, token, "cluster", "show", "lookup-twin")
        assert twin.returncode == 2 and twin.stdout == ""
        assert "ambiguous_cluster" in twin.stderr and second in twin.stderr and third in twin.stderr
        twin_json = disco(sm, token, "cluster", "delete", "lookup-twin", "-o", "json")
        assert twin_json.returncode == 2
        error = json.loads(twin_json.stdout)["error"]
        assert error["code"] == "ambiguous_cluster"
        assert {c["id"] for c in error["details"]["candidates"]} == {second, third}
        assert json.loads(disco(sm, token, "cluster", "show", second, "-o", "json").stdout)["state"] != "deleted"

        missing = disco(sm, token, "cluster", "scale", "no-such-name", "2", "-o", "json")
        assert missing.returncode == 2 and json.loads(missing.stdout)["error"]["code"] == "no_such_cluster"

        # The table's id column, on a narrow terminal: whole, and good as input.
        table = disco(sm, token, "cluster", "list", columns=60)
        assert table.returncode == 0, table.stderr
        assert "…" not in table.stdout
        cells = [line.split("│")[1].strip() for line in table.stdout.splitlines() if line.startswith("│")]
        shown_ids = [cell for cell in cells if cell and first.startswith(cell)]
        assert len(shown_ids) == 1 and len(shown_ids[0]) >= 8
        again = disco(sm, token, "cluster", "show", shown_ids[0], "-o", "json")
        assert json.loads(again.stdout)["id"] == first

        # Once deleted, a name is free again: the live cluster of that name wins.
        assert disco(sm, token, "cluster", "delete", first, "--wait").returncode == 0
        newer = _make(sm, token, "lookup-one")
        assert json.loads(disco(sm, token, "cluster", "show", "lookup-one", "-o", "json").stdout)["id"] == newer
        assert disco(sm, token, "cluster", "delete", newer, "--wait").returncode == 0
    finally:
        for cid in (second, third):
            disco(sm, token, "cluster", "delete", cid, "--wait")


def test_errors_are_printed_verbatim_and_as_json(sm: ServiceManager, token: str) -> None:
    bad = disco(sm, token, "cluster", "create", "-f", "spark", "-p", "spark.worker_memory=lots")
    assert bad.returncode == 2
    assert "must match '[0-9]+[mMgG]'" in bad.stderr  # not eaten as Rich markup
    as_json = disco(sm, token, "cluster", "create", "-f", "spark", "-p", "spark.worker_memory=lots", "-o", "json")
    assert as_json.returncode == 2 and as_json.stderr == ""
    error = json.loads(as_json.stdout)["error"]
    assert "[0-9]+[mMgG]" in error["message"] and error["code"] and "details" in error
    usage = disco(sm, token, "cluster", "create", "-w", "many", "-o", "json")  # rejected by the parser
    assert usage.returncode == 2 and json.loads(usage.stdout)["error"]["code"] == "usage_error"
    unreachable = disco(sm, "x", "cluster", "list", "-o", "json", url=f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1 and json.loads(unreachable.stdout)["error"]["code"] == "unreachable"


def _commands(group: Any, path: str = "disco") -> Iterator[tuple[str, Any]]:
    """Every leaf command of a click group, with the words that call it."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, f"{path} {name}")
        else:
            yield f"{path} {name}", command


def test_help_names_only_options_that_exist() -> None:
    from disco.cli.main import app
    checked = 0
    for path, command in _commands(typer.main.get_command(app)):
        if command.context_settings.get("ignore_unknown_options"):
            continue  # `disco mr master|node` hand every option on to their own parser
        texts = [command.help or ""] + [getattr(p, "help", "") or "" for p in command.params]
        named = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", " ".join(texts)))
        real = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}
        assert named <= real, f"{path}: help mentions {sorted(named - real)}, which it does not take"
        checked += 1
    assert checked > 10


def test_readme_token_line_follows_disco_data_dir(sm: ServiceManager) -> None:
    """The token line of README.md and docs/api.md, run as written, with the service manager's
    DISCO_DATA_DIR; and the service manager says where its token file is."""
    root = Path(__file__).resolve().parents[1]
    for doc in ("README.md", "docs/api.md"):
        lines = [line.split("#")[0].strip() for line in (root / doc).read_text().splitlines()
                 if line.startswith("TOKEN=$(")]
        assert lines, f"{doc} has no TOKEN=$(...) line"
        for line in lines:
            env = {"PATH": os.environ["PATH"], "HOME": str(sm.data_dir / "elsewhere"),
                   "DISCO_DATA_DIR": str(sm.data_dir)}
            got = subprocess.run(["bash", "-c", f'{line}\nprintf %s "$TOKEN"'], env=env, capture_output=True,
                                 text=True, timeout=30)
            assert got.returncode == 0 and got.stdout, (doc, got.stderr)
            answer = httpx.get(f"{sm.url}/api/v1/clusters", headers={"X-Auth-Token": got.stdout}, timeout=30)
            assert answer.status_code == 200, (doc, answer.text)
    started = sm.log_path.read_text()
    assert f"token from {sm.data_dir / 'token'}" in started
    assert f"export DISCO_DATA_DIR={sm.data_dir}" in started


def test_the_service_manager_says_which_url_the_cli_needs(sm: ServiceManager) -> None:
    """On a port other than the CLI's default, a second terminal needs DISCO_URL: it is told."""
    assert f"export DISCO_URL={sm.url}" in sm.log_path.read_text()


def test_create_with_overrides_stores_them_and_a_bad_one_is_refused(sm: ServiceManager, token: str) -> None:
    made = disco(sm, token, "cluster", "create", "-f", "hadoop", "-w", "0", "--name", "cli-overrides",
                 "--override", "hadoop/hdfs-site.xml:dfs.blocksize=64m",
                 "--override", "hadoop/yarn-site.xml:yarn.log-aggregation-enable=true", "-o", "json")
    assert made.returncode == 0, made.stderr + made.stdout
    cluster = json.loads(made.stdout)
    try:
        assert cluster["spec"]["frameworks"] == [{"name": "hadoop", "properties": {}, "overrides": {
            "hdfs-site.xml": {"dfs.blocksize": "64m"}, "yarn-site.xml": {"yarn.log-aggregation-enable": "true"}}}]
    finally:
        assert disco(sm, token, "cluster", "delete", cluster["id"]).returncode == 0
    refused = disco(sm, token, "cluster", "create", "-f", "hadoop", "-w", "0",
                    "--override", "hadoop/core-site.xml:fs.defaultFS=file:///", "-o", "json")
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["error"]["code"] == "invalid_override"
    malformed = disco(sm, token, "cluster", "create", "-f", "hadoop", "--override", "hdfs-site.xml=dfs.blocksize=1",
                      "-o", "json")
    assert malformed.returncode == 2 and "FRAMEWORK/FILE:KEY=VALUE" in malformed.stdout
