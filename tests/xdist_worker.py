"""Which pytest-xdist worker this process is, so that parallel workers pick disjoint address
blocks (a plain `pytest` run is worker 0 of 1)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def worker_index() -> tuple[int, int]:
    """(this worker's index, number of workers) from the variables pytest-xdist sets."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", … under xdist
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    return (int(name[2:]) if name.startswith("gw") else 0), max(count, 1)


def worker_share(items: Sequence[T]) -> list[T]:
    """This worker's part of items: every count-th one, from its index on."""
    index, count = worker_index()
    return list(items[index::count])
