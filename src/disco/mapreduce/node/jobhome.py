"""Job homes on a node: `DISCO_DATA/<host>/<hh>/<jobname>/`, made once per job per node.

The job pack is fetched from the master into `<jobhome>/jobfile` (what the worker's TASK reply
points to), its jobhome ZIP extracted there, and the worker made executable; a marker file
says the home is complete, so a node restarted halfway makes it again.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import stat
import zipfile
from pathlib import Path

from disco.jobpack import JobPack
from disco.mapreduce.node.client import MasterClient
from disco.mapreduce.urls import job_path

MARKER = ".disco-jobhome"
JOBFILE = "jobfile"


class JobHomeError(Exception):
    """The job home could not be made; the task fails and is retried."""


class JobHomes:
    def __init__(self, data: Path, host: str, client: MasterClient) -> None:
        self.data = data
        self.host = host
        self.client = client
        self._locks: dict[str, asyncio.Lock] = {}
        self._jobenvs: dict[str, dict[str, str]] = {}

    def path(self, jobname: str) -> Path:
        return self.data / job_path(self.host, jobname)

    async def ensure(self, jobname: str) -> Path:
        if jobname in self._jobenvs:
            return self.path(jobname)  # made, and read since: no need to look again
        lock = self._locks.setdefault(jobname, asyncio.Lock())
        async with lock:
            home = self.path(jobname)
            if (home / MARKER).exists():
                return home
            home.mkdir(parents=True, exist_ok=True)
            try:
                await self.client.jobpack(jobname, home / JOBFILE)
                await asyncio.to_thread(_unpack, home)
            except Exception as exc:  # noqa: BLE001 - reported to the master as a task error
                raise JobHomeError(f"cannot set up the job home of {jobname}: {exc}") from exc
            return home

    def jobenvs(self, jobname: str) -> dict[str, str]:
        envs = self._jobenvs.get(jobname)
        if envs is None:
            envs = json.loads((self.path(jobname) / MARKER).read_text())["jobenvs"]
            self._jobenvs[jobname] = envs
        return envs

    async def remove(self, jobname: str) -> None:
        self._jobenvs.pop(jobname, None)
        lock = self._locks.pop(jobname, None) or asyncio.Lock()
        async with lock:
            await asyncio.to_thread(shutil.rmtree, self.path(jobname), True)


def _unpack(home: Path) -> None:
    pack = JobPack.loads((home / JOBFILE).read_bytes())
    root = home.resolve()
    if pack.jobhome:
        with zipfile.ZipFile(io.BytesIO(pack.jobhome)) as zf:
            for info in zf.infolist():
                target = (home / info.filename).resolve()
                if root not in target.parents and target != root:
                    raise JobHomeError(f"jobhome entry {info.filename!r} points outside the job home")
                zf.extract(info, home)
                mode = info.external_attr >> 16
                if mode and not info.is_dir():
                    target.chmod(stat.S_IMODE(mode) | stat.S_IRUSR)
    worker = (home / pack.jobdict["worker"]).resolve()
    if root not in worker.parents:
        raise JobHomeError(f"worker {pack.jobdict['worker']!r} is outside the job home")
    if worker.exists():
        worker.chmod(0o755)
    (home / MARKER).write_text(json.dumps({"jobenvs": pack.jobenvs}))

