"""Files written atomically and flushed to disk in batches (one syncfs a batch on Linux, per-file
fsync elsewhere): both ways write every file whole, under its own name, and leave no temporary
file, even when a write fails half-way through a batch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from disco.taskfarm.durable_files import has_syncfs, write_durably


def test_this_machine_flushes_a_batch_with_one_syncfs() -> None:
    assert has_syncfs()  # Linux: the batch path is the one the server takes here


@pytest.mark.parametrize("per_file", [False, True], ids=["syncfs", "fsync-each"])
def test_a_batch_is_written_whole_and_replaces_old_files(tmp_path: Path, per_file: bool) -> None:
    (tmp_path / "p").mkdir()
    old = tmp_path / "p" / "00000001-1.out"
    old.write_bytes(b"stale")
    staged = [(tmp_path / "p" / f"{i:08d}-{i}.out", f"result {i}\n".encode() * i) for i in range(1, 40)]
    staged.append((tmp_path / "p" / "empty.out", b""))
    write_durably(staged, per_file=per_file)
    for path, data in staged:
        assert path.read_bytes() == data
        assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert sorted(os.listdir(tmp_path / "p")) == sorted(path.name for path, _ in staged)


@pytest.mark.parametrize("per_file", [False, True], ids=["syncfs", "fsync-each"])
def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path, per_file: bool) -> None:
    (tmp_path / "p").mkdir()
    good = tmp_path / "p" / "a.out"
    (tmp_path / "p" / "b.out").mkdir()  # a directory where a file must go: its rename fails
    with pytest.raises(OSError):
        write_durably([(good, b"a"), (tmp_path / "p" / "b.out", b"b")], per_file=per_file)
    assert not [name for name in os.listdir(tmp_path / "p") if name.startswith(".tmp-")]


def test_nothing_to_write_is_nothing_done(tmp_path: Path) -> None:
    write_durably([])
    assert list(tmp_path.iterdir()) == []
