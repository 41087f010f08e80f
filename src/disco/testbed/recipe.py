"""The recipes of the two test-host images. An image is kept under a name that includes the
hash of its recipe, so changing a package list, a pinned version or a build step gives a new
image, and an unchanged recipe reuses the one built before."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from disco.frameworks.catalog import load_catalog
from disco.frameworks.pins import pinned_python_packages
from disco.testbed.host_config import SUITE

# Bump when the build steps in images.py change in a way the fields below do not show.
BUILD_STEPS_VERSION = 2

# What a fresh Debian cloud VM has: a login over SSH, Python 3, TLS roots, sudo, ip and ps.
# Not python3-venv, not Java: the node bootstrap installs those on a bare host.
BARE_PACKAGES = ("openssh-server", "python3", "ca-certificates", "sudo", "iproute2", "procps")
# A pre-baked cloud image: a Java runtime and the frameworks' venv where the node bootstrap
# looks for it (<prefix>/venv, prefix /opt/disco).
BAKED_PACKAGES = ("openjdk-17-jre-headless", "python3-venv")
BAKED_VENV = "/opt/disco/venv"
IMAGE_NAMES = ("bare", "baked")


@dataclass(frozen=True)
class Recipe:
    name: str
    suite: str = SUITE
    base: "Recipe | None" = None
    debootstrap_packages: tuple[str, ...] = ()
    apt_packages: tuple[str, ...] = ()
    venv: str | None = None
    python_pins: tuple[str, ...] = field(default=())
    steps_version: int = BUILD_STEPS_VERSION

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def dirname(self) -> str:
        return f"{self.name}-{self.digest()}"


def bare_recipe() -> Recipe:
    return Recipe(name="bare", debootstrap_packages=BARE_PACKAGES)


def baked_recipe(pins: list[str] | None = None) -> Recipe:
    """Bare plus Java and the frameworks' packages at the service manager's versions
    (`pins`, e.g. ["pyspark==4.0.1"]; by default read from the catalog and this Python)."""
    if pins is None:
        pins = pinned_python_packages(load_catalog())
    return Recipe(name="baked", base=bare_recipe(), apt_packages=BAKED_PACKAGES, venv=BAKED_VENV,
                  python_pins=tuple(pins))


def recipe(name: str) -> Recipe:
    if name == "bare":
        return bare_recipe()
    if name == "baked":
        return baked_recipe()
    raise ValueError(f"unknown image {name!r} (images: {', '.join(IMAGE_NAMES)})")
