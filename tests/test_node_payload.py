"""GET /api/v1/node-payload/<wheel> serves the wheel a node's script names even when disco's
package changed after the script was written (which renames the current wheel): a cloud node
fetches its wheel minutes after its cluster was designed, and the Java classes a Spark cluster
builds into the package meanwhile must not make that fetch fail."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import httpx

import disco
from disco.frameworks.render import cache_dir
from disco.node.wheel import self_wheel, wheel_ref
from sm_fixtures import ServiceManager


def test_an_earlier_wheel_is_still_served_and_nothing_else(sm: ServiceManager, tmp_path: Path) -> None:
    package = tmp_path / "disco"
    shutil.copytree(Path(disco.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    current = self_wheel(Path(cache_dir()) / "wheels")
    (package / "changed-after-design.txt").write_text("a file the current package lacks\n")
    earlier = self_wheel(Path(cache_dir()) / "wheels", package_dir=package)
    try:
        assert earlier.name != current.name
        for wheel in (earlier, current):
            served = httpx.get(f"{sm.url}/api/v1/node-payload/{wheel.name}", trust_env=False)
            assert served.status_code == 200, served.text
            assert hashlib.sha256(served.content).hexdigest() == wheel_ref(wheel).sha256
        unknown = httpx.get(f"{sm.url}/api/v1/node-payload/disco-0.0.0+0123456789abcdef-py3-none-any.whl",
                            trust_env=False)
        # The message names the current wheel; not compared: another test may build Java
        # classes into the package meanwhile, which renames it.
        assert unknown.status_code == 404
        assert "is not a wheel this service manager built" in unknown.json()["error"]["message"]
        escape = httpx.get(f"{sm.url}/api/v1/node-payload/..%2Fdisco-0.0.0-py3-none-any.whl", trust_env=False)
        assert escape.status_code in (404, 422)
    finally:
        earlier.unlink(missing_ok=True)
