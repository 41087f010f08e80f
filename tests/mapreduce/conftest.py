"""Fixtures of the black-box compatibility tests (test_compat_*.py).

Each test_compat_* module gets a cluster of its own (a master and two nodes on loopback),
started once for the module, with DISCO_MASTER and friends pointing Disco's client at it.
The fixture is automatic for those modules, so that their `disco.test.TestCase` classes
(which cannot ask for fixtures) run against it too; and the test modules need not import
pytest, which keeps them cheap to import on the nodes (the client ships them with every
job whose functions they define).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from compat_helpers import JobList
from runtime_fixtures import Cluster, client_cluster

COMPAT_PREFIX = "test_compat_"


@pytest.fixture(scope="module", autouse=True)
def compat_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster | None]:
    name = request.module.__name__.rsplit(".", 1)[-1]
    if not name.startswith(COMPAT_PREFIX):
        yield None  # the other test modules start what they need themselves
        return
    with client_cluster(name[len(COMPAT_PREFIX):].replace("_", "-")) as cluster:
        yield cluster


@pytest.fixture()
def jobs() -> Iterator[JobList]:
    """Register jobs with `jobs(Job().run(...))`; they are purged after the test."""
    ran = JobList()
    yield ran
    ran.purge()
