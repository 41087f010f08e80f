"""The master's journal files and group commit (master/journal.py, master/resume.py), in
process on real files; the kill -9 tests with real processes are in test_master_restart.py."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest

from disco.core import Disco
from disco.error import CommError
from disco.mapreduce.master.config import MasterConfig
from disco.mapreduce.master.journal import (
    FINAL,
    JOURNAL,
    TRASH,
    Durability,
    JobJournal,
    read_journal,
    write_pack,
)
from disco.mapreduce.master.master import Master
from disco.settings import DiscoSettings


def test_torn_last_line_is_cut_and_appending_goes_on(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL
    path.write_bytes(b'{"ev":"submitted","time":1.5}\n{"ev":"done","ta')
    assert read_journal(path) == [{"ev": "submitted", "time": 1.5}]
    assert path.read_bytes() == b'{"ev":"submitted","time":1.5}\n'
    journal = JobJournal(path, fresh=False)
    journal.write({"ev": "done", "task": 0})
    journal.close()
    assert read_journal(path)[-1] == {"ev": "done", "task": 0}


def test_nothing_after_a_damaged_line_is_trusted(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL
    path.write_bytes(b'{"ev":"submitted","time":1}\nnot json\n{"ev":"done","task":1}\n')
    assert read_journal(path) == [{"ev": "submitted", "time": 1}]


def test_concurrent_syncs_share_fsync_rounds(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int]:
        durability = Durability()
        journals = [JobJournal(tmp_path / f"j{i}", fresh=True) for i in range(4)]

        async def writer(i: int) -> None:
            for n in range(25):
                durability.append(journals[i % 4], {"n": n, "w": i})
                await durability.sync()
        await asyncio.gather(*(writer(i) for i in range(8)))
        assert not durability.pending
        for j in journals:
            durability.close(j)
        await durability.sync()
        assert all(j.closed for j in journals)
        return durability.syncs, sum(len(read_journal(tmp_path / f"j{i}")) for i in range(4))

    rounds, lines = asyncio.run(scenario())
    assert lines == 200
    assert rounds < 200 / 2  # waiters at the same moment share one round


def test_closed_journal_takes_no_more_lines(tmp_path: Path) -> None:
    async def scenario() -> None:
        durability = Durability()
        journal = JobJournal(tmp_path / JOURNAL, fresh=True)
        durability.append(journal, {"a": 1})
        durability.close(journal)
        durability.append(journal, {"a": 2})  # after close: dropped, never a write to a stale fd
        await durability.sync()
    asyncio.run(scenario())
    assert read_journal(tmp_path / JOURNAL) == [{"a": 1}]


def test_resume_drops_cut_short_submissions_and_the_trash(tmp_path: Path) -> None:
    """A pack without the journal's first line was never answered with a name: a restart
    removes it; a job folder in the trash (a clean cut short) is deleted."""
    jobs = tmp_path / "jobs"
    orphan = jobs / "ab" / "Orphan@1:2:3"
    write_pack(jobs, orphan, b"not even a job pack")
    (jobs / TRASH / "x").mkdir(parents=True)

    async def scenario() -> Master:
        master = Master(MasterConfig(data=tmp_path))
        await master.start()
        try:
            return master
        finally:
            await master.stop()
    master = asyncio.run(scenario())
    assert master.jobs == {}
    assert not orphan.exists()
    assert not (jobs / TRASH / "x").exists()


def test_unreadable_final_state_is_left_alone(tmp_path: Path) -> None:
    jobdir = tmp_path / "jobs" / "cd" / "Broken@1:2:3"
    jobdir.mkdir(parents=True)
    (jobdir / FINAL).write_text(json.dumps({"status": "ready"}))  # no spec: cannot be shown

    async def scenario() -> Master:
        master = Master(MasterConfig(data=tmp_path))
        await master.start()
        await master.stop()
        return master
    master = asyncio.run(scenario())
    assert master.jobs == {}
    assert (jobdir / FINAL).exists()  # kept for a person to look at, not deleted


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_wait_gives_up_on_a_master_that_stays_down() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    disco = Disco(url, settings=DiscoSettings(DISCO_MASTER=url, DISCO_SETTINGS_FILE="/dev/null"))
    start = time.monotonic()
    with pytest.raises(CommError, match="no answer for"):
        disco.wait("Job@1:2:3", poll_interval=0.1, down_timeout=1.0)
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 5
