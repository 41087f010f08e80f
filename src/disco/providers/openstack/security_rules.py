"""The security group's rules: each open port from each allowed CIDR, and everything between
the cluster's own nodes (frameworks pick ports of their own beyond the declared ones: Spark's
executors, Ray's workers)."""

from __future__ import annotations

import ipaddress
from typing import Any

from disco.providers.openstack.design import StackDesign


def ingress_rules(design: StackDesign) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for rule in design.open_ports:
        for cidr in design.sorted_cidrs:
            rules.append({
                "direction": "ingress",
                "ethertype": f"IPv{ipaddress.ip_network(cidr).version}",
                "protocol": rule.protocol,
                "port_range_min": rule.first,
                "port_range_max": rule.last,
                "remote_mode": "remote_ip_prefix",
                "remote_ip_prefix": cidr,
            })
    # No remote_group_id: Heat then names this very group, i.e. "from any node of the cluster".
    for protocol in ("tcp", "udp"):
        rules.append({"direction": "ingress", "ethertype": "IPv4", "protocol": protocol,
                      "port_range_min": 1, "port_range_max": 65535, "remote_mode": "remote_group_id"})
    rules.append({"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp",
                  "remote_mode": "remote_group_id"})
    return rules


def ports_description(design: StackDesign) -> str:
    """Why each port is open, for the template's description."""
    opened = ", ".join(f"{rule.label} ({rule.why})" for rule in design.open_ports)
    sources = ", ".join(design.sorted_cidrs) or "nowhere outside the cluster"
    return f"Open ports: {opened}; from {sources}. Nodes reach each other on every port."
