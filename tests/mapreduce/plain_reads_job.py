"""A job's functions in a module of their own, which imports nothing: the job ships this module
(its required modules), and a test module would bring its own imports (httpx among them) into
the workers."""

from __future__ import annotations

from typing import Any


def host_map(line: Any, params: Any) -> Any:
    import time

    from disco.worker import this_host
    time.sleep(0.2)  # several tasks at once: both nodes get maps
    yield this_host(), 1


def httpx_reduce(iter: Any, params: Any) -> Any:  # noqa: A002 - Disco's own name
    import sys
    pairs = list(iter)
    yield "read", len(pairs)
    yield "hosts", len({host for host, _ in pairs})  # 2: the other node's outputs came over HTTP
    yield "httpx loaded", "httpx" in sys.modules
