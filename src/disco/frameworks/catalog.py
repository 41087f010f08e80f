"""Loads every `*/framework.yaml` under a directory and resolves dependencies between them."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import yaml
from pydantic import ValidationError

from disco.errors import DependencyCycle, UnknownFramework
from disco.frameworks.model import FrameworkDef

BUILTIN_DIR = Path(__file__).parent


class CatalogError(Exception):
    """A framework.yaml is broken: a packaging bug, reported at start-up, not per request."""


class Catalog:
    def __init__(self, frameworks: dict[str, FrameworkDef], folders: dict[str, Path]) -> None:
        self.frameworks = frameworks
        self.folders = folders
        for fw in frameworks.values():
            for dep in fw.depends:
                if dep not in frameworks:
                    raise CatalogError(f"framework {fw.name} depends on unknown framework {dep}")
        for name in frameworks:
            try:
                self.resolve([name])  # reject cycles at load time, not at the first request
            except DependencyCycle as exc:
                raise CatalogError(exc.message) from exc

    def __contains__(self, name: str) -> bool:
        return name in self.frameworks

    def get(self, name: str) -> FrameworkDef:
        try:
            return self.frameworks[name]
        except KeyError:
            raise UnknownFramework(
                f"unknown framework {name!r} (available: {', '.join(sorted(self.frameworks))})",
                details={"framework": name, "available": sorted(self.frameworks)},
            ) from None

    def version(self, name: str) -> str:
        fw = self.get(name)
        if fw.version_from:
            try:
                return metadata.version(fw.version_from)
            except metadata.PackageNotFoundError:
                return "not installed"
        return fw.version

    def resolve(self, requested: list[str]) -> list[str]:
        """Requested frameworks plus their dependencies, each after all it depends on."""
        order: list[str] = []
        visiting: list[str] = []

        def visit(name: str) -> None:
            if name in order:
                return
            if name in visiting:
                cycle = visiting[visiting.index(name):] + [name]
                raise DependencyCycle(f"circular dependency: {' -> '.join(cycle)}",
                                      details={"cycle": cycle})
            fw = self.get(name)
            visiting.append(name)
            for dep in fw.depends:
                visit(dep)
            visiting.pop()
            order.append(name)

        for name in requested:
            visit(name)
        return order


def load_catalog(*directories: Path) -> Catalog:
    """Builtin frameworks, then any extra directories (later ones may override by name)."""
    frameworks: dict[str, FrameworkDef] = {}
    folders: dict[str, Path] = {}
    for directory in (BUILTIN_DIR, *directories):
        for path in sorted(Path(directory).glob("*/framework.yaml")):
            try:
                fw = FrameworkDef.model_validate(yaml.safe_load(path.read_text()))
            except (yaml.YAMLError, ValidationError) as exc:
                raise CatalogError(f"{path}: {exc}") from exc
            if fw.name != path.parent.name:
                raise CatalogError(f"{path}: name {fw.name!r} differs from its folder")
            frameworks[fw.name] = fw
            folders[fw.name] = path.parent
    return Catalog(frameworks, folders)
