"""Several masters over one node pool, as real processes on loopback (docs/mapreduce.md,
"Several masters"): master 0 on 127.N.0.1 is the DDFS authority, master i > 0 on 127.N.0.(20+i)
passes DDFS on to it, and every node (127.N.0.2, ...) serves all of them with `--master` once
per master. Built on runtime_fixtures.Cluster; `Pool.on(i)` is a Cluster whose API calls go
to master i."""

from __future__ import annotations

import copy
from pathlib import Path

from runtime_fixtures import PYTHON, Cluster, Proc, _free_port, wait_until


class Pool(Cluster):
    def __init__(self, root: Path, masters: int = 2, nodes: int = 2, slots: int = 2,
                 shares: list[int] | None = None, node_args: list[str] | None = None) -> None:
        super().__init__(root, nodes=nodes, slots=slots, node_args=node_args)
        self.master_hosts = [self.master_host] + [f"127.{self.net}.0.{20 + i}"
                                                  for i in range(1, masters)]
        everyone = [*self.master_hosts, *self.node_hosts]
        self.port = _free_port(everyone)
        self.put_port = _free_port(self.node_hosts, avoid={self.port})
        self.urls = [f"http://{h}:{self.port}" for h in self.master_hosts]
        self.url = self.urls[0]
        self.shares = shares
        self.master_procs: dict[int, Proc] = {}

    def on(self, i: int) -> Cluster:
        """This pool as seen through master i (same nodes, token and HTTP client)."""
        view = copy.copy(self)
        view.url, view.master_host = self.urls[i], self.master_hosts[i]
        view.master = self.master_procs.get(i)
        return view

    def start(self) -> Pool:
        for i in range(len(self.urls)):
            self.start_master_at(i)
        for host in self.node_hosts:
            self.start_node(host)
        for i in range(len(self.urls)):
            wait_until(lambda i=i: self.on(i)._connected() >= set(self.node_hosts), 20,
                       f"the nodes to register with master {i}")
        return self

    def start_master_at(self, i: int, log_name: str | None = None) -> None:
        authority = [] if i == 0 else ["--ddfs-authority", self.urls[0]]
        self.master_procs[i] = Proc(
            [PYTHON, "-m", "disco.mapreduce.master", "--host", self.master_hosts[i],
             "--port", str(self.port), "--data", str(self.root / f"master{i}"),
             "--retry-base", "0.05", "--node-timeout", "3", "--poll-hold", "0.5",
             "--instance", f"{i}/{len(self.urls)}", *authority, *self.token_args],
            self.root / (log_name or f"master{i}.log"), self.env)
        wait_until(self.on(i)._master_up, 20, f"master {i} to answer")
        if i == 0:
            self.master = self.master_procs[0]

    def start_node(self, host: str) -> None:
        masters = [arg for url in self.urls for arg in ("--master", url)]
        shares = [arg for s in self.shares or [] for arg in ("--share", str(s))]
        self.nodes[host] = Proc(
            [PYTHON, "-m", "disco.mapreduce.node", *masters, *shares, "--host", host,
             "--port", str(self.port), "--data", str(self.data(host)), "--slots", str(self.slots),
             "--put-port", str(self.put_port), *self.token_args, *self.node_args],
            self.root / f"node-{host}.log", self.env)

    def stop(self) -> None:
        for proc in list(self.nodes.values()):
            proc.stop()
        for proc in self.master_procs.values():
            proc.stop()
        self.master = None
        super().stop()

    def logs(self) -> str:
        procs = [*self.master_procs.values(), *self.nodes.values()]
        return "\n".join(f"==== {p.log.name}\n{p.output()[-6000:]}" for p in procs)
