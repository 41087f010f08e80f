"""`install`: idempotent, finishes what a killed run left, checks downloads, and installs
Python packages (from PyPI, a wheelhouse and disco's own wheel) into a fresh venv."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from file_server import FileServer
from node_fixtures import NodeUnderTest, cli_env, node_cli, wait_until

from disco.node.bundle import Download, PythonEnv
from disco.node.wheel import wheel_ref

# A small, pure Python package without dependencies, from the real package index.
TINY = "six==1.16.0"


def changed_steps(result: dict) -> set[str]:
    return {step["name"] for step in result["steps"] if step["changed"]}


def test_install_twice_changes_nothing_the_second_time(node: NodeUnderTest, file_server: FileServer) -> None:
    payload = os.urandom(300_000)
    file_server.files["/lib/data.bin"] = payload
    bundle = node.bundle(os_packages=["coreutils"], files={"conf/app.conf": "port = 1\n"},
                         downloads=[Download(file_server.url("/lib/data.bin"), hashlib.sha256(payload).hexdigest(),
                                             "lib/data.bin")])
    first = node.install(bundle)
    assert changed_steps(first) >= {"bundle", "user", "venv", "downloads", "files"}
    assert "os_packages" not in changed_steps(first)  # coreutils is there: apt is not run
    assert (node.prefix / "lib/data.bin").read_bytes() == payload
    assert (node.node_dir / "work/conf/app.conf").read_text() == "port = 1\n"

    second = node.install(bundle)
    assert second["changed"] is False and changed_steps(second) == set()
    assert [s["name"] for s in second["steps"]] == [s["name"] for s in first["steps"]]
    assert file_server.requests == ["/lib/data.bin"]  # the second run fetched nothing
    log = (node.node_dir / "deploy.log").read_text()
    assert "step downloads: changed" in log and "step downloads: unchanged" in log


def test_a_bad_checksum_fails_with_url_and_hashes_and_leaves_no_file(node: NodeUnderTest, file_server: FileServer) -> None:
    payload = b"not what was promised" * 1000
    file_server.files["/x.jar"] = payload
    expected = hashlib.sha256(b"something else").hexdigest()
    url = file_server.url("/x.jar")
    failed = node.install(node.bundle(downloads=[Download(url, expected, "lib/x.jar")]), check=False)
    assert failed["_rc"] == 1
    assert url in failed["error"] and expected in failed["error"]
    assert hashlib.sha256(payload).hexdigest() in failed["error"]
    assert not (node.prefix / "lib/x.jar").exists()
    assert list((node.prefix / "cache/sha256").iterdir()) == []
    assert "step downloads: FAILED" in (node.node_dir / "deploy.log").read_text()


def test_an_install_killed_mid_way_is_finished_by_the_next(node: NodeUnderTest, file_server: FileServer) -> None:
    payload = os.urandom(1_000_000)
    file_server.files["/big.bin"] = payload
    file_server.stall.add("/big.bin")
    bundle = node.bundle(downloads=[Download(file_server.url("/big.bin"), hashlib.sha256(payload).hexdigest(),
                                             "lib/big.bin")])
    bundle_file = node.write_bundle(bundle)
    cache = node.prefix / "cache/sha256"

    # Killed while it makes the venv ...
    first = subprocess.Popen([sys.executable, "-m", "disco.node", "install", "--bundle", str(bundle_file)],
                             env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: (node.prefix / "venv/bin/python").exists(), timeout=60, interval=0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    # ... and again half-way through a download.
    second = subprocess.Popen([sys.executable, "-m", "disco.node", "install", "--bundle", str(bundle_file)],
                              env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: cache.is_dir() and any(p.stat().st_size > 0 for p in cache.glob(".*.partial")),
                   timeout=120)
    finally:
        second.send_signal(signal.SIGKILL)
        second.wait()
    assert not (node.prefix / "lib/big.bin").exists()

    file_server.stall.clear()
    file_server.release.set()
    done = node.install(bundle)
    assert {"downloads"} <= changed_steps(done)
    assert (node.prefix / "lib/big.bin").read_bytes() == payload
    assert list(cache.glob(".*")) == [] and list((node.prefix / "lib").glob(".*")) == []
    venv_python = node.prefix / "venv/bin/python"
    assert subprocess.run([str(venv_python), "-I", "-m", "pip", "--version"], capture_output=True).returncode == 0
    assert node.install(bundle)["changed"] is False


def test_requirements_and_disco_into_a_fresh_venv_then_facts(node: NodeUnderTest, disco_wheel: Path) -> None:
    bundle = node.bundle(python=PythonEnv(requirements=[TINY]), disco_wheel=wheel_ref(disco_wheel))
    bundle_file = node.write_bundle(bundle)
    os.link(disco_wheel, bundle_file.parent / disco_wheel.name)  # beside the bundle, as a transport puts it
    first = node_cli("install", "--bundle", str(bundle_file))
    assert changed_steps(first) >= {"venv", "disco", "python_packages"}
    second = node_cli("install", "--bundle", str(bundle_file))
    assert changed_steps(second) == set()

    venv_python = node.prefix / "venv/bin/python"
    facts = node_cli("facts", python=str(venv_python))
    assert facts["python"] == str(venv_python)
    assert facts["node_prefix"] == str(node.prefix) and facts["cache_dir"] == str(node.prefix / "cache")
    assert facts["disco_version"] == wheel_ref(disco_wheel).version
    assert facts["disco_dir"].startswith(facts["site_packages"])
    assert facts["os"]["id"] in ("debian", "ubuntu") and facts["arch"]
    imported = subprocess.run([str(venv_python), "-I", "-c", "import six; print(six.__version__)"],
                              capture_output=True, text=True)
    assert imported.stdout.strip() == "1.16.0"


def test_requirements_from_a_wheelhouse_without_an_index(node: NodeUnderTest, tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    fetched = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                              "-d", str(wheelhouse), TINY], capture_output=True, text=True)
    assert fetched.returncode == 0, fetched.stderr
    bundle = node.bundle(python=PythonEnv(requirements=[TINY], wheelhouse=str(wheelhouse)))
    assert "python_packages" in changed_steps(node.install(bundle))
    broken = node.bundle(python=PythonEnv(requirements=["six==1.15.0"], wheelhouse=str(wheelhouse)))
    failed = node.install(broken, check=False)
    assert failed["_rc"] == 1 and "pip install failed" in failed["error"]


def test_a_prebaked_venv_is_used_as_it_is(node: NodeUnderTest) -> None:
    venv = node.prefix / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    marker = venv / "baked"
    marker.write_text("by the image")
    started = time.monotonic()
    result = node.install(node.bundle(python=PythonEnv(requirements=["pip"])))
    assert {s["name"]: s["changed"] for s in result["steps"]}["venv"] is False
    assert {s["name"]: s["changed"] for s in result["steps"]}["python_packages"] is False
    assert marker.exists() and time.monotonic() - started < 30
