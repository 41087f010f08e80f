"""Finding the modules job functions need: modules used as ``name.attr`` without an import
(disco.worker.modutil, which the client uses when a job gives no required_modules), and
Disco's own API for it, disco.worker.classic.modutil, built on the same helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from disco.job import Job
from disco.worker.classic.modutil import (ModUtilImportError, find_modules, locate_modules,
                                          parse_function)
from disco.worker.modutil import attribute_globals, referenced_modules


@pytest.fixture()
def user_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Modules of the user's own: cm_top imports cm_below, which imports math."""
    (tmp_path / "cm_below.py").write_text("import math\n\n\ndef up(x):\n    return math.ceil(x)\n")
    (tmp_path / "cm_top.py").write_text("import os\nimport cm_below\n\n\ndef plus_up(x, y):\n"
                                        "    return cm_below.up(x + y)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return {name: str(tmp_path / f"{name}.py") for name in ("cm_top", "cm_below")}


def uses_modules(x: float) -> float:
    # os is imported by this test module, the others are not (names only, never run).
    return cm_top.plus_up(x, 1) + os.path.getsize("") + colorsys.ONE_THIRD  # noqa: F821


def uses_a_missing_module() -> None:
    no_such_module_anywhere_xyz.call()  # noqa: F821


def test_attribute_globals_in_order_with_nested_code() -> None:
    def outer(params: object) -> object:
        inner = lambda: textwrap.dedent(" x")  # noqa: E731, F821 (scanned, never run)
        return json.dumps(params), params.__class__, inner, json.loads  # noqa: F821

    assert attribute_globals(uses_modules) == ["cm_top", "os", "colorsys"]
    assert attribute_globals(outer) == ["json", "textwrap"]  # params is local; no repeats


def test_referenced_modules_are_the_importable_names_not_defined_globally(
        user_modules: dict[str, str]) -> None:
    # os is a global of this module, so the function already has it; Task is a node global.
    def map_fn(entry: str, params: object) -> object:
        return (colorsys.ONE_THIRD, cm_top.plus_up, os.sep, Task.host,  # noqa: F821
                no_such_module_anywhere_xyz.x)  # noqa: F821

    assert referenced_modules([map_fn], exclude=["Task"]) == ["cm_top", "colorsys"]
    # Reached through a class and a container, as the client walks job parameters.
    class WithMap(Job):
        map = staticmethod(map_fn)

    assert referenced_modules([WithMap, {"k": [uses_modules]}]) == ["cm_top", "colorsys"]


def test_job_without_required_modules_lists_and_ships_them(user_modules: dict[str, str]) -> None:
    job = Job()
    params = job.worker.resolve(job, {"input": ["raw://x"], "map": uses_modules})
    names = job.worker.jobzip(job, params).namelist()
    assert {"lib/cm_top.py", "lib/cm_below.py"} <= set(names)
    assert {"cm_top", "cm_below", "colorsys"} <= set(params["required_modules"])
    assert "os" not in params["required_modules"]  # the function's module imported it


def test_classic_find_modules_names_and_paths(user_modules: dict[str, str]) -> None:
    top, below = ("cm_top", user_modules["cm_top"]), ("cm_below", user_modules["cm_below"])
    assert parse_function(uses_modules) == ["cm_top", "os", "colorsys"]
    assert sorted(find_modules([uses_modules], send_modules=False)) == \
        ["cm_top", "colorsys", "os"]
    found = find_modules([uses_modules])
    assert sorted(map(str, found)) == sorted(map(str, [top, below, "os", "colorsys"]))
    assert set(map(str, find_modules([uses_modules], recurse=False, exclude=["os"]))) == \
        {str(top), "colorsys"}
    assert locate_modules(["cm_top", "json"], recurse=False) == [top]
    assert locate_modules(["cm_top", "json"], include_sys=True) == [below, top, ("json", None)]


def test_classic_find_modules_refuses_a_missing_module() -> None:
    with pytest.raises(ModUtilImportError) as caught:
        find_modules([uses_a_missing_module])
    assert isinstance(caught.value, ImportError)
    assert "no_such_module_anywhere_xyz" in str(caught.value)
    assert "uses_a_missing_module" in str(caught.value)
    # Names alone are not looked up, as in Disco.
    assert find_modules([uses_a_missing_module], send_modules=False) == \
        ["no_such_module_anywhere_xyz"]
    with pytest.raises(ImportError):
        locate_modules(["no_such_module_anywhere_xyz"])


def test_finding_modules_does_not_import_installed_packages(
        user_modules: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # A user's module that imports a submodule of an installed package: finding the
    # user's modules must not import that package (some take seconds to import).
    Path(user_modules["cm_below"]).write_text("def up(x):\n    import pydoc_data.topics\n"
                                              "    return x\n")
    for name in ("pydoc_data", "pydoc_data.topics"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    from disco.worker.modutil import find_modules as find_user_modules
    try:
        import cm_top
        found = dict(find_user_modules([cm_top.plus_up]))
    finally:  # later tests write these modules again, elsewhere
        for name in ("cm_top", "cm_below"):
            sys.modules.pop(name, None)
    assert set(found) == {"cm_top", "cm_below"}
    assert "pydoc_data" not in sys.modules
