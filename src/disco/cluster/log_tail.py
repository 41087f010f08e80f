"""What to quote from a process's log when it exits during start-up: the lines that name the
cause, and the last lines, each whole.

A crash's cause is often not in its last lines: Dask's scheduler, for one, prints
`OSError: [Errno 98] Address already in use` and then a second, longer traceback ending in
`RuntimeError: Scheduler failed to start.`; a fixed number of bytes from the end cuts lines
mid-word and leaves the cause out.
"""

from __future__ import annotations

import re

# How far back to look for a cause; a start-up log is short, a chained traceback a few KB.
SCAN_BYTES = 64 * 1024
LAST_LINES = 6
MAX_CAUSES = 4
MAX_LINE_CHARS = 500

# A Python or Java exception line (`OSError: …`, `java.net.BindException: …`), or a line with a
# phrase that says why a process could not start.
_CAUSE = re.compile(
    r"^\s*(?:Caused by: )?[A-Za-z_][\w.$]*(?:Error|Exception|Exit)\b"
    r"|(?i:\baddress already in use\b|\bpermission denied\b|\bno such file\b|\bcommand not found\b"
    r"|\bfatal\b|\berror:)"
)


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " …"


def _lines(log: bytes) -> list[str]:
    tail = log[-SCAN_BYTES:]
    text = tail.decode(errors="replace")
    lines = text.splitlines()
    if len(log) > SCAN_BYTES and lines:
        lines = lines[1:]  # cut mid-line: not a whole line
    return [line.rstrip() for line in lines if line.strip()]


def cause_lines(log: bytes) -> list[str]:
    """The distinct lines of the log's end that name an error, oldest first (the first and
    last few when there are many: the root cause comes first, the final error last)."""
    found: list[str] = []
    for line in _lines(log):
        if _CAUSE.search(line) and line.strip() not in found:
            found.append(line.strip())
    if len(found) > MAX_CAUSES:
        found = found[: MAX_CAUSES // 2] + found[-(MAX_CAUSES - MAX_CAUSES // 2):]
    return [_clip(line) for line in found]


def last_lines(log: bytes, count: int = LAST_LINES) -> list[str]:
    """The last `count` non-blank lines, each whole (very long ones clipped at the end)."""
    return [_clip(line) for line in _lines(log)[-count:]]


def describe_exit(log: bytes) -> str:
    """`cause: …; last log lines: …` for a failure message ("no log output" if empty)."""
    tail = last_lines(log)
    if not tail:
        return "no log output"
    causes = [line for line in cause_lines(log) if line not in (t.strip() for t in tail)]
    lead = f"cause: {' | '.join(causes)}; " if causes else ""
    return lead + "last log lines:\n" + "\n".join(tail)
