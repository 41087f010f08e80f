"""The host pool as the SSH provider sees it: every `acquire` restricted to what the cluster's
spec asks for (`provider_options`: `hosts` to name them, master first; `labels` that every
host must carry), so the provider needs to know neither the spec nor the database."""

from __future__ import annotations

from typing import Any

from disco.cluster.hosts import HostPool
from disco.cluster.store import Store
from disco.providers.ssh import split_list
from disco.providers.ssh_transport import HostSpec


class ClusterHosts:
    def __init__(self, pool: HostPool, store: Store) -> None:
        self.pool = pool
        self.store = store

    def acquire(self, cluster_id: str, nodes: list[str]) -> dict[str, HostSpec]:
        options = self.store.get_cluster(cluster_id).spec.get("provider_options") or {}
        return self.pool.acquire(cluster_id, nodes, **_choice(options))

    def shortage(self, options: dict[str, str], needed: int) -> str | None:
        return self.pool.shortage(needed, **_choice(options))

    def preview(self, options: dict[str, str], nodes: list[str]) -> dict[str, tuple[HostSpec, dict[str, Any]]]:
        """The hosts a cluster with these options would get now, not reserved: node -> (host
        without its private key, the host's last check facts)."""
        rows = self.pool.preview(nodes, **_choice(options))
        return {node: (HostSpec(name=row.name, address=row.address, port=row.port, user=row.user, private_key="",
                                host_key=row.host_key, prefix=row.prefix),
                       dict((row.check_result or {}).get("facts") or {}))
                for node, row in rows.items()}

    def assigned(self, cluster_id: str) -> dict[str, HostSpec]:
        return self.pool.assigned(cluster_id)

    def release(self, cluster_id: str, nodes: list[str] | None = None) -> None:
        self.pool.release(cluster_id, nodes)

    def quarantine(self, cluster_id: str, nodes: list[str], reason: str) -> None:
        self.pool.quarantine(cluster_id, nodes, reason)

    def clusters(self) -> set[str]:
        return self.pool.clusters()


def _choice(options: dict[str, str]) -> dict[str, list[str] | None]:
    return {"names": split_list(options["hosts"]) if options.get("hosts") else None,
            "labels": split_list(options["labels"]) if options.get("labels") else None}
