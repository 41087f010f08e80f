"""Stack operations on the cloud in a box: a ResourceGroup of servers scaled by stack update,
suspend/resume, and the Neutron types a cluster template uses."""

from __future__ import annotations

import socket
import time

import yaml

from cloud_fixtures import TestCloud

GROUP = """
heat_template_version: '2018-08-31'
parameters:
  count: {type: number}
resources:
  workers:
    type: OS::Heat::ResourceGroup
    properties:
      count: {get_param: count}
      resource_def:
        type: OS::Nova::Server
        properties:
          name: worker-%index%
          image: debian-12
          flavor: m1.tiny
          networks: [{network: private}]
outputs:
  addresses: {value: {get_attr: [workers, first_address]}}
"""


def _ssh_greets(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=3) as connection:
            return connection.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def _await_ssh(address: str, timeout: float = 60) -> bool:
    """A server is CREATE_COMPLETE once it runs (as on Nova); sshd answers a moment later."""
    deadline = time.monotonic() + timeout
    while not _ssh_greets(address):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
    return True


def _update(test_cloud: TestCloud, stack, count: int):
    test_cloud.conn.orchestration.update_stack(stack.id, template=yaml.safe_load(GROUP),
                                               parameters={"count": count})
    return test_cloud.wait(stack.id, "UPDATE")


def test_resource_group_scales_one_three_one(test_cloud: TestCloud, stacks) -> None:
    stack = stacks("group", GROUP, {"count": 1})
    assert stack.status == "CREATE_COMPLETE", stack.status_reason
    assert len(test_cloud.containers_of(stack)) == 1
    stack = _update(test_cloud, stack, 3)
    assert stack.status == "UPDATE_COMPLETE", stack.status_reason
    running = test_cloud.containers_of(stack)
    assert len(running) == 3 and all(c["State"] == "running" for c in running)
    addresses = test_cloud.outputs(stack)["addresses"]
    assert len(set(addresses)) == 3 and all(_await_ssh(a) for a in addresses)
    names = sorted(c["Names"][0] for c in running)
    stack = _update(test_cloud, stack, 1)
    assert stack.status == "UPDATE_COMPLETE", stack.status_reason
    [left] = test_cloud.containers_of(stack)
    assert left["Names"][0] == names[0] or left["Names"][0] in names
    assert test_cloud.outputs(stack)["addresses"] == [addresses[0]]
    assert not _ssh_greets(addresses[1]) and not _ssh_greets(addresses[2])


SERVER = """
heat_template_version: '2018-08-31'
resources:
  server:
    type: OS::Nova::Server
    properties: {image: debian-12, flavor: m1.tiny}
outputs:
  address: {value: {get_attr: [server, first_address]}}
"""


def test_stack_suspend_and_resume(test_cloud: TestCloud, stacks) -> None:
    stack = stacks("suspended", SERVER)
    assert stack.status == "CREATE_COMPLETE", stack.status_reason
    address = test_cloud.outputs(stack)["address"]
    assert _await_ssh(address)
    test_cloud.conn.orchestration.suspend_stack(stack.id)
    stack = test_cloud.wait(stack.id, "SUSPEND")
    assert stack.status == "SUSPEND_COMPLETE", stack.status_reason
    assert [c["State"] for c in test_cloud.containers_of(stack)] == ["paused"]
    assert not _ssh_greets(address)  # the kernel accepts, but nobody answers
    test_cloud.conn.orchestration.resume_stack(stack.id)
    stack = test_cloud.wait(stack.id, "RESUME")
    assert stack.status == "RESUME_COMPLETE", stack.status_reason
    assert [c["State"] for c in test_cloud.containers_of(stack)] == ["running"]
    assert _ssh_greets(address)  # the same sshd, thawed: it answers at once


NETWORKED = """
heat_template_version: '2018-08-31'
resources:
  net:
    type: OS::Neutron::Net
    properties: {name: cluster-net}
  subnet:
    type: OS::Neutron::Subnet
    properties: {network: {get_resource: net}, cidr: 10.10.0.0/24, dns_nameservers: [10.0.0.2]}
  router:
    type: OS::Neutron::Router
    properties: {external_gateway_info: {network: public}}
  router_interface:
    type: OS::Neutron::RouterInterface
    properties: {router: {get_resource: router}, subnet: {get_resource: subnet}}
  secgroup:
    type: OS::Neutron::SecurityGroup
    properties:
      rules:
        - {protocol: tcp, port_range_min: 22, port_range_max: 22, remote_ip_prefix: 0.0.0.0/0}
  port:
    type: OS::Neutron::Port
    properties:
      network: {get_resource: net}
      security_groups: [{get_resource: secgroup}]
      fixed_ips: [{subnet: {get_resource: subnet}}]
  server:
    type: OS::Nova::Server
    depends_on: router_interface
    properties:
      image: debian-12
      flavor: m1.tiny
      networks: [{port: {get_resource: port}}]
  floating_ip:
    type: OS::Neutron::FloatingIP
    properties: {floating_network: public}
  floating_ip_association:
    type: OS::Neutron::FloatingIPAssociation
    properties: {floatingip_id: {get_resource: floating_ip}, port_id: {get_resource: port}}
outputs:
  floating: {value: {get_attr: [floating_ip, floating_ip_address]}}
  address: {value: {get_attr: [server, first_address]}}
  networks: {value: {get_attr: [server, networks]}}
  port_ips: {value: {get_attr: [port, fixed_ips]}}
"""


def test_neutron_types_of_a_cluster_template(test_cloud: TestCloud, stacks) -> None:
    stack = stacks("networked", NETWORKED)
    assert stack.status == "CREATE_COMPLETE", stack.status_reason
    out = test_cloud.outputs(stack)
    assert out["floating"] == out["address"]  # on loopback the server is reached at its own address
    assert out["networks"] == {"cluster-net": [out["address"]]}
    assert out["port_ips"][0]["ip_address"] == out["address"]
    assert _await_ssh(out["address"])


def test_router_gateway_must_be_external(test_cloud: TestCloud, stacks) -> None:
    stack = stacks("bad-router", """
heat_template_version: '2018-08-31'
resources:
  router:
    type: OS::Neutron::Router
    properties: {external_gateway_info: {network: private}}
""")
    assert stack.status == "CREATE_FAILED"
    assert "network private is not external" in stack.status_reason


CLUSTER = """
heat_template_version: '2018-08-31'
parameters:
  count: {type: number, default: 2}
resources:
  handle:
    type: OS::Heat::WaitConditionHandle
  all_up:
    type: OS::Heat::WaitCondition
    properties:
      handle: {get_resource: handle}
      count: {get_param: count}
      timeout: 90
  workers:
    type: OS::Heat::ResourceGroup
    properties:
      count: {get_param: count}
      resource_def:
        type: OS::Nova::Server
        properties:
          name: worker-%index%
          image: debian-12
          flavor: m1.tiny
          user_data_format: RAW
          user_data:
            str_replace:
              template: |
                #!/bin/sh
                wc_notify --data-binary '{"status": "SUCCESS", "id": "worker-%index%", "data": "'$(hostname)'"}'
              params:
                wc_notify: {get_attr: [handle, curl_cli]}
outputs:
  joined: {value: {get_attr: [all_up, data]}}
"""


def test_group_of_servers_signals_one_wait_condition(test_cloud: TestCloud, stacks) -> None:
    """The pattern of a cluster template: every node of a ResourceGroup signals the parent
    stack's handle; the WaitCondition completes when all have."""
    stack = stacks("cluster", CLUSTER)
    assert stack.status == "CREATE_COMPLETE", stack.status_reason
    assert yaml.safe_load(test_cloud.outputs(stack)["joined"]) == {"worker-0": "worker-0",
                                                                   "worker-1": "worker-1"}
