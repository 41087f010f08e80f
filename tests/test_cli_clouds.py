"""`disco cluster create|plan --cloud NAME`: the cloud's entry read from the user's clouds.yaml
(secure.yaml merged in) as openstacksdk finds them (`--clouds-file`, OS_CLIENT_CONFIG_FILE,
./clouds.yaml, ~/.config/openstack/clouds.yaml), sent as the spec's `cloud`, and never printed.

Against a real service manager with the local provider: a cloud it receives with that provider
is refused as `cloud_not_used`, which shows the entry arrived and passed its check (a missing
password would be `invalid_cloud`). What needs the openstack provider registered is in
test_cloud_openstack.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sm_fixtures import ServiceManager

PASSWORD = "pw-Lr8#from-secure-yaml"
CLOUDS = {"clouds": {
    "science": {"auth": {"auth_url": "https://keystone.example.org:5000/v3", "username": "alice",
                         "project_name": "science", "user_domain_name": "Default",
                         "project_domain_name": "Default"},
                "region_name": "RegionOne"},
    "other": {"auth_type": "admin_token", "auth": {"endpoint": "http://127.0.9.254:8004/v1/admin",
                                                   "token": "tok-other-cloud"}},
}}
SECURE = {"clouds": {"science": {"auth": {"password": PASSWORD}}}}
CREATE = ("cluster", "create", "-f", "webecho", "--workers", "0")


@pytest.fixture(scope="module")
def token(sm: ServiceManager) -> str:
    return sm.token("default")


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    """A user's home and working directory with no clouds.yaml anywhere yet."""
    (tmp_path / "home" / "work").mkdir(parents=True)
    return tmp_path / "home"


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def disco(sm: ServiceManager, token: str, home: Path, *args: str,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("OS_CLOUD", "OS_CLIENT_CONFIG_FILE", "OS_CLIENT_SECURE_FILE", "XDG_CONFIG_HOME")}
    full = {**base, "DISCO_URL": sm.url, "DISCO_TOKEN": token, "HOME": str(home), "COLUMNS": "200",
            "DISCO_DATA_DIR": str(home / "disco-data"), **(env or {})}
    done = subprocess.run([sys.executable, "-m", "disco.cli.main", *args], env=full, cwd=home / "work",
                          capture_output=True, text=True, timeout=120)
    # Whatever happens, the password is never printed.
    assert PASSWORD not in done.stdout + done.stderr
    assert "tok-other-cloud" not in done.stdout + done.stderr
    return done


def error_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The error envelope of a command run with `-o json`."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    return json.loads(done.stdout)["error"]


@pytest.mark.parametrize("command", ["create", "plan"])
def test_cloud_from_a_clouds_file_with_its_secure_yaml_is_sent(sm: ServiceManager, token: str, home: Path,
                                                              command: str) -> None:
    clouds = write(home / "conf" / "clouds.yaml", CLOUDS)
    write(home / "conf" / "secure.yaml", SECURE)
    args = ("cluster", command, "-f", "webecho", "--workers", "0", "--provider", "local",
            "--cloud", "science", "--clouds-file", str(clouds))
    error = error_of(disco(sm, token, home, *args, "--output", "json"))
    assert error["code"] == "cloud_not_used"  # arrived, complete: the password came from secure.yaml
    people = disco(sm, token, home, *args)
    assert people.returncode == 2 and "error (cloud_not_used)" in people.stderr


def test_without_secure_yaml_the_password_is_missing(sm: ServiceManager, token: str, home: Path) -> None:
    clouds = write(home / "conf" / "clouds.yaml", CLOUDS)
    error = error_of(disco(sm, token, home, *CREATE, "--provider", "local", "--cloud", "science",
                           "--clouds-file", str(clouds), "-o", "json"))
    assert error["code"] == "invalid_cloud" and error["details"] == {"key": "cloud.auth.password"}


@pytest.mark.parametrize("where", ["work", ".config/openstack"])
def test_clouds_yaml_is_found_where_openstacksdk_looks(sm: ServiceManager, token: str, home: Path,
                                                       where: str) -> None:
    write(home / where / "clouds.yaml", CLOUDS)
    write(home / where / "secure.yaml", SECURE)
    error = error_of(disco(sm, token, home, *CREATE, "--provider", "local", "--cloud", "science", "-o", "json"))
    assert error["code"] == "cloud_not_used"


def test_secure_yaml_is_found_on_the_search_path_too(sm: ServiceManager, token: str, home: Path) -> None:
    write(home / "work" / "clouds.yaml", CLOUDS)
    write(home / ".config" / "openstack" / "secure.yml", SECURE)
    error = error_of(disco(sm, token, home, *CREATE, "--provider", "local", "--cloud", "science", "-o", "json"))
    assert error["code"] == "cloud_not_used"


def test_os_client_config_file_names_the_file(sm: ServiceManager, token: str, home: Path) -> None:
    clouds = write(home / "elsewhere" / "my-clouds.yaml", CLOUDS)
    write(home / "elsewhere" / "secure.yaml", SECURE)
    # A clouds.yaml here too, without the cloud: the named file comes first.
    write(home / "work" / "clouds.yaml", {"clouds": {"unrelated": {"auth": {}}}})
    error = error_of(disco(sm, token, home, *CREATE, "--provider", "local", "--cloud", "science", "-o", "json",
                           env={"OS_CLIENT_CONFIG_FILE": str(clouds)}))
    assert error["code"] == "cloud_not_used"


def test_an_unknown_cloud_names_the_files_and_the_clouds_there(sm: ServiceManager, token: str, home: Path) -> None:
    clouds = write(home / "work" / "clouds.yaml", CLOUDS)
    secure = write(home / "work" / "secure.yaml", SECURE)
    done = disco(sm, token, home, *CREATE, "--cloud", "sciense")
    assert done.returncode == 2
    assert "error (unknown_cloud)" in done.stderr
    assert "'sciense'" in done.stderr and str(clouds) in done.stderr and str(secure) in done.stderr
    assert "clouds there: other, science" in done.stderr
    error = error_of(disco(sm, token, home, *CREATE, "--cloud", "sciense", "-o", "json"))
    assert error["code"] == "unknown_cloud"


def test_no_clouds_file_anywhere_names_the_places_searched(sm: ServiceManager, token: str, home: Path) -> None:
    done = disco(sm, token, home, "cluster", "plan", "--cloud", "science",
                 env={"OS_CLIENT_CONFIG_FILE": str(home / "missing.yaml")})
    assert done.returncode == 2 and "error (no_clouds_file)" in done.stderr
    for searched in (home / "missing.yaml", home / "work" / "clouds.yaml",
                     home / ".config" / "openstack" / "clouds.yaml", Path("/etc/openstack/clouds.yaml")):
        assert str(searched) in done.stderr
    missing = disco(sm, token, home, "cluster", "plan", "--cloud", "science", "--clouds-file", str(home / "nope"))
    assert missing.returncode == 2 and "clouds_file_missing" in missing.stderr


def test_a_clouds_file_that_is_not_yaml_is_not_quoted(sm: ServiceManager, token: str, home: Path) -> None:
    clouds = write(home / "work" / "clouds.yaml",
                   f"clouds:\n  science:\n    auth:\n      password: {PASSWORD}: [\n")
    done = disco(sm, token, home, *CREATE, "--cloud", "science", "--clouds-file", str(clouds))
    assert done.returncode == 2 and "invalid_clouds_file" in done.stderr and "line 4" in done.stderr


def test_os_cloud_alone_never_makes_a_local_create_an_openstack_one(sm: ServiceManager, token: str,
                                                                    home: Path) -> None:
    write(home / "work" / "clouds.yaml", CLOUDS)
    write(home / "work" / "secure.yaml", SECURE)
    for extra in ((), ("--provider", "local")):
        done = disco(sm, token, home, "cluster", "plan", "-f", "webecho", "--workers", "0", *extra, "-o", "json",
                     env={"OS_CLOUD": "science"})
        assert done.returncode == 0, done.stderr
        plan = json.loads(done.stdout)
        assert plan["provider"] == "local" and plan["cloud"] is None


def test_clouds_file_without_a_cloud_name_is_a_usage_error(sm: ServiceManager, token: str, home: Path) -> None:
    clouds = write(home / "work" / "clouds.yaml", CLOUDS)
    done = disco(sm, token, home, *CREATE, "--clouds-file", str(clouds))
    assert done.returncode == 2 and "error (usage_error)" in done.stderr and "--cloud NAME" in done.stderr


def test_a_spec_file_may_carry_the_cloud_and_is_never_quoted(sm: ServiceManager, token: str, home: Path) -> None:
    entry = {**CLOUDS["clouds"]["science"], "auth": {**CLOUDS["clouds"]["science"]["auth"], "password": PASSWORD}}
    spec = write(home / "work" / "spec.yaml", {"provider": "local", "workers": 0, "cloud": entry})
    error = error_of(disco(sm, token, home, "cluster", "create", "--spec", str(spec), "-o", "json"))
    assert error["code"] == "cloud_not_used"
    broken = write(home / "work" / "broken.yaml", f"workers: 0\ncloud:\n  auth: {{password: {PASSWORD}: x}}\n")
    done = disco(sm, token, home, "cluster", "create", "--spec", str(broken))
    assert done.returncode == 2 and "invalid_spec_file" in done.stderr and "line 3" in done.stderr
