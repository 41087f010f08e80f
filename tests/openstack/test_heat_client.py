"""The OpenStack provider's Heat client against a real Heat (the cloud in a box): stacks made,
watched, signalled, scaled, suspended, failed with their reasons, deleted without a trace."""

from __future__ import annotations

import httpx
import pytest
import yaml

from cloud_fixtures import TestCloud
from disco.providers.openstack.heat_client import HeatError, connect

SIGNALLED = """
heat_template_version: '2018-08-31'
parameters:
  nodes: {type: number, default: 2}
resources:
  handle:
    type: OS::Heat::WaitConditionHandle
  booted:
    type: OS::Heat::WaitCondition
    properties:
      handle: {get_resource: handle}
      count: {get_param: nodes}
      timeout: 60
outputs:
  data: {value: {get_attr: [booted, data]}}
"""

GROUP = """
heat_template_version: '2018-08-31'
parameters:
  count: {type: number, default: 1}
  fail: {type: boolean, default: false}
resources:
  group:
    type: OS::Heat::ResourceGroup
    properties:
      count: {get_param: count}
      resource_def:
        type: OS::Heat::TestResource
        properties:
          value: member-%index%
          fail: {get_param: fail}
outputs:
  values: {value: {get_attr: [group, output]}}
"""


def test_a_wait_condition_completes_when_every_node_signalled_with_its_data(heat_stacks) -> None:
    stacks, made = heat_stacks
    stack_id = stacks.create("signals", yaml.safe_load(SIGNALLED), {"nodes": 2}, timeout_mins=5)
    made.append(stack_id)
    assert stacks.state(stack_id).status == "CREATE_IN_PROGRESS"
    handle = stacks.resource_attributes(stack_id, "handle")
    # What a node does (curl_cli is the same request): POST to the handle's endpoint with its token.
    for node, key in (("master", "ssh-ed25519 AAAAmaster"), ("worker-1", "ssh-ed25519 AAAAworker")):
        answer = httpx.post(handle["endpoint"], headers={"X-Auth-Token": handle["token"]},
                            json={"status": "SUCCESS", "id": node, "data": key}, trust_env=False)
        assert answer.status_code == 200, answer.text
    seen: list[dict] = []
    done = stacks.wait(stack_id, "CREATE", 60, on_event=seen.append)
    assert done.status == "CREATE_COMPLETE"
    assert yaml.safe_load(done.outputs["data"]) == {"master": "ssh-ed25519 AAAAmaster",
                                                   "worker-1": "ssh-ed25519 AAAAworker"}
    assert any(e["logical_resource_id"] == "booted" and e["resource_status"] == "CREATE_COMPLETE" for e in seen)


def test_scale_suspend_resume_and_delete(heat_stacks) -> None:
    stacks, made = heat_stacks
    template = yaml.safe_load(GROUP)
    stack_id = stacks.create("group", template, {"count": 1}, timeout_mins=5)
    made.append(stack_id)
    assert stacks.wait(stack_id, "CREATE", 60).outputs["values"] == ["member-0"]
    stacks.update(stack_id, template, {"count": 3}, timeout_mins=5)
    grown = stacks.wait(stack_id, "UPDATE", 60)
    assert grown.status == "UPDATE_COMPLETE" and grown.outputs["values"] == ["member-0", "member-1", "member-2"]
    stacks.suspend(stack_id)
    assert stacks.wait(stack_id, "SUSPEND", 60).status == "SUSPEND_COMPLETE"
    stacks.resume(stack_id)
    assert stacks.wait(stack_id, "RESUME", 60).status == "RESUME_COMPLETE"
    stacks.delete(stack_id, timeout_s=60)
    assert stacks.state(stack_id) is None
    stacks.delete(stack_id, timeout_s=60)  # gone already: nothing to do, no error


def test_a_failed_create_names_the_resource_and_its_reason(heat_stacks) -> None:
    stacks, made = heat_stacks
    stack_id = stacks.create("failing", yaml.safe_load(GROUP), {"count": 2, "fail": True}, timeout_mins=5)
    made.append(stack_id)
    state = stacks.wait(stack_id, "CREATE", 60)
    assert state.status == "CREATE_FAILED"
    reasons = stacks.failures(stack_id)
    assert reasons and "Test Resource failed" in reasons[0], reasons
    assert reasons[0].split(":")[0] in ("0", "1"), reasons  # the group's member, the root cause first


def test_a_template_heat_refuses_makes_no_stack(heat_stacks, test_cloud: TestCloud) -> None:
    stacks, _ = heat_stacks
    bad = {"heat_template_version": "2018-08-31", "resources": {"x": {"type": "OS::No::Such"}}}
    with pytest.raises(HeatError, match="Heat refused the stack: .*OS::No::Such"):
        stacks.create("refused", bad, {}, timeout_mins=5)
    assert not [s for s in test_cloud.conn.orchestration.stacks() if s.name == "refused"]


def test_unusable_cloud_settings_are_a_clear_error() -> None:
    with pytest.raises(HeatError, match="not usable"):
        connect({"auth_type": "no-such-plugin", "auth": {}})
