"""The recipes of the test-host images (bare, baked) and of their cloud-init variants for the
cloud in a box (cloud, cloud-baked). An image is kept under a name that includes the
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
IMAGE_NAMES = ("bare", "baked")  # what `disco testbed` hosts run on
# The cloud in a box's servers boot like cloud VMs: cloud-init reads a NoCloud seed (meta-data,
# user-data) and runs it; curl is there for user-data that signals Heat (curl_cli).
CLOUD_PACKAGES = ("cloud-init", "curl")
CLOUD_IMAGE_NAMES = ("cloud", "cloud-baked")
# cloud-init as a container needs it: only the NoCloud seed (no metadata service to probe), never
# the network (host networking: the machine's own NICs), a locale every minbase has (the default
# en_US.UTF-8 fails the config stage), no disk resizing, an ed25519 host key only (fast). The
# hostname comes from podman (--hostname); the container may not change it.
CLOUD_INIT_CONFIG = """\
datasource_list: [ NoCloud, None ]
network: {config: disabled}
locale: C.UTF-8
resize_rootfs: false
growpart: {mode: 'off'}
ssh_genkeytypes: [ed25519]
preserve_hostname: true
"""
CLOUD_INIT_CONFIG_PATH = "/etc/cloud/cloud.cfg.d/90-disco-cloud.cfg"
# Logins as on a Debian cloud VM: through PAM, so that the accounts cloud-init makes (password
# locked, key only) may log in. sshd without PAM refuses a locked account, and Debian's own PAM
# stack requires pam_loginuid, which a container may not use (no CAP_AUDIT_CONTROL): here it is
# optional. Read before the test hosts' sshd settings (the first value sshd reads wins).
CLOUD_SSHD_CONFIG = """\
UsePAM yes
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
"""
CLOUD_PAM_SSHD = """\
# sshd of a cloud-in-a-box server: Debian's stack, the login uid optional (no audit capability).
@include common-auth
account    required     pam_nologin.so
@include common-account
session    optional     pam_loginuid.so
session    optional     pam_keyinit.so force revoke
@include common-session
session    required     pam_limits.so
session    required     pam_env.so
session    required     pam_env.so user_readenv=1 envfile=/etc/default/locale
@include common-password
"""
CLOUD_FILES = ((CLOUD_INIT_CONFIG_PATH, CLOUD_INIT_CONFIG),
               ("/etc/ssh/sshd_config.d/00-disco-cloud.conf", CLOUD_SSHD_CONFIG),
               ("/etc/pam.d/sshd", CLOUD_PAM_SSHD))


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
    files: tuple[tuple[str, str], ...] = ()  # (absolute path in the image, content), written last

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(_hashed(self), sort_keys=True).encode()).hexdigest()[:12]

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


def cloud_recipe(base: Recipe) -> Recipe:
    """`base` plus cloud-init (and curl), configured for a container: "cloud" on bare,
    "cloud-baked" on baked."""
    name = "cloud" if base.name == "bare" else f"cloud-{base.name}"
    return Recipe(name=name, base=base, apt_packages=CLOUD_PACKAGES,
                  files=CLOUD_FILES)


def recipe(name: str) -> Recipe:
    if name == "bare":
        return bare_recipe()
    if name == "baked":
        return baked_recipe()
    if name == "cloud":
        return cloud_recipe(bare_recipe())
    if name == "cloud-baked":
        return cloud_recipe(baked_recipe())
    raise ValueError(f"unknown image {name!r} (images: {', '.join(IMAGE_NAMES + CLOUD_IMAGE_NAMES)})")


def _hashed(recipe: Recipe) -> dict[str, object]:
    """The recipe as hashed: a field added later is left out while it has its default, so the
    images built before it (bare, baked) keep their names and their cache."""
    data = {key: value for key, value in asdict(recipe).items() if key != "base"}
    if not recipe.files:
        del data["files"]
    data["base"] = _hashed(recipe.base) if recipe.base else None
    return data
