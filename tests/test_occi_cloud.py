"""The cloud of a seed-style OCCI create (occi_cloud): the admin's clouds.yaml entry with the
user's name, password and region; errors that say what is wrong and never show a secret."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from disco.cluster.api.occi_cloud import Credentials, admin_entry, cloud_for, header_credentials, merge, user_cloud
from disco.cluster.cloud_entry import check_cloud_entry
from disco.cluster.settings import Settings
from disco.errors import DiscoError

ADMIN_PASSWORD = "admin-pw-" + secrets.token_hex(8)
USER_PASSWORD = "user-pw-" + secrets.token_hex(8)
BOX_TOKEN = "box-token-" + secrets.token_hex(8)
KEYSTONE = {"auth_type": "password", "region_name": "RegionOne", "interface": "public",
            "identity_api_version": 3, "cacert": "/etc/ssl/admin-ca.pem",
            "auth": {"auth_url": "https://keystone.example:5000/v3", "username": "admin", "password": ADMIN_PASSWORD,
                     "project_name": "science", "project_domain_name": "Default", "user_domain_name": "Default"}}
BOX = {"auth_type": "admin_token", "region_name": "RegionOne",
       "auth": {"endpoint": "http://127.0.0.1:9/v1/box", "token": BOX_TOKEN}}
USER = Credentials("alice", USER_PASSWORD, "RegionTwo")


def settings_with(tmp_path: Path, clouds: Any, name: str = "mycloud", raw: str | None = None) -> Settings:
    path = tmp_path / "clouds.yaml"
    path.write_text(raw if raw is not None else yaml.safe_dump({"clouds": clouds}))
    return Settings(data_dir=tmp_path, openstack_cloud=name, openstack_clouds_file=path)


def shown(error: DiscoError) -> str:
    return f"{error} {error.to_dict()}"


def test_password_entry_takes_the_users_name_password_and_region(tmp_path: Path) -> None:
    cloud = cloud_for(settings_with(tmp_path, {"mycloud": KEYSTONE}), USER)
    assert cloud == {
        "auth_type": "password", "region_name": "RegionTwo", "interface": "public", "identity_api_version": 3,
        "auth": {"auth_url": "https://keystone.example:5000/v3", "project_name": "science",
                 "project_domain_name": "Default", "user_domain_name": "Default",
                 "username": "alice", "password": USER_PASSWORD}}
    # The admin's own password never goes with a user's cluster; the entry passes the spec's check.
    assert ADMIN_PASSWORD not in str(cloud)
    assert check_cloud_entry(cloud)["auth"]["username"] == "alice"


def test_without_a_region_the_entry_keeps_its_own(tmp_path: Path) -> None:
    cloud = cloud_for(settings_with(tmp_path, {"mycloud": KEYSTONE}), Credentials("alice", USER_PASSWORD))
    assert cloud["region_name"] == "RegionOne"


def test_application_credential_entry_becomes_a_password_login(tmp_path: Path) -> None:
    entry = {"auth_type": "v3applicationcredential",
             "auth": {"auth_url": "http://127.0.0.1:5000/v3", "application_credential_id": "appid",
                      "application_credential_secret": ADMIN_PASSWORD}}
    cloud = cloud_for(settings_with(tmp_path, {"mycloud": entry}), USER)
    assert cloud["auth_type"] == "password"
    assert cloud["auth"] == {"auth_url": "http://127.0.0.1:5000/v3", "username": "alice", "password": USER_PASSWORD}
    assert ADMIN_PASSWORD not in str(cloud) and "appid" not in str(cloud)


def test_admin_token_entry_is_used_as_it_is_but_credentials_are_still_required(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, {"mycloud": BOX})
    # Nobody can check the user's password against the cloud in a box: the entry goes as it is.
    assert cloud_for(settings, USER) == BOX
    assert check_cloud_entry(cloud_for(settings, USER)) == BOX
    for missing in (Credentials("alice", None), Credentials(None, USER_PASSWORD)):
        with pytest.raises(DiscoError) as info:
            cloud_for(settings, missing)
        assert info.value.code == "missing_credentials" and info.value.status == 422


@pytest.mark.parametrize(("credentials", "code", "named"), [
    (Credentials(None, USER_PASSWORD), "missing_credentials", "X-User-Name"),
    (Credentials("alice", None), "missing_credentials", "X-Password"),
    (Credentials("alice", USER_PASSWORD + "\x00"), "invalid_credentials", "X-Password"),
    (Credentials("alice", "p" * 5000), "invalid_credentials", "X-Password"),
    (Credentials("a" * 300, USER_PASSWORD), "invalid_credentials", "X-User-Name"),
    (Credentials("alice", USER_PASSWORD, "r\n"), "invalid_credentials", "X-Region-Name"),
])
def test_bad_credentials(credentials: Credentials, code: str, named: str) -> None:
    with pytest.raises(DiscoError) as info:
        user_cloud(KEYSTONE, credentials)
    assert info.value.code == code and info.value.status == 422
    assert named in str(info.value)
    assert USER_PASSWORD not in shown(info.value) and ADMIN_PASSWORD not in shown(info.value)


@pytest.mark.parametrize(("clouds", "name", "raw", "says"), [
    ({"mycloud": KEYSTONE}, "", None, "DISCO_OPENSTACK_CLOUD"),
    ({"other": KEYSTONE}, "mycloud", None, "no entry 'mycloud'"),
    ({"mycloud": "just text"}, "mycloud", None, "no entry 'mycloud'"),
    (None, "mycloud", "clouds: [", "not valid YAML"),
    # A fixed id: the password is random per process (parallel workers must collect the same
    # ids) and must not show in the test's name either.
    pytest.param(None, "mycloud", f"clouds:\n  mycloud:\n    auth: {{password: {ADMIN_PASSWORD}\n", "not valid YAML",
                 id="unclosed-yaml-with-a-password"),
    ({"mycloud": {**KEYSTONE, "auth_type": "kerberos"}}, "mycloud", None, "must have auth_type"),
    ({"mycloud": {"auth_type": "password"}}, "mycloud", None, "must have auth_type"),
    ({"mycloud": {"auth": {"username": "admin", "password": ADMIN_PASSWORD}}}, "mycloud", None, "no auth.auth_url"),
    ({"mycloud": {"auth_type": "admin_token", "auth": {"endpoint": "http://127.0.0.1:9/"}}}, "mycloud", None,
     "no auth.token"),
])
def test_admin_configuration_problems_are_409_openstack_not_configured(
        tmp_path: Path, clouds: Any, name: str, raw: str | None, says: str) -> None:
    settings = settings_with(tmp_path, clouds, name=name, raw=raw)
    with pytest.raises(DiscoError) as info:
        cloud_for(settings, USER)  # the configuration is checked before the user's credentials
    assert info.value.code == "openstack_not_configured" and info.value.status == 409
    assert says in str(info.value)
    # Neither the admin's file (its path, its content) nor the user's password is shown.
    assert str(tmp_path) not in shown(info.value)
    assert ADMIN_PASSWORD not in shown(info.value) and USER_PASSWORD not in shown(info.value)


def test_missing_clouds_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, openstack_cloud="mycloud", openstack_clouds_file=tmp_path / "nope.yaml")
    with pytest.raises(DiscoError) as info:
        admin_entry(settings)
    assert info.value.code == "openstack_not_configured" and "cannot be read" in str(info.value)


def test_the_file_is_read_at_each_create(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, {"mycloud": KEYSTONE})
    assert cloud_for(settings, USER)["auth_type"] == "password"
    settings_with(tmp_path, {"mycloud": BOX})  # the admin edits the file; no restart
    assert cloud_for(settings, USER) == BOX


def test_settings_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCO_OPENSTACK_CLOUD", "mycloud")
    monkeypatch.setenv("DISCO_OPENSTACK_CLOUDS_FILE", str(tmp_path / "clouds.yaml"))
    settings = Settings.from_env()
    assert settings.openstack_cloud == "mycloud" and settings.openstack_clouds_file == tmp_path / "clouds.yaml"
    monkeypatch.delenv("DISCO_OPENSTACK_CLOUD")
    monkeypatch.delenv("DISCO_OPENSTACK_CLOUDS_FILE")
    assert Settings.from_env().openstack_cloud == "" and Settings.from_env().openstack_clouds_file is None


def test_headers_and_attributes_must_agree() -> None:
    headers = header_credentials({"x-user-name": "alice", "x-password": USER_PASSWORD, "x-region-name": ""})
    assert headers == Credentials("alice", USER_PASSWORD, None)  # an empty header is no header
    assert merge(headers, Credentials(None, None, "RegionTwo")) == USER
    assert merge(headers, Credentials("alice", USER_PASSWORD)) == Credentials("alice", USER_PASSWORD)
    with pytest.raises(DiscoError) as info:
        merge(headers, Credentials("alice", "another-password"))
    assert info.value.code == "conflicting_credentials" and info.value.status == 422
    assert "X-Password" in str(info.value)
    assert USER_PASSWORD not in shown(info.value) and "another-password" not in shown(info.value)
    assert USER_PASSWORD not in repr(headers)
