"""Builds the small Java classes that frameworks on the JVM load (Spark's UI filter), once per
installation, with the JDK's javac, against the framework's own jars.

The classes land beside their sources, inside the installed package: a cluster's processes
read the package where they read Python (the sandbox mounts it back), and nothing is built
again until a source changes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import threading
import zipfile
from pathlib import Path

SOURCES = Path(__file__).parent / "java"
JAR = "disco-support.jar"
BUILD_FORMAT = b"jar/1\n"
_building = threading.Lock()


class JavaBuildError(RuntimeError):
    pass


def built_classes(classpath: str) -> str:
    """The jar of the compiled classes (a classpath entry), built now if the sources changed.
    A jar, not a folder: the JVM shares classes from an archive only when every classpath
    entry is a jar."""
    sources = sorted(SOURCES.rglob("*.java"))
    target = build_dir()
    with _building:
        if (target / ".complete").exists():
            return str(target / JAR)
        javac = shutil.which("javac")
        if javac is None:
            raise JavaBuildError("javac (a JDK, e.g. Debian's openjdk-17-jdk-headless) is needed to build "
                                 "the filter that puts Spark's web UIs behind the cluster's token")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".building-"))
        classes = staging / "classes"
        done = subprocess.run([javac, "--release", "17", "-nowarn", "-cp", classpath, "-d", str(classes),
                               *map(str, sources)], capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise JavaBuildError(f"javac failed: {done.stderr.strip()[-1000:]}")
        _jar(classes, staging / JAR)
        shutil.rmtree(classes)
        (staging / ".complete").touch()
        staging.chmod(0o755)
        try:
            staging.rename(target)
        except OSError:  # another service manager built the same classes meanwhile
            shutil.rmtree(staging, ignore_errors=True)
            if not (target / ".complete").exists():
                raise
        return str(target / JAR)


def build_dir() -> Path:
    """Where the build of the current sources lies (or will): what is built depends on the
    sources and on how this module builds them (a folder of classes once, a jar now), so both
    name the build and an older build is never taken for it."""
    sources = sorted(SOURCES.rglob("*.java"))
    digest = hashlib.sha256(BUILD_FORMAT + b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    return SOURCES.parent / "java-classes" / digest


def _jar(classes: Path, jar: Path) -> None:
    """A jar is a zip with a manifest first."""
    with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: DISCO\n\n")
        for path in sorted(classes.rglob("*.class")):
            archive.write(path, path.relative_to(classes).as_posix())
