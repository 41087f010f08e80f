"""What job functions may rely on as Disco's did, run by a real worker (fake_node.FakeNode):
globals they never imported (msg, err, modules used as ``name.attr``), their own module
shipped whatever ``required_modules`` says, and a map returning None failing the job.

The job functions' module (this one) goes to the node with them: it imports nothing heavy
at module level (no pytest)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fake_node import FakeNode, make_pack

from disco.func import nop_reduce, sum_combiner

if TYPE_CHECKING:
    import pytest

ONE_INPUT = [[0, "ok", 0, [[0, "raw://abc"]]]]


def _summing(key: Any, value: Any, buf: dict[Any, Any], done: bool, params: Any) -> Any:
    if not done:
        buf[key] = buf.get(key, 0) + value
        return None
    return list(buf.items())


# Every route a map's records take (map_outputs.MapOutputs.map_all): plain, grouped for a
# reduce, sum_combiner's table, any other combiner.
ROUTES: list[dict[str, Any]] = [{}, {"reduce": nop_reduce}, {"combiner": sum_combiner},
                                {"combiner": _summing, "reduce": nop_reduce}]


def test_map_returning_none_fails_the_job_with_a_clear_error(tmp_path: Path) -> None:
    def forgetful_map(entry: Any, params: Any) -> None:
        [(entry, 1)]  # the forgotten `return` this test is about

    for n, route in enumerate(ROUTES):
        session = FakeNode(tmp_path / str(n), make_pack(input=["raw://x"], map=forgetful_map,
                                                        **route)).run("map", ONE_INPUT)
        assert session.end == "FATAL" and session.outputs == [], route  # no retry elsewhere
        assert "'forgetful_map' returned None; it must return or yield (key, value) pairs" \
            in session.end_payload, route


def test_a_type_error_inside_the_map_is_the_maps_own(tmp_path: Path) -> None:
    def typo_map(entry: Any, params: Any) -> Any:
        yield entry, 1
        yield entry + 1, 1  # str + int: the map's own TypeError

    for n, route in enumerate(ROUTES):
        session = FakeNode(tmp_path / str(n), make_pack(input=["raw://x"], map=typo_map,
                                                        **route)).run("map", ONE_INPUT)
        assert session.end == "FATAL", route
        assert "can only concatenate str" in session.end_payload, route
        assert "returned None" not in session.end_payload, route

    def quiet_map(entry: Any, params: Any) -> list[Any]:
        return []  # no output at all is fine

    session = FakeNode(tmp_path / "b", make_pack(input=["raw://x"], map=quiet_map)).run(
        "map", ONE_INPUT)
    assert session.end == "DONE", session.end_payload


def test_msg_err_and_data_err_are_globals_of_job_functions(tmp_path: Path) -> None:
    def talking_map(entry: Any, params: Any) -> list[Any]:
        msg(f"saw {entry!r}")  # noqa: F821 (a global on the node)
        return [(entry, 1)]

    def failing_map(entry: Any, params: Any) -> list[Any]:
        if params == "data":
            data_err("input went away", "raw://abc")  # noqa: F821
        err("cannot go on")  # noqa: F821
        return []

    session = FakeNode(tmp_path / "a", make_pack(input=["raw://x"], map=talking_map)).run(
        "map", ONE_INPUT)
    assert session.end == "DONE", session.end_payload
    assert "saw 'abc'" in "\n".join(session.msgs())  # prints may come batched
    fatal = FakeNode(tmp_path / "b", make_pack(input=["raw://x"], map=failing_map)).run(
        "map", ONE_INPUT)
    assert fatal.end == "FATAL" and "cannot go on" in fatal.end_payload
    retried = FakeNode(tmp_path / "c", make_pack(input=["raw://x"], map=failing_map,
                                                 params="data")).run("map", ONE_INPUT)
    assert retried.end == "ERROR" and "input went away" in retried.end_payload


def _user_modules(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two modules of the user's own, importable here only (the node gets what is shipped):
    jf_helper, which imports jf_base."""
    (root / "jf_base.py").write_text("FACTOR = 3\n")
    (root / "jf_helper.py").write_text("import jf_base\n\n\ndef triple(x):\n"
                                       "    return jf_base.FACTOR * x\n")
    monkeypatch.syspath_prepend(str(root))


def test_modules_used_without_import_reach_the_node(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _user_modules(tmp_path, monkeypatch)

    def implicit_map(entry: Any, params: Any) -> list[Any]:
        # Neither module is imported by this test module: Disco imported such names on the
        # node, and job scripts written for it rely on that.
        return [(colorsys.rgb_to_hsv(0.0, 0.0, 1.0)[2],  # noqa: F821
                 jf_helper.triple(len(entry)))]  # noqa: F821

    pack = make_pack(input=["raw://x"], map=implicit_map)
    node = FakeNode(tmp_path / "node", pack)
    assert (node.home / "lib" / "jf_helper.py").is_file()
    assert (node.home / "lib" / "jf_base.py").is_file()  # imported by jf_helper
    session = node.run("map", ONE_INPUT)
    assert session.end == "DONE", session.end_payload
    assert node.records(session.outputs[0]) == [(1.0, 9)]


def test_explicit_required_modules_still_ship_the_functions_module(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A map defined in a module of the user's own travels by reference (module.name): the
    # node must get that module even when the job lists its required_modules itself.
    (tmp_path / "jf_jobs.py").write_text(textwrap.dedent('''
        import math

        def ceil_map(entry, params):
            return [(entry, math.ceil(1.5))]
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    import jf_jobs

    pack = make_pack(input=["raw://x"], map=jf_jobs.ceil_map, required_modules=["math"])
    node = FakeNode(tmp_path / "node", pack)
    assert (node.home / "lib" / "jf_jobs.py").is_file()
    session = node.run("map", ONE_INPUT)
    assert session.end == "DONE", session.end_payload
    assert node.records(session.outputs[0]) == [("abc", 2)]
