"""Heat's keystone stand-in for the cloud in a box: Heat's own FakeKeystoneClient, except that
the tokens it hands to stack users (a WaitConditionHandle's `token`, in its `curl_cli`) are
real secrets: an HMAC of the user id under the cloud's signal key, which the API gate accepts
on signal URLs only. The fake's fixed token would let anyone signal anything."""

from __future__ import annotations

import hashlib
import hmac
import uuid

from heat.engine.clients.os.keystone.fake_keystoneclient import FakeKeystoneClient

from box_config import secret_file

SIGNAL_TOKEN_PREFIX = "box-signal."


def signal_token(user_id: str) -> str:
    mac = hmac.new(secret_file("signal.key"), user_id.encode(), hashlib.sha256).hexdigest()
    return f"{SIGNAL_TOKEN_PREFIX}{user_id}.{mac}"


def is_signal_token(token: str) -> bool:
    if not token.startswith(SIGNAL_TOKEN_PREFIX):
        return False
    user_id, _, mac = token[len(SIGNAL_TOKEN_PREFIX):].rpartition(".")
    return bool(user_id) and hmac.compare_digest(signal_token(user_id), token)


class BoxKeystoneClient(FakeKeystoneClient):
    def __init__(self, context=None, *args, **kwargs):  # Heat passes the request context first
        super().__init__(context=context)

    def create_stack_domain_user(self, username, project_id, password=None):
        return uuid.uuid4().hex  # one user per signalling resource, as Keystone would make

    def stack_domain_user_token(self, user_id, project_id, password):
        return signal_token(user_id)
