"""The local provider's clean-up, driven directly (no service manager)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from disco.providers.local import LocalProvider
from disco.providers.private_files import write_files
from disco.providers.zygote_client import Zygote


def test_a_file_written_during_removal_does_not_leave_the_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = LocalProvider(tmp_path)
    node_dir = provider.root / "c1" / "worker-1"
    node_dir.mkdir(parents=True)
    (node_dir / "dask-worker.log").write_text("log")
    real_rmtree = shutil.rmtree
    late_writes = []

    def rmtree_then_zygote_writes(path: Any, *args: Any, **kwargs: Any) -> None:
        real_rmtree(path, *args, **kwargs)
        if not late_writes:  # the zygote reaps the killed worker while the tree goes away
            node_dir.mkdir(parents=True)
            (node_dir / "dask-worker.exit").write_text("-15")
            late_writes.append(node_dir)

    monkeypatch.setattr(shutil, "rmtree", rmtree_then_zygote_writes)
    asyncio.run(provider.destroy_cluster("c1"))
    assert late_writes and not (provider.root / "c1").exists()


def _zygote_request(tmp_path: Path, record: Path, marker: Path) -> dict:
    env_file = tmp_path / "child.env"
    env_file.write_text(json.dumps({"PATH": os.environ.get("PATH", "/usr/bin:/bin")}))
    return {"name": "toucher", "exec": [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"],
            "env_file": str(env_file), "cwd": str(tmp_path), "log": str(tmp_path / "toucher.log"),
            "exit_file": str(tmp_path / "toucher.exit"), "record": str(record)}


def test_a_child_the_zygote_cannot_record_runs_nothing(tmp_path: Path) -> None:
    """The fork window: a child exists before its record does. If the record cannot be
    written (or the zygote dies first), the child must exit without running anything."""
    zygote = Zygote((), tmp_path / "zygotes", dict(os.environ))
    try:
        marker = tmp_path / "ran"
        with pytest.raises(RuntimeError, match="No such file or directory"):
            zygote.spawn(_zygote_request(tmp_path, tmp_path / "missing" / "toucher.pid", marker))
        recorded = tmp_path / "toucher.pid"
        pid = zygote.spawn(_zygote_request(tmp_path, recorded, tmp_path / "ran-recorded"))
        assert json.loads(recorded.read_text())["pid"] == pid  # on disk before it could run
        deadline = time.monotonic() + 10
        while not (tmp_path / "ran-recorded").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (tmp_path / "ran-recorded").exists()
        assert not marker.exists()  # the unrecorded child never ran its command
        assert [p for p in psutil.Process(zygote.proc.pid).children() if p.pid != pid and _alive(p)] == []
    finally:
        zygote.close()


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_launch_files_never_follow_a_link_the_cluster_planted(tmp_path: Path) -> None:
    """A cluster's process owns its working directory: a link it put where a file of the next
    launch goes must not carry a secret (or a write) elsewhere."""
    workdir, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    workdir.mkdir()
    elsewhere.mkdir()
    (workdir / "tls").symlink_to(elsewhere)
    (workdir / "token").symlink_to(elsewhere / "stolen")
    with pytest.raises(OSError):
        write_files(workdir, {"tls/cluster.key": "secret"}, None)
    write_files(workdir, {"token": "secret"}, None)  # the link itself is replaced
    assert list(elsewhere.iterdir()) == []
    assert not (workdir / "token").is_symlink() and (workdir / "token").read_text() == "secret"
    assert oct((workdir / "token").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ValueError):
        write_files(workdir, {"../outside": "secret"}, None)
