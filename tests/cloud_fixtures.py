"""One cloud in a box for the whole session (real Heat, real containers), brought down at the
end even on failure, with a check that nothing of it is left.

Address block: 127.0.<k>.0/24 with k in 150..199, free in the machine's sockets and among the
containers of any cloud (chosen under the testbed fixtures' allocation lock, so concurrent
sessions do not collide). 127.0.x.x is never the local provider's (127.N.x.x, N >= 1) nor the
test hosts' (127.201.k.x; 127.0.100.x by default). Servers get 127.0.k.1–126; Heat's API
listens on 127.0.k.200:8004."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openstack
import pytest
import yaml

from disco.testbed.cloud import database
from disco.testbed.cloud.cloud import CLOUD_LABEL, Cloud
from disco.testbed.cloud.heat_venv import ensure_heat_venv
from disco.testbed.keys import make_login_key
from disco.testbed.podman import containers, require_podman
from disco.testbed.sockets import listening_ipv4
from testbed_fixtures import _allocation_lock

BLOCKS = range(150, 200)
ADDRESS_LABEL = "disco.cloud.address"
STACK_LABEL = "disco.cloud.stack"


def free_block(name_prefix: str = "tc") -> int:
    """A block k free in the sockets and among the clouds' containers, whose cloud name
    f"{name_prefix}{k}" has no database either: a run killed before its `down` (a machine
    stopped mid-suite) leaves its database behind, and `up` rightly refuses to reuse one. That
    database is not ours to drop, so the block is passed over."""
    used = {address for address, _ in listening_ipv4()}
    used |= {c.get("Labels", {}).get(ADDRESS_LABEL, "") for c in containers(CLOUD_LABEL)}
    venv = ensure_heat_venv()
    for k in BLOCKS:
        if any(address.startswith(f"127.0.{k}.") for address in used):
            continue
        if not database.database_exists(venv, database.database_name(f"{name_prefix}{k}")):
            return k
    raise RuntimeError("no free 127.0.k.x block for a test cloud")


@dataclass
class TestCloud:
    __test__ = False
    cloud: Cloud
    block: int
    conn: Any                # openstack.connection.Connection
    key: Path                # private key of the session's key pair (public: key.pub)

    @property
    def public_key(self) -> str:
        return Path(str(self.key) + ".pub").read_text().strip()

    def create(self, name: str, template: str, parameters: dict[str, Any] | None = None,
               timeout: float = 120) -> Any:
        """Creates a stack and waits until it is no longer CREATE_IN_PROGRESS."""
        stack = self.conn.orchestration.create_stack(name=name, template=yaml.safe_load(template),
                                                     parameters=parameters or {})
        return self.wait(stack.id, "CREATE", timeout)

    def wait(self, stack_id: str, action: str, timeout: float = 120) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            stack = self.conn.orchestration.get_stack(stack_id)
            if stack.status != f"{action}_IN_PROGRESS":
                return stack
            if time.monotonic() > deadline:
                raise AssertionError(f"stack {stack.name} still {stack.status} after {timeout} s")
            time.sleep(0.5)

    def delete(self, stack: Any, timeout: float = 60) -> None:
        self.conn.orchestration.delete_stack(stack.id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                found = self.conn.orchestration.get_stack(stack.id)
            except openstack.exceptions.NotFoundException:
                return
            if found is None or found.status == "DELETE_COMPLETE":
                return
            assert found.status != "DELETE_FAILED", found.status_reason
            time.sleep(0.5)
        raise AssertionError(f"stack {stack.name} not deleted within {timeout} s")

    def containers_of(self, stack: Any) -> list[dict[str, Any]]:
        return containers(f"{STACK_LABEL}={stack.id}")

    def outputs(self, stack: Any) -> dict[str, Any]:
        return {o["output_key"]: o["output_value"] for o in stack.outputs or []}


@pytest.fixture(scope="session")
def test_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCloud]:
    require_podman()
    state_dir = tmp_path_factory.mktemp("cloud-state")
    with _allocation_lock():
        block = free_block()
        cloud = Cloud(f"tc{block}", state_dir=state_dir)
        cloud.up(address=f"127.0.{block}.200", port=8004, server_range=f"127.0.{block}.0/25",
                 images=["debian-12", "disco-baked"])
    try:
        key = state_dir / "id_ed25519"
        make_login_key(key, "cloud-test")
        auth = yaml.safe_load(cloud.clouds_yaml())["clouds"][cloud.name]["auth"]
        conn = openstack.connect(auth_type="admin_token", auth=auth)
        yield TestCloud(cloud, block, conn, key)
    finally:
        state = cloud.state()
        cloud.down()
        assert state is not None and cloud.leftovers(state) == []


@pytest.fixture()
def stacks(test_cloud: TestCloud) -> Iterator[Callable[..., Any]]:
    """create(name, template, parameters) -> stack; every stack made is deleted at the end."""
    made: list[Any] = []

    def create(name: str, template: str, parameters: dict[str, Any] | None = None,
               timeout: float = 120) -> Any:
        stack = test_cloud.create(name, template, parameters, timeout)
        made.append(stack)
        return stack

    yield create
    for stack in made:
        test_cloud.delete(stack)


@pytest.fixture()
def heat_stacks(test_cloud: TestCloud) -> Iterator[tuple[Any, list[str]]]:
    """DISCO's own Heat client, made the way the OpenStack provider makes one (from a clouds.yaml
    entry as a dict), and a list of the stack ids a test made: each is deleted at the end, and
    then neither Heat nor podman knows anything of it."""
    from disco.providers.openstack.heat_client import HeatStacks, connect

    entry = yaml.safe_load(test_cloud.cloud.clouds_yaml())["clouds"][test_cloud.cloud.name]
    stacks = HeatStacks(connect(entry))
    made: list[str] = []
    yield stacks, made
    for stack_id in made:
        stacks.delete(stack_id, timeout_s=120)
        assert stacks.state(stack_id) is None
        assert not containers(f"{STACK_LABEL}={stack_id}"), f"a server container of {stack_id} is left"
