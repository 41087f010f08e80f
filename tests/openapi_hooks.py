"""Schemathesis hooks for tests/test_openapi.py (loaded by the schemathesis run through
SCHEMATHESIS_HOOKS): the fuzzer may create clusters, but only of the cheap test frameworks
(tests/frameworks), so that a run stays small on two cores. Everything the schema allows is
still generated for every other field; bodies that name a real framework (Spark's JVMs, Dask,
Map/Reduce) are left out of the run, not changed."""

from __future__ import annotations

from typing import Any

import re

import schemathesis

from disco.cluster.cloud_entry import URL_PATTERN
from empty_cloud import MADE_UP_AUTH_URL, REGIONS
from disco.cluster.secrets import ssh_keypair

CHEAP_FRAMEWORKS = {"webecho", "crashy", "neverready", "warmcrashy"}
# Hosts the fuzzer adds are contacted at once (an SSH check): only ever at a loopback address
# nothing listens on (the sshd test fixture keeps to 127.0.9.2-249).
FUZZ_HOST_ADDRESS = "127.0.9.254"
# Nor a cloud: a valid URL in a cluster's `cloud` becomes the stand-in's (the made_up_cloud fixture).
FUZZ_CLOUD_URL = MADE_UP_AUTH_URL
CLOUD_URL = re.compile(URL_PATTERN)
ADDRESS_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:-]{0,254}")
HOST_KEY_PATTERN = re.compile(r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,2}( [^\n]*)?")
# A schema can say what a key looks like, not that its bytes are a key: valid-looking keys become
# real ones, so that valid bodies reach the pool (an invalid one is left as it is).
FUZZ_CLIENT_KEY = ssh_keypair("fuzz")[1]
FUZZ_HOST_KEY = " ".join(ssh_keypair("fuzz-host")[0].split()[:2])


def _names_only_cheap_frameworks(body: Any) -> bool:
    if not isinstance(body, dict) or not isinstance(body.get("frameworks"), list):
        return True
    for item in body["frameworks"]:
        name = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str) and name not in CHEAP_FRAMEWORKS:
            return False
    return True


@schemathesis.hook("filter_case")
def cheap_clusters_only(context: Any, case: Any) -> bool:
    if case.operation.method.upper() == "POST" and case.operation.path == "/api/v1/clusters":
        return _names_only_cheap_frameworks(case.body)
    return True


@schemathesis.hook("filter_case")
def no_endless_streams(context: Any, case: Any) -> bool:
    """`follow=true` streams last as long as the cluster; test_openapi.py reads one that ends."""
    return not (case.operation.path.endswith(("/events", "/{node}/{process}"))
                and str((case.query or {}).get("follow", "")).lower() in ("true", "1", "yes", "on"))


@schemathesis.hook("map_case")
def hosts_on_loopback_only(context: Any, case: Any) -> Any:
    """A valid `address` in a `POST /api/v1/hosts` body becomes a loopback one: a check must not
    send traffic to another machine, nor ask a resolver about a made-up name. An invalid one is
    left as it is (it is what that case tests)."""
    if not (case.operation.method.upper() == "POST" and case.operation.path == "/api/v1/hosts"
            and isinstance(case.body, dict)):
        return case
    body = dict(case.body)
    if isinstance(body.get("address"), str) and ADDRESS_PATTERN.fullmatch(body["address"]):
        body["address"] = FUZZ_HOST_ADDRESS
    if isinstance(body.get("private_key"), str) and 1 <= len(body["private_key"]) <= 16384:
        body["private_key"] = FUZZ_CLIENT_KEY
    if isinstance(body.get("host_key"), str) and HOST_KEY_PATTERN.fullmatch(body["host_key"]):
        body["host_key"] = FUZZ_HOST_KEY
    case.body = body
    return case


@schemathesis.hook("map_case")
def clouds_on_loopback_only(context: Any, case: Any) -> Any:
    """A valid `auth_url` or `endpoint` in a create body's `cloud` becomes the loopback stand-in's
    (tests/empty_cloud.py): the OpenStack provider must not reach for a made-up host."""
    if not (case.operation.method.upper() == "POST" and case.operation.path == "/api/v1/clusters"
            and isinstance(case.body, dict) and isinstance(case.body.get("cloud"), dict)
            and isinstance(case.body["cloud"].get("auth"), dict)):
        return case
    auth = dict(case.body["cloud"]["auth"])
    for key in ("auth_url", "endpoint"):
        if isinstance(auth.get(key), str) and CLOUD_URL.fullmatch(auth[key]):
            auth[key] = FUZZ_CLOUD_URL
    cloud = {**case.body["cloud"], "auth": auth}
    if isinstance(cloud.get("region_name"), str) and cloud["region_name"]:
        # In a region the stand-in's catalog has: a made-up one would keep the cluster's delete
        # asking (a catalog may gain a region), as against a real cloud.
        cloud["region_name"] = REGIONS[0]
    case.body = {**case.body, "cloud": cloud}
    return case
