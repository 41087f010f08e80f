"""The install's steps, each timed, logged to deploy.log and reported in the JSON result."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("disco.node")


@dataclass
class Step:
    name: str
    changed: bool = False
    seconds: float = 0.0
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "changed": self.changed, "seconds": round(self.seconds, 3),
                **({"detail": self.detail} if self.detail else {})}


@dataclass
class DeployLog:
    path: Path
    steps: list[Step] = field(default_factory=list)

    def note(self, text: str) -> None:
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {text}"
        log.info("%s", text)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        current = Step(name)
        started = time.monotonic()
        self.note(f"step {name}: begin")
        try:
            yield current
        except BaseException as exc:
            current.seconds = time.monotonic() - started
            self.note(f"step {name}: FAILED after {current.seconds:.2f}s: {exc}")
            raise
        current.seconds = time.monotonic() - started
        self.steps.append(current)
        self.note(f"step {name}: {'changed' if current.changed else 'unchanged'} in {current.seconds:.2f}s"
                  + (f" ({current.detail})" if current.detail else ""))
