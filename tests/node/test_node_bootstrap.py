"""The bootstrap script, run for real with sh on this machine: from nothing at the prefix to
a running supervisor, with disco's wheel beside the script (SSH) or from a payload URL
(cloud-init); a second run changes nothing; the script holds no secret."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from file_server import FileServer
from node_fixtures import NodeUnderTest

from disco.node.bootstrap import render_script
from disco.node.wheel import wheel_ref

CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def run_script(script: Path) -> list[dict]:
    done = subprocess.run(["sh", str(script)], env=CLEAN_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_bootstrap_with_the_wheel_beside_it_then_again(node: NodeUnderTest, disco_wheel: Path,
                                                       tmp_path: Path) -> None:
    bundle = node.bundle(disco_wheel=wheel_ref(disco_wheel), files={"conf/app.conf": "x = 1\n"})
    script = render_script(bundle)
    assert node.token not in script and bundle.to_json() in script
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "bootstrap.sh").write_text(script)
    os.link(disco_wheel, upload / disco_wheel.name)

    install, supervise = run_script(upload / "bootstrap.sh")
    assert install["changed"] is True and supervise["started"] is True
    assert (node.node_dir / "work/conf/app.conf").read_text() == "x = 1\n"
    venv_python = str(node.prefix / "venv/bin/python")
    # the supervisor runs from the node's venv, with the disco the wheel holds
    assert Path(f"/proc/{supervise['pid']}/cmdline").read_bytes().split(b"\0")[0].decode() == venv_python

    again_install, again_supervise = run_script(upload / "bootstrap.sh")
    assert again_install["changed"] is False
    assert again_supervise == {"started": False, "pid": supervise["pid"]}


def test_bootstrap_fetches_the_wheel_from_the_payload_url(node: NodeUnderTest, disco_wheel: Path,
                                                          file_server: FileServer, tmp_path: Path) -> None:
    file_server.files["/payload/" + disco_wheel.name] = disco_wheel.read_bytes()
    bundle = node.bundle(disco_wheel=wheel_ref(disco_wheel))
    script = tmp_path / "user-data"
    script.write_text(render_script(bundle, file_server.url("/payload/" + disco_wheel.name)))
    install, supervise = run_script(script)
    assert supervise["started"] is True
    assert {s["name"]: s["changed"] for s in install["steps"]}["disco"] is False  # the script put it there
    assert file_server.requests == ["/payload/" + disco_wheel.name]


def test_the_wheel_download_waits_for_a_service_manager_that_is_away(node: NodeUnderTest, disco_wheel: Path,
                                                                      file_server: FileServer,
                                                                      tmp_path: Path) -> None:
    file_server.files["/payload/" + disco_wheel.name] = disco_wheel.read_bytes()
    file_server.unavailable = 1  # restarting: 503, then the wheel
    script = tmp_path / "user-data"
    script.write_text(render_script(node.bundle(disco_wheel=wheel_ref(disco_wheel)),
                                    file_server.url("/payload/" + disco_wheel.name)))
    done = subprocess.run(["sh", str(script)], env=CLEAN_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert file_server.requests == ["/payload/" + disco_wheel.name] * 2, (file_server.requests, done.stderr)
    assert (node.node_dir / "supervisor.sock").exists()


def test_a_wheel_that_does_not_match_its_checksum_stops_the_bootstrap(node: NodeUnderTest, disco_wheel: Path,
                                                                      file_server: FileServer,
                                                                      tmp_path: Path) -> None:
    file_server.files["/payload/" + disco_wheel.name] = disco_wheel.read_bytes() + b"tampered"
    script = tmp_path / "user-data"
    script.write_text(render_script(node.bundle(disco_wheel=wheel_ref(disco_wheel)),
                                    file_server.url("/payload/" + disco_wheel.name)))
    done = subprocess.run(["sh", str(script)], env=CLEAN_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "SHA-256" in done.stderr and wheel_ref(disco_wheel).sha256 in done.stderr
    assert not (node.node_dir / "supervisor.sock").exists()
    assert list((node.prefix / "cache/wheels").iterdir()) == []
