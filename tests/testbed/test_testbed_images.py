"""The test-host images: built once, reused while their recipe holds, rebuilt when it changes."""

from __future__ import annotations

import json

from disco.frameworks.catalog import load_catalog
from disco.frameworks.pins import pinned_python_packages
from disco.testbed import Image, ensure_image, list_images
from disco.testbed.recipe import baked_recipe, bare_recipe


def test_both_images_are_built_and_then_reused(testbed_images: dict[str, Image]) -> None:
    for name, image in testbed_images.items():
        assert image.rootfs.is_dir() and image.path.name == image.recipe.dirname
        assert json.loads((image.path / "recipe.json").read_text())["recipe"] == image.recipe.dirname
        again = ensure_image(name)
        assert again.path == image.path and again.built_seconds is None  # from the cache
    assert {entry["image"] for entry in list_images()} >= {i.path.name for i in testbed_images.values()}


def test_bare_image_is_a_fresh_host_and_baked_adds_java_and_the_venv(testbed_images: dict[str, Image]) -> None:
    bare, baked = testbed_images["bare"].rootfs, testbed_images["baked"].rootfs
    for rootfs in (bare, baked):
        assert (rootfs / "usr/sbin/sshd").is_file() and (rootfs / "usr/bin/python3").exists()
        assert not list((rootfs / "etc/ssh").glob("ssh_host_*"))  # each host makes its own
        assert (rootfs / "etc/apt/sources.list").read_text().startswith("deb ")
    assert not (bare / "opt/disco").exists()
    assert not (bare / "usr/lib/python3.11/ensurepip").exists()  # no python3-venv
    assert not list(bare.glob("usr/lib/jvm/*/bin/java"))
    assert (baked / "opt/disco/venv/bin/python").exists()
    assert list((baked / "usr/lib/jvm").glob("java-17-openjdk-*/bin/java"))
    assert testbed_images["baked"].recipe.base == testbed_images["bare"].recipe


def test_recipe_hash_follows_the_pins() -> None:
    current = pinned_python_packages(load_catalog())
    assert {p.split("==")[0] for p in current} >= {"dask", "distributed", "pyspark"}
    assert baked_recipe().python_pins == tuple(current)
    assert baked_recipe(current).digest() == baked_recipe().digest()  # stable
    bumped = [p if not p.startswith("pyspark==") else "pyspark==0.0.1" for p in current]
    assert baked_recipe(bumped).digest() != baked_recipe(current).digest()
    assert baked_recipe(bumped).dirname.startswith("baked-")
    # The bare image does not depend on the frameworks' versions.
    assert bare_recipe().digest() == bare_recipe().digest()
