"""A job's own inputs as the first stage sees them.

Inputs are data outputs of an imaginary stage 0, except `dir://` indexes (the results of an
earlier job, say): those are read once at job start, as Disco does, so that groupings can
split and group them by the labels they hold.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from disco.mapreduce.master.data import DataOutput, DirOutput, Output
from disco.mapreduce.urls import url_host

T = TypeVar("T")


def parse_index(text: str) -> tuple[tuple[int, int], ...]:
    """The (label, total size) pairs of a results index (`label url size` lines)."""
    sizes: dict[int, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        size = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
        label = int(parts[0])
        sizes[label] = sizes.get(label, 0) + size
    return tuple(sorted(sizes.items()))


def index_urls(text: str) -> list[str]:
    """The URLs a results index lists, in its order."""
    return [parts[1] for line in text.splitlines() if len(parts := line.split()) >= 2]


async def read_index(urls: Sequence[str], fetch_text: Callable[[str], Awaitable[str]],
                     parse: Callable[[str], T]) -> tuple[str, T]:
    """A `dir://` index parsed by ``parse``, from the first of its replicas that can be read
    and parsed, with that replica's URL. Raises RuntimeError when none can."""
    errors = []
    for url in urls:
        try:
            return url, parse(await fetch_text(url))
        except Exception as exc:  # noqa: BLE001 - any failure (unreadable or malformed)
            errors.append(f"{url}: {exc}")
    raise RuntimeError("; ".join(errors))


async def annotate(inp: DataOutput, fetch_text: Callable[[str], Awaitable[str]]) -> Output:
    """A `dir://` input becomes a dir output, with the labels its index lists; its replicas are
    tried in turn. Raises RuntimeError when none can be read."""
    if not inp.urls[0].startswith("dir://"):
        return inp
    url, labels = await read_index(inp.urls, fetch_text, parse_index)
    return DirOutput(url_host(url) or "", url, labels)
