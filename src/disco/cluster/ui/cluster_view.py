"""What the cluster page shows of a cluster, from the service's own view of it (the REST API's
GET /clusters/{id}): the timeline, the addresses, the web UIs and the logs there are."""

from __future__ import annotations

from typing import Any

from disco.cluster.models import Cluster
from disco.cluster.service import ClusterService, format_event

# Where a state sits in a cluster's life, for the badge's colour (CSS class).
STATE_CLASS = {"ready": "ok", "failed": "bad", "deleted": "gone", "suspended": "gone"}


def page_data(svc: ClusterService, cluster: Cluster) -> dict[str, Any]:
    view = svc.view(cluster)
    events = svc.store.events(cluster.id)
    outputs = cluster.outputs or {}
    provider = svc.lifecycle.provider(cluster.provider)
    frameworks = []
    for name, entry in (outputs.get("frameworks") or {}).items():
        values = {k: v for k, v in entry.items() if k != "web_uis" and isinstance(v, (str, int, float))}
        web = [{"key": key, "url": url} for key, url in sorted((entry.get("web_uis") or {}).items())]
        frameworks.append({"name": name, "fields": values, "web_uis": web})
    return {
        "cluster": view,
        "state_class": STATE_CLASS.get(cluster.state, "busy"),
        "timeline": view["events"],
        "deployment_log": "".join(format_event(e) for e in events),
        "last_event": events[-1].id if events else 0,
        "master_host": outputs.get("master_host"),
        "frameworks": frameworks,
        "logs": [{"node": n, "process": p} for n, p in provider.log_names(cluster.id)] if cluster.state != "deleted"
        else [],
        "remote": bool(getattr(provider, "remote", False)),
        "live": cluster.state != "deleted",
    }


def web_ui_url(cluster: Cluster, framework: str, key: str) -> str | None:
    """A web UI's URL as the cluster's outputs give it; None when it has no such UI."""
    entry = (cluster.outputs or {}).get("frameworks", {}).get(framework) or {}
    url = (entry.get("web_uis") or {}).get(key)
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


def summary(cluster: Cluster) -> dict[str, Any]:
    """A row of the cluster list (and of its live stream)."""
    return {"id": cluster.id, "name": cluster.name, "state": cluster.state, "target": cluster.target,
            "provider": cluster.provider, "workers": cluster.workers,
            "frameworks": cluster.spec.get("resolved_frameworks", []),
            "status_reason": cluster.status_reason or "", "state_class": STATE_CLASS.get(cluster.state, "busy")}
