"""Fixtures of the node tests (helpers in node_fixtures.py). They run as root, for real: a
node prefix under /tmp, a loopback address per node, the supervisor as a real daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
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


@pytest.fixture(scope="session")
def baked_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv made once: nodes of the supervisor tests start from a copy of it, as from an
    image with a pre-baked venv (install then leaves it as it is)."""
    venv = tmp_path_factory.mktemp("baked") / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    return venv


@pytest.fixture()
def installed(node: NodeUnderTest, baked_venv: Path) -> NodeUnderTest:
    """A node installed with its bundle, its supervisor not started yet."""
    node.prefix.mkdir(parents=True)
    shutil.copytree(baked_venv, node.prefix / "venv", symlinks=True)
    node.install(node.bundle())
    return node
