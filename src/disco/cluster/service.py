"""What the APIs can do to clusters: every request is checked here, then handed to the store
and the reconciler. The REST API, the OCCI API and the CLI all go through this one class."""

from __future__ import annotations

import uuid
from typing import Any

from disco.cluster.cloud_entry import CLOUD_PROVIDER
from disco.cluster.credentials import new_credentials
from disco.cluster.lifecycle import Lifecycle
from disco.cluster.models import Cluster, Event
from disco.cluster.secrets import SecretBox, ssh_keypair
from disco.cluster.spec import ClusterSpec, ResolvedSpec, resolve
from disco.cluster.store import Store
from disco.errors import Conflict, Forbidden, InvalidSpec
from disco.frameworks.catalog import Catalog
from disco.providers import available as available_providers
from disco.cluster.settings import Settings

SCALABLE_STATES = ("pending", "provisioning", "installing", "ready")


class ClusterService:
    def __init__(self, settings: Settings, store: Store, catalog: Catalog, lifecycle: Lifecycle,
                 box: SecretBox) -> None:
        self.settings = settings
        self.store = store
        self.catalog = catalog
        self.lifecycle = lifecycle
        self.box = box

    # -- commands ---------------------------------------------------------------------

    def validate(self, tenant: str, spec: ClusterSpec) -> tuple[str, ResolvedSpec]:
        """Every check a create makes before anything is stored (a dry run makes the same):
        the provider and its options, room for the nodes, the frameworks and their properties.
        The provider's name and the resolved spec, or the error a create would answer."""
        provider = spec.provider or self.settings.default_provider
        if provider not in available_providers():
            raise InvalidSpec(f"unknown provider {provider!r} (available: {', '.join(available_providers())})",
                              code="unknown_provider")
        _check_cloud_use(provider, spec)
        if tenant != self.settings.sole_tenant and not self.lifecycle.provider(provider).isolates_tenants:
            raise Forbidden(
                f"provider {provider} cannot keep tenants apart here (it needs the service manager "
                f"to run as root), so it serves tenant {self.settings.sole_tenant!r} only",
                code="isolation_unavailable", details={"provider": provider})
        self.lifecycle.provider(provider).check_options(spec.provider_options)
        self.lifecycle.provider(provider).check_capacity(spec.provider_options, spec.workers + 1)
        resolved = resolve(spec.model_copy(update={"provider": provider}), self.catalog,
                           max_workers=self.settings.max_workers)
        return provider, resolved

    def create(self, tenant: str, spec: ClusterSpec, *, extra_secrets: dict[str, Any] | None = None) -> Cluster:
        provider, resolved = self.validate(tenant, spec)
        cluster_id = str(uuid.uuid4())
        public_key, private_key = ssh_keypair(f"disco-{cluster_id[:8]}")
        secrets = {"properties": {k: v for k, v in resolved.secrets.items() if v},
                   "credentials": new_credentials(cluster_id), **(extra_secrets or {})}
        if spec.cloud is not None:  # sealed here and nowhere else: the stored spec has no `cloud`
            secrets["cloud"] = spec.cloud
        cluster = Cluster(
            id=cluster_id, tenant=tenant, name=spec.name or f"disco-{cluster_id[:8]}", provider=provider,
            spec=resolved.public_dict(), state="pending", target="running", workers=spec.workers,
            ssh_public_key=public_key, ssh_private_key_enc=self.box.seal(private_key),
            secrets_enc=self.box.seal(secrets), outputs={},
        )
        nodes = [("master", "master", 0)] + [(f"worker-{i}", "worker", i) for i in range(1, spec.workers + 1)]
        cluster = self.store.add_cluster(cluster, nodes, self.lifecycle.provider(provider).slot_free)
        self.store.add_event(cluster.id, "pending",
                             f"requested: 1 master, {spec.workers} worker(s), frameworks "
                             f"{', '.join(resolved.order) or 'none'} on provider {provider}")
        self.lifecycle.kick(cluster.id)
        return cluster

    def scale(self, tenant: str, cluster_id: str, workers: Any) -> Cluster:
        if isinstance(workers, bool) or not isinstance(workers, int):
            raise InvalidSpec(f"workers must be an integer, got {workers!r}", code="invalid_workers")
        if workers < 0 or workers > self.settings.max_workers:
            raise InvalidSpec(f"workers must be between 0 and {self.settings.max_workers}, got {workers}",
                              code="invalid_workers", details={"max_workers": self.settings.max_workers})
        cluster = self.get(tenant, cluster_id)
        if cluster.target != "running" or cluster.state not in SCALABLE_STATES:
            raise Conflict(f"cannot scale a cluster in state {cluster.state}", code="invalid_state")
        current = sorted((n for n in cluster.nodes if n.role == "worker" and n.target == "running"),
                         key=lambda n: n.index)
        if workers > len(current):
            self.lifecycle.provider(cluster.provider).check_capacity(
                cluster.spec.get("provider_options") or {}, workers - len(current))
            used = {n.index for n in cluster.nodes}
            fresh = [i for i in range(1, 254) if i not in used][: workers - len(current)]
            self.store.add_nodes(cluster.id, [(f"worker-{i}", "worker", i) for i in fresh])
        for node in current[workers:]:
            self.store.update_node(cluster.id, node.name, target="absent")
        if workers != len(current):
            self.store.add_event(cluster.id, "scale", f"requested {workers} worker(s) (from {len(current)})")
        # The spec is what a user reads back (and what a restart would rebuild from), so it
        # follows the scale too; a new dict, so that the JSON column sees the change.
        self.store.update_cluster(cluster.id, workers=workers, spec={**cluster.spec, "workers": workers})
        self.lifecycle.kick(cluster.id)
        return self.store.get_cluster(cluster.id)

    def delete(self, tenant: str, cluster_id: str) -> Cluster:
        cluster = self.get(tenant, cluster_id)
        if cluster.state == "deleted":
            return cluster
        if cluster.target != "deleted":
            self.store.update_cluster(cluster.id, target="deleted")
            self.store.add_event(cluster.id, "delete", "deletion requested")
        self.lifecycle.kick(cluster.id, interrupt=True)
        return self.store.get_cluster(cluster.id)

    def suspend(self, tenant: str, cluster_id: str) -> Cluster:
        cluster = self.get(tenant, cluster_id)
        if cluster.state != "ready":
            raise Conflict(f"only a ready cluster can be suspended (state: {cluster.state})",
                           code="invalid_state")
        self.store.update_cluster(cluster.id, target="suspended")
        self.lifecycle.kick(cluster.id)
        return self.store.get_cluster(cluster.id)

    def resume(self, tenant: str, cluster_id: str) -> Cluster:
        cluster = self.get(tenant, cluster_id)
        if cluster.state not in ("suspended", "failed"):
            raise Conflict(f"only a suspended or failed cluster can be resumed (state: {cluster.state})",
                           code="invalid_state")
        self.store.update_cluster(cluster.id, target="running", state="installing", status_reason="")
        self.store.add_event(cluster.id, "resume", "resume requested")
        self.lifecycle.kick(cluster.id)
        return self.store.get_cluster(cluster.id)

    # -- queries ----------------------------------------------------------------------

    def get(self, tenant: str, cluster_id: str) -> Cluster:
        return self.store.get_cluster(cluster_id, tenant=tenant)

    def list(self, tenant: str, *, include_deleted: bool = False) -> list[Cluster]:
        return self.store.list_clusters(tenant, include_deleted=include_deleted)

    def events(self, tenant: str, cluster_id: str, after_id: int = 0) -> list[Event]:
        self.get(tenant, cluster_id)
        return self.store.events(cluster_id, after_id)

    def private_key(self, cluster: Cluster) -> str:
        return self.box.open(cluster.ssh_private_key_enc) or ""

    def deployment_log(self, tenant: str, cluster_id: str) -> str:
        return "".join(format_event(e) for e in self.events(tenant, cluster_id))

    def view(self, cluster: Cluster, *, events: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": cluster.id,
            "name": cluster.name,
            "state": cluster.state,
            "target": cluster.target,
            "status_reason": cluster.status_reason,
            "provider": cluster.provider,
            "workers": cluster.workers,
            "frameworks": cluster.spec.get("resolved_frameworks", []),
            "spec": cluster.spec,
            "nodes": [{"name": n.name, "role": n.role, "host": n.host or None,
                       "state": "leaving" if n.target != "running" else ("allocated" if n.host else "pending")}
                      for n in cluster.nodes],
            "outputs": cluster.outputs,
            "ssh_public_key": cluster.ssh_public_key,
            "created_at": _iso(cluster.created_at),
            "ready_at": _iso(cluster.ready_at),
            "deleted_at": _iso(cluster.deleted_at),
        }
        if events:
            data["events"] = [event_view(e) for e in self.store.events(cluster.id)]
        return data


def _check_cloud_use(provider: str, spec: ClusterSpec) -> None:
    """A cloud entry goes with the OpenStack provider, and only with it: given to another
    provider it would be sealed and never read (a user who meant OpenStack would not notice)."""
    if spec.cloud is not None and provider != CLOUD_PROVIDER:
        raise InvalidSpec(f"cloud is only read by the {CLOUD_PROVIDER} provider (this spec's provider: {provider}); "
                          f"leave it out, or choose provider {CLOUD_PROVIDER}", code="cloud_not_used",
                          details={"provider": provider})
    if spec.cloud is None and provider == CLOUD_PROVIDER:
        raise InvalidSpec(f"the {CLOUD_PROVIDER} provider needs the cloud to use: a clouds.yaml entry as the spec's "
                          "`cloud` (disco cluster create --cloud NAME reads it from clouds.yaml)",
                          code="cloud_missing", details={"provider": provider})


def event_view(event: Event) -> dict[str, Any]:
    return {"id": event.id, "at": _iso(event.at), "step": event.step, "level": event.level,
            "message": event.message, "duration_s": event.duration_s}


def format_event(event: Event) -> str:
    took = f" ({event.duration_s:.2f} s)" if event.duration_s is not None else ""
    return f"{_iso(event.at)} [{event.level}] {event.step}: {event.message}{took}\n"


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text if value.tzinfo else text + "+00:00"
