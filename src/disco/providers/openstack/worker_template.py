"""The template of one worker: its port, server and wait condition. The workers' group is a
`OS::Heat::ResourceGroup` of this template, so each worker owns its wait condition: a scale-up
waits for exactly the new workers' signals, a scale-down deletes the removed workers' handles
with them, and no signal of a deleted worker ever counts (docs/openstack-template.md).

It is the same for every cluster; everything a cluster chooses arrives as a parameter."""

from __future__ import annotations

from typing import Any

from disco.providers.openstack.placeholders import BOOT_SIGNAL, MASTER_IP, NODE_IP, NODE_NAME, WAIT_SIGNAL

HOT_VERSION = "2018-08-31"
# The name the main template's group uses for it, and its key in the stack's `files`.
WORKER_TEMPLATE_NAME = "disco-worker.yaml"


def worker_template() -> dict[str, Any]:
    return {
        "heat_template_version": HOT_VERSION,
        "description": "One DISCO worker: a port, a server, and the wait conditions its boot "
                       "script signals: booted (installed; its host key), ready (its frameworks run).",
        "parameters": {
            "name": {"type": "string", "description": "the server's name"},
            "index": {"type": "string", "description": "the worker's index in the group (0, 1, …)"},
            "image": {"type": "string"},
            "flavor": {"type": "string"},
            "key_name": {"type": "string"},
            "network": {"type": "string"},
            "security_group": {"type": "string"},
            "user_data": {"type": "string", "description": "the boot script, placeholders unfilled"},
            "master_ip": {"type": "string"},
            "wait_timeout": {"type": "number"},
        },
        "resources": {
            "port": {
                "type": "OS::Neutron::Port",
                "properties": {
                    "name": {"list_join": ["-", [{"get_param": "name"}, "port"]]},
                    "network": {"get_param": "network"},
                    "security_groups": [{"get_param": "security_group"}],
                },
            },
            "server": {
                "type": "OS::Nova::Server",
                "properties": {
                    "name": {"get_param": "name"},
                    "image": {"get_param": "image"},
                    "flavor": {"get_param": "flavor"},
                    "key_name": {"get_param": "key_name"},
                    "networks": [{"port": {"get_resource": "port"}}],
                    "user_data_format": "RAW",
                    # A running worker is never replaced because its script's text changed.
                    "user_data_update_policy": "IGNORE",
                    "user_data": {"str_replace": {
                        "template": {"get_param": "user_data"},
                        "params": {
                            WAIT_SIGNAL: {"get_attr": ["ready_handle", "curl_cli"]},
                            BOOT_SIGNAL: {"get_attr": ["boot_handle", "curl_cli"]},
                            MASTER_IP: {"get_param": "master_ip"},
                            NODE_IP: {"get_attr": ["port", "fixed_ips", 0, "ip_address"]},
                            NODE_NAME: {"get_attr": ["node_name", "value"]},
                        },
                    }},
                },
            },
            # DISCO numbers workers from 1, Heat's group from 0.
            "node_name": {"type": "OS::Heat::Value", "properties": {"type": "string", "value": {"yaql": {
                "expression": '"worker-" + str(int($.data.index) + 1)',
                "data": {"index": {"get_param": "index"}}}}}},
            # Booted: installed, with its host key as data. Ready: its frameworks run.
            "boot_handle": {"type": "OS::Heat::WaitConditionHandle"},
            "booted": {
                "type": "OS::Heat::WaitCondition",
                "depends_on": ["server"],
                "properties": {
                    "handle": {"get_resource": "boot_handle"},
                    "timeout": {"get_param": "wait_timeout"},
                    "count": 1,
                },
            },
            "ready_handle": {"type": "OS::Heat::WaitConditionHandle"},
            "ready": {
                "type": "OS::Heat::WaitCondition",
                # The timeout runs from the server's creation, not from the handle's.
                "depends_on": ["server"],
                "properties": {
                    "handle": {"get_resource": "ready_handle"},
                    "timeout": {"get_param": "wait_timeout"},
                    "count": 1,
                },
            },
        },
        "outputs": {
            "ip": {"description": "the worker's fixed IP",
                   "value": {"get_attr": ["port", "fixed_ips", 0, "ip_address"]}},
            "server_id": {"value": {"get_resource": "server"}},
            "node": {"description": "the worker's name in DISCO", "value": {"get_attr": ["node_name", "value"]}},
        },
    }
