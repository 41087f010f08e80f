"""The spec's `cloud` (a clouds.yaml entry): what `check_cloud_entry` takes and refuses (each
refusal names the key and never a value), that the published schema says exactly the same, and
what `describe_cloud` may show."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema_rs
import pytest

from disco.cluster.api.spec_schema import CLOUD_EXAMPLE, cloud_field_schema
from disco.cluster.cloud_entry import check_cloud_entry, describe_cloud
from disco.cluster.spec import parse_spec
from disco.errors import InvalidSpec

PASSWORD = "pw-Zq7#not-in-any-answer"
SECRET = "appcred-secret-Kx91-not-in-any-answer"
TOKEN = "token-Wm42-not-in-any-answer"
SECRETS = (PASSWORD, SECRET, TOKEN)

PASSWORD_CLOUD = {"auth": {"auth_url": "https://keystone.example.org:5000/v3", "username": "alice",
                           "password": PASSWORD, "project_name": "science", "user_domain_name": "Default",
                           "project_domain_name": "Default"},
                  "region_name": "RegionOne", "interface": "public", "identity_api_version": 3}
APPCRED_CLOUD = {"auth_type": "v3applicationcredential",
                 "auth": {"auth_url": "http://127.0.0.1:5000/v3", "application_credential_id": "a1b2",
                          "application_credential_secret": SECRET}}
APPCRED_BY_NAME = {"auth_type": "v3applicationcredential",
                   "auth": {"auth_url": "http://[::1]:5000/v3", "application_credential_name": "ci",
                            "username": "alice", "user_domain_name": "Default",
                            "application_credential_secret": SECRET}}
TOKEN_CLOUD = {"auth_type": "admin_token", "auth": {"endpoint": "http://127.0.0.1:8004/v1/admin", "token": TOKEN},
               "region_name": "RegionOne"}
V3_PASSWORD = {"auth_type": "v3password", "auth": {"auth_url": "https://k.example.org/identity/v3",
                                                   "user_id": "0f1e", "password": PASSWORD, "project_id": "77"},
               "verify": False, "api_timeout": 30}

GOOD = [PASSWORD_CLOUD, APPCRED_CLOUD, APPCRED_BY_NAME, TOKEN_CLOUD, V3_PASSWORD, CLOUD_EXAMPLE]


def changed(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """`base` with the value at dotted `path` set (or removed, for value REMOVE)."""
    entry = copy.deepcopy(base)
    *parents, last = path.split(".")
    target = entry
    for part in parents:
        target = target[part]
    if value is REMOVE:
        del target[last]
    else:
        target[last] = value
    return entry


REMOVE = object()

# (entry, the key the error names)
BAD = [
    (["auth"], "cloud"),
    (PASSWORD, "cloud"),
    (changed(PASSWORD_CLOUD, "auth_type", "v2password"), "cloud.auth_type"),
    (changed(PASSWORD_CLOUD, "auth_type", "applicationcredential"), "cloud.auth_type"),
    (changed(PASSWORD_CLOUD, "auth_type", ["password"]), "cloud.auth_type"),
    (changed(PASSWORD_CLOUD, "auth", PASSWORD), "cloud.auth"),
    (changed(PASSWORD_CLOUD, "auth", REMOVE), "cloud.auth"),
    (changed(PASSWORD_CLOUD, "auth.password", REMOVE), "cloud.auth.password"),
    (changed(PASSWORD_CLOUD, "auth.auth_url", REMOVE), "cloud.auth.auth_url"),
    (changed(PASSWORD_CLOUD, "auth.username", REMOVE), "cloud.auth.username or cloud.auth.user_id"),
    (changed(PASSWORD_CLOUD, "auth.password", ""), "cloud.auth.password"),
    (changed(PASSWORD_CLOUD, "auth.password", 1234), "cloud.auth.password"),
    (changed(PASSWORD_CLOUD, "auth.password", PASSWORD + "\n"), "cloud.auth.password"),
    (changed(PASSWORD_CLOUD, "auth.password", "x" * 5000), "cloud.auth.password"),
    (changed(PASSWORD_CLOUD, "auth.username", "a" * 256), "cloud.auth.username"),
    (changed(PASSWORD_CLOUD, "auth.auth_url", f"https://alice:{PASSWORD}@keystone.example.org/v3"),
     "cloud.auth.auth_url"),
    (changed(PASSWORD_CLOUD, "auth.auth_url", "ftp://keystone.example.org/v3"), "cloud.auth.auth_url"),
    (changed(PASSWORD_CLOUD, "auth.auth_url", "https:///v3"), "cloud.auth.auth_url"),
    (changed(PASSWORD_CLOUD, "auth.auth_url", "keystone.example.org:5000"), "cloud.auth.auth_url"),
    (changed(PASSWORD_CLOUD, "auth.auth_url", f"https://k.example.org/v3?password={PASSWORD}"),
     "cloud.auth.auth_url"),
    (changed(PASSWORD_CLOUD, "auth.auth_url", "https://k.example.org:99999/v3"), "cloud.auth.auth_url"),
    (changed(PASSWORD_CLOUD, "auth.auth_url", "https://k.example.org/v 3"), "cloud.auth.auth_url"),
    (changed(PASSWORD_CLOUD, "auth.auth_url", "https://k.example.org/" + "v" * 2100), "cloud.auth.auth_url"),
    (changed(PASSWORD_CLOUD, "auth.token", TOKEN), "cloud.auth.token"),
    (changed(PASSWORD_CLOUD, "auth.tenant_name", "science"), "cloud.auth.tenant_name"),
    (changed(PASSWORD_CLOUD, f"auth.{PASSWORD}", "x"), "cloud.auth.<a key that is not a name>"),
    (changed(PASSWORD_CLOUD, "cacert", "/etc/ssl/certs/ca.pem"), "cloud.cacert"),
    (changed(PASSWORD_CLOUD, "profile", "vexxhost"), "cloud.profile"),
    (changed(PASSWORD_CLOUD, "password", PASSWORD), "cloud.password"),
    (changed(PASSWORD_CLOUD, "verify", "/etc/ssl/certs/ca.pem"), "cloud.verify"),
    (changed(PASSWORD_CLOUD, "interface", "private"), "cloud.interface"),
    (changed(PASSWORD_CLOUD, "identity_api_version", 2), "cloud.identity_api_version"),
    (changed(PASSWORD_CLOUD, "identity_api_version", True), "cloud.identity_api_version"),
    (changed(PASSWORD_CLOUD, "region_name", ""), "cloud.region_name"),
    (changed(V3_PASSWORD, "api_timeout", 0), "cloud.api_timeout"),
    (changed(V3_PASSWORD, "api_timeout", True), "cloud.api_timeout"),
    (changed(V3_PASSWORD, "auth.default_domain_name", "Default"), "cloud.auth.default_domain_name"),
    (changed(APPCRED_CLOUD, "auth.application_credential_secret", REMOVE), "cloud.auth.application_credential_secret"),
    (changed(APPCRED_CLOUD, "auth.application_credential_id", REMOVE),
     "cloud.auth.application_credential_id or cloud.auth.application_credential_name + cloud.auth.username "
     "or cloud.auth.application_credential_name + cloud.auth.user_id"),
    (changed(APPCRED_BY_NAME, "auth.username", REMOVE),
     "cloud.auth.application_credential_id or cloud.auth.application_credential_name + cloud.auth.username "
     "or cloud.auth.application_credential_name + cloud.auth.user_id"),
    (changed(APPCRED_CLOUD, "auth.password", PASSWORD), "cloud.auth.password"),
    (changed(TOKEN_CLOUD, "auth.token", REMOVE), "cloud.auth.token"),
    (changed(TOKEN_CLOUD, "auth.endpoint", f"http://admin:{TOKEN}@127.0.0.1:8004/v1"), "cloud.auth.endpoint"),
    (changed(TOKEN_CLOUD, "auth.auth_url", "http://127.0.0.1:5000/v3"), "cloud.auth.auth_url"),
]

VALIDATOR = jsonschema_rs.validator_for(cloud_field_schema())


@pytest.mark.parametrize("entry", GOOD)
def test_a_good_entry_is_taken_and_the_schema_agrees(entry: dict[str, Any]) -> None:
    checked = check_cloud_entry(entry)
    assert checked["auth"] == entry["auth"]
    assert checked["auth_type"] == entry.get("auth_type", "password")
    assert VALIDATOR.is_valid(entry)
    assert VALIDATOR.is_valid(None)


@pytest.mark.parametrize(("entry", "key"), BAD, ids=[key for _, key in BAD])
def test_a_bad_entry_is_refused_naming_the_key_and_no_value(entry: Any, key: str) -> None:
    with pytest.raises(InvalidSpec) as raised:
        check_cloud_entry(entry)
    error = raised.value
    assert (error.status, error.code, error.details) == (422, "invalid_cloud", {"key": key})
    assert key in error.message
    shown = json.dumps(error.to_dict())
    for secret in SECRETS:
        assert secret not in shown
    for value in ("science", "/etc/ssl", "vexxhost", "private", "ftp://", "99999"):
        assert value not in shown
    # The published schema refuses it too (a client that follows it never meets this 422).
    assert not VALIDATOR.is_valid(entry)


@pytest.mark.parametrize(("entry", "key"), BAD[:8], ids=[key for _, key in BAD[:8]])
def test_a_spec_with_a_bad_cloud_is_refused_the_same_way(entry: Any, key: str) -> None:
    with pytest.raises(InvalidSpec) as raised:
        parse_spec({"workers": 0, "cloud": entry})
    assert raised.value.code == "invalid_cloud" and raised.value.details == {"key": key}
    assert PASSWORD not in json.dumps(raised.value.to_dict())


def test_describe_shows_where_and_who_never_a_secret() -> None:
    assert describe_cloud(check_cloud_entry(PASSWORD_CLOUD)) == {
        "auth_type": "password", "auth_url": "https://keystone.example.org:5000/v3", "username": "alice",
        "user_domain_name": "Default", "project_name": "science", "project_domain_name": "Default",
        "region_name": "RegionOne"}
    assert describe_cloud(check_cloud_entry(APPCRED_CLOUD)) == {
        "auth_type": "v3applicationcredential", "auth_url": "http://127.0.0.1:5000/v3"}
    assert describe_cloud(check_cloud_entry(TOKEN_CLOUD)) == {
        "auth_type": "admin_token", "endpoint": "http://127.0.0.1:8004/v1/admin", "region_name": "RegionOne"}
    for entry in GOOD:
        shown = json.dumps(describe_cloud(check_cloud_entry(entry)))
        assert not any(secret in shown for secret in SECRETS)


def test_a_spec_never_shows_its_cloud() -> None:
    spec = parse_spec({"workers": 0, "cloud": PASSWORD_CLOUD})
    assert spec.cloud is not None and spec.cloud["auth"]["password"] == PASSWORD
    assert PASSWORD not in repr(spec) and PASSWORD not in str(spec) and PASSWORD not in f"{spec!r}"
    assert "cloud=<hidden>" in repr(spec)
