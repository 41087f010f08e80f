"""Servers of the cloud in a box, driven through openstacksdk as on any OpenStack: user_data
runs through cloud-init and signals a WaitCondition from the node itself; SSH with the key
pair; failures with readable reasons; delete leaves nothing."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncssh
import httpx
import psutil

from cloud_fixtures import TestCloud
from disco.testbed.podman import podman

SERVER_WITH_WAIT = """
heat_template_version: '2018-08-31'
parameters:
  key: {type: string}
  key_name: {type: string}
resources:
  keypair:
    type: OS::Nova::KeyPair
    properties: {name: {get_param: key_name}, public_key: {get_param: key}}
  handle:
    type: OS::Heat::WaitConditionHandle
  wait:
    type: OS::Heat::WaitCondition
    properties: {handle: {get_resource: handle}, timeout: 90}
  server:
    type: OS::Nova::Server
    properties:
      name: node-1
      image: debian-12
      flavor: m1.small
      key_name: {get_resource: keypair}
      networks: [{network: private}]
      user_data_format: RAW
      user_data:
        str_replace:
          template: |
            #!/bin/sh
            sleep 3
            echo "written by user_data on $(hostname)" > /root/user-data-ran
            wc_notify --data-binary '{"status": "SUCCESS", "data": "node-1 ready"}'
          params:
            wc_notify: {get_attr: [handle, curl_cli]}
outputs:
  address: {value: {get_attr: [server, first_address]}}
  networks: {value: {get_attr: [server, networks]}}
  addresses: {value: {get_attr: [server, addresses]}}
  name: {value: {get_attr: [server, name]}}
  show: {value: {get_attr: [server, show]}}
  signal_data: {value: {get_attr: [wait, data]}}
  public_key: {value: {get_attr: [keypair, public_key]}}
"""


def _ssh(address: str, key: str, command: str) -> str:
    async def run() -> str:
        async with asyncssh.connect(address, username="debian", client_keys=[key],
                                    known_hosts=None, connect_timeout=10) as connection:
            done = await connection.run(command, check=True)
            return str(done.stdout)
    return asyncio.run(run())


def _events(test_cloud: TestCloud, stack: Any) -> list[tuple[str, str]]:
    events = test_cloud.conn.orchestration.stack_events(stack)
    return [(e.resource_name, e.resource_status) for e in sorted(events, key=lambda e: e.event_time)]


def test_server_boots_user_data_signals_wait_condition_and_takes_ssh(test_cloud: TestCloud, stacks) -> None:
    started = time.monotonic()
    stack = stacks("boot", SERVER_WITH_WAIT, {"key": test_cloud.public_key, "key_name": "boot-key"})
    took = time.monotonic() - started
    assert stack.status == "CREATE_COMPLETE", stack.status_reason
    out = test_cloud.outputs(stack)
    assert out["signal_data"] == '{"1": "node-1 ready"}'
    assert took >= 3  # the user_data sleeps 3 s before it signals
    # The server was complete (container running) before the node signalled the wait condition.
    events = _events(test_cloud, stack)
    assert events.index(("server", "CREATE_COMPLETE")) < events.index(("wait", "CREATE_COMPLETE"))
    address = out["address"]
    assert address.startswith(f"127.0.{test_cloud.block}.")
    assert out["networks"] == {"private": [address]}
    assert out["addresses"]["private"][0]["addr"] == address
    assert out["name"] == "node-1" and out["show"]["status"] == "ACTIVE"
    assert out["public_key"] == test_cloud.public_key
    # SSH as the image's default user with the key pair's key; sudo as on a cloud VM.
    answer = _ssh(address, str(test_cloud.key), "hostname; sudo -n cat /root/user-data-ran")
    assert answer.split("\n")[:2] == ["node-1", "written by user_data on node-1"]
    # The flavor (m1.small: 1 vCPU, 2048 MB) is the container's limits.
    limits = json.loads(podman("inspect", "--format", "{{json .HostConfig}}",
                               test_cloud.containers_of(stack)[0]["Id"]))
    assert (limits["Memory"], limits["NanoCpus"]) == (2048 * 2**20, 10**9)
    # sshd listens on the server's own address only.
    listening = {(a, p) for a, p in _listening_on(address)}
    assert listening == {(address, 22)}


def _listening_on(address: str) -> list[tuple[str, int]]:
    from disco.testbed.sockets import listening_ipv4
    return [(a, p) for a, p in listening_ipv4() if a == address]


BAD_SERVER = """
heat_template_version: '2018-08-31'
parameters:
  image: {type: string}
  flavor: {type: string}
  network: {type: string}
resources:
  server:
    type: OS::Nova::Server
    properties:
      image: {get_param: image}
      flavor: {get_param: flavor}
      networks: [{network: {get_param: network}}]
"""


def test_unknown_image_flavor_network_fail_with_a_readable_reason(test_cloud: TestCloud, stacks) -> None:
    cases = {"no-such-image": ({"image": "centos-4", "flavor": "m1.small", "network": "private"},
                               "image 'centos-4' not found (images: debian-12)"),
             "no-such-flavor": ({"image": "debian-12", "flavor": "m9.huge", "network": "private"},
                                "flavor 'm9.huge' not found (flavors: m1.large, m1.medium, m1.small, m1.tiny)"),
             "no-such-network": ({"image": "debian-12", "flavor": "m1.small", "network": "dmz"},
                                 "network 'dmz' not found (networks: private, public)")}
    for name, (parameters, reason) in cases.items():
        stack = stacks(name, BAD_SERVER, parameters)
        assert stack.status == "CREATE_FAILED"
        assert reason in stack.status_reason, stack.status_reason
        assert test_cloud.containers_of(stack) == []


WAIT_TIMES_OUT = """
heat_template_version: '2018-08-31'
resources:
  handle:
    type: OS::Heat::WaitConditionHandle
  wait:
    type: OS::Heat::WaitCondition
    properties: {handle: {get_resource: handle}, timeout: 4}
  server:
    type: OS::Nova::Server
    properties:
      image: debian-12
      flavor: m1.tiny
      user_data_format: RAW
      user_data: |
        #!/bin/sh
        echo "this node never signals"
"""


def test_wait_condition_that_is_never_signalled_times_out(test_cloud: TestCloud, stacks) -> None:
    stack = stacks("never-signals", WAIT_TIMES_OUT)
    assert stack.status == "CREATE_FAILED"
    assert stack.status_reason == "Resource CREATE failed: WaitConditionTimeout: resources.wait: 0 of 1 received"


SIGNALLING_SERVER = """
heat_template_version: '2018-08-31'
resources:
  handle:
    type: OS::Heat::WaitConditionHandle
  wait:
    type: OS::Heat::WaitCondition
    properties: {handle: {get_resource: handle}, timeout: 60}
  server:
    type: OS::Nova::Server
    properties:
      image: debian-12
      flavor: m1.tiny
      user_data_format: RAW
      user_data:
        str_replace:
          params: {wc_notify: {get_attr: [handle, curl_cli]}}
          template: |
            #!/bin/sh
            wc_notify --data-binary '{"status": "SUCCESS"}'
"""


def test_delete_leaves_no_container_process_or_seed(test_cloud: TestCloud) -> None:
    stack = test_cloud.create("deleted", SIGNALLING_SERVER)
    assert stack.status == "CREATE_COMPLETE", stack.status_reason
    [container] = test_cloud.containers_of(stack)
    servers_dir = test_cloud.cloud.dir / "servers"
    assert len(list(servers_dir.iterdir())) == 1
    test_cloud.delete(stack)
    assert test_cloud.containers_of(stack) == []
    assert list(servers_dir.iterdir()) == []
    assert [p.pid for p in psutil.process_iter(["cmdline"])
            if any(container["Id"] in part for part in p.info["cmdline"] or [])] == []


def test_api_wants_the_cloud_token(test_cloud: TestCloud) -> None:
    state = test_cloud.cloud.state()
    assert state is not None
    assert httpx.get(f"{state.endpoint}/stacks").status_code == 401
    assert httpx.get(f"{state.endpoint}/stacks", headers={"X-Auth-Token": "guess"}).status_code == 401
    assert httpx.get(f"{state.endpoint}/stacks",
                     headers={"X-Auth-Token": test_cloud.cloud.token()}).status_code == 200


CLOUD_CONFIG = """
heat_template_version: '2018-08-31'
resources:
  handle:
    type: OS::Heat::WaitConditionHandle
  wait:
    type: OS::Heat::WaitCondition
    properties: {handle: {get_resource: handle}, timeout: 90}
  boot_config:
    type: OS::Heat::CloudConfig
    properties:
      cloud_config:
        write_files:
          - {path: /etc/disco-role, content: "master\\n"}
        runcmd:
          - str_replace:
              template: 'wc_notify --data-binary "{\\"status\\": \\"SUCCESS\\", \\"data\\": \\"$(cat /etc/disco-role)\\"}"'
              params: {wc_notify: {get_attr: [handle, curl_cli]}}
  server:
    type: OS::Nova::Server
    properties:
      image: debian-12
      flavor: m1.tiny
      user_data_format: RAW
      user_data: {get_resource: boot_config}
outputs:
  signal_data: {value: {get_attr: [wait, data]}}
"""


def test_cloud_config_resource_as_user_data(test_cloud: TestCloud, stacks) -> None:
    """A software config's id as user_data stands for its text (#cloud-config here), which
    cloud-init runs: write_files, then runcmd signals the wait condition."""
    stack = stacks("cloud-config", CLOUD_CONFIG)
    assert stack.status == "CREATE_COMPLETE", stack.status_reason
    assert test_cloud.outputs(stack)["signal_data"] == '{"1": "master"}'
