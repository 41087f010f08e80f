"""The pipeline worker: jobs as a sequence of stages, each fed by a grouping of the outputs
of the stage before.

    from disco.worker.pipeline.worker import Worker, Stage
    pipeline = [("split", Stage("map", process=map_fn)),
                ("group_label", Stage("reduce", init=init_fn, process=reduce_fn, done=done_fn))]
    Job(worker=Worker()).run(input=[...], pipeline=pipeline)

The master decides the groups (``split``, ``group_label``, ``group_node``,
``group_node_label``, ``group_all``); a worker process runs one task of one stage. For each
task: ``state = init(interface, params)``, then ``process(interface, state, label, inp)`` for
every input (in the label order given by ``input_hook(state, labels)``), then
``done(interface, state)``. ``interface.output(label).add(key, value)`` writes output
records. With ``combine=True`` all the inputs of a label arrive as one iterator, sorted by
key when ``sort=True``. A third element in a pipeline entry, ``True``, marks a stage that may
start before the previous one has finished (concurrent).
"""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from typing import Any, NamedTuple

from disco import worker
from disco.error import DiscoError
from disco.util import dsorted, inputlist, isiterable
from disco.worker import Params, Task
from disco.worker import task_io

GROUPINGS = frozenset({"split", "group_label", "group_node", "group_node_label", "group_all"})


def input_hook(state: Any, input_labels: Iterable[Any]) -> Iterable[Any]:
    """The default: labels in the order they come."""
    return input_labels


class Stage:
    """One stage of a pipeline: its name and the functions its tasks call."""

    pipeline_input_chain: list[Callable[..., Any]] = [task_io.task_input_stream]
    interior_input_chain: list[Callable[..., Any]] = [task_io.task_input_stream,
                                                      task_io.chain_reader]
    default_output_chain: list[Callable[..., Any]] = [task_io.task_output_stream,
                                                      task_io.disco_output_stream]

    def __init__(self, name: str = "", init: Callable[..., Any] | None = None,
                 process: Callable[..., Any] | None = None, done: Callable[..., Any] | None = None,
                 input_hook: Callable[..., Any] = input_hook,
                 input_chain: Sequence[Callable[..., Any]] = (),
                 output_chain: Sequence[Callable[..., Any]] = (),
                 combine: bool = False, sort: bool = False) -> None:
        self.name = name
        self.init = init
        self.process = process
        self.done = done
        self.input_hook = input_hook
        self.input_chain = list(input_chain)
        self.output_chain = list(output_chain)
        self.combine = combine
        self.sort = sort
        self.taskinfo: TaskInfo | None = None  # set just before the stage runs

    @classmethod
    def default_input_chain(cls, pipe_index: int) -> list[Callable[..., Any]]:
        return list(cls.pipeline_input_chain if pipe_index == 0 else cls.interior_input_chain)

    def _callables(self) -> list[Callable[..., Any]]:
        return [c for c in chain([self.init, self.input_hook, self.process, self.done],
                                 self.input_chain, self.output_chain) if callable(c)]

    def __repr__(self) -> str:
        return f"Stage({self.name!r})"


class TaskInfo(NamedTuple):
    jobname: str
    host: str
    stage: str
    group: Any
    label: Any


class DiscoTask(NamedTuple):
    """The ``interface`` argument of stage functions."""

    output: Callable[[Any], Any]


def _pipeline_entries(pipeline: Any) -> list[tuple[str, Stage, bool]]:
    entries = []
    for entry in pipeline or ():
        if not isinstance(entry, (tuple, list)) or len(entry) not in (2, 3):
            raise DiscoError(f"pipeline entries are (grouping, Stage[, concurrent]): {entry!r}")
        grouping, stage = entry[0], entry[1]
        concurrent = bool(entry[2]) if len(entry) == 3 else False
        if not isinstance(stage, Stage):
            raise DiscoError(f"not a Stage: {stage!r}")
        entries.append((grouping, stage, concurrent))
    return entries


class Worker(worker.Worker):
    """The pipeline worker; its one extra parameter is ``pipeline``."""

    worker_module = "disco.worker.pipeline.worker"
    jobpack_version = 2
    group_ops = GROUPINGS

    def defaults(self) -> dict[str, Any]:
        defaults = super().defaults()
        defaults.update({"pipeline": []})
        return defaults

    # -- client side ---------------------------------------------------------------------
    def job_callables(self, params: dict[str, Any]) -> list[Any]:
        objects = super().job_callables(params)
        for _grouping, stage, _concurrent in _pipeline_entries(params.get("pipeline")):
            objects.extend(stage._callables())
        return objects

    def jobdict(self, job: Any, **jobargs: Any) -> dict[str, Any]:
        from disco.settings import DiscoSettings
        jobdict = super().jobdict(job, **jobargs)
        names: set[str] = set()
        pipeline = []
        entries = _pipeline_entries(self.getitem("pipeline", job, jobargs, []))
        if not entries:
            raise DiscoError("a pipeline job needs a non-empty pipeline")
        for grouping, stage, concurrent in entries:
            if grouping not in self.group_ops:
                raise DiscoError(f"Unknown grouping {grouping}")
            if not stage.name or stage.name in names:
                raise DiscoError(f"Stage names must be unique and non-empty: {stage.name!r}")
            names.add(stage.name)
            pipeline.append([stage.name, grouping, concurrent])
        job_input = self.getitem("input", job, jobargs, [])
        if not isiterable(job_input):
            raise DiscoError(f"Job 'input' is not a list of input locations, or a list of "
                             f"such lists: {job_input!r}")
        settings = getattr(job, "settings", None) or DiscoSettings()
        master = getattr(job, "master", None) or settings["DISCO_MASTER"]
        inputs = []
        for item in inputlist(job_input, expand_dirs=False, ddfs=master):
            replicas = item if isinstance(item, list) else [item]
            inputs.append([0, 0, *replicas])
        jobdict.update({"pipeline": pipeline, "inputs": inputs})
        return jobdict

    # -- node side -----------------------------------------------------------------------
    def job_functions(self) -> list[Any]:
        # Stage functions are job functions too: they see this_host(), Task, ... as well.
        objects = super().job_functions()
        for _grouping, stage, _concurrent in _pipeline_entries(self.get("pipeline")):
            objects.extend(stage._callables())
        return objects

    def run(self, task: Task) -> None:
        entries = _pipeline_entries(self.get("pipeline"))
        stages = {stage.name: (index, stage) for index, (_g, stage, _c) in enumerate(entries)}
        if task.stage not in stages:
            raise DiscoError(f"no stage {task.stage!r} in this pipeline")
        index, stage = stages[task.stage]
        stage.taskinfo = TaskInfo(jobname=task.jobname, host=task.host, stage=task.stage,
                                  group=task.group, label=task.group_label)
        if not stage.input_chain:
            stage.input_chain = Stage.default_input_chain(index)
        if not stage.output_chain:
            stage.output_chain = list(Stage.default_output_chain)
        params = self.get("params")
        if params is None:
            params = Params()
        self.run_stage(task, stage, params, first_stage=index == 0)

    def make_interface(self, task: Task, stage: Stage, params: Any) -> DiscoTask:
        def output(label: Any) -> Any:
            return self.output(label, stage.output_chain, params)
        return DiscoTask(output=output)

    def input_map(self, task: Task, stage: Stage, params: Any,
                  first_stage: bool = False) -> dict[Any, list[Iterable[Any]]]:
        """Label -> the inputs (record iterators) with that label. An index (``dir://``)
        input is split into one input per label it lists (only its own label, unless that
        is "all" or the input is one of the job's own)."""
        by_label: dict[Any, list[Iterable[Any]]] = defaultdict(list)
        for task_input in self.all_inputs():
            if task_input.isindex:
                wanted = self.label_filter(task_input, first_stage)
                for label in self.index_labels(task_input):
                    if wanted is None or label == wanted:
                        by_label[label].append(
                            self.open_input(task_input, stage.input_chain, params, label=label))
            else:
                by_label[task_input.label].append(
                    self.open_input(task_input, stage.input_chain, params))
        return by_label

    def sort(self, records: Iterable[Any], task: Task) -> Iterator[Any]:
        from disco.worker.classic.worker import parse_size
        tempdir = task.abspath("sort")
        os.makedirs(tempdir, exist_ok=True)
        try:
            yield from dsorted(records, key=lambda record: record[0],
                               buffer_bytes=parse_size("10%"), tempdir=tempdir)
        except TypeError as exc:
            raise DiscoError(f"sort=True needs keys that can be compared: {exc}") from exc
        finally:
            shutil.rmtree(tempdir, ignore_errors=True)

    def run_stage(self, task: Task, stage: Stage, params: Any, first_stage: bool = False) -> None:
        interface = self.make_interface(task, stage, params)
        state = stage.init(interface, params) if callable(stage.init) else None
        if callable(stage.process):
            inputs = self.input_map(task, stage, params, first_stage)
            for label in stage.input_hook(state, list(inputs.keys())):
                if stage.combine:
                    combined: Iterable[Any] = chain.from_iterable(inputs[label])
                    if stage.sort:
                        combined = self.sort(combined, task)
                    stage.process(interface, state, label, combined)
                else:
                    for inp in inputs[label]:
                        stage.process(interface, state, label, inp)
        if callable(stage.done):
            stage.done(interface, state)


__all__ = ["Worker", "Stage", "TaskInfo", "DiscoTask", "input_hook"]

if __name__ == "__main__":
    Worker.main()
