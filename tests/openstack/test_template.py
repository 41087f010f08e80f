"""What the renderer writes into a cluster's template, read back as data."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from disco.providers.openstack.design import ExistingKey, ExistingNetwork, PortRule, UserData
from disco.providers.openstack.placeholders import PLACEHOLDERS
from disco.providers.openstack.template import render, render_files, render_yaml, stack_parameters
from disco.providers.openstack.worker_template import WORKER_TEMPLATE_NAME
from openstack_designs import typical_design


def resources_of(design) -> dict:
    return render(design)["resources"]


def test_scaling_is_one_parameter():
    design = typical_design()
    template = render(design)
    assert list(template["parameters"]) == ["worker_count"]
    assert template["parameters"]["worker_count"]["default"] == 2
    assert template["parameters"]["worker_count"]["constraints"] == [{"range": {"min": 0, "max": 64}}]
    assert template["resources"]["workers"]["properties"]["count"] == {"get_param": "worker_count"}
    # A scaled design renders the same text but for the parameter's default: the provider
    # updates with the template it created the stack with and worker_count alone.
    scaled = render_yaml(replace(design, workers=5))
    assert scaled.replace("default: 5", "default: 2") == render_yaml(design)
    assert stack_parameters(design) == {"worker_count": 2}
    assert stack_parameters(design, workers=7) == {"worker_count": 7}
    with pytest.raises(ValueError, match="workers 65 is not in 0..64"):
        stack_parameters(design, workers=65)


def test_same_design_same_text_and_yaml_reads_back_as_the_dict():
    design = typical_design()
    text = render_yaml(design)
    assert text == render_yaml(typical_design())
    assert yaml.safe_load(text) == render(design)
    assert "&id" not in text and "*id" not in text          # no YAML anchors
    assert "      template: |\n" in text                    # boot scripts stay readable blocks
    assert render_files(design) == render_files(replace(design, workers=9, cluster_id="other"))


def test_new_network_is_routed_and_nodes_wait_for_the_route():
    resources = resources_of(typical_design())
    assert resources["network"]["type"] == "OS::Neutron::Net"
    assert resources["subnet"]["properties"]["cidr"] == "10.20.0.0/24"
    assert resources["subnet"]["properties"]["dns_nameservers"] == ["192.0.2.53"]
    assert resources["router"]["properties"]["external_gateway_info"] == {"network": "public"}
    assert resources["router_interface"]["properties"] == {"router": {"get_resource": "router"},
                                                           "subnet": {"get_resource": "subnet"}}
    for name in ("master", "workers", "master_floating_ip"):
        assert resources[name]["depends_on"] == ["router_interface"]
    assert resources["master_floating_ip"]["properties"] == {
        "floating_network": "public", "port_id": {"get_resource": "master_port"}}


def test_existing_network_makes_no_network_resources():
    design = replace(typical_design(), network=ExistingNetwork("tenant-net"), floating_ip=False)
    resources = resources_of(design)
    assert not {"network", "subnet", "router", "router_interface", "master_floating_ip"} & set(resources)
    assert resources["master_port"]["properties"]["network"] == "tenant-net"
    assert "fixed_ips" not in resources["master_port"]["properties"]
    assert resources["workers"]["properties"]["resource_def"]["properties"]["network"] == "tenant-net"
    assert "depends_on" not in resources["master"]
    assert render(design)["outputs"]["external_ip"]["value"] == {
        "get_attr": ["master_port", "fixed_ips", 0, "ip_address"]}


def test_security_group_opens_only_the_listed_ports_to_each_allowed_cidr():
    design = replace(typical_design(), ports=(PortRule(8786, why="dask scheduler"),
                                              PortRule(30000, 30010, "udp", "a range")),
                     allowed_cidrs=("203.0.113.0/24", "2001:db8::/64"))
    rules = resources_of(design)["security_group"]["properties"]["rules"]
    from_outside = [(rule["protocol"], rule["port_range_min"], rule["port_range_max"], rule["ethertype"],
                     rule["remote_ip_prefix"]) for rule in rules if rule["remote_mode"] == "remote_ip_prefix"]
    assert from_outside == [
        ("tcp", 22, 22, "IPv4", "203.0.113.0/24"), ("tcp", 22, 22, "IPv6", "2001:db8::/64"),
        ("tcp", 8084, 8084, "IPv4", "203.0.113.0/24"), ("tcp", 8084, 8084, "IPv6", "2001:db8::/64"),
        ("tcp", 8786, 8786, "IPv4", "203.0.113.0/24"), ("tcp", 8786, 8786, "IPv6", "2001:db8::/64"),
        ("udp", 30000, 30010, "IPv4", "203.0.113.0/24"), ("udp", 30000, 30010, "IPv6", "2001:db8::/64")]
    # Between the cluster's nodes: every port (no remote_group_id: Heat names the group itself).
    inside = [rule for rule in rules if rule["remote_mode"] == "remote_group_id"]
    assert {rule["protocol"] for rule in inside} == {"tcp", "udp", "icmp"}
    assert all("remote_group_id" not in rule and rule["direction"] == "ingress" for rule in inside)
    assert "8786/tcp (dask scheduler)" in render(design)["description"]


def test_no_allowed_cidr_opens_nothing_to_the_outside():
    rules = resources_of(replace(typical_design(), allowed_cidrs=()))["security_group"]["properties"]["rules"]
    assert rules and all(rule["remote_mode"] == "remote_group_id" for rule in rules)


def test_generated_key_becomes_a_key_pair_and_a_users_key_is_named():
    design = typical_design()
    resources = resources_of(design)
    assert resources["key_pair"] == {"type": "OS::Nova::KeyPair", "properties": {
        "name": "disco-word-count-3f2a9c1e-key", "public_key": design.key.public_key}}
    assert resources["master"]["properties"]["key_name"] == {"get_resource": "key_pair"}
    outputs = render(design)["outputs"]
    assert outputs["ssh_key_name"]["value"] == {"get_resource": "key_pair"}
    assert outputs["ssh_public_key"]["value"] == {"get_attr": ["key_pair", "public_key"]}

    users = replace(design, key=ExistingKey("alice-laptop"))
    resources = resources_of(users)
    assert "key_pair" not in resources
    assert resources["master"]["properties"]["key_name"] == "alice-laptop"
    assert resources["workers"]["properties"]["resource_def"]["properties"]["key_name"] == "alice-laptop"
    assert render(users)["outputs"]["ssh_key_name"]["value"] == "alice-laptop"


def test_user_data_placeholders_are_filled_by_heat():
    design = typical_design()
    resources = resources_of(design)
    master = resources["master"]["properties"]
    assert master["user_data_format"] == "RAW" and master["user_data_update_policy"] == "IGNORE"
    assert master["user_data"]["str_replace"] == {"template": design.user_data.master, "params": {
        "$wait_signal$": {"get_attr": ["master_ready_handle", "curl_cli"]},
        "$boot_signal$": {"get_attr": ["master_boot_handle", "curl_cli"]},
        "$master_ip$": {"get_attr": ["master_port", "fixed_ips", 0, "ip_address"]},
        "$node_ip$": {"get_attr": ["master_port", "fixed_ips", 0, "ip_address"]},
        "disco-node-name-standin": "master",
        "$worker_count$": {"get_param": "worker_count"}}}
    member = resources["workers"]["properties"]["resource_def"]
    assert member["type"] == WORKER_TEMPLATE_NAME
    # The worker's script goes to its template as it is: the group fills %index%, the
    # worker's template the signal command and the master's IP.
    assert member["properties"]["user_data"] == design.user_data.worker
    assert member["properties"]["name"] == "disco-word-count-3f2a9c1e-worker-%index%"
    assert member["properties"]["index"] == "%index%"
    worker = yaml.safe_load(render_files(design)[WORKER_TEMPLATE_NAME])
    server = worker["resources"]["server"]["properties"]
    assert server["user_data"]["str_replace"]["params"] == {
        "$wait_signal$": {"get_attr": ["ready_handle", "curl_cli"]},
        "$boot_signal$": {"get_attr": ["boot_handle", "curl_cli"]},
        "$master_ip$": {"get_param": "master_ip"},
        "$node_ip$": {"get_attr": ["port", "fixed_ips", 0, "ip_address"]},
        "disco-node-name-standin": {"get_attr": ["node_name", "value"]}}
    # DISCO's worker-1 is the group's member 0.
    assert worker["resources"]["node_name"]["properties"]["value"]["yaql"]["data"] == {
        "index": {"get_param": "index"}}
    assert set(PLACEHOLDERS) == {"$wait_signal$", "$boot_signal$", "$master_ip$", "$node_ip$", "$worker_count$",
                                 "%index%", "disco-node-name-standin"}


def test_every_node_has_its_own_wait_conditions():
    design = typical_design()
    resources = resources_of(design)
    assert resources["master_ready"] == {"type": "OS::Heat::WaitCondition", "depends_on": ["master"],
                                         "properties": {"handle": {"get_resource": "master_ready_handle"},
                                                        "timeout": 900, "count": 1}}
    worker = yaml.safe_load(render_files(design)[WORKER_TEMPLATE_NAME])["resources"]
    assert worker["ready"]["properties"] == {"handle": {"get_resource": "ready_handle"},
                                             "timeout": {"get_param": "wait_timeout"}, "count": 1}
    assert worker["ready"]["depends_on"] == ["server"]
    # And one for "booted" (installed; the host key as its data), apart from "ready".
    assert resources["master_booted"]["properties"]["handle"] == {"get_resource": "master_boot_handle"}
    assert resources["master_booted"]["properties"]["count"] == 1
    assert worker["booted"]["properties"] == {"handle": {"get_resource": "boot_handle"},
                                              "timeout": {"get_param": "wait_timeout"}, "count": 1}
    assert resources["workers"]["properties"]["resource_def"]["properties"]["wait_timeout"] == 900


def test_cloud_names_start_with_the_cluster_prefix():
    design = typical_design()
    names = [resource["properties"]["name"] for resource in resources_of(design).values()
             if "name" in resource.get("properties", {})]
    assert len(names) == 7 and all(name.startswith("disco-word-count-3f2a9c1e-") for name in names)
    other = [resource["properties"].get("name") for resource in resources_of(
        replace(design, cluster_id="99990000")).values() if "name" in resource.get("properties", {})]
    assert not set(names) & set(other)


def test_outputs_keep_the_original_names():
    assert list(render(typical_design())["outputs"]) == [
        "external_ip", "master_ip", "worker_ips", "ssh_key_name", "ssh_public_key"]
    outputs = render(typical_design())["outputs"]
    assert outputs["external_ip"]["value"] == {"get_attr": ["master_floating_ip", "floating_ip_address"]}
    assert outputs["worker_ips"]["value"] == {"get_attr": ["workers", "ip"]}


def test_scripts_with_odd_text_survive_the_yaml():
    script = "#!/bin/sh\necho 'trailing space' \n\tprintf '%s' \"$x\" # : { } [ ] &anchor *alias\n"
    design = replace(typical_design(), user_data=UserData(master=script, worker="single line %index%"))
    assert yaml.safe_load(render_yaml(design)) == render(design)
