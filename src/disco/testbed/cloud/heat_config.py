"""heat.conf and the global environment of a cloud's Heat (see docs/cloud-in-a-box.md)."""

from __future__ import annotations

import json
from pathlib import Path

PLUGINS_DIR = Path(__file__).parent / "heat_side" / "plugins"
LAUNCHER = Path(__file__).parent / "heat_side" / "launcher.py"

# Server-side environment (environment_dir): types a template may name that mean nothing on
# one machine. Anti-affinity groups: every server is on this machine anyway.
GLOBAL_ENVIRONMENT = """\
resource_registry:
  "OS::Nova::ServerGroup": "OS::Heat::None"
"""


def render_heat_conf(*, cloud_dir: Path, venv: Path, database_url: str, address: str, port: int,
                     name: str, keystone_sections: str = "") -> str:
    """Heat without Keystone, Nova or Neutron: the fake keystone of our own (box_keystone, on
    the launcher's path), noauth behind the launcher's token gate, policies' new defaults off
    (noauth callers have no scoped roles), the in-process fake:// transport (engine and API
    in one process), MariaDB (SQLite locks under concurrent resources).
    With a Keystone (`keystone_sections`, keystone_config.py) the launcher puts Heat's
    auth_token pipeline in front of user requests, and deferred auth is `trusts`: a Keystone
    token carries no password to store for nested stacks (the trusts themselves are still
    box_keystone's)."""
    deferred = "trusts" if keystone_sections else "password"
    return f"""\
[DEFAULT]
host = {name}
transport_url = fake://
keystone_backend = box_keystone.BoxKeystoneClient
deferred_auth_method = {deferred}
plugin_dirs = {PLUGINS_DIR}
environment_dir = {cloud_dir / 'environment.d'}
num_engine_workers = 1
heat_metadata_server_url = http://{address}:{port}
heat_waitcondition_server_url = http://{address}:{port}/v1/waitcondition
log_file = {cloud_dir / 'heat.log'}
use_stderr = false
debug = false

[database]
connection = {database_url}

[paste_deploy]
flavor = noauth
api_paste_config = {venv / 'etc' / 'heat' / 'api-paste.ini'}

[oslo_policy]
enforce_new_defaults = false
enforce_scope = false

[clients_heat]
url = http://{address}:{port}/v1/%(tenant_id)s

[noauth]
token_response = {cloud_dir / 'token-response.json'}
{keystone_sections}"""


def render_token_response(*, address: str, port: int, region: str) -> str:
    """What noauth hands Heat as the caller's Keystone token: the admin of project `admin`, and
    a service catalog naming this Heat (orchestration). Heat asks the catalog whether a service
    is there before it accepts a resource type that needs it (OS::Heat::CloudConfig and the
    other software configs need `heat`); without Keystone this file is the catalog."""
    url = f"http://{address}:{port}/v1/admin"
    endpoints = [{"id": f"heat-{interface}", "interface": interface, "region": region,
                  "region_id": region, "url": url} for interface in ("public", "internal", "admin")]
    domain = {"id": "default", "name": "Default"}
    return json.dumps({"token": {
        "methods": ["token"], "expires_at": "2999-12-31T23:59:59.000000Z",
        "issued_at": "2026-01-01T00:00:00.000000Z",
        "user": {"id": "admin", "name": "admin", "domain": domain},
        "project": {"id": "admin", "name": "admin", "domain": domain},
        "roles": [{"id": "admin", "name": "admin"}],
        "catalog": [{"id": "heat", "type": "orchestration", "name": "heat", "endpoints": endpoints}],
    }}, indent=1) + "\n"
