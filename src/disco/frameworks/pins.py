"""The frameworks' Python packages pinned to the versions installed with the service manager.

A node (or a pre-baked image) that holds exactly these runs the same framework code as the
service manager renders configuration for."""

from __future__ import annotations

from importlib import metadata

from disco.frameworks.catalog import Catalog


class MissingPackage(RuntimeError):
    pass


def pinned_python_packages(catalog: Catalog, names: list[str] | None = None) -> list[str]:
    """`package==version` for every `install: python_packages:` of the named frameworks (all
    of the catalog's when None), in the given order, each once. Extras stay in the pin
    (`ray[default]==2.60.0`); the version is their distribution's."""
    pins: list[str] = []
    for name in names if names is not None else sorted(catalog.frameworks):
        for package in catalog.get(name).install.python_packages:
            try:
                pin = f"{package}=={metadata.version(distribution_name(package))}"
            except metadata.PackageNotFoundError:
                raise MissingPackage(f"framework {name} needs Python package {package!r}, "
                                     "which is not installed with the service manager") from None
            if pin not in pins:
                pins.append(pin)
    return pins


def distribution_name(requirement: str) -> str:
    """The distribution of a requirement that may name extras: `ray[default]` is `ray`."""
    return requirement.split("[", 1)[0].strip()
