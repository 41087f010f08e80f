"""What flows between stages: task outputs, and references to them as task inputs.

A task's outputs are of two kinds, as in Disco:

- a *dir* output: the task's local outputs, listed in a `.results` index on the node that ran it
  (`dir://host/disco/...results`), with the size of each label it holds, so the master can group
  by label without reading the index;
- a *data* output: one labelled URL (with replicas), for remote outputs (`OUTPUT` with a URL) and
  for the job's own inputs.

A task input is a reference to (producer task, output number) plus the label the consumer wants
from it, resolved to URLs only when the task is dispatched: a producer re-run elsewhere (its data
lost with a node) then hands its consumers the new locations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from disco.mapreduce.urls import url_host

Label = int | str  # an integer label, or "all" for a whole dir index


@dataclass(frozen=True)
class DirOutput:
    host: str
    url: str
    labels: tuple[tuple[int, int], ...]  # (label, size)

    def size_of(self, label: Label) -> int:
        return sum(size for lab, size in self.labels if label == "all" or lab == label)


@dataclass(frozen=True)
class DataOutput:
    label: int
    size: int
    urls: tuple[str, ...]  # replicas

    @property
    def hosts(self) -> list[str]:
        return [h for h in (url_host(u) for u in self.urls) if h]


Output = DirOutput | DataOutput


@dataclass(frozen=True)
class InputRef:
    """Input of a consumer task: output `index` of task `producer` (None: the job's inputs)."""

    producer: int | None
    index: int
    label: Label


def output_urls(output: Output) -> list[str]:
    """How an output appears in job results: the dir index URL, or the data replicas."""
    return [output.url] if isinstance(output, DirOutput) else list(output.urls)


def output_hosts(output: Output) -> list[str]:
    return [output.host] if isinstance(output, DirOutput) else output.hosts


def output_to_json(output: Output) -> dict[str, Any]:
    if isinstance(output, DirOutput):
        return {"dir": [output.host, output.url, [list(pair) for pair in output.labels]]}
    return {"data": [output.label, output.size, list(output.urls)]}


def output_from_json(obj: Any) -> Output:
    """Parse an output a node reported; raises ValueError on anything malformed."""
    if isinstance(obj, dict) and "dir" in obj:
        host, url, labels = obj["dir"]
        pairs = tuple((int(lab), int(size)) for lab, size in labels)
        if not isinstance(host, str) or not isinstance(url, str):
            raise ValueError("dir output needs a host and a URL")
        return DirOutput(host, url, pairs)
    if isinstance(obj, dict) and "data" in obj:
        label, size, urls = obj["data"]
        if not urls or not all(isinstance(u, str) for u in urls):
            raise ValueError("data output needs URLs")
        return DataOutput(int(label), int(size), tuple(urls))
    raise ValueError(f"not an output: {obj!r}")


def replicas_for(output: Output | None, label: Label) -> list[str]:
    """The URLs a consumer reads for one input; empty if the producer's output is gone or does
    not hold the label."""
    if output is None:
        return []
    if isinstance(output, DirOutput):
        if label != "all" and all(lab != label for lab, _size in output.labels):
            return []
        return [output.url]
    return list(output.urls)


def ref_size(output: Output | None, label: Label) -> int:
    if output is None:
        return 0
    if isinstance(output, DirOutput):
        return output.size_of(label)
    return output.size


def ref_hosts(output: Output | None) -> list[str]:
    return [] if output is None else output_hosts(output)
