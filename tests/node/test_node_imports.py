"""disco.node runs on a node from a venv that holds disco's wheel without its dependencies:
it may import the standard library only (and no part of the service manager)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

from node_fixtures import cli_env

import disco.node


def test_disco_node_imports_nothing_of_the_service_manager() -> None:
    modules = [f"disco.node.{m.name}" for m in pkgutil.iter_modules(disco.node.__path__) if m.name != "__main__"]
    probe = ("import importlib, json, sys\n"
             f"for name in {modules!r}: importlib.import_module(name)\n"
             "print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], env=cli_env(), capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout)
    forbidden = [name for name in loaded if name.split(".")[0] in ("fastapi", "sqlalchemy", "pydantic", "psutil",
                                                                   "yaml", "jinja2", "httpx", "starlette")
                 or name.startswith(("disco.cluster", "disco.providers", "disco.frameworks", "disco.cli"))]
    assert forbidden == []
