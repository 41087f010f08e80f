"""Job names: `<prefix>@<megaseconds hex>:<seconds hex>:<microseconds hex>`, as Disco's.

Several masters over one node pool (docs/mapreduce.md, "Several masters") share the nodes'
job folders, so their names must never meet: master `index` of `count` takes only times whose
microseconds are `index` modulo `count`. A name thus also says which master made it
(`instance_of`), in Disco's own format."""

from __future__ import annotations

import time
from collections.abc import Container


def new_jobname(prefix: str, taken: Container[str], now_ns: int | None = None,
                index: int = 0, count: int = 1) -> str:
    micros = (time.time_ns() if now_ns is None else now_ns) // 1000
    micros += (index - micros) % count  # the next time that is this master's
    while True:
        mega, rest = divmod(micros, 10**12)
        secs, usecs = divmod(rest, 10**6)
        name = f"{prefix}@{mega:x}:{secs:x}:{usecs:x}"
        if name not in taken:
            return name
        micros += count  # two jobs in the same microsecond: take this master's next one


def instance_of(name: str, count: int) -> int | None:
    """Which of `count` masters made the job name (None: not a name of this format)."""
    try:
        stamp = name.rsplit("@", 1)[1]
        mega, secs, usecs = (int(part, 16) for part in stamp.split(":"))
    except (IndexError, ValueError):
        return None
    return (mega * 10**12 + secs * 10**6 + usecs) % count
