"""Heat's own validator (openstack-heat, in its own environment, offline and without a
network) accepts every template the renderer makes, and rejects broken ones — so a template
that passes here is one Heat's API takes. All templates go to one validator process."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import yaml

from disco.providers.openstack.template import render, render_files
from disco.providers.openstack.worker_template import WORKER_TEMPLATE_NAME
from disco.testbed.cloud.template_check import TemplateCase, Verdict, validate_templates
from openstack_designs import matrix, typical_design

MATRIX = matrix()


def _broken(name: str, change: Callable[[dict, dict], None]) -> TemplateCase:
    """The typical template and worker template (as data), changed by `change`."""
    design = typical_design()
    template = copy.deepcopy(render(design))
    worker = yaml.safe_load(render_files(design)[WORKER_TEMPLATE_NAME])
    change(template, worker)
    return TemplateCase(name, template, {WORKER_TEMPLATE_NAME: yaml.safe_dump(worker)})


def _set(path: list, value) -> Callable[[dict, dict], None]:
    def change(template: dict, worker: dict) -> None:
        target = worker if path[0] == "worker" else template
        for key in path[1:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


# name -> (the broken case, what Heat's error must name)
NEGATIVE = {
    "unknown-type": (_set(["main", "resources", "master", "type"], "OS::Nova::Serverr"),
                     "The Resource Type (OS::Nova::Serverr) could not be found"),
    "unknown-property": (_set(["main", "resources", "master", "properties", "colour"], "blue"),
                         "Unknown Property colour"),
    "unknown-property-in-resource-def": (
        _set(["main", "resources", "workers", "properties", "resource_def", "properties", "colour"], "blue"),
        "resources.workers<nested_stack>.resources[0].properties: Unknown Property colour"),
    "unknown-property-in-worker-server": (
        _set(["worker", "resources", "server", "properties", "colour"], "blue"),
        "<disco-worker.yaml>.resources.server.properties: Unknown Property colour"),
    "bad-get-attr-in-output": (
        _set(["main", "outputs", "master_ip", "value"], {"get_attr": ["master_port", "no_such_attribute"]}),
        "The Referenced Attribute (master_port no_such_attribute) is incorrect"),
    "bad-get-attr-in-worker": (
        _set(["worker", "resources", "server", "properties", "user_data", "str_replace", "params",
              "$wait_signal$"], {"get_attr": ["ready_handle", "curl"]}),
        "The Referenced Attribute (ready_handle curl) is incorrect"),
    "get-attr-of-missing-resource": (
        _set(["main", "outputs", "external_ip", "value"], {"get_attr": ["no_such_resource", "first_address"]}),
        'The specified reference "no_such_resource"'),
    "port-out-of-range": (
        _set(["main", "resources", "security_group", "properties", "rules", 0, "port_range_max"], 70000),
        "port_range_max: 70000 is out of range"),
    "invalid-cidr": (_set(["main", "resources", "subnet", "properties", "cidr"], "10.20.0.300/24"),
                     "subnet.properties.cidr: Error validating value '10.20.0.300/24'"),
}


def _cases() -> list[TemplateCase]:
    cases = [TemplateCase(name, render(design), render_files(design)) for name, design in MATRIX]
    # With no workers Heat skips the worker's template; validate it as the scale-up from zero.
    cases += [TemplateCase(f"{name}-scaled-to-3", render(design), render_files(design), {"worker_count": 3})
              for name, design in MATRIX if design.workers == 0]
    typical = typical_design()
    cases.append(TemplateCase("too-many-workers", render(typical), render_files(typical), {"worker_count": 65}))
    cases.append(TemplateCase("no-worker-template", render(typical)))
    cases += [_broken(name, change) for name, (change, _) in NEGATIVE.items()]
    return cases


@pytest.fixture(scope="module")
def verdicts() -> dict[str, Verdict]:
    return {verdict.name: verdict for verdict in validate_templates(_cases())}


@pytest.mark.parametrize("name", [name for name, _ in MATRIX])
def test_every_rendered_template_is_valid(verdicts, name):
    assert verdicts[name].valid, verdicts[name].error


@pytest.mark.parametrize("name", [name for name, design in MATRIX if design.workers == 0])
def test_a_cluster_without_workers_scales_up(verdicts, name):
    verdict = verdicts[f"{name}-scaled-to-3"]
    assert verdict.valid, verdict.error


def test_the_worker_count_is_bounded(verdicts):
    verdict = verdicts["too-many-workers"]
    assert not verdict.valid and "worker_count" in verdict.error and "64" in verdict.error


def test_the_worker_template_must_come_with_the_stack(verdicts):
    verdict = verdicts["no-worker-template"]
    assert not verdict.valid and WORKER_TEMPLATE_NAME in verdict.error


@pytest.mark.parametrize("name", list(NEGATIVE))
def test_the_validator_bites(verdicts, name):
    verdict = verdicts[name]
    assert not verdict.valid, f"Heat accepted the broken template {name}"
    assert NEGATIVE[name][1] in verdict.error, verdict.error
