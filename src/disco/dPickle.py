"""Disco's function pickler (``from disco.dPickle import dumps, loads``).

Disco pickled job functions with code of its own; here that is cloudpickle, which the
client uses for job functions anyway. What it writes is read back by :func:`pickle.loads`.
"""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle

__all__ = ["dumps", "loads"]

loads = pickle.loads


def dumps(obj: Any, protocol: int | None = None) -> bytes:
    return cloudpickle.dumps(obj, protocol=protocol)
