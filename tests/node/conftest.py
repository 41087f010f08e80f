"""Fixtures of the node tests (helpers in node_fixtures.py). They run as root, for real: a
node prefix under /tmp, a loopback address per node, the supervisor as a real daemon."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from file_server import FileServer
from node_fixtures import SRC, NodeUnderTest, fresh_host, fresh_prefix

from disco.node.wheel import self_wheel


@pytest.fixture()
def node() -> Iterator[NodeUnderTest]:
    if os.geteuid() != 0:
        pytest.fail("the node tests run as root (the supervisor makes the cluster's user)")
    made = NodeUnderTest(fresh_prefix(), fresh_host())
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture(scope="session")
def disco_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of the disco under test (this worktree's src/disco)."""
    return self_wheel(tmp_path_factory.mktemp("wheels"), SRC / "disco")


@pytest.fixture()
def file_server() -> Iterator[FileServer]:
    server = FileServer(fresh_host())
    try:
        yield server
    finally:
        server.close()
