"""Test hosts for any test (registered in conftest.py through `pytest_plugins`).

- `testbed_images` (session): both images, built once and cached across runs under
  $DISCO_CACHE_DIR/testbed/images (rebuilt only when their recipe changes).
- `testbed_factory(n, image="baked") -> Testbed` (per test): n running hosts on an address
  block 127.201.<k>.x of their own (k free in podman and in the machine's sockets, so
  concurrent sessions do not collide); more hosts of another image can be added with
  `testbed.up(m, image=...)`. Every testbed made is brought down at the end, even on failure,
  and `down` checks that no container, socket or state of it is left.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from disco.testbed import Image, Testbed, ensure_image
from disco.testbed.paths import cache_root
from disco.testbed.podman import containers, require_podman
from disco.testbed.sockets import listening_ipv4
from disco.testbed.testbed import ADDRESS_LABEL

FACTORY_PREFIX = "127.201"


@pytest.fixture(scope="session")
def testbed_images() -> dict[str, Image]:
    require_podman()
    return {name: ensure_image(name) for name in ("bare", "baked")}


@contextmanager
def _allocation_lock() -> Iterator[None]:
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / ".address-allocation.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_block(prefix: str = FACTORY_PREFIX) -> int:
    """A k such that no testbed container and no listening socket uses prefix.k.x."""
    used = {c.get("Labels", {}).get(ADDRESS_LABEL, "") for c in containers("disco.testbed")}
    used |= {address for address, _ in listening_ipv4()}
    for k in range(1, 255):
        block = f"{prefix}.{k}."
        if not any(address.startswith(block) for address in used):
            return k
    raise RuntimeError(f"no free address block under {prefix}")


def new_testbed(state_dir: Path, n: int, image: str = "baked") -> Testbed:
    """A testbed of n hosts on a free block; the caller brings it down."""
    with _allocation_lock():  # choose the block and occupy it before another session looks
        k = _free_block()
        testbed = Testbed(f"t201-{k}", f"{FACTORY_PREFIX}.{k}", state_dir=state_dir)
        testbed.up(n, image=image)  # a failed up removes what it started
    return testbed


@pytest.fixture()
def testbed_factory(testbed_images: dict[str, Image],
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Testbed]]:
    made: list[Testbed] = []

    def make(n: int, image: str = "baked") -> Testbed:
        testbed = new_testbed(tmp_path_factory.mktemp("testbed-state"), n, image)
        made.append(testbed)
        return testbed

    yield make
    failures = []
    for testbed in reversed(made):
        try:
            testbed.down()
        except Exception as exc:  # bring the others down too, then report
            failures.append(f"{testbed.name}: {exc}")
    if failures:
        pytest.fail("testbed teardown left something: " + "; ".join(failures))
