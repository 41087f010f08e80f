"""Frameworks as data: each sub-folder holds a `framework.yaml` (and optional templates).

The Python here only loads, validates and renders those files; adding a framework means
adding a folder, never editing this package.
"""

from disco.frameworks.catalog import Catalog, load_catalog
from disco.frameworks.model import FrameworkDef, PropertyDef

__all__ = ["Catalog", "FrameworkDef", "PropertyDef", "load_catalog"]
