"""Disco's groupings: which task of the next stage each output of the previous stage feeds.

Every grouping maps one output independently to one or more (group key, group, input) triples,
so the same function serves a stage started at once from all its predecessor's outputs and a
concurrent stage fed output by output. A group is Disco's `(label, host)` pair, host None when
the grouping does not tie the task to a host.

- split: one task per input; a dir index counts as one input per label it holds;
- group_label: one task per label;
- group_node: one task per host, reading whole indexes (label "all");
- group_node_label: one task per (label, host);
- group_all: a single task reading everything.

A job may ask (scheduler option ``inputs_per_task``) that its first stage, when it splits the
job's own inputs, give each task several consecutive inputs of one group: see
:func:`pack_consecutive`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator

from disco.mapreduce.master.data import DataOutput, DirOutput, InputRef, Output

GROUPINGS = ("split", "group_label", "group_node", "group_node_label", "group_all")

Group = tuple[int, str | None]


def _data_host(output: DataOutput) -> str | None:
    # Disco picks one replica's host at random; the first is as good and deterministic.
    hosts = output.hosts
    return hosts[0] if hosts else None


def route(grouping: str, producer: int | None, index: int, output: Output
          ) -> Iterator[tuple[Hashable, Group, InputRef]]:
    """The (group key, group, input reference) triples output `index` of `producer` gives."""
    if isinstance(output, DirOutput):
        labels = sorted({lab for lab, _size in output.labels})
        if not labels:
            return  # an empty index feeds nothing
        host = output.host
        if grouping == "split":
            for lab in labels:
                yield ("split", producer, index, lab), (lab, host), InputRef(producer, index, lab)
        elif grouping == "group_label":
            for lab in labels:
                yield lab, (lab, None), InputRef(producer, index, lab)
        elif grouping == "group_node_label":
            for lab in labels:
                yield (lab, host), (lab, host), InputRef(producer, index, lab)
        elif grouping == "group_node":
            yield host, (0, host), InputRef(producer, index, "all")
        elif grouping == "group_all":
            yield 0, (0, None), InputRef(producer, index, "all")
        else:
            raise ValueError(f"unknown grouping {grouping!r}")
        return
    if not output.urls:
        return
    lab, data_host = output.label, _data_host(output)
    ref = InputRef(producer, index, lab)
    if grouping == "split":
        yield ("split", producer, index), (lab, data_host), ref
    elif grouping == "group_label":
        yield lab, (lab, None), ref
    elif grouping == "group_node_label":
        yield (lab, data_host), (lab, data_host), ref
    elif grouping == "group_node":
        yield data_host, (0, data_host), ref
    elif grouping == "group_all":
        yield 0, (0, None), ref
    else:
        raise ValueError(f"unknown grouping {grouping!r}")


def pack_consecutive(routed: Iterable[tuple[Hashable, Group, InputRef]], per_task: int
                     ) -> Iterator[tuple[Hashable, Group, InputRef]]:
    """Split triples re-keyed so that runs of up to `per_task` consecutive inputs of the same
    group (label and host; raw:// and other hostless inputs share host None) feed one task,
    keyed by the run's first input. Only inputs of one host are packed together, so packing
    never moves a task away from its data; what it saves is the per-task cost (a worker
    start, its messages, an output index) that dominates when inputs are small, as raw://
    inputs are: Hadoop's CombineFileInputFormat and Spark's parallelize slices do the same."""
    run_key: Hashable = None
    run_group: Group | None = None
    run_length = 0
    for key, group, ref in routed:
        if run_length and group == run_group and run_length < per_task:
            run_length += 1
        else:
            run_key, run_group, run_length = key, group, 1
        yield run_key, group, ref


def sort_key(key: Hashable) -> tuple[int, int, str]:
    """Order the groups of a freshly started stage: integer keys (labels) ascending, then the
    others by their text; split keys are left in producer order by the caller."""
    if isinstance(key, int):
        return (0, key, "")
    return (1, 0, repr(key))
