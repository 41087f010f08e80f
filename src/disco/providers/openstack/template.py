"""A cluster's Heat (HOT) template, rendered from its StackDesign.

The only parameter is `worker_count`: scaling is a stack update that changes it and nothing
else (same template, same files). Everything else is written into the template, so the same
design always gives the same text. Logical resource names are fixed (the provider looks
resources up by them); the names given to cloud resources all start with the design's
name_prefix, so stacks of different clusters never clash. See docs/openstack-template.md.
"""

from __future__ import annotations

from typing import Any

from disco.providers.openstack.design import ExistingKey, ExistingNetwork, NewNetwork, StackDesign
from disco.providers.openstack.placeholders import (BOOT_SIGNAL, MASTER_IP, NODE_IP, NODE_NAME, WAIT_SIGNAL,
                                                   WORKER_COUNT)
from disco.providers.openstack.security_rules import ingress_rules, ports_description
from disco.providers.openstack.worker_template import HOT_VERSION, WORKER_TEMPLATE_NAME, worker_template
from disco.providers.openstack.yaml_text import dump_yaml



def _master_ip() -> dict[str, Any]:
    return {"get_attr": ["master_port", "fixed_ips", 0, "ip_address"]}


def render(design: StackDesign) -> dict[str, Any]:
    """The main template: network (or none), security group, key pair (or none), the master,
    its floating IP (or none), the workers' group and the outputs."""
    resources: dict[str, Any] = {}
    resources.update(_network(design))
    resources["security_group"] = _security_group(design)
    if not isinstance(design.key, ExistingKey):
        resources["key_pair"] = {"type": "OS::Nova::KeyPair", "properties": {
            "name": f"{design.name_prefix}-key", "public_key": design.key.public_key.strip()}}
    resources.update(_master(design))
    resources["workers"] = _workers(design)
    return {
        "heat_template_version": HOT_VERSION,
        "description": f"DISCO cluster {design.cluster_name} ({design.cluster_id}). "
                       + ports_description(design),
        "parameters": {"worker_count": {
            "type": "number", "default": design.workers,
            "description": "How many workers; scaling is a stack update of this parameter alone.",
            "constraints": [{"range": {"min": 0, "max": design.max_workers}}],
        }},
        "resources": resources,
        "outputs": _outputs(design),
    }


def render_files(design: StackDesign) -> dict[str, str]:
    """The stack's `files` (pass them with every create and update): the worker's template."""
    return {WORKER_TEMPLATE_NAME: dump_yaml(worker_template())}


def render_yaml(design: StackDesign) -> str:
    return dump_yaml(render(design))


def stack_parameters(design: StackDesign, workers: int | None = None) -> dict[str, int]:
    """The parameters of a create (the design's worker count) or of a scale to `workers`."""
    count = design.workers if workers is None else workers
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= design.max_workers:
        raise ValueError(f"workers {count!r} is not in 0..{design.max_workers}")
    return {"worker_count": count}


def _network(design: StackDesign) -> dict[str, Any]:
    if not isinstance(design.network, NewNetwork):
        return {}
    prefix = design.name_prefix
    subnet: dict[str, Any] = {"name": f"{prefix}-subnet", "network": {"get_resource": "network"},
                              "cidr": design.network.cidr, "ip_version": 4}
    if design.network.dns_nameservers:
        subnet["dns_nameservers"] = list(design.network.dns_nameservers)
    return {
        "network": {"type": "OS::Neutron::Net", "properties": {"name": f"{prefix}-net"}},
        "subnet": {"type": "OS::Neutron::Subnet", "properties": subnet},
        "router": {"type": "OS::Neutron::Router", "properties": {
            "name": f"{prefix}-router", "external_gateway_info": {"network": design.external_network}}},
        "router_interface": {"type": "OS::Neutron::RouterInterface", "properties": {
            "router": {"get_resource": "router"}, "subnet": {"get_resource": "subnet"}}},
    }


def _network_ref(design: StackDesign) -> Any:
    if isinstance(design.network, ExistingNetwork):
        return design.network.name
    return {"get_resource": "network"}


def _after_routing(design: StackDesign) -> dict[str, Any]:
    """Nodes boot only once their subnet is routed (their boot scripts reach Heat to signal,
    and package mirrors), and a floating IP needs the router; on delete this order also takes
    the floating IP and the servers away before the router interface."""
    return {"depends_on": ["router_interface"]} if isinstance(design.network, NewNetwork) else {}


def _key_name(design: StackDesign) -> Any:
    if isinstance(design.key, ExistingKey):
        return design.key.name
    return {"get_resource": "key_pair"}


def _security_group(design: StackDesign) -> dict[str, Any]:
    return {"type": "OS::Neutron::SecurityGroup", "properties": {
        "name": f"{design.name_prefix}-sg",
        "description": f"DISCO cluster {design.cluster_id}: declared ports from the allowed "
                       "CIDRs, every port between the cluster's nodes",
        "rules": ingress_rules(design),
    }}


def _master(design: StackDesign) -> dict[str, Any]:
    prefix = design.name_prefix
    port: dict[str, Any] = {"name": f"{prefix}-master-port", "network": _network_ref(design),
                            "security_groups": [{"get_resource": "security_group"}]}
    if isinstance(design.network, NewNetwork):
        port["fixed_ips"] = [{"subnet": {"get_resource": "subnet"}}]
    resources: dict[str, Any] = {
        "master_port": {"type": "OS::Neutron::Port", "properties": port},
        "master": {"type": "OS::Nova::Server", **_after_routing(design), "properties": {
            "name": f"{prefix}-master",
            "image": design.master_image,
            "flavor": design.master_flavor,
            "key_name": _key_name(design),
            "networks": [{"port": {"get_resource": "master_port"}}],
            "user_data_format": "RAW",
            # A scale changes $worker_count$; the running master must stay, not be replaced.
            "user_data_update_policy": "IGNORE",
            "user_data": {"str_replace": {"template": design.user_data.master, "params": {
                WAIT_SIGNAL: {"get_attr": ["master_ready_handle", "curl_cli"]},
                BOOT_SIGNAL: {"get_attr": ["master_boot_handle", "curl_cli"]},
                MASTER_IP: _master_ip(),
                NODE_IP: _master_ip(),
                NODE_NAME: "master",
                WORKER_COUNT: {"get_param": "worker_count"},
            }}},
        }},
        # Booted: installed, with its host key as data. Ready: its frameworks run.
        "master_boot_handle": {"type": "OS::Heat::WaitConditionHandle"},
        "master_booted": {"type": "OS::Heat::WaitCondition", "depends_on": ["master"], "properties": {
            "handle": {"get_resource": "master_boot_handle"},
            "timeout": design.wait_timeout,
            "count": 1,
        }},
        "master_ready_handle": {"type": "OS::Heat::WaitConditionHandle"},
        "master_ready": {"type": "OS::Heat::WaitCondition", "depends_on": ["master"], "properties": {
            "handle": {"get_resource": "master_ready_handle"},
            "timeout": design.wait_timeout,
            "count": 1,
        }},
    }
    if design.floating_ip:
        resources["master_floating_ip"] = {"type": "OS::Neutron::FloatingIP", **_after_routing(design),
                                           "properties": {"floating_network": design.external_network,
                                                          "port_id": {"get_resource": "master_port"}}}
    return resources


def _workers(design: StackDesign) -> dict[str, Any]:
    return {"type": "OS::Heat::ResourceGroup", **_after_routing(design), "properties": {
        "count": {"get_param": "worker_count"},
        "resource_def": {"type": WORKER_TEMPLATE_NAME, "properties": {
            "name": f"{design.name_prefix}-worker-%index%",
            "index": "%index%",
            "image": design.worker_image,
            "flavor": design.worker_flavor,
            "key_name": _key_name(design),
            "network": _network_ref(design),
            "security_group": {"get_resource": "security_group"},
            # %index% in it is filled by the group, the rest by the worker's template.
            "user_data": design.user_data.worker,
            "master_ip": _master_ip(),
            "wait_timeout": design.wait_timeout,
        }},
    }}


def _outputs(design: StackDesign) -> dict[str, Any]:
    if design.floating_ip:
        external = {"get_attr": ["master_floating_ip", "floating_ip_address"]}
    else:
        external = _master_ip()
    if isinstance(design.key, ExistingKey):
        key_name: Any = design.key.name
        public_key: Any = ""
    else:
        key_name = {"get_resource": "key_pair"}
        public_key = {"get_attr": ["key_pair", "public_key"]}
    return {
        "external_ip": {"description": "where users reach the master: its floating IP, else its fixed IP",
                        "value": external},
        "master_ip": {"description": "the master's fixed IP", "value": _master_ip()},
        "worker_ips": {"description": "the workers' fixed IPs, by index",
                       "value": {"get_attr": ["workers", "ip"]}},
        "ssh_key_name": {"description": "the Nova key pair the nodes accept", "value": key_name},
        "ssh_public_key": {"description": "its public half (empty for a key pair of the user's)",
                           "value": public_key},
    }
