"""The node supervisor's configuration."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from disco.mapreduce.auth import TOKEN_ENV


@dataclass
class NodeConfig:
    master: str                       # http://host:port of the master
    host: str                         # the name this node has in disco:// URLs
    data: Path                        # DISCO_DATA
    port: int = field(default_factory=lambda: int(os.environ.get("DISCO_PORT", "8989")))
    slots: int = field(default_factory=lambda: os.cpu_count() or 1)
    ddfs_data: Path | None = None     # DDFS_DATA; default <data>/ddfs
    put_port: int = field(default_factory=lambda: int(os.environ.get("DDFS_PUT_PORT", "8990")))
    worker_start_timeout: float = 30.0  # a worker must say WORKER within this
    message_timeout: float = 30.0     # a message left half-sent this long is an error
    last_words_wait: float = 10.0     # after garbage, how long to wait for the rest of it
    nice: int = 19                    # workers run niced, as Disco runs them
    reuse_workers: bool = True        # keep workers that offer it for the job's next task
    # The cluster token (None: open). It goes with every request to the master and other
    # nodes, is asked of every request here, and workers get it as DISCO_CLUSTER_TOKEN.
    token: str | None = field(default=None, repr=False)

    # Set when this node serves several masters: the share of the node's slots this
    # supervisor's master gets (a master's slot count never lifts a task count above it).
    share: int | None = None

    @property
    def ddfs(self) -> Path:
        return self.ddfs_data if self.ddfs_data is not None else self.data / "ddfs"

    def worker_settings(self) -> dict[str, str]:
        """The Disco settings a worker finds in its environment."""
        settings = {
            "DISCO_MASTER": self.master,
            "DISCO_MASTER_HOST": urlsplit(self.master).hostname or "",
            "DISCO_PORT": str(self.port),
            "DDFS_PUT_PORT": str(self.put_port),
            "DISCO_DATA": str(self.data),
            "DDFS_DATA": str(self.ddfs),
        }
        if self.token is not None:
            settings[TOKEN_ENV] = self.token
        return settings


def split_slots(slots: int, masters: int, shares: list[int] | None = None) -> list[int]:
    """Each master's share of a node's slots: the shares given (one per master), else an even
    split with the remainder going to the first masters; every master gets at least one slot,
    so a node with fewer slots than masters runs more tasks at once than it has slots."""
    if shares:
        if len(shares) != masters:
            raise ValueError(f"{len(shares)} shares for {masters} masters: give one per master")
        if any(s < 1 for s in shares):
            raise ValueError("every master's share is at least 1 slot")
        if sum(shares) > max(slots, len(shares)):
            raise ValueError(f"the shares add up to {sum(shares)}, more than the node's "
                             f"{slots} slots")
        return list(shares)
    base, extra = divmod(slots, masters)
    return [max(1, base + (1 if i < extra else 0)) for i in range(masters)]
