"""The local provider's clean-up, driven directly (no service manager)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from disco.providers.local import LocalProvider


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
