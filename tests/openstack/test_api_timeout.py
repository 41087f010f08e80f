"""A cloud that takes a connection and never answers: every call DISCO makes to it fails after
the entry's `api_timeout`, DISCO's default when the entry sets none, instead of holding the
cluster's driver for good."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from disco.providers.openstack.heat_client import CLOUD_ERRORS, DEFAULT_API_TIMEOUT_S, HeatStacks, connect


@pytest.fixture()
def silent_cloud() -> Iterator[str]:
    """An auth URL whose server completes TCP handshakes (the kernel's backlog) and says nothing."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v3"
    finally:
        listener.close()


def entry(auth_url: str, **extra: object) -> dict[str, object]:
    return {"auth_type": "password", "region_name": "RegionOne", **extra,
            "auth": {"auth_url": auth_url, "username": "demo", "password": "not-used", "project_name": "demo",
                     "user_domain_name": "Default", "project_domain_name": "Default"}}


def test_a_silent_cloud_fails_the_call_after_the_entrys_timeout(silent_cloud: str) -> None:
    started = time.monotonic()
    with pytest.raises(CLOUD_ERRORS):
        HeatStacks(connect(entry(silent_cloud, api_timeout=1)))
    assert time.monotonic() - started < 15


def test_an_entry_without_a_timeout_gets_the_default(silent_cloud: str) -> None:
    assert connect(entry(silent_cloud)).session.timeout == DEFAULT_API_TIMEOUT_S
    assert connect(entry(silent_cloud, api_timeout=7)).session.timeout == 7
