"""DISCO's Heat client logging in through a real Keystone (the cloud in a box `--keystone`):
a password entry and an application credential find Heat in Keystone's catalog and make and
delete a stack in the demo project; Heat checks each token with Keystone (keystonemiddleware);
a wrong password and a deleted application credential give DISCO's own error, and no secret
shows in an error or in a log of Keystone or Heat."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
import yaml

from cloud_fixtures import TestCloud
from disco.providers.openstack.heat_client import HeatError, HeatStacks, connect
from disco.testbed.cloud.keystone import keystone_dir

NONE = {"heat_template_version": "2021-04-16", "resources": {"nothing": {"type": "OS::Heat::None"}}}
# Every secret the tests used: none may appear in a log of the box (test_no_secret_in_the_logs).
SECRETS: list[str] = []


def demo_entry(cloud: TestCloud) -> dict[str, Any]:
    entry = yaml.safe_load(cloud.cloud.clouds_yaml())["clouds"][cloud.cloud.name]
    SECRETS.append(entry["auth"]["password"])
    return entry


def make_and_delete(entry: dict[str, Any], name: str) -> str:
    """A one-resource stack made and deleted through DISCO's client; the project Heat put it in."""
    stacks = HeatStacks(connect(entry))
    stack_id = stacks.create(name, NONE, {}, timeout_mins=5)
    try:
        state = stacks.wait(stack_id, "CREATE", timeout_s=120)
        assert state is not None and state.status == "CREATE_COMPLETE", state
        project = stacks.heat.get_stack(stack_id).location.project.id
    finally:
        stacks.delete(stack_id, timeout_s=120)
    assert stacks.state(stack_id) is None
    return str(project)


def test_the_up_entry_is_a_password_login_to_keystone(keystone_cloud: TestCloud) -> None:
    entry = demo_entry(keystone_cloud)
    block = keystone_cloud.block
    assert entry["auth_type"] == "password"
    assert entry["auth"]["auth_url"] == f"http://127.0.{block}.201:5000/v3"
    assert {k: entry["auth"][k] for k in ("username", "project_name", "user_domain_name")} == {
        "username": "demo", "project_name": "demo", "user_domain_name": "Default"}
    assert len(entry["auth"]["password"]) >= 24
    assert keystone_cloud.cloud.clouds_yaml_path.stat().st_mode & 0o777 == 0o600
    # Heat is found in Keystone's catalog, with the demo project's id in its URL.
    conn = connect(entry)
    project_id = conn.current_project_id
    assert conn.orchestration.get_endpoint() == f"http://127.0.{block}.200:8004/v1/{project_id}"


def test_a_password_entry_makes_and_deletes_a_stack(keystone_cloud: TestCloud) -> None:
    entry = demo_entry(keystone_cloud)
    project = make_and_delete(entry, "ks-password")
    assert project == connect(entry).current_project_id != "admin"


def test_heat_checks_each_token_with_keystone(keystone_cloud: TestCloud) -> None:
    entry = demo_entry(keystone_cloud)
    conn = connect(entry)
    url = f"{conn.orchestration.get_endpoint()}/stacks"
    good = httpx.get(url, headers={"X-Auth-Token": conn.session.get_token()}, timeout=30)
    assert good.status_code == 200, good.text
    made_up = httpx.get(url, headers={"X-Auth-Token": "gAAAAA" + secrets.token_urlsafe(120)}, timeout=30)
    assert made_up.status_code == 401
    assert httpx.get(url, timeout=30).status_code == 401
    # Another project's URL with the demo's token: Heat refuses it (the token's project rules).
    other = url.replace(conn.current_project_id, "admin")
    assert httpx.get(other, headers={"X-Auth-Token": conn.session.get_token()}, timeout=30).status_code == 403


def make_application_credential(entry: dict[str, Any], name: str) -> dict[str, Any]:
    """Created by the demo user through Keystone's API (as `openstack application credential
    create` does): the entry that logs in with it."""
    conn = connect(entry)
    answer = httpx.post(f"{entry['auth']['auth_url']}/users/{conn.current_user_id}/application_credentials",
                        headers={"X-Auth-Token": conn.session.get_token()},
                        json={"application_credential": {"name": name}}, timeout=30)
    assert answer.status_code == 201, answer.text
    made = answer.json()["application_credential"]
    SECRETS.append(made["secret"])
    return {"auth_type": "v3applicationcredential", "region_name": entry["region_name"],
            "auth": {"auth_url": entry["auth"]["auth_url"], "application_credential_id": made["id"],
                     "application_credential_secret": made["secret"]}}


def delete_application_credential(entry: dict[str, Any], credential_id: str) -> None:
    conn = connect(entry)
    answer = httpx.delete(f"{entry['auth']['auth_url']}/users/{conn.current_user_id}/application_credentials/"
                          f"{credential_id}", headers={"X-Auth-Token": conn.session.get_token()}, timeout=30)
    assert answer.status_code == 204, answer.text


def test_an_application_credential_makes_and_deletes_a_stack(keystone_cloud: TestCloud) -> None:
    entry = demo_entry(keystone_cloud)
    credential = make_application_credential(entry, "disco-stack")
    try:
        assert make_and_delete(credential, "ks-appcred") == connect(entry).current_project_id
    finally:
        delete_application_credential(entry, credential["auth"]["application_credential_id"])


def refused(entry: dict[str, Any], secret: str) -> HeatError:
    with pytest.raises(HeatError) as caught:
        HeatStacks(connect(entry)).find("anything")
    error = caught.value
    assert "refused the login" in str(error), error
    assert error.made_nothing and not error.unusable_entry  # a delete still asks again
    assert secret not in str(error) and all(secret not in reason for reason in error.reasons)
    return error


def test_a_wrong_password_is_refused_clearly(keystone_cloud: TestCloud) -> None:
    entry = demo_entry(keystone_cloud)
    wrong = "wrong-" + secrets.token_urlsafe(16)
    SECRETS.append(wrong)
    refused({**entry, "auth": {**entry["auth"], "password": wrong}}, wrong)
    # Nor the right password of another user name.
    refused({**entry, "auth": {**entry["auth"], "username": "nobody"}}, entry["auth"]["password"])


def test_a_deleted_application_credential_is_refused_clearly(keystone_cloud: TestCloud) -> None:
    entry = demo_entry(keystone_cloud)
    credential = make_application_credential(entry, "disco-deleted")
    HeatStacks(connect(credential)).find("anything")  # it works until it is deleted
    delete_application_credential(entry, credential["auth"]["application_credential_id"])
    refused(credential, credential["auth"]["application_credential_secret"])


def test_no_secret_in_the_logs(keystone_cloud: TestCloud) -> None:
    """Run last in this file: every secret used above, against every log of the box."""
    logins = yaml.safe_load((keystone_cloud.cloud.dir / "keystone-logins.yaml").read_text())
    secrets_used = {*SECRETS, *logins.values()}
    assert len(secrets_used) >= 5
    logs = [keystone_dir(keystone_cloud.cloud.dir) / name for name in ("keystone.log", "keystone.out")]
    logs += [keystone_cloud.cloud.dir / name for name in ("heat.log", "heat.out")]
    for log in logs:
        text = log.read_text(errors="replace")
        assert text, log  # each was written (a log that is not there proves nothing)
        leaked = [s[:4] + "…" for s in secrets_used if s in text]
        assert not leaked, f"{log.name} holds a secret"
