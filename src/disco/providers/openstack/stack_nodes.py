"""The nodes of a cluster's stack as Heat shows them: each node's address (its port's fixed IP),
its `booted` signal (the SSH host key it sent, or why it failed) and whether it signalled
`ready`; the master's floating IP when it has one. One listing of the stack's resources, nested
stacks included, answers for all nodes: the master's resources are the top stack's
`master_port`, `master_booted`, `master_ready`, `master_floating_ip`; a
worker's are `booted` and `ready` in its member stack of the `workers` group (member i is DISCO's
worker-(i+1)), its address the member's output `ip`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from disco.providers.openstack.heat_client import HeatStacks

MASTER_RESOURCES = {"master_port": "port", "master_booted": "booted", "master_ready": "ready",
                    "master_floating_ip": "floating"}
WORKER_RESOURCES = ("booted", "ready")


@dataclass
class StackNode:
    name: str
    address: str = ""
    # The master's floating IP (its address from outside the cluster's network), once made.
    public_address: str = ""
    # "CREATE_COMPLETE", "CREATE_IN_PROGRESS", "CREATE_FAILED", … of its wait conditions.
    booted: str = ""
    ready: str = ""
    host_key: str = ""
    boot_failure: str = ""
    floating: str = ""  # the status of the master's floating IP resource ("" when it has none)

    @property
    def is_booted(self) -> bool:
        return self.booted.endswith("_COMPLETE") and bool(self.host_key)


def worker_name(member: str) -> str:
    return f"worker-{int(member) + 1}"


def stack_nodes(stacks: HeatStacks, stack_id: str) -> dict[str, StackNode]:
    """node name -> what Heat knows of it now (also while the stack is in progress)."""
    nodes: dict[str, StackNode] = {}
    for resource in stacks.resources(stack_id):
        name, parent = resource.get("resource_name", ""), resource.get("parent_resource")
        if parent == "workers" and name.isdigit():  # a member: its stack's outputs are its attributes
            node, kind = worker_name(name), "member"
        elif parent is None and name in MASTER_RESOURCES:
            node, kind = "master", MASTER_RESOURCES[name]
        elif parent is not None and str(parent).isdigit() and name in WORKER_RESOURCES:
            node, kind = worker_name(str(parent)), name
        else:
            continue
        entry = nodes.setdefault(node, StackNode(node))
        _read(entry, kind, resource)
    master = nodes.get("master")
    if master is not None and not master.address:
        # A listing shows each resource's `show`, not its computed attributes: ask the port.
        fixed = stacks.resource_attributes(stack_id, "master_port", "fixed_ips").get("fixed_ips") or []
        if fixed and isinstance(fixed[0], dict):
            master.address = str(fixed[0].get("ip_address") or "")
    if master is not None and master.public_address == "" and master.floating.endswith("_COMPLETE"):
        master.public_address = str(stacks.resource_attributes(
            stack_id, "master_floating_ip", "floating_ip_address").get("floating_ip_address") or "")
    return nodes


def _read(entry: StackNode, kind: str, resource: dict[str, Any]) -> None:
    status = str(resource.get("resource_status", ""))
    attributes = resource.get("attributes") or {}
    if kind == "member":
        entry.address = str(attributes.get("ip") or "")
    elif kind == "port":
        fixed = attributes.get("fixed_ips") or []
        if fixed and isinstance(fixed[0], dict):
            entry.address = str(fixed[0].get("ip_address") or "")
    elif kind == "floating":
        entry.floating = status
        entry.public_address = str(attributes.get("floating_ip_address") or "")
    elif kind == "booted":
        entry.booted = status
        signalled = _signal_data(attributes.get("data"))
        if status.endswith("_COMPLETE") and signalled:
            entry.host_key = " ".join(signalled.split()[:2])  # "ssh-ed25519 AAAA…", without the comment
        if status.endswith("_FAILED"):
            entry.boot_failure = str(resource.get("resource_status_reason") or "")
    else:
        entry.ready = status


def _signal_data(data: Any) -> str:
    """A wait condition's `data` is the JSON of {signal id: data}; each node's has one entry."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return ""
    if isinstance(data, dict) and data:
        return str(next(iter(data.values())) or "")
    return ""
