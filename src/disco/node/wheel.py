"""A wheel of the running disco package, made from its installed directory without network:
what a node's venv installs so that `python -m disco.node`, and the framework support code
that a cluster's processes load, run there too.

The wheel is pure Python, without dependencies (a node needs none of the service manager's),
and named after its content (version `<disco version>+<digest>`), so it is built once per
content and a node can tell whether it has this very build.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
import zipfile
from pathlib import Path

import disco
from disco.node.bundle import DiscoWheel
from disco.node.downloads import file_sha256

_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIPPED_DIRS = {"__pycache__"}
# Byte code, and the JVM class-data archives the service manager records for its own Spark
# daemons beside the jar (~55 MB each, valid for this machine's JVM only).
_SKIPPED_SUFFIXES = (".pyc", ".pyo", ".jsa")


def package_files(package_dir: Path) -> list[Path]:
    """Every file of the package that belongs in the wheel: the code, the framework files and
    templates, the Java sources and an already built jar of them (java-classes/<digest>/),
    but no byte code and no build half done."""
    files = []
    for directory, dirs, names in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS
                         and not d.startswith((".building-", ".recording-")))
        for name in sorted(names):
            path = Path(directory, name)
            if name.endswith(_SKIPPED_SUFFIXES) or path.is_symlink() or not path.is_file():
                continue
            if name.startswith(".") and name != ".complete":
                continue
            files.append(path)
    return files


def content_digest(package_dir: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        relative = path.relative_to(package_dir).as_posix().encode()
        data = path.read_bytes()
        digest.update(len(relative).to_bytes(4, "big") + relative + len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:16]


def self_wheel(cache_dir: Path, package_dir: Path | None = None) -> Path:
    """The wheel of disco as installed here (or of `package_dir`, a copy of the package),
    built into cache_dir unless it is there already."""
    package_dir = Path(package_dir or Path(disco.__file__).parent)
    files = package_files(package_dir)
    version = f"{disco.__version__}+{content_digest(package_dir, files)}"
    target = Path(cache_dir) / f"disco-{version}-py3-none-any.whl"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Per process and thread: two clusters created at once build it in two threads of one
    # process (the same bytes: the build is reproducible; the second replace is harmless).
    staging = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        _write_wheel(staging, package_dir, files, version)
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    return target


def planned_wheel_ref(cache_dir: Path, package_dir: Path | None = None) -> DiscoWheel:
    """What a bundle would say of disco's wheel, without writing it: the cached wheel's, else
    one built in memory (the same bytes self_wheel would write: the build is reproducible)."""
    package_dir = Path(package_dir or Path(disco.__file__).parent)
    files = package_files(package_dir)
    version = f"{disco.__version__}+{content_digest(package_dir, files)}"
    name = f"disco-{version}-py3-none-any.whl"
    if (Path(cache_dir) / name).is_file():
        return wheel_ref(Path(cache_dir) / name)
    buffer = io.BytesIO()
    _write_wheel(buffer, package_dir, files, version)
    return DiscoWheel(filename=name, sha256=hashlib.sha256(buffer.getvalue()).hexdigest(), version=version)


def wheel_version(wheel: Path) -> str:
    """The version in a wheel's file name."""
    return wheel.name.split("-")[1]


def _write_wheel(path: Path | io.BytesIO, package_dir: Path, files: list[Path], version: str) -> None:
    dist_info = f"disco-{version}.dist-info"
    records: list[str] = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        def add(name: str, data: bytes, mode: int = 0o644) -> None:
            info = zipfile.ZipInfo(name, _EPOCH)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
            hashed = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{name},sha256={hashed},{len(data)}")

        for file in files:
            add("disco/" + file.relative_to(package_dir).as_posix(), file.read_bytes())
        add(f"{dist_info}/METADATA", (
            "Metadata-Version: 2.1\nName: disco\n"
            f"Version: {version}\nSummary: {disco.__doc__.strip().splitlines()[0]}\n"
            "Requires-Python: >=3.11\n").encode())
        add(f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: disco.node.wheel\n"
                                  b"Root-Is-Purelib: true\nTag: py3-none-any\n")
        add(f"{dist_info}/top_level.txt", b"disco\n")
        records.append(f"{dist_info}/RECORD,,")
        wheel.writestr(zipfile.ZipInfo(f"{dist_info}/RECORD", _EPOCH), "\n".join(records) + "\n")


def wheel_ref(wheel: Path) -> DiscoWheel:
    """What a bundle says of disco's wheel: its file name, SHA-256 and version."""
    return DiscoWheel(filename=wheel.name, sha256=file_sha256(wheel), version=wheel_version(wheel))
