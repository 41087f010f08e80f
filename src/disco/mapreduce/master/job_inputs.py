"""A job's own inputs as the first stage sees them.

Inputs are data outputs of an imaginary stage 0, except `dir://` indexes (the results of an
earlier job, say): those are read once at job start, as Disco does, so that groupings can
split and group them by the labels they hold.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from disco.mapreduce.master.data import DataOutput, DirOutput, Output
from disco.mapreduce.urls import url_host


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


async def read_index_text(urls: tuple[str, ...] | list[str],
                          fetch_text: Callable[[str], Awaitable[str]]) -> str:
    """The text of a `dir://` index from the first of its replicas that can be read.
    Raises RuntimeError when none can."""
    errors = []
    for url in urls:
        try:
            return await fetch_text(url)
        except Exception as exc:  # noqa: BLE001 - any failure: try the next replica
            errors.append(f"{url}: {exc}")
    raise RuntimeError("; ".join(errors))


async def annotate(inp: DataOutput, fetch_text: Callable[[str], Awaitable[str]]) -> Output:
    """A `dir://` input becomes a dir output, with the labels its index lists; its replicas are
    tried in turn. Raises RuntimeError when none can be read."""
    if not inp.urls[0].startswith("dir://"):
        return inp
    errors = []
    for url in inp.urls:
        try:
            labels = parse_index(await fetch_text(url))
        except Exception as exc:  # noqa: BLE001 - any failure (unreadable or malformed)
            errors.append(f"{url}: {exc}")
            continue
        return DirOutput(url_host(url) or "", url, labels)
    raise RuntimeError("; ".join(errors))
