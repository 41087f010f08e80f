"""What providers that act for a cluster long after its request (a cloud's) may ask the service
manager: the cluster's sealed cloud entry and SSH key, opened for one use, and its provider
options. The provider sees this protocol (providers.base.ClusterAccess), never the store."""

from __future__ import annotations

from typing import Any

from disco.cluster.secrets import SecretBox
from disco.cluster.store import Store


class StoredClusterAccess:
    def __init__(self, store: Store, box: SecretBox) -> None:
        self.store = store
        self.box = box

    def cloud(self, cluster_id: str) -> dict[str, Any] | None:
        cluster = self.store.get_cluster(cluster_id)
        return (self.box.open(cluster.secrets_enc) or {}).get("cloud")

    def ssh_key(self, cluster_id: str) -> tuple[str, str]:
        cluster = self.store.get_cluster(cluster_id)
        return cluster.ssh_public_key, self.box.open(cluster.ssh_private_key_enc) or ""

    def options(self, cluster_id: str) -> dict[str, str]:
        return dict(self.store.get_cluster(cluster_id).spec.get("provider_options") or {})
