"""The stack design refuses bad input with errors that say what is wrong, all at once."""

from __future__ import annotations

from dataclasses import replace

import pytest

from disco.errors import InvalidSpec
from disco.providers.openstack.design import (ExistingKey, ExistingNetwork, GeneratedKey, NewNetwork, PortRule,
                                              StackDesign, StackDesignError, UserData)
from openstack_designs import typical_design


def problems_of(**changes) -> list[str]:
    with pytest.raises(StackDesignError) as caught:
        replace(typical_design(), **changes)
    assert isinstance(caught.value, InvalidSpec) and caught.value.code == "invalid_stack_design"
    assert caught.value.details == {"problems": caught.value.problems}
    return caught.value.problems


@pytest.mark.parametrize(("changes", "expected"), [
    ({"master_image": ""}, "master image is empty"),
    ({"worker_flavor": "   "}, "worker flavor is empty"),
    ({"cluster_name": ""}, "cluster name is empty"),
    ({"cluster_id": "--"}, "cluster id '--' has no letter or digit"),
    ({"workers": -1}, "workers -1 is not in 0..64"),
    ({"workers": 65}, "workers 65 is not in 0..64"),
    ({"workers": True}, "workers True is not in 0..64"),
    ({"wait_timeout": 0}, "wait timeout 0 s is not in 1..43200"),
    ({"network": NewNetwork("10.20.0.300/24")}, "network CIDR '10.20.0.300/24' is not valid"),
    ({"network": NewNetwork("10.20.0.1/24")}, "has host bits set"),
    ({"network": NewNetwork("fd00::/64")}, "network CIDR fd00::/64 is not IPv4"),
    ({"network": NewNetwork("10.20.0.0/28")}, "has room for 12 nodes, fewer than the master and 64 workers"),
    ({"network": NewNetwork(dns_nameservers=("dns.example",))}, "DNS nameserver 'dns.example' is not an IP address"),
    ({"network": ExistingNetwork("")}, "the existing network's name is empty"),
    ({"external_network": ""}, "external network is empty; the router's gateway needs it"),
    ({"network": ExistingNetwork("n"), "external_network": ""}, "external network is empty; the floating IP needs it"),
    ({"allowed_cidrs": ("0.0.0.0/33",)}, "allowed CIDR '0.0.0.0/33' is not valid"),
    ({"allowed_cidrs": "10.0.0.0/8"}, "allowed CIDRs must be a list"),
    ({"ports": (PortRule(0, why="zero"),)}, "port 0 (zero) is not in 1..65535"),
    ({"ports": (PortRule(70000, why="big"),)}, "port 70000 (big) is not in 1..65535"),
    ({"ports": (PortRule(9000, 8000, why="backwards"),)}, "port range 9000-8000 ends before it starts"),
    ({"ports": (PortRule(8000, protocol="sctp", why="x"),)}, "protocol 'sctp' is not one of tcp, udp"),
    ({"ports": (PortRule(8000),)}, "port 8000/tcp: say why it is open"),
    ({"allowed_cidrs": tuple(f"10.0.{n}.0/24" for n in range(30))},
     "6 open ports × 30 allowed CIDRs make 183 security group rules, more than Neutron's default quota of 100"),
    ({"key": GeneratedKey("ssh-ed25519 not-base64")}, "the public key is not an OpenSSH public key"),
    ({"key": GeneratedKey("-----BEGIN OPENSSH PRIVATE KEY-----")}, "the public key is not an OpenSSH public key"),
    ({"key": ExistingKey("bad\nname")}, "is not a valid Nova key pair name"),
    ({"key": "alice"}, "key must be a GeneratedKey or an ExistingKey"),
    ({"user_data": UserData(master="x" * 45_001)}, "master user_data is 45001 bytes; at most 45000 fit"),
])
def test_bad_input_is_named(changes, expected):
    problems = problems_of(**changes)
    assert any(expected in problem for problem in problems), problems


def test_every_problem_is_reported_at_once():
    problems = problems_of(master_image="", workers=-3, allowed_cidrs=("nonsense",),
                           ports=(PortRule(0, why="zero"),))
    assert len(problems) == 4
    with pytest.raises(StackDesignError, match="master image is empty; workers -3"):
        replace(typical_design(), master_image="", workers=-3)


def test_existing_network_without_floating_ip_needs_no_external_network():
    design = replace(typical_design(), network=ExistingNetwork("tenant-net"), floating_ip=False,
                     external_network="")
    assert design.external_network == ""


def test_ssh_and_node_log_ports_are_always_open_and_duplicates_merge():
    design = replace(typical_design(), ports=(
        PortRule(8989, why="mapreduce master"), PortRule(8989, why="mapreduce node"),
        PortRule(22, why="SSH"), PortRule(8000, 8010, "udp", "range")))
    assert [(rule.label, rule.why) for rule in design.open_ports] == [
        ("22/tcp", "SSH"), ("8084/tcp", "node log server"),
        ("8989/tcp", "mapreduce master, mapreduce node"), ("8000-8010/udp", "range")]


def test_allowed_cidrs_default_to_none_and_are_ordered():
    bare = StackDesign(cluster_id="c1", cluster_name="c", master_image="i", master_flavor="f",
                       worker_image="i", worker_flavor="f", key=ExistingKey("k"), external_network="ext")
    assert bare.allowed_cidrs == () and bare.sorted_cidrs == ()
    assert bare.network == NewNetwork("10.20.0.0/24") and bare.floating_ip
    design = replace(typical_design(), allowed_cidrs=("2001:db8::/64", "203.0.113.0/24", "10.0.0.0/8",
                                                      "10.0.0.0/8"))
    assert design.sorted_cidrs == ("10.0.0.0/8", "203.0.113.0/24", "2001:db8::/64")


def test_name_prefix_is_short_readable_and_per_cluster():
    design = typical_design()
    assert design.name_prefix == "disco-word-count-3f2a9c1e"
    other = replace(design, cluster_id="77aa0000-0000")
    assert other.name_prefix == "disco-word-count-77aa0000"
    odd = replace(design, cluster_name="  Ünïcode!! & a very long cluster name  ")
    assert odd.name_prefix == "disco-unicode-a-very-l-3f2a9c1e"
