"""Disco's helpers for ``required_modules`` (``from disco.worker.classic.modutil import
find_modules``).

A requirement is a module name (imported on the node, where it must be installed) or a
``(name, path)`` pair (the file goes with the job, then is imported). :func:`find_modules`
guesses a job's requirements as Disco did: every ``name.attr`` a function uses whose
``name`` is an importable module. The bytecode scanning and module lookups are those of
:mod:`disco.worker.modutil`, which the client uses when ``required_modules`` is not given.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import Any

from disco.error import DiscoError
from disco.worker.modutil import UserModules, attribute_globals, module_path

__all__ = ["ModUtilImportError", "find_modules", "locate_modules", "parse_function"]


class ModUtilImportError(DiscoError, ImportError):
    """A module that a job function uses cannot be found."""

    def __init__(self, error: Exception, function: Any) -> None:
        self.error, self.function = error, function
        super().__init__(str(error))

    def __str__(self) -> str:
        name = getattr(self.function, "__name__", repr(self.function))
        return (f"{self.error}: {name} uses a module that cannot be found here; a typo, or "
                f"give the job's required_modules yourself")


def parse_function(function: Any) -> list[str]:
    """The globals that ``function`` uses as ``name.attr``: the modules it may need."""
    return attribute_globals(function)


def locate_modules(modules: Iterable[str], recurse: bool = True,
                   include_sys: bool = False) -> list[tuple[str, str | None]]:
    """``(name, path)`` of each of ``modules`` that is the user's own (not installed) and,
    with ``recurse``, of the user's own modules these import; ``(name, None)`` for each
    installed one when ``include_sys``. ImportError for a module that cannot be found."""
    own = UserModules()
    installed: list[str] = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ImportError(f"No module named {name!r}")
        if module_path(name):
            own.add(name)
        elif include_sys:
            installed.append(name)
    located = own.expand() if recurse else sorted(own.found.items())
    return [*located, *((name, None) for name in installed)]


def find_modules(functions: Iterable[Any], send_modules: bool = True, recurse: bool = True,
                 exclude: Iterable[str] = ()) -> list[Any]:
    """The requirements of ``functions``: with ``send_modules``, ``(name, path)`` for the
    user's own modules (with ``recurse``, also those they import) and names for installed
    ones; without, the names alone (nothing is looked up)."""
    excluded = set(exclude)
    requirements: set[Any] = set()
    for function in functions:
        names = [name for name in parse_function(function) if name not in excluded]
        if not send_modules:
            requirements.update(names)
            continue
        try:
            located = locate_modules(names, recurse=recurse, include_sys=True)
        except ImportError as exc:
            raise ModUtilImportError(exc, function) from None
        requirements.update((name, path) if path else name for name, path in located)
    return list(requirements)
