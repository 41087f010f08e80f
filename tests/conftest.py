"""Fixtures of the service-manager tests (the helpers live in sm_fixtures.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import httpx
import pytest

from empty_cloud import MADE_UP_CLOUD, EmptyCloudServer, empty_cloud
from sm_fixtures import ServiceManager

# Test hosts (podman containers) for any test: testbed_images, testbed_factory; the cloud in
# a box (a real Heat whose servers are containers): test_cloud, stacks.
pytest_plugins = ["testbed_fixtures", "cloud_fixtures"]

# `./run tests` spreads the suite over pytest-xdist workers a whole test file at a time (its
# module fixtures start once). Files that share a costly or fixed-address session fixture go
# to one worker together: two clouds in a box would double the heaviest fixture, and the
# made-up cloud listens on one fixed address.
_SHARED_FIXTURE_GROUPS = {"test_cloud": "cloud-in-a-box", "stacks": "cloud-in-a-box",
                          "made_up_cloud": "made-up-cloud"}
# Fixtures that build the test-host images on first use (minutes, once per machine); the test
# that first waits for them (or for another worker building them) gets this much more time.
_IMAGE_FIXTURES = {"testbed_images", "test_cloud"}
_IMAGE_BUILD_ALLOWANCE_S = 1200.0


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    by_file: dict[object, list[pytest.Item]] = defaultdict(list)
    for item in items:
        by_file[item.path].append(item)
    for path, file_items in by_file.items():
        used = set().union(*(item.fixturenames for item in file_items))
        group = next((g for name, g in _SHARED_FIXTURE_GROUPS.items() if name in used), str(path))
        for item in file_items:
            item.add_marker(pytest.mark.xdist_group(group))
        first = next((item for item in file_items if _IMAGE_FIXTURES & set(item.fixturenames)), None)
        if first is not None:
            marker = first.get_closest_marker("timeout")
            base = float(marker.args[0]) if marker and marker.args else float(config.getini("timeout") or 0)
            if base > 0:
                first.add_marker(pytest.mark.timeout(base + _IMAGE_BUILD_ALLOWANCE_S))


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
