"""The cloud's catalogue: what Glance, Nova and Neutron would list. Images are test-host image
variants with cloud-init (recipes `cloud`, `cloud-baked`), flavors are sizes (RAM and vCPUs
become the containers' limits), networks are names over the one loopback (an external
`public` for routers and floating IPs, `private` for servers)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from disco.testbed.images import ensure_image

# image name -> the test-host image recipe it boots
IMAGES = {"debian-12": "cloud", "disco-baked": "cloud-baked"}
FLAVORS = {
    "m1.tiny": {"vcpus": 1, "ram": 512, "disk": 1},
    "m1.small": {"vcpus": 1, "ram": 2048, "disk": 20},
    "m1.medium": {"vcpus": 2, "ram": 4096, "disk": 40},
    "m1.large": {"vcpus": 4, "ram": 8192, "disk": 80},
}
NETWORKS = (("public", True), ("private", False))
DEFAULT_NETWORK = "private"
# The OpenStack provider's options for a cluster in this catalogue: the baked image boots in seconds.
BOX_PROVIDER_OPTIONS = {"image": "disco-baked", "flavor": "m1.small", "network": DEFAULT_NETWORK,
                        "external_network": "public"}
LOGIN_USER = "debian"  # the images' default user (Debian's cloud-init configuration)
_IDS = uuid.UUID("5c1d0f7e-6a47-4d0b-9a57-64f2b3f0c0de")  # namespace of the networks' fixed ids


def network_id(name: str) -> str:
    return str(uuid.uuid5(_IDS, name))


def build_catalogue(images: list[str] | None = None, cache_dir: Path | None = None,
                    progress: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """The catalogue with each image resolved to its root filesystem, built if missing."""
    wanted = list(IMAGES) if images is None else images
    unknown = [name for name in wanted if name not in IMAGES]
    if unknown:
        raise ValueError(f"unknown image {unknown[0]!r} (images: {', '.join(IMAGES)})")
    resolved = {}
    for name in wanted:
        image = ensure_image(IMAGES[name], cache_dir, progress=progress)
        resolved[name] = {"recipe": image.name, "image_dir": image.path.name,
                          "rootfs": str(image.rootfs), "login_user": LOGIN_USER}
    return {"images": resolved, "flavors": FLAVORS,
            "networks": [{"id": network_id(name), "name": name, "external": external}
                         for name, external in NETWORKS],
            "default_network": DEFAULT_NETWORK}
