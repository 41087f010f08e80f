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

Disco's classic worker also imported, on the node, every module a job function uses as
``name.attr`` without its module defining ``name`` (``time.sleep`` in a module that never
imports time); :func:`referenced_modules` finds those, and :mod:`disco.worker.classic.modutil`
(Disco's ``find_modules`` API) is built on the same helpers.
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
from collections.abc import Callable, Iterable
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
    if "." in name and _installed(name.partition(".")[0]):
        return None  # finding a submodule would import its package, which can take seconds
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


def _installed(top: str) -> bool:
    """Whether the top-level module or package ``top`` is installed (or is disco), found
    without importing it."""
    module = sys.modules.get(top)
    if module is not None:
        places = list(getattr(module, "__path__", None) or [getattr(module, "__file__", None)])
    else:
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError, AttributeError):
            return False
        if spec is None:
            return False
        places = list(spec.submodule_search_locations or [spec.origin])
    roots = _installed_roots() + (_disco_root(),)
    return bool(places) and all(
        place and (os.path.realpath(place) + os.sep).startswith(roots) for place in places)


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


class UserModules:
    """The user's own modules found so far, as ``{name: path}``; :meth:`expand` adds,
    transitively, the user's own modules that these import (installed ones stay out)."""

    def __init__(self, exclude: Iterable[str] = ()) -> None:
        self.excluded = set(exclude)
        self.found: dict[str, str] = {}
        self._checked: set[str] = set()
        self._pending: list[str] = []

    def add(self, name: str) -> None:
        # Importing a.b.c needs a and a.b too; each that is the user's own is shipped.
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            if candidate in self._checked or candidate in self.excluded:
                continue
            self._checked.add(candidate)
            path = module_path(candidate)
            if path:
                self.found[candidate] = path
                self._pending.append(candidate)

    def expand(self) -> list[tuple[str, str]]:
        """Every module found, with what they import; sorted ``(name, path)`` pairs."""
        while self._pending:
            name = self._pending.pop()
            path = self.found[name]
            package = name if os.path.isdir(path) else name.rpartition(".")[0] or None
            for imported in _imports_in_source(path, package):
                self.add(imported)
        return sorted(self.found.items())


def _walk(objects: Iterable[Any], add_module: Callable[[str], None]) -> list[types.FunctionType]:
    """Every function reachable from ``objects`` (functions, classes, partials, modules,
    containers of them, objects' attributes; then the functions and classes their code
    refers to as globals, and their closures). ``add_module`` is told the name of every
    module these belong to, refer to or import."""
    seen_objects: set[int] = set()
    functions: list[types.FunctionType] = []

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
            functions.append(obj)
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
    return functions


def find_modules(objects: Iterable[Any], exclude: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The user's own modules needed by ``objects`` (functions, classes, partials, modules,
    containers of them), as ``(name, path)`` pairs."""
    modules = UserModules(exclude)
    _walk(objects, modules.add)
    return modules.expand()


_ATTR_OPS = {"LOAD_ATTR", "LOAD_METHOD"}


def attribute_globals(function: Any) -> list[str]:
    """The globals that ``function`` (or a function defined inside it) uses as ``name.attr``,
    in order of first use: Disco's way of spotting the modules a job function needs."""
    names: list[str] = []
    for code in _code_objects(_unwrap(function).__code__):
        previous = None
        for instruction in dis.get_instructions(code):
            if previous is not None and instruction.opname in _ATTR_OPS \
                    and previous not in names:
                names.append(previous)
            previous = (instruction.argval if instruction.opname == "LOAD_GLOBAL"
                        and isinstance(instruction.argval, str) else None)
    return names


def referenced_modules(objects: Iterable[Any], exclude: Iterable[str] = ()) -> list[str]:
    """Importable modules that the functions of ``objects`` use as ``name.attr`` although
    their module never defines ``name`` (``time.sleep(1)`` in a module that never imports
    time): Disco's classic worker imported such modules into the job functions' globals on
    the node, and job scripts written for it rely on that."""
    import builtins
    excluded = set(exclude)
    names: set[str] = set()
    for function in _walk(objects, lambda _name: None):
        if str(function.__module__).split(".")[0] == "disco":
            continue  # our own code (default streams, readers) imports what it uses
        names.update(name for name in attribute_globals(function)
                     if name not in function.__globals__ and name not in excluded
                     and not hasattr(builtins, name))
    found = []
    for name in sorted(names):
        try:
            if importlib.util.find_spec(name) is not None:
                found.append(name)
        except (ImportError, ValueError):
            pass
    return found


def module_arcname(name: str, path: str) -> str:
    """Where a module goes in the job home: ``lib/a/b.py`` for ``a.b``."""
    parts = name.split(".")
    if os.path.isdir(path):
        return os.path.join("lib", *parts)
    return os.path.join("lib", *parts[:-1], os.path.basename(path))
