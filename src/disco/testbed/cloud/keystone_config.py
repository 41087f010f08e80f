"""keystone.conf of a cloud's Keystone, and Heat's settings to check tokens against it
(see docs/cloud-in-a-box.md, "With Keystone")."""

from __future__ import annotations

from pathlib import Path


def render_keystone_conf(*, keystone_dir: Path) -> str:
    """SQLite in the cloud's directory (Keystone serves a handful of requests here; no lock
    contention as Heat's threads had), Fernet tokens and credential keys in the same
    directory, no cache server, Keystone's own default policies. Logs to a file, never
    request bodies (passwords travel in them)."""
    return f"""\
[DEFAULT]
log_file = {keystone_dir / 'keystone.log'}
use_stderr = false
debug = false

[database]
connection = sqlite:///{keystone_dir / 'keystone.db'}

[token]
provider = fernet

[fernet_tokens]
key_repository = {keystone_dir / 'fernet-keys'}

[fernet_receipts]
key_repository = {keystone_dir / 'fernet-keys'}

[credential]
key_repository = {keystone_dir / 'credential-keys'}

[cache]
enabled = false
"""


def render_heat_keystone_sections(*, auth_url: str, service_password: str) -> str:
    """What Heat adds to heat.conf with a Keystone: keystonemiddleware's auth_token checks each
    API caller's token with Keystone, as Heat's `heat` service user (role `service` in project
    `service`). `www_authenticate_uri` is what a 401 tells the caller to log in to."""
    return f"""
[keystone_authtoken]
www_authenticate_uri = {auth_url}
auth_url = {auth_url}
auth_type = password
username = heat
password = {service_password}
project_name = service
user_domain_id = default
project_domain_id = default

[clients_keystone]
auth_uri = {auth_url}
"""
