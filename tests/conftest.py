"""Fixtures of the service-manager tests (the helpers live in sm_fixtures.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from empty_cloud import MADE_UP_CLOUD, EmptyCloudServer, empty_cloud
from sm_fixtures import ServiceManager

# Test hosts (podman containers) for any test: testbed_images, testbed_factory; the cloud in
# a box (a real Heat whose servers are containers): test_cloud, stacks.
pytest_plugins = ["testbed_fixtures", "cloud_fixtures"]


@pytest.fixture(scope="module")
def sm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceManager]:
    manager = ServiceManager(tmp_path_factory.mktemp("disco-data")).start()
    try:
        yield manager
    finally:
        manager.cleanup()


@pytest.fixture()
def api(sm: ServiceManager) -> Iterator[httpx.Client]:
    with sm.client() as client:
        yield client


@pytest.fixture(scope="module")
def made_up_cloud() -> Iterator[EmptyCloudServer]:
    """The stand-in cloud (empty_cloud.py) at MADE_UP_CLOUD for a module: its clusters fail at
    their stack and are deleted at once, where a URL nobody answers would keep their deletes
    retrying (and the module's clean-up waiting)."""
    with empty_cloud(*MADE_UP_CLOUD) as server:
        yield server
