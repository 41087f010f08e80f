"""Collecting exited children without blocking, for the processes that fork others
(the service manager's zygote and the Map/Reduce nodes' worker zygotes)."""

from __future__ import annotations

import os
from collections.abc import Iterator


def reaped_children() -> Iterator[tuple[int, int]]:
    """(pid, exit code) of every child that has exited, until none is left waiting."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, os.waitstatus_to_exitcode(status)
