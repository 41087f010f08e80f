"""Test hosts that are real machines in all but hardware: podman containers from Debian images
the project builds itself (see docs/testbed.md)."""

from disco.testbed.errors import TestbedError
from disco.testbed.images import Image, ensure_image, list_images
from disco.testbed.state import TestHost
from disco.testbed.testbed import Testbed, inventory_yaml, testbeds

__all__ = ["Image", "TestHost", "Testbed", "TestbedError", "ensure_image", "inventory_yaml",
           "list_images", "testbeds"]
