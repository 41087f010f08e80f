"""The classic map/reduce worker: the default ``Job.Worker``.

Run on a node as ``python -m disco.worker.classic.worker`` (by the job home's
``run-worker``). It handles the stages Disco makes of a classic job:

- ``map`` (grouping ``split``): each input record goes through ``map(entry, params)``;
  every ``(key, value)`` it yields goes to output label ``partition(key, partitions,
  params)`` (label 0 when ``partitions`` is None or 0), through ``combiner`` when given.
  A map that returns None fails the job (FATAL), as in Disco.
- ``reduce`` (``group_label`` or ``group_all``): the records of the inputs of this task's
  label (all of them for ``group_all``), sorted by key when ``sort`` is set, go to
  ``reduce(iter, out, params)`` or ``reduce(iter, params)``; the output has the task's label.
- ``*_shuffle`` stages: the inputs of each label are concatenated into one local file (what
  Disco's node does with the outputs of the tasks that ran on it); when the shuffle makes
  the results of a job that saves them in DDFS, each input is copied to an output of its
  own instead, so that the tag gets one blob per task, as Disco's does.

Parameters and their defaults are listed in :meth:`Worker.defaults`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from itertools import chain
from typing import Any

from disco import worker
from disco.error import DataError, DiscoError
from disco.util import argcount, dsorted, inputlist, ispartitioned, read_index
from disco.worker import Params, Task  # noqa: F401  (Params is imported from here too)
from disco.worker import (  # noqa: F401  (Disco users import these from here)
    get, put, this_host, this_inputs, this_master, this_name, this_partition)
from disco.worker.classic.func import (  # noqa: F401
    chain_reader, default_partition, disco_output_stream, init, map_input_stream,
    map_output_stream, reduce_input_stream, reduce_output_stream)
from disco.worker.classic.map_outputs import MapOutputs

__all__ = ["Worker", "Params", "get", "put", "this_host", "this_inputs", "this_master",
           "this_name", "this_partition"]


class Worker(worker.Worker):
    """The classic map/reduce worker. Besides the base parameters it takes:

    ``map``, ``map_init``, ``map_reader`` (None: iterate the input stream itself),
    ``map_input_stream``, ``map_output_stream``, ``combiner``, ``partition``, ``partitions``
    (1; None for a non-partitioned job), ``reduce``, ``reduce_init``, ``reduce_reader``
    (``chain_reader``), ``reduce_input_stream``, ``reduce_output_stream``, ``sort``
    (False), ``sort_buffer_size`` ('10%' of memory, or bytes such as '512M'), ``params``,
    ``ext_params``, ``status_interval`` (100000), ``save_results``, ``profile``,
    ``required_files``, ``required_modules``.
    """

    worker_module = "disco.worker.classic.worker"
    jobpack_version = 1

    def defaults(self) -> dict[str, Any]:
        defaults = super().defaults()
        defaults.update({
            "map_init": init,
            "map_reader": None,
            "map_input_stream": (map_input_stream,),
            "map_output_stream": (map_output_stream, disco_output_stream),
            "combiner": None,
            "partition": default_partition,
            "reduce_init": init,
            "reduce_reader": chain_reader,
            "reduce_input_stream": (reduce_input_stream,),
            "reduce_output_stream": (reduce_output_stream, disco_output_stream),
            "ext_params": {},
            "sort": False,
            "sort_buffer_size": "10%",
            "status_interval": 100000,
        })
        return defaults

    # -- client side ---------------------------------------------------------------------
    def jobdict(self, job: Any, **jobargs: Any) -> dict[str, Any]:
        from disco.settings import DiscoSettings
        jobdict = super().jobdict(job, **jobargs)

        def get(key: str, default: Any = None) -> Any:
            return self.getitem(key, job, jobargs, default)

        has_map, has_reduce = bool(get("map")), bool(get("reduce"))
        if not (has_map or has_reduce):
            raise DiscoError("a classic job needs a map or a reduce function")
        settings = getattr(job, "settings", None) or DiscoSettings()
        master = getattr(job, "master", None) or settings["DISCO_MASTER"]
        raw_input = get("input") or []
        # A map reads each file of an earlier job's results as its own input; a reduce-only
        # job keeps the indexes, whose labels say which reduce reads what.
        # No inputs at all is a valid job (Disco runs it and its results are empty).
        inputs = inputlist(raw_input, expand_dirs=has_map, ddfs=master)
        if has_map:
            nr_reduces = get("partitions") or 1
        elif ispartitioned(inputs):
            labels = {label for dir_url in inputs for label, _u, _s in read_index(dir_url)}
            nr_reduces = 1 + max([lbl for lbl in labels if isinstance(lbl, int)] or [0])
        else:
            nr_reduces = 1
        if get("merge_partitions"):
            nr_reduces = 1
        jobdict.update({
            "input": inputs,
            "map": has_map,
            "reduce": has_reduce,
            "map?": has_map,
            "reduce?": has_reduce,
            "nr_reduces": int(nr_reduces),
        })
        return jobdict

    # -- node side -----------------------------------------------------------------------
    def run(self, task: Task) -> None:
        from disco.worker.classic import external
        stage = task.stage
        mode = "reduce" if stage.startswith("reduce") else "map"
        if stage in ("map", "reduce") and isinstance(self.get(mode), dict):
            # an external program (disco.util.external)
            self[mode] = external.prepare(self[mode], self.get("ext_params"), mode)
        try:
            if stage in ("map", "split"):
                self.run_map(task, self["params"])
            elif stage == "reduce":
                self.run_reduce(task, self["params"])
            elif stage.endswith("shuffle"):
                self.run_shuffle(task)
            else:
                raise DiscoError(f"the classic worker has no stage {stage!r}")
        finally:
            external.close()

    def input_streams(self, mode: str) -> list[Any]:
        streams = list(self.get(f"{mode}_input_stream") or ())
        reader = self.get(f"{mode}_reader")
        if reader is not None:
            streams.append(reader)
        return streams

    def records(self, mode: str, params: Any, template: str) -> Iterator[Any]:
        """The records of all the task's inputs, one input after the other, with progress
        MSGs (``template`` % count)."""
        return chain.from_iterable(self.status_batches(self._batches(mode, params), template))

    def _batches(self, mode: str, params: Any) -> Iterator[list[Any]]:
        streams = self.input_streams(mode)
        first_stage = mode == "map" or not self.get("map")
        for task_input in self.all_inputs():
            label = self.label_filter(task_input, first_stage)
            yield from self.open_input(task_input, streams, params, label=label).batches()

    def run_map(self, task: Task, params: Any) -> None:
        map_fn = self["map"]
        if map_fn is None:
            raise DiscoError("this job has no map function")
        outputs = MapOutputs(self, self.get("partitions"), self.get("partition"),
                             self.get("combiner"), list(self.get("map_output_stream") or ()),
                             params, grouped=bool(self.get("reduce")))
        entries = self.records("map", params, "%s entries mapped")
        map_init = self.get("map_init")
        if map_init is not None:
            map_init(entries, params)
        outputs.map_all(entries, map_fn, params)
        outputs.close()

    def run_reduce(self, task: Task, params: Any) -> None:
        reduce_fn = self["reduce"]
        if reduce_fn is None:
            raise DiscoError("this job has no reduce function")
        label = task.group_label
        if self.get("sort"):
            unsorted = chain.from_iterable(self._batches("reduce", params))
            entries = self.status_iter(self.sort(unsorted, task), "%s entries reduced")
        else:
            entries = self.records("reduce", params, "%s entries reduced")
        out_label = label if isinstance(label, int) else 0
        out = self.output(out_label, list(self.get("reduce_output_stream") or ()), params)
        reduce_init = self.get("reduce_init")
        if reduce_init is not None:
            reduce_init(entries, params)
        if argcount(reduce_fn) < 3:
            for key, value in reduce_fn(entries, params) or ():
                out.add(key, value)
        else:
            reduce_fn(entries, out, params)

    def sort(self, records: Any, task: Task) -> Iterator[Any]:
        """Records sorted by key (stable): an external merge sort in the task's directory."""
        budget = parse_size(self.get("sort_buffer_size") or "10%")
        tempdir = task.abspath("sort")
        os.makedirs(tempdir, exist_ok=True)
        try:
            yield from dsorted(records, key=_record_key, buffer_bytes=budget, tempdir=tempdir)
        except TypeError as exc:
            raise DiscoError(f"sort=True needs keys that can be compared: {exc}") from exc
        finally:
            shutil.rmtree(tempdir, ignore_errors=True)

    def run_shuffle(self, task: Task) -> None:
        """Concatenate the inputs of each label into one local file per label (what Disco's
        shuffle does with the outputs of the tasks that ran on a node), so that the next
        stage reads one file per node and label instead of one per task. Results saved in
        DDFS keep one file per input (Disco saves every task's output as a blob)."""
        by_label: dict[Any, list[list[str]]] = {}
        for task_input in self.all_inputs():
            wanted = self.label_filter(task_input, first_stage=False)
            if task_input.isindex:
                for label, url, _size in self.index_entries(task_input):
                    if wanted is None or label == wanted:
                        by_label.setdefault(label, []).append([url])
            else:
                by_label.setdefault(task_input.label, []).append(task_input.urls)
        task.makedirs()
        separate = task.final and bool(self.get("save_results"))
        for label in sorted(by_label, key=lambda l: (str(type(l)), l)):
            if separate:
                for n, replicas in enumerate(by_label[label]):
                    self._copy_out(task, f"{task.stage}-{label}-{n}", label, [replicas])
            else:
                self._copy_out(task, f"{task.stage}-{label}", label, by_label[label])

    def _copy_out(self, task: Task, name: str, label: Any, sources: list[list[str]]) -> None:
        """One output file, ``name``, made of ``sources`` (each a list of replica URLs)."""
        from disco.fileutils import AtomicFile
        from disco.schemes import open_location
        with AtomicFile(task.abspath(name), sync=task.final) as out:
            for replicas in sources:
                error: Exception | None = None
                for url in replicas:
                    try:
                        source = open_location(url)[0]
                    except DataError as exc:
                        error = exc
                        continue
                    try:
                        shutil.copyfileobj(source, out, 1 << 20)
                    finally:
                        source.close()
                    break
                else:
                    raise DataError(f"cannot read shuffle input: {error}", replicas[0])
        self.request("OUTPUT", [label, task.path(name), os.path.getsize(task.abspath(name))])


def _record_key(record: Any) -> Any:
    return record[0]


def parse_size(value: Any) -> int:
    """Bytes for ``'10%'`` (of physical memory), ``'512M'``, ``'2G'``, ``'100k'`` or a number.
    The sort keeps a quarter of it as pickled data in memory: Python objects are larger."""
    text = str(value).strip()
    if text.endswith("%"):
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        size = int(total * float(text[:-1]) / 100)
    else:
        units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
        unit = units.get(text[-1:].lower(), 1)
        size = int(float(text[:-1] if unit != 1 else text) * unit)
    return max(1 << 20, size // 4)


if __name__ == "__main__":
    Worker.main()
