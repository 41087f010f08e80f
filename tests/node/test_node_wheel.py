"""disco's own wheel: built from the package directory without network, named after its
content, cached, and holding the package's data (framework files, Java sources, a built jar)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from node_fixtures import SRC

from disco.node.wheel import self_wheel, wheel_ref


def test_the_wheel_is_content_addressed_and_cached(tmp_path: Path) -> None:
    package = tmp_path / "disco"
    shutil.copytree(SRC / "disco", package, ignore=shutil.ignore_patterns("java-classes"))
    first = self_wheel(tmp_path / "cache", package)
    assert self_wheel(tmp_path / "cache", package) == first
    assert first.stat().st_mtime == self_wheel(tmp_path / "cache", package).stat().st_mtime
    names = set(zipfile.ZipFile(first).namelist())
    assert {"disco/node/cli.py", "disco/frameworks/spark/framework.yaml",
            "disco/framework_support/java/disco/ui/TokenFilter.java"} <= names
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    version = wheel_ref(first).version
    assert f"disco-{version}.dist-info/RECORD" in names

    # a jar built beside the Java sources travels along; a build half done does not
    built = package / "framework_support/java-classes/0123abcd"
    built.mkdir(parents=True)
    (built / "disco-support.jar").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    (built / ".complete").touch()
    (package / "framework_support/java-classes/.building-x").mkdir()
    (package / "framework_support/java-classes/.building-x/junk").write_text("half")
    second = self_wheel(tmp_path / "cache", package)
    assert second != first and wheel_ref(second).version != version
    names = set(zipfile.ZipFile(second).namelist())
    assert {"disco/framework_support/java-classes/0123abcd/disco-support.jar",
            "disco/framework_support/java-classes/0123abcd/.complete"} <= names
    assert not any(".building-" in name for name in names)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([first.name, second.name])
