"""Finding the user's own modules that a job needs, so that they can be shipped with it.

Job functions travel pickled (cloudpickle): functions of ``__main__`` by value, functions of
importable modules by reference, i.e. as ``module.name`` to import on the node. Modules that
are installed (standard library, site-packages) are there on the nodes; the user's own
modules (``wordcount.py`` next to the script) are not, so they go into the job home's
``lib/`` directory, which the worker puts first on ``sys.path``.

A module counts as the user's own when its file lies outside the interpreter's installation
(``sys.prefix``, ``sys.base_prefix``, the site-packages directories) and it is not part of
``disco``. We follow, transitively: the modules of the job functions and classes, the
modules and objects their code refers to as globals, modules imported inside functions
(``import x`` in the body, as Disco users often do), and the imports at the top of every
module found this way.
"""

from __future__ import annotations

import ast
import dis
import functools
import importlib.util
import inspect
import os
import site
import sys
import sysconfig
import types
from collections.abc import Iterable
from typing import Any


class ModSpec(tuple):
    """``(module name, path of its file or package directory)``."""


@functools.lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(path)
    try:
        roots.update(site.getsitepackages())
    except AttributeError:
        pass
    user_site = getattr(site, "getusersitepackages", lambda: None)()
    if user_site:
        roots.add(user_site)
    return tuple(os.path.realpath(root) + os.sep for root in roots if root)


def _disco_root() -> str:
    import disco
    return os.path.realpath(os.path.dirname(disco.__file__)) + os.sep


def module_path(name: str) -> str | None:
    """The file (or package directory) of a user's own module, None for anything else."""
    if not name or name == "__main__" or name.split(".")[0] in sys.builtin_module_names:
        return None
    if name.split(".")[0] == "disco":
        return None
    module = sys.modules.get(name)
    origin = getattr(module, "__file__", None) if module else None
    if origin is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError, AttributeError):
            return None
        origin = spec.origin if spec else None
    if not origin or not os.path.isfile(origin):
        return None
    real = os.path.realpath(origin)
    if real.startswith(_installed_roots()) or real.startswith(_disco_root()):
        return None
    if os.path.basename(real) == "__init__.py":
        return os.path.dirname(origin)
    return origin


def _code_objects(code: types.CodeType) -> Iterable[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _imports_in_code(code: types.CodeType) -> set[str]:
    names = set()
    for sub in _code_objects(code):
        for instruction in dis.get_instructions(sub):
            if instruction.opname == "IMPORT_NAME" and isinstance(instruction.argval, str):
                names.add(instruction.argval)
    return names


def _imports_in_source(path: str, package: str | None) -> set[str]:
    target = os.path.join(path, "__init__.py") if os.path.isdir(path) else path
    try:
        with open(target, encoding="utf-8") as file:
            tree = ast.parse(file.read(), filename=target)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level and package:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module:
                names.add(module)
                names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _unwrap(obj: Any) -> Any:
    while isinstance(obj, functools.partial):
        obj = obj.func
    return getattr(obj, "__func__", obj)


def find_modules(objects: Iterable[Any], exclude: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The user's own modules needed by ``objects`` (functions, classes, partials, modules,
    containers of them), as ``(name, path)`` pairs."""
    excluded = set(exclude)
    found: dict[str, str] = {}
    seen_objects: set[int] = set()
    pending_modules: list[str] = []

    checked: set[str] = set()

    def add_module(name: str) -> None:
        # Importing a.b.c needs a and a.b too; each that is the user's own is shipped.
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            if candidate in checked or candidate in excluded:
                continue
            checked.add(candidate)
            path = module_path(candidate)
            if path:
                found[candidate] = path
                pending_modules.append(candidate)

    def visit(obj: Any, depth: int = 0) -> None:
        if isinstance(obj, (str, bytes, bytearray, int, float, complex, type(None))):
            return  # plain data needs no module (and big inputs stay cheap)
        if depth > 50 or id(obj) in seen_objects:
            return
        seen_objects.add(id(obj))
        if isinstance(obj, functools.partial):
            for part in (obj.func, *obj.args, *(obj.keywords or {}).values()):
                visit(part, depth + 1)
            return
        if isinstance(obj, types.ModuleType):
            add_module(obj.__name__)
            return
        if isinstance(obj, (list, tuple, set, frozenset)):
            for item in obj:
                visit(item, depth + 1)
            return
        if isinstance(obj, dict):
            for item in obj.values():
                visit(item, depth + 1)
            return
        obj = _unwrap(obj)
        if inspect.isclass(obj):
            add_module(obj.__module__)
            for value in vars(obj).values():
                if inspect.isfunction(_unwrap(value)):
                    visit(value, depth + 1)
            return
        if inspect.isfunction(obj):
            add_module(obj.__module__)
            code = obj.__code__
            for name in _imports_in_code(code):
                add_module(name)
            for sub in _code_objects(code):
                for name in sub.co_names:
                    if name in obj.__globals__:
                        value = obj.__globals__[name]
                        if isinstance(value, types.ModuleType):
                            add_module(value.__name__)
                        elif inspect.isfunction(value) or inspect.isclass(value):
                            visit(value, depth + 1)
            for cell in obj.__closure__ or ():
                try:
                    visit(cell.cell_contents, depth + 1)
                except ValueError:  # empty cell
                    pass
            return
        module = getattr(type(obj), "__module__", None)
        if module:
            add_module(module)
        if hasattr(obj, "__dict__") and not inspect.isroutine(obj):
            for value in vars(obj).values():
                visit(value, depth + 1)

    for obj in objects:
        visit(obj)
    while pending_modules:
        name = pending_modules.pop()
        package = name if os.path.isdir(found[name]) else name.rpartition(".")[0] or None
        for imported in _imports_in_source(found[name], package):
            add_module(imported)
    return sorted(found.items())


def module_arcname(name: str, path: str) -> str:
    """Where a module goes in the job home: ``lib/a/b.py`` for ``a.b``."""
    parts = name.split(".")
    if os.path.isdir(path):
        return os.path.join("lib", *parts)
    return os.path.join("lib", *parts[:-1], os.path.basename(path))
