"""`disco farm submit`: a project from a Python function (cloudpickled, its module's code sent
by value so clients need not have it) or a container image and command, and an input (a local
file, sent inline; an http(s) URL the server fetches; a DDFS tag the server reads), optionally a
DDFS tag for the results. The project id is the last line."""

from __future__ import annotations

import base64
import importlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import typer

from disco.cli import options
from disco.cli.client import ApiError
from disco.cli.output import Output, fail, fail_locally, print_json

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def load_function(ref: str) -> Any:
    """`module:name` or `path/to/file.py:name`."""
    where, _, name = ref.rpartition(":")
    if not where or not name:
        raise ValueError(f"--function must be module:name or file.py:name, not {ref!r}")
    module: ModuleType
    if where.endswith(".py"):
        path = Path(where).resolve()
        spec = importlib.util.spec_from_file_location(f"disco_farm_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ValueError(f"cannot load {where}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    func = getattr(module, name, None)
    if not callable(func):
        raise ValueError(f"{where} has no function {name!r}")
    return func


def pickle_function(func: Any) -> str:
    import cloudpickle

    module = sys.modules.get(func.__module__)
    if module is not None and func.__module__ != "__main__":
        cloudpickle.register_pickle_by_value(module)  # the code travels with the pickle
    return base64.b64encode(cloudpickle.dumps(func)).decode()


def parse_duration(text: str) -> float:
    found = _DURATION.match(text.strip())
    if not found:
        raise ValueError(f"a duration is a number with s, m, h or d (e.g. 90, 30m, 2h), not {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def tag_name(text: str, option: str) -> str:
    """`tag://NAME` or `NAME` -> NAME (the server checks the name itself)."""
    name = text[len("tag://"):] if text.startswith("tag://") else text
    if not name or "/" in name:
        raise ValueError(f"{option} takes a DDFS tag as tag://NAME, not {text!r}")
    return name


def build_spec(function: Optional[str], image: Optional[str], command: Optional[str], input_: str, split: str,
               quorum: int, deadline: Optional[str], name: str, unit_seconds: float, comparator: str,
               output_tag: Optional[str] = None) -> dict[str, Any]:
    by, _, size = split.partition(":")
    if by not in ("lines", "bytes", "records") or not size.isdigit():
        raise ValueError(f"--split is lines:N, bytes:N or records:N, not {split!r}")
    if bool(function) == bool(image):
        raise ValueError("give either --function or --image (with --command)")
    code: dict[str, Any]
    if function:
        code = {"kind": "python", "pickle": pickle_function(load_function(function)),
                "python": f"{sys.version_info.major}.{sys.version_info.minor}"}
    else:
        if not command:
            raise ValueError("--image needs --command")
        import shlex
        code = {"kind": "container", "image": image, "command": shlex.split(command)}
    if input_.startswith("ddfs://"):
        raise ValueError(f"a DDFS tag is given as tag://NAME, not {input_!r}")
    if input_.startswith("tag://"):
        source: dict[str, Any] = {"kind": "ddfs", "tag": tag_name(input_, "--input")}
    elif input_.startswith(("http://", "https://")):
        source = {"kind": "url", "url": input_}
    else:
        data = sys.stdin.buffer.read() if input_ == "-" else Path(input_).read_bytes()
        source = {"kind": "inline_base64", "data": base64.b64encode(data).decode()}
    cmp_name, _, rel = comparator.partition(":")
    cmp: dict[str, Any] = {"name": cmp_name}
    if cmp_name == "float" and rel:
        cmp["args"] = {"rel": float(rel)}
    spec: dict[str, Any] = {"name": name, "code": code, "input": source, "split": {"by": by, "size": int(size)},
                            "quorum": quorum, "unit_seconds": unit_seconds, "comparator": cmp}
    if deadline:
        spec["deadline_s"] = parse_duration(deadline)
    if output_tag:
        spec["output"] = {"kind": "ddfs", "tag": tag_name(output_tag, "--output-tag")}
    return spec


def submit(
    function: Optional[str] = typer.Option(None, "--function", help="module:name or file.py:name."),
    image: Optional[str] = typer.Option(None, "--image", help="A container image (with --command)."),
    command: Optional[str] = typer.Option(None, "--command", help="The command run on each unit (stdin: the unit)."),
    input_: str = typer.Option(..., "--input", help="A local FILE (- for stdin), an http(s) URL the server may fetch, "
                                                     "or tag://NAME, a DDFS tag on the server's DDFS master."),
    split: str = typer.Option("lines:1000", "--split", help="lines:N, bytes:N or records:N (NDJSON)."),
    quorum: int = typer.Option(1, "--quorum", help="Agreeing results per unit (2 for untrusted volunteers)."),
    deadline: Optional[str] = typer.Option(None, "--deadline", help="After this (e.g. 2h), open units fail."),
    name: str = typer.Option("project", "--name"),
    unit_seconds: float = typer.Option(1.0, "--unit-seconds", help="Estimated seconds a unit takes."),
    comparator: str = typer.Option("exact", "--comparator", help="exact, json, or float[:rel]."),
    output_tag: Optional[str] = typer.Option(None, "--output-tag",
                                             help="tag://NAME: results go to this DDFS tag too, one blob a unit."),
    output: Output = typer.Option(Output.table, "--output", "-o"),
    url: Optional[str] = options.URL,
    token: Optional[str] = options.TOKEN,
) -> None:
    """Submit a project; prints its id on the last line."""
    try:
        spec = build_spec(function, image, command, input_, split, quorum, deadline, name, unit_seconds, comparator,
                          output_tag)
    except (ValueError, OSError, ImportError) as exc:
        fail_locally(exc)
    try:
        data = options.farm_client(url, token, timeout=300).request("POST", "/api/v1/farm/projects", json=spec)
    except ApiError as exc:
        fail(exc, output)
    if output == Output.json:
        print_json(data)
    else:
        typer.echo(f"{data['units']} units", err=True)
        typer.echo(data["project_id"])
