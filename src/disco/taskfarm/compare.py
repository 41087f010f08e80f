"""Comparators, by name, from the server's registry: two successful outputs agree or not.
A deployment may add its own (entry point group `disco.taskfarm.comparators`); a project names
one and its arguments, and never ships code that runs on the server. (The project schema lists
the built-in three; a deployment's own need their names added there too.)"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any


Comparator = Callable[[bytes, bytes, dict[str, Any]], bool]


def exact(a: bytes, b: bytes, _args: dict[str, Any]) -> bool:
    return a == b


def _load(data: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False, None


def json_equal(a: bytes, b: bytes, _args: dict[str, Any]) -> bool:
    """Canonical JSON: key order and spacing do not matter; not JSON -> compared as bytes."""
    ok_a, va = _load(a)
    ok_b, vb = _load(b)
    if not (ok_a and ok_b):
        return a == b
    return json.dumps(va, sort_keys=True) == json.dumps(vb, sort_keys=True)


def float_close(a: bytes, b: bytes, args: dict[str, Any]) -> bool:
    """JSON documents of the same shape whose numbers agree within `rel`/`abs` (element-wise);
    everything else must be equal. A bare list of whitespace-separated numbers is JSON enough."""
    rel = float(args.get("rel", 1e-9))
    tol = float(args.get("abs", 0.0))
    ok_a, va = _load(a) if a.strip()[:1] in (b"[", b"{") else _load(b"[" + b",".join(a.split()) + b"]")
    ok_b, vb = _load(b) if b.strip()[:1] in (b"[", b"{") else _load(b"[" + b",".join(b.split()) + b"]")
    if not (ok_a and ok_b):
        return a == b
    return _close(va, vb, rel, tol)


def _close(x: Any, y: Any, rel: float, tol: float) -> bool:
    if isinstance(x, bool) or isinstance(y, bool):
        return x == y
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return math.isclose(x, y, rel_tol=rel, abs_tol=tol)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_close(i, j, rel, tol) for i, j in zip(x, y))
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_close(x[k], y[k], rel, tol) for k in x)
    return bool(x == y)


BUILTIN: dict[str, Comparator] = {"exact": exact, "json": json_equal, "float": float_close}
def registry() -> dict[str, Comparator]:
    found = dict(BUILTIN)
    for entry in entry_points(group="disco.taskfarm.comparators"):
        found.setdefault(entry.name, entry.load())
    return found


def agree(name: str, args: dict[str, Any], a: bytes, b: bytes) -> bool:
    return registry()[name](a, b, args)
