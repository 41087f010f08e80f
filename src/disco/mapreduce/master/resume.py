"""A master's start-up after a stop or a crash: the jobs of its data folder, back in memory.

Each job folder (see `journal`) is one of:

- finished (`final.json`): the job as `joblist`, `jobinfo` and `get_results` showed it, its
  event log's newest lines loaded again;
- running (`jobpack` + `journal`): a Job made anew from its pack, which starts as at submission
  (inputs read, first stage made) and then applies the journal's task ends in their order
  (`Job._apply_replay`); whatever had not finished runs again. Hosts whose outputs it relies on
  are awaited: one that has not registered within the node timeout is taken as lost, so the
  tasks that made what it held run again before anything reads it;
- neither (a submission cut short before its name was answered): removed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from disco.jobpack import JobPack, JobPackError
from disco.mapreduce.master.coordinator import Job
from disco.mapreduce.master.data import output_from_json, output_hosts
from disco.mapreduce.master.journal import (
    FINAL,
    JOURNAL,
    TRASH,
    JobJournal,
    move_to_trash,
    read_final,
    read_journal,
)
from disco.mapreduce.master.pipeline import JobSpec, JobSpecError, StageSpec, job_spec

if TYPE_CHECKING:
    from disco.mapreduce.master.master import Master

log = logging.getLogger(__name__)

INFO_INPUTS = 100  # jobinfo shows this many of a job's inputs


class Resumption:
    """What a restarted master knows of a job it resumes: the task ends its journal recorded
    (until they are applied), and that its results may be on hosts not yet back."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def apply(self, job: Job) -> None:
        """The recorded task ends, in their order, once the job has made its tasks anew. Tasks
        are made in the same order from the same inputs and outputs as before, so each record
        finds its task by id; the first that does not match (stage or group) ends the replay,
        and the tasks from there on run again."""
        records, self.records = self.records, []
        applied = 0
        job.replaying = True
        try:
            for rec in records:
                task = job.tasks.get(int(rec["task"]))
                if (task is None or task.stage != rec["stage"]
                        or list(task.group) != [rec["group"][0], rec["group"][1] or None]):
                    job.event(f"WARNING: the journal's record of task {rec['task']} does not "
                              "match the job's tasks; the rest run again")
                    break
                outputs = [output_from_json(o) for o in rec["outputs"]]
                job.task_done(task, str(rec["host"]), outputs)
                applied += 1
                if not job.active:
                    break
        except (KeyError, TypeError, ValueError) as exc:
            job.event(f"WARNING: unreadable journal record ({exc!r}); the rest run again")
        finally:
            job.replaying = False
        job.event(f"Resumed after a master restart: {applied} finished tasks kept")

    def results_reachable(self, job: Job) -> bool:
        """For a resumed job about to end: are its results on hosts that are there? Results
        on a host not yet back since the restart wait for it (the master calls
        results_hosts_settled() once it has come back or is lost); those only on lost hosts
        are made again."""
        master = job.master
        homes = [(t, {h for o in t.outputs for h in output_hosts(o)}) for t in job.stages[-1].tasks]
        if any(h in master.awaited for _t, hosts in homes for h in hosts):
            job.finish_waits = True
            return False
        again = False
        for task, hosts in homes:
            if not hosts or not all(master.registry.unreachable(h) for h in hosts):
                continue
            again = True
            job.run_again(task, hosts, f"its output on {', '.join(sorted(hosts))} is lost")
        return not again


def final_record(job: Job) -> dict[str, Any]:
    """What a finished job's `final.json` holds."""
    spec = job.spec
    return {
        "status": job.status, "submitted": job.submitted, "results": job.results,
        "pipeline": job.pipeline_counts(), "stage_results": job.all_stage_results,
        "hosts": sorted(job.hosts),
        "spec": {"prefix": spec.prefix, "worker": spec.worker, "owner": spec.owner,
                 "pipeline": [[s.name, s.grouping, s.concurrent] for s in spec.pipeline],
                 "raw_inputs": spec.raw_inputs[:INFO_INPUTS]},
    }


def _finished_job(master: Master, name: str, jobdir: Path, rec: dict[str, Any]) -> Job:
    s = rec["spec"]
    spec = JobSpec(prefix=s["prefix"], worker=s["worker"], owner=s["owner"],
                   pipeline=[StageSpec(n, g, bool(c)) for n, g, c in s["pipeline"]],
                   inputs=[], raw_inputs=list(s["raw_inputs"]))
    job = Job(master, name, spec, jobdir)
    job.submitted = float(rec["submitted"])
    job.status = str(rec["status"])
    job.results = rec["results"]
    job.hosts = set(rec["hosts"])
    job.restore_summary(rec["pipeline"], rec["stage_results"])
    job.events.load_recent()
    job.events.closed = True
    job.ended.set()
    return job


def _running_job(master: Master, name: str, jobdir: Path,
                 records: list[dict[str, Any]]) -> Job:
    pack = JobPack.loads((jobdir / "jobpack").read_bytes())
    job = Job(master, name, job_spec(pack), jobdir)
    job.submitted = float(records[0]["time"])
    # Durations the job reports count from its submission, not from this start.
    job.started_mono = time.monotonic() - max(0.0, time.time() - job.submitted)
    job.resumption = Resumption([r for r in records[1:] if r.get("ev") == "done"])
    job.events.load_recent()
    job.journal = JobJournal(jobdir / JOURNAL, fresh=False)
    return job


def awaited_hosts(job: Job) -> set[str]:
    """The hosts holding outputs a resumed job's journal relies on."""
    hosts: set[str] = set()
    for rec in job.resumption.records if job.resumption is not None else []:
        for obj in rec.get("outputs", []):
            try:
                hosts.update(output_hosts(output_from_json(obj)))
            except (ValueError, TypeError, KeyError):
                continue
    return hosts


def load_jobs(master: Master) -> list[Job]:
    """Every job the data folder holds, oldest first; runs before the master serves (blocking
    file reads are fine then: nothing else is waiting)."""
    root = master.jobs_root
    jobs: list[Job] = []
    for jobdir in sorted(p for hh in root.iterdir() if hh.is_dir() and hh.name != TRASH
                         for p in hh.iterdir() if p.is_dir()):
        name = jobdir.name
        try:
            job = _load_one(master, name, jobdir)
        except (OSError, JobPackError, JobSpecError, KeyError, TypeError, ValueError) as exc:
            log.warning("cannot resume job %s from %s: %s", name, jobdir, exc)
            continue
        if job is not None:
            jobs.append(job)
    jobs.sort(key=lambda j: j.submitted)
    return jobs


def _load_one(master: Master, name: str, jobdir: Path) -> Job | None:
    final = read_final(jobdir / FINAL)
    if final is not None:
        # A crash after the final state was written but before its journal went.
        (jobdir / JOURNAL).unlink(missing_ok=True)
        return _finished_job(master, name, jobdir, final)
    journal = jobdir / JOURNAL
    records = read_journal(journal) if journal.exists() else []
    if not records or records[0].get("ev") != "submitted":
        # Its submission never got as far as an answer: nobody knows its name.
        log.info("removing %s: a submission cut short", jobdir)
        move_to_trash(master.jobs_root, jobdir)
        return None
    job = _running_job(master, name, jobdir, records)
    log.info("resuming job %s (%d finished tasks recorded)", name,
             len(job.resumption.records) if job.resumption is not None else 0)
    return job
