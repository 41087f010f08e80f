"""The create body's published schema says of `provider_options` exactly what each provider's
check_options says: a valid set is taken by both, each invalid one refused by both (the provider
with 422 invalid_provider_option). Both JSON schema validators are asked: jsonschema_rs (what
schemathesis and test_openapi.py use) and jsonschema."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import jsonschema_rs
import pytest

from disco.cluster.api.spec_schema import refine_spec_schema
from disco.cluster.spec import ClusterSpec
from disco.providers.openstack.options import read_options
from disco.errors import InvalidSpec
from disco.frameworks.catalog import load_catalog
from disco.providers import available, options_schema
from disco.providers.base import Provider
from disco.providers.openstack.provider import OpenStackProvider
from disco.providers.option_patterns import decimal_range_pattern, name_pattern
from disco.providers.ssh import SSHProvider

CLOUD = {"auth_type": "v3applicationcredential",
         "auth": {"auth_url": "http://127.0.9.254:9/v3", "application_credential_id": "id",
                  "application_credential_secret": "secret"}}
STACK = {"image": "debian-12", "flavor": "m1.small", "external_network": "public"}


@functools.cache
def published(default_provider: str) -> dict[str, Any]:
    spec = ClusterSpec.model_json_schema()
    refine_spec_schema(spec, load_catalog(), available(), 4, default_provider)
    return spec


@pytest.fixture(scope="module")
def providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Provider]]:
    # check_options needs neither the pool nor the cloud's access: none is lent.
    cache = tmp_path_factory.mktemp("cache")
    yield {"ssh": SSHProvider(None, cache),  # type: ignore[arg-type]
           "openstack": OpenStackProvider(None, cache, "http://127.0.0.1:8080")}  # type: ignore[arg-type]


def schema_says(spec: dict[str, Any], body: dict[str, Any]) -> bool:
    rs = jsonschema_rs.validator_for(spec).is_valid(body)
    py = jsonschema.Draft202012Validator(spec).is_valid(body)
    assert rs is py, body
    return rs


def provider_says(provider: Provider, options: dict[str, str]) -> bool:
    try:
        provider.check_options(options)
    except InvalidSpec as error:
        assert error.code == "invalid_provider_option" and error.status == 422
        assert isinstance(error.details, dict) and error.details["problems"], error.details
        return False
    return True


OPENSTACK_CASES = [
    (STACK, True),
    ({"master_image": "a", "worker_image": "b", "master_flavor": "c", "worker_flavor": "d",
      "external_network": "public"}, True),
    ({**STACK, "master_image": "other image", "worker_flavor": "m1.large"}, True),
    ({"image": "i", "flavor": "f", "network": "private", "floating_ip": "false"}, True),
    ({**STACK, "network": "private", "floating_ip": "true", "key_name": "my key", "user": "cloud-user",
      "timeout": "43200"}, True),
    ({**STACK, "cidr": "10.42.0.0/24", "timeout": "1"}, True),
    ({**STACK, "image": "Ubuntu 24.04 (ñ)"}, True),
    ({}, False),
    ({"image": "i", "external_network": "public"}, False),
    ({"master_image": "i", "flavor": "f", "external_network": "public"}, False),
    ({"image": "i", "flavor": "f"}, False),
    ({"image": "i", "flavor": "f", "network": "private"}, False),
    ({**STACK, "surprise": "1"}, False),
    ({**STACK, "image": ""}, False),
    ({**STACK, "image": " debian"}, False),
    ({**STACK, "flavor": "m1.small\u3000"}, False),
    ({**STACK, "image": "a\x01b"}, False),
    ({**STACK, "image": "x" * 256}, False),
    ({**STACK, "floating_ip": "yes"}, False),
    ({**STACK, "floating_ip": "True"}, False),
    ({**STACK, "floating_ip": " true"}, False),
    ({**STACK, "timeout": "0"}, False),
    ({**STACK, "timeout": "43201"}, False),
    ({**STACK, "timeout": "0600"}, False),
    ({**STACK, "timeout": " 600"}, False),
    ({**STACK, "timeout": "+600"}, False),
    ({**STACK, "user": "root; reboot"}, False),
    ({**STACK, "user": "1abc"}, False),
    ({**STACK, "network": "private", "cidr": "10.42.0.0/24"}, False),
    ({**STACK, "cidr": "10.42.0.0"}, False),
    ({**STACK, "cidr": "10.42.0.256/24"}, False),
    ({**STACK, "cidr": "10.042.0.0/24"}, False),
    ({**STACK, "cidr": "10.42.0.7/25"}, True),    # host bits dropped
    ({**STACK, "cidr": "10.0.0.0/8"}, True),
    ({**STACK, "cidr": "10.42.0.0/26"}, False),   # no room for the master and 64 workers
    ({**STACK, "cidr": "10.42.0.0/32"}, False),
    ({**STACK, "key_name": " mine"}, False),
    ({**STACK, "key_name": "mine/theirs"}, False),
]
SSH_CASES = [
    ({}, True),
    ({"hosts": "lab-1"}, True),
    ({"hosts": "lab-1,lab-2,10.0.0.7:2222", "labels": "big,gpu.v2"}, True),
    ({"labels": "big"}, True),
    ({"hosts": ""}, False),
    ({"hosts": ","}, False),
    ({"hosts": "lab-1,,lab-2"}, False),
    ({"hosts": "lab-1, lab-2"}, False),
    ({"hosts": "lab-1,"}, False),
    ({"labels": "-big"}, False),
    ({"labels": "x" * 33}, False),
    ({"flavor": "big"}, False),
]


@pytest.mark.parametrize(("options", "accepted"), OPENSTACK_CASES)
def test_openstack_options_schema_and_check_agree(providers: dict[str, Provider], options: dict[str, str],
                                                  accepted: bool) -> None:
    body = {"provider": "openstack", "cloud": CLOUD, "provider_options": options}
    assert provider_says(providers["openstack"], options) is accepted
    assert schema_says(published("local"), body) is accepted
    assert schema_says(options_schema("openstack"), options) is accepted
    # The default provider's rules hold when the body names none.
    del body["provider"]
    assert schema_says(published("openstack"), body) is accepted


@pytest.mark.parametrize(("options", "accepted"), SSH_CASES)
def test_ssh_options_schema_and_check_agree(providers: dict[str, Provider], options: dict[str, str],
                                            accepted: bool) -> None:
    assert provider_says(providers["ssh"], options) is accepted
    assert schema_says(published("local"), {"provider": "ssh", "provider_options": options}) is accepted
    assert schema_says(published("ssh"), {"provider_options": options}) is accepted
    assert schema_says(published("ssh"), {"provider": None, "provider_options": options}) is accepted


def test_openstack_options_may_not_be_left_out() -> None:
    assert not schema_says(published("local"), {"provider": "openstack", "cloud": CLOUD})
    assert not schema_says(published("openstack"), {"cloud": CLOUD})


def test_other_providers_take_any_map_of_strings() -> None:
    spec = published("local")
    assert schema_says(spec, {"provider_options": {"anything": "at all"}})
    assert schema_says(spec, {"provider": "local", "provider_options": {"anything": "at all"}})
    assert not schema_says(spec, {"provider": "local", "provider_options": {"anything": 1}})
    # An ssh default does not bind a body that names another provider.
    assert schema_says(published("ssh"), {"provider": "local", "provider_options": {"flavor": "big"}})


def test_a_final_newline_is_refused_as_json_schema_reads_the_pattern(providers: dict[str, Provider]) -> None:
    # Python's `$` also matches before a final newline; JSON Schema's (ECMA-262) does not, and
    # neither does the providers' check. jsonschema (Python re) would say otherwise.
    for name, options in (("openstack", {**STACK, "image": "debian\n"}), ("ssh", {"hosts": "lab-1\n"})):
        assert not provider_says(providers[name], options)
        assert not jsonschema_rs.validator_for(options_schema(name)).is_valid(options)


def test_patterns_agree_with_python() -> None:
    timeout = re.compile(decimal_range_pattern(1, 43200))
    assert [n for n in range(0, 50000) if bool(timeout.fullmatch(str(n))) != (1 <= n <= 43200)] == []
    # A name's first and last characters: no white space (as str.strip sees it), no control character.
    edge = re.compile(name_pattern(255)[1:].split("(?:")[0])
    refused = [c for c in range(0x10000) if not edge.fullmatch(chr(c))]
    assert refused == [c for c in range(0x10000) if chr(c).isspace() or c < 0x20 or 0x7f <= c <= 0x9f]


def test_options_schema_is_a_copy() -> None:
    options_schema("openstack")["properties"].clear()
    assert options_schema("openstack")["properties"]


def test_a_cidr_with_host_bits_is_its_network() -> None:
    assert read_options({**STACK, "cidr": "10.42.0.77/24"}).cidr == "10.42.0.0/24"
