"""A job pack's jobdict as the master runs it: a pipeline of stages and the job's inputs.

Pipeline (version 2) job packs carry their pipeline; classic (version 1) ones are converted as
Disco converts them:

- map only:                    map/split, map_shuffle/group_node
- map and reduce, 1 reduce:    map/split, map_shuffle/group_node, reduce/group_all
- map and reduce, partitioned: map/split, map_shuffle/group_node, reduce/group_label
                               (+ reduce_shuffle/group_node when `reduce_shuffle?` is set)
- reduce only:                 reduce/group_all, or reduce/group_label when partitioned
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from disco.jobpack import VERSION_CLASSIC, JobPack
from disco.mapreduce.master.data import DataOutput
from disco.mapreduce.master.grouping import GROUPINGS


class JobSpecError(ValueError):
    """A jobdict the master cannot run; the submitter gets ["error", str(exc)]."""


@dataclass(frozen=True)
class StageSpec:
    name: str
    grouping: str
    concurrent: bool = False


@dataclass
class JobSpec:
    prefix: str
    worker: str
    owner: str
    pipeline: list[StageSpec]
    inputs: list[DataOutput]  # the job's inputs, as outputs of an imaginary stage 0
    max_cores: int = 1 << 31
    force_local: bool = False
    force_remote: bool = False
    save_results: bool = False
    # Consecutive job inputs (of one host) per task of a first stage that splits them; 1 is
    # Disco's one task per input.
    inputs_per_task: int = 1
    raw_inputs: list[Any] = field(default_factory=list)  # as submitted, for jobinfo


def job_spec(pack: JobPack) -> JobSpec:
    d = pack.jobdict
    if pack.version == VERSION_CLASSIC:
        pipeline = classic_pipeline(d)
        inputs = [_classic_input(item) for item in d["input"]]
    else:
        pipeline = [_stage(entry) for entry in d["pipeline"]]
        inputs = [_pipeline_input(item) for item in d["inputs"]]
    names = [s.name for s in pipeline]
    if len(set(names)) != len(names):
        raise JobSpecError(f"stage names repeat in {names}")
    scheduler = d.get("scheduler") or {}
    if not isinstance(scheduler, dict):
        raise JobSpecError("jobdict 'scheduler' must be an object")
    owner = d.get("owner") or "unknown"
    try:
        max_cores = int(scheduler.get("max_cores", 1 << 31))
    except (TypeError, ValueError):
        raise JobSpecError("scheduler max_cores must be an integer") from None
    inputs_per_task = scheduler.get("inputs_per_task", 1)
    if type(inputs_per_task) is not int or inputs_per_task < 1:
        raise JobSpecError(f"scheduler inputs_per_task must be an integer of at least 1, "
                           f"not {inputs_per_task!r}")
    return JobSpec(
        prefix=d["prefix"], worker=d["worker"], owner=str(owner), pipeline=pipeline,
        inputs=inputs, max_cores=max(1, max_cores),
        force_local=bool(scheduler.get("force_local")), force_remote=bool(scheduler.get("force_remote")),
        save_results=bool(d.get("save_results")), inputs_per_task=inputs_per_task,
        raw_inputs=list(d["input"] if pack.version == VERSION_CLASSIC else d["inputs"]),
    )


def classic_pipeline(d: dict[str, Any]) -> list[StageSpec]:
    # Disco's key is `map?`; disco.jobpack's validation looks for `map`: take either.
    has_map = bool(d.get("map?", d.get("map")))
    has_reduce = bool(d.get("reduce?", d.get("reduce")))
    try:
        nr_reduces = int(d.get("nr_reduces") or 1)
    except (TypeError, ValueError):
        raise JobSpecError("nr_reduces must be an integer") from None
    reduce_grouping = "group_label" if nr_reduces > 1 else "group_all"
    stages: list[StageSpec] = []
    if has_map:
        stages += [StageSpec("map", "split"), StageSpec("map_shuffle", "group_node")]
    if has_reduce:
        stages.append(StageSpec("reduce", reduce_grouping))
        if nr_reduces > 1 and d.get("reduce_shuffle?"):
            stages.append(StageSpec("reduce_shuffle", "group_node"))
    if not stages:
        raise JobSpecError("classic jobdict needs map or reduce")
    return stages


def _stage(entry: Any) -> StageSpec:
    if not isinstance(entry, list) or len(entry) not in (2, 3):
        raise JobSpecError(f"pipeline entries are [stage, grouping(, concurrent)], not {entry!r}")
    name, grouping = entry[0], entry[1]
    if not isinstance(name, str) or not name or "/" in name:
        raise JobSpecError(f"bad stage name {name!r}")
    if grouping not in GROUPINGS:
        raise JobSpecError(f"unknown grouping {grouping!r} (known: {', '.join(GROUPINGS)})")
    return StageSpec(name, grouping, bool(entry[2]) if len(entry) == 3 else False)


def _urls(value: Any) -> tuple[str, ...]:
    """An input location: a URL, or a list of replica URLs."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(u, str) for u in value):
        return tuple(value)
    raise JobSpecError(f"an input is a URL or a list of replica URLs, not {value!r}")


def _classic_input(item: Any) -> DataOutput:
    return DataOutput(0, 0, _urls(item))


def _pipeline_input(item: Any) -> DataOutput:
    if isinstance(item, str):
        return DataOutput(0, 0, (item,))
    if not isinstance(item, list) or len(item) < 3:
        raise JobSpecError(f"pipeline inputs are [label, size_hint, url...], not {item!r}")
    try:
        label, size = int(item[0]), int(item[1])
    except (TypeError, ValueError):
        raise JobSpecError(f"input label and size must be integers in {item!r}") from None
    urls: list[str] = []
    for value in item[2:]:
        urls.extend(_urls(value))
    return DataOutput(label, size, tuple(urls))
