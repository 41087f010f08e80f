"""A cloud in a box's own Keystone (`disco testbed cloud up --keystone`): the real Keystone,
set up with keystone-manage, served by keystone_side/serve.py on a loopback address, then given
what the box needs through Keystone's own API: a `service` project with Heat's service user,
a `demo` project and user (role `member`), and the `orchestration` service whose endpoints are
the box's Heat. Everything lives under the cloud's directory (`keystone/`), removed at `down`."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from disco.testbed.cloud.keystone_config import render_keystone_conf
from disco.testbed.errors import TestbedError

SERVE = Path(__file__).parent / "keystone_side" / "serve.py"
DEFAULT_PORT = 5000
START_TIMEOUT_S = 90.0
DEMO = "demo"          # the demo project's and user's name
DOMAIN = "Default"     # keystone-manage bootstrap's domain (id `default`)


@dataclass(frozen=True)
class KeystoneLogins:
    """Passwords made at `up`: only ever written to 0600 files of the cloud's directory."""
    admin: str
    heat: str
    demo: str

    @classmethod
    def new(cls) -> KeystoneLogins:
        return cls(*(secrets.token_urlsafe(24) for _ in range(3)))


def keystone_dir(cloud_dir: Path) -> Path:
    return cloud_dir / "keystone"


def conf_path(cloud_dir: Path) -> Path:
    return keystone_dir(cloud_dir) / "keystone.conf"


def auth_url(address: str, port: int) -> str:
    return f"http://{address}:{port}/v3"


def set_up(venv: Path, cloud_dir: Path, address: str, port: int, admin_password: str,
           region: str) -> None:
    """keystone.conf, the database (db_sync), Fernet and credential keys, and `bootstrap`:
    the admin user, project and roles, the identity endpoints and the region."""
    directory = keystone_dir(cloud_dir)
    directory.mkdir(mode=0o700, exist_ok=True)
    conf = conf_path(cloud_dir)
    conf.write_text(render_keystone_conf(keystone_dir=directory))
    url = auth_url(address, port)
    manage = [str(venv / "bin" / "keystone-manage"), "--config-file", str(conf)]
    owner = ["--keystone-user", "root", "--keystone-group", "root"]
    # The password goes in the environment (keystone-manage reads it there), never in argv.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(directory),
           "OS_BOOTSTRAP_PASSWORD": admin_password}
    for step in (["db_sync"], ["fernet_setup", *owner], ["credential_setup", *owner],
                 ["bootstrap", "--bootstrap-admin-url", url, "--bootstrap-internal-url", url,
                  "--bootstrap-public-url", url, "--bootstrap-region-id", region]):
        done = subprocess.run(manage + step, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL, env=env, cwd=directory)
        if done.returncode != 0:
            raise TestbedError(f"keystone-manage {step[0]} failed: {done.stderr.strip()[-1500:]}")


def start(venv: Path, cloud_dir: Path, address: str, port: int) -> int:
    directory = keystone_dir(cloud_dir)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(directory)}
    with open(directory / "keystone.out", "ab") as output:
        process = subprocess.Popen(
            [str(venv / "bin" / "python"), str(SERVE), str(conf_path(cloud_dir)), address, str(port)],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env,
            cwd=directory, start_new_session=True)
    return process.pid


def await_api(address: str, port: int, pid: int, cloud_dir: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if httpx.get(auth_url(address, port), timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if not _alive(pid):
            raise TestbedError(f"Keystone exited while starting: {log_tail(cloud_dir)}")
        if time.monotonic() > deadline:
            raise TestbedError(f"Keystone did not answer on {auth_url(address, port)} within "
                               f"{START_TIMEOUT_S:.0f} s: {log_tail(cloud_dir)}")
        time.sleep(0.3)


def provision(address: str, port: int, logins: KeystoneLogins, heat_url: str, region: str) -> None:
    """Through Keystone's API, as the bootstrap admin (system scope): Heat's service user, the
    demo project and user, and the orchestration service pointing at the box's Heat
    (`%(tenant_id)s`: Keystone puts the caller's project id in the URL, as Heat wants)."""
    base = auth_url(address, port)
    with httpx.Client(base_url=base, timeout=60) as client:
        token = _token(client, {"user": {"name": "admin", "domain": {"id": "default"},
                                         "password": logins.admin}}, {"system": {"all": True}})
        client.headers["X-Auth-Token"] = token
        roles = {r["name"]: r["id"] for r in _call(client, "GET", "/roles")["roles"]}
        service = _call(client, "POST", "/projects", {"project": {
            "name": "service", "domain_id": "default"}})["project"]["id"]
        demo = _call(client, "POST", "/projects", {"project": {
            "name": DEMO, "domain_id": "default"}})["project"]["id"]
        heat_user = _call(client, "POST", "/users", {"user": {
            "name": "heat", "domain_id": "default", "password": logins.heat}})["user"]["id"]
        demo_user = _call(client, "POST", "/users", {"user": {
            "name": DEMO, "domain_id": "default", "password": logins.demo,
            "default_project_id": demo}})["user"]["id"]
        # `service` lets auth_token validate callers' tokens (Keystone's identity:validate_token).
        _call(client, "PUT", f"/projects/{service}/users/{heat_user}/roles/{roles['service']}")
        _call(client, "PUT", f"/projects/{demo}/users/{demo_user}/roles/{roles['member']}")
        orchestration = _call(client, "POST", "/services", {"service": {
            "type": "orchestration", "name": "heat", "enabled": True}})["service"]["id"]
        for interface in ("public", "internal", "admin"):
            _call(client, "POST", "/endpoints", {"endpoint": {
                "service_id": orchestration, "interface": interface, "region_id": region,
                "url": heat_url + "/v1/%(tenant_id)s", "enabled": True}})


def demo_login(address: str, port: int, password: str) -> tuple[str, str]:
    """The demo user's token and project id (for `down`, which deletes the demo's stacks)."""
    answer = httpx.post(f"{auth_url(address, port)}/auth/tokens", timeout=60, json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": DEMO, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": DEMO, "domain": {"id": "default"}}}}})
    answer.raise_for_status()
    return answer.headers["X-Subject-Token"], answer.json()["token"]["project"]["id"]


def _token(client: httpx.Client, password: dict[str, Any], scope: dict[str, Any]) -> str:
    answer = client.post("/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": password}, "scope": scope}})
    if answer.status_code != 201:
        raise TestbedError(f"Keystone refused the bootstrap admin's login: HTTP {answer.status_code}")
    return answer.headers["X-Subject-Token"]


def _call(client: httpx.Client, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    answer = client.request(method, path, json=body)
    if answer.status_code >= 300:
        # A validation error may quote what was sent: no body for a request with a password.
        detail = "" if "password" in json.dumps(body or {}) else answer.text[:300]
        raise TestbedError(f"Keystone: {method} {path}: HTTP {answer.status_code} {detail}".strip())
    return answer.json() if answer.content else None


def clouds_entry(address: str, port: int, demo_password: str, region: str) -> dict[str, Any]:
    """The demo user's clouds.yaml entry (Keystone v3, password)."""
    return {"auth_type": "password",
            "auth": {"auth_url": auth_url(address, port), "username": DEMO, "password": demo_password,
                     "project_name": DEMO, "user_domain_name": DOMAIN,
                     "project_domain_name": DOMAIN},
            "region_name": region, "identity_api_version": 3}


def processes(cloud_dir: Path) -> list[int]:
    """Pids of this cloud's Keystone (keystone-manage included): a scan by its config path."""
    conf = str(conf_path(cloud_dir))
    return [p.pid for p in psutil.process_iter(["cmdline"]) if conf in (p.info["cmdline"] or [])]


def log_tail(cloud_dir: Path) -> str:
    lines: list[str] = []
    for name in ("keystone.out", "keystone.log"):
        path = keystone_dir(cloud_dir) / name
        if path.is_file():
            lines += path.read_text(errors="replace").splitlines()[-10:]
    return "\n".join(lines)[-2000:]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
