"""A cloud node boots DISCO's own node bootstrap from user_data, for real: DISCO's rendered
template on the cloud in a box (real Heat), a server container running cloud-init, disco's
wheel fetched from a real service manager, the node installed and its supervisor started, and
the wait condition signalled with the node's host key — which then pins the SSH connection.
A node whose bootstrap fails signals FAILURE, and the stack fails with the reason."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from pathlib import Path

import asyncssh
import httpx
import pytest
import yaml

from disco.frameworks.render import cache_dir
from disco.node.bootstrap import render_script
from disco.node.bundle import NodeBundle
from disco.node.wheel import self_wheel, wheel_ref
from disco.providers.openstack.design import ExistingNetwork, GeneratedKey, StackDesign, UserData
from disco.providers.openstack.heat_client import HeatStacks
from disco.providers.openstack.keys import generate_key_pair
from disco.providers.openstack.template import render, render_files, stack_parameters
from disco.providers.openstack.user_data import SIGNAL_READY, node_user_data
from sm_fixtures import ServiceManager


def master_design(cluster_id: str, public_key: str, user_data: str) -> StackDesign:
    return StackDesign(cluster_id=cluster_id, cluster_name="boot", master_image="disco-baked",
                       master_flavor="m1.small", worker_image="disco-baked", worker_flavor="m1.small",
                       key=GeneratedKey(public_key=public_key), workers=0, network=ExistingNetwork("private"),
                       external_network="public", floating_ip=True, allowed_cidrs=("127.0.0.0/8",),
                       user_data=UserData(master=user_data, worker=""), wait_timeout=240)


def master_bundle(cluster_id: str, wheel: Path, token: str) -> NodeBundle:
    return NodeBundle(cluster_id=cluster_id, node="master", role="master", host="$master_ip$",
                      disco_wheel=wheel_ref(wheel), log_token_sha256=hashlib.sha256(token.encode()).hexdigest())


def wait_for_boot(stacks: HeatStacks, stack_id: str, resource: str, timeout_s: float) -> dict:
    """The `booted` wait condition's attributes once it completed (the stack is still in progress)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = stacks.state(stack_id)
        assert state is not None and state.status == "CREATE_IN_PROGRESS", (state, stacks.failures(stack_id))
        found = stacks.resource(stack_id, resource)
        if found["resource_status"] == "CREATE_COMPLETE":
            return found["attributes"]
        time.sleep(1)
    raise AssertionError(f"{resource} not signalled within {timeout_s} s")


def test_a_cloud_node_bootstraps_from_user_data_and_signals_its_host_key(
        sm: ServiceManager, heat_stacks, tmp_path: Path) -> None:
    stacks, made = heat_stacks
    cluster_id = str(uuid.uuid4())
    wheel = self_wheel(Path(cache_dir()) / "wheels")  # what the service manager serves
    payload = f"{sm.url}/api/v1/node-payload/{wheel.name}"
    served = httpx.get(payload, trust_env=False)
    assert served.status_code == 200 and hashlib.sha256(served.content).hexdigest() == wheel_ref(wheel).sha256
    assert httpx.get(f"{sm.url}/api/v1/node-payload/disco-0.0.0-py3-none-any.whl",
                     trust_env=False).status_code == 404
    token = "t" * 43
    script = render_script(master_bundle(cluster_id, wheel, token), payload_url=payload)
    keys = generate_key_pair("boot-test")
    design = master_design(cluster_id, keys.public_key, node_user_data("master", script))

    stack_id = stacks.create("disco-boot", render(design), stack_parameters(design), 10, files=render_files(design))
    made.append(stack_id)
    booted = wait_for_boot(stacks, stack_id, "master_booted", 300)
    host_key = yaml.safe_load(booted["data"])["master"]
    assert host_key.startswith("ssh-ed25519 ")
    # Booted is not ready: the stack waits until the node says its frameworks run.
    assert stacks.state(stack_id).status == "CREATE_IN_PROGRESS"
    address = stacks.outputs(stack_id)["master_ip"]

    # The host key from Heat pins the connection; the node runs disco's supervisor.
    private = tmp_path / "id"
    private.write_bytes(keys.private_key)
    private.chmod(0o600)
    known = asyncssh.import_known_hosts(f"{address} {host_key}\n")
    node_dir = f"/opt/disco/clusters/{cluster_id}/master"

    async def on_the_node(command: str) -> str:
        async with asyncssh.connect(address, username="debian", client_keys=[str(private)],
                                    known_hosts=known) as ssh:
            return str((await ssh.run(command, check=True)).stdout)

    status = yaml.safe_load(asyncio.run(on_the_node(
        f"sudo -n /opt/disco/venv/bin/python -I -m disco.node status --node-dir {node_dir}")))
    assert status["supervisor"]["pid"] > 1
    # Its log server answers on the node's own address, behind the cluster's token.
    assert httpx.get(f"http://{address}:8084/deploy.log", trust_env=False).status_code == 401
    deploy = httpx.get(f"http://{address}:8084/deploy.log", headers={"Authorization": f"Bearer {token}"},
                       trust_env=False)
    assert deploy.status_code == 200 and "install done" in deploy.text

    # What the provider does once the node's frameworks are ready: the node signals, the stack completes.
    asyncio.run(on_the_node(f"sudo -n {SIGNAL_READY}"))
    done = stacks.wait(stack_id, "CREATE", 120)
    assert done.status == "CREATE_COMPLETE", stacks.failures(stack_id)
    assert done.outputs["external_ip"] == address  # everything is loopback in the box

    wrong = asyncssh.import_known_hosts(f"{address} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOmT4vKq3Q1Vw2eHcDq9yM8lSgR9rZ3bN0zJpK7x5aUf\n")

    async def impostor() -> None:
        async with asyncssh.connect(address, username="debian", client_keys=[str(private)], known_hosts=wrong):
            pass

    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(impostor())


def test_a_node_whose_bootstrap_fails_fails_the_stack_with_the_reason(sm: ServiceManager, heat_stacks) -> None:
    stacks, made = heat_stacks
    cluster_id = str(uuid.uuid4())
    wheel = self_wheel(Path(cache_dir()) / "wheels")
    # A payload URL that answers 404: the bootstrap cannot install disco.
    broken = render_script(master_bundle(cluster_id, wheel, "t" * 43),
                           payload_url=f"{sm.url}/api/v1/node-payload/disco-0.0.0-py3-none-any.whl")
    design = master_design(cluster_id, generate_key_pair().public_key, node_user_data("master", broken))
    stack_id = stacks.create("disco-broken", render(design), stack_parameters(design), 10, files=render_files(design))
    made.append(stack_id)
    done = stacks.wait(stack_id, "CREATE", 300)
    assert done.status == "CREATE_FAILED"
    reasons = " ".join(stacks.failures(stack_id))
    assert "the node bootstrap failed" in reasons and "404" in reasons, reasons
