"""What a provider is told about a cluster when it may make nodes for it (`create_nodes`) or
is asked what it would make (`plan`): one builder for both, so a plan shows what a create does."""

from __future__ import annotations

from disco.cluster import plan
from disco.cluster.models import Cluster
from disco.frameworks.catalog import Catalog
from disco.providers.base import ClusterRef, NodeNeeds, NodeRef, PlanRequest, PortUse


def provider_request(cluster: Cluster, catalog: Catalog, needs: NodeNeeds) -> PlanRequest:
    spec = cluster.spec
    refs = [NodeRef(n.name, n.role, n.index) for n in plan.live_nodes(cluster)]
    # A per_master port once per master: providers open what they are told, knowing nothing
    # of why a framework needs it.
    ports = [PortUse(name, port_name, number, port.role, port.scheme)
             for name in spec.get("resolved_frameworks", [])
             for port_name, number, port in plan.port_instances(catalog.get(name), plan.masters_of(cluster))]
    allowed = list((spec.get("access") or {}).get("allowed_cidrs") or [])
    return PlanRequest(ClusterRef(cluster.id, cluster.slot or 0), cluster.name, refs,
                       dict(spec.get("provider_options") or {}), needs, ports, allowed)
