"""Files fetched by URL and checked against their SHA-256 or SHA-512: kept in the node's cache
by hash, then copied to their destination, or unpacked there (a .tar.gz such as Hadoop's). A
transfer, a copy or an unpacking is staged and renamed, so a run that is killed leaves no
partial file or tree where a later run would trust it."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
from pathlib import Path

from disco.node.bundle import Download

_CHUNK = 1 << 16
# Inside an unpacked tree: which archive it came from (a tree from another version is replaced).
UNPACKED_MARK = ".disco-unpacked"


class ChecksumError(RuntimeError):
    def __init__(self, url: str, expected: str, actual: str, algorithm: str = "sha256") -> None:
        super().__init__(f"{url}: {algorithm.upper().replace('SHA', 'SHA-')} is {actual}, expected {expected}")
        self.url, self.expected, self.actual, self.algorithm = url, expected, actual, algorithm


class UnpackError(RuntimeError):
    """An archive that is not a .tar.gz, or that would write outside its directory."""


def file_sha256(path: Path) -> str:
    return file_digest(path, "sha256")


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_download(download: Download, prefix: Path, timeout_s: float = 60.0) -> bool:
    """Put the download at prefix/dest (a file, or with `unpack` a directory); whether
    anything changed."""
    algorithm, expected = download.checksum
    dest = prefix / download.dest
    if download.unpack:
        if _unpacked_from(dest) == f"{algorithm}:{expected}":
            return False
    elif dest.is_file() and file_digest(dest, algorithm) == expected:
        return False
    cached = fetch_to_cache(download.url, expected, prefix / "cache" / algorithm, timeout_s, algorithm)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(dest.parent, f".{dest.name}.")
    staging = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    try:
        if download.unpack:
            unpack_tar(cached, staging)
            (staging / UNPACKED_MARK).write_text(f"{algorithm}:{expected}\n")
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)  # a tree of another version, or one without its mark
            elif dest.exists() or dest.is_symlink():
                dest.unlink()
            os.replace(staging, dest)
        else:
            shutil.copyfile(cached, staging)
            os.chmod(staging, 0o644)
            os.replace(staging, dest)
    finally:
        if staging.is_dir() and not staging.is_symlink():
            shutil.rmtree(staging, ignore_errors=True)
        else:
            staging.unlink(missing_ok=True)
    return True


def _unpacked_from(dest: Path) -> str | None:
    try:
        return (dest / UNPACKED_MARK).read_text().strip()
    except OSError:
        return None


def unpack_tar(archive: Path, target: Path) -> None:
    """Unpack a (gzipped) tar into `target`, which it creates; members that are absolute,
    climb out with `..`, or are devices or links pointing outside are refused."""
    target.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, target)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(target, members=members, filter="data")
            else:  # Python before 3.11.4: the checks above are what keep it inside
                tar.extractall(target, members=members)
    except (tarfile.TarError, OSError) as exc:
        raise UnpackError(f"{archive.name}: cannot unpack: {exc}") from None


def _check_member(member: tarfile.TarInfo, target: Path) -> None:
    name = member.name
    if name.startswith("/") or ".." in Path(name).parts:
        raise UnpackError(f"archive member {name!r} would land outside {target}")
    if member.isdev():
        raise UnpackError(f"archive member {name!r} is a device")
    if member.issym() or member.islnk():
        link = Path(member.linkname)
        base = Path(name).parent if member.issym() else Path()
        if link.is_absolute() or not _inside(base / link):
            raise UnpackError(f"archive member {name!r} links outside the archive ({member.linkname})")


def _inside(relative: Path) -> bool:
    depth = 0
    for part in relative.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return False
    return True


def fetch_to_cache(url: str, expected: str, cache: Path, timeout_s: float, algorithm: str = "sha256") -> Path:
    """cache/<hash>, fetched from url unless it is there and intact."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / expected
    if target.is_file():
        if file_digest(target, algorithm) == expected:
            return target
        target.unlink()
    _remove_leftovers(cache, f".{expected}.")
    staging = cache / f".{expected}.{os.getpid()}.partial"
    digest = hashlib.new(algorithm)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer, open(staging, "wb") as out:
            while chunk := answer.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected:
            raise ChecksumError(url, expected, digest.hexdigest(), algorithm)
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    return target


def _remove_leftovers(directory: Path, stem: str) -> None:
    """Partial files or trees of an earlier run that was killed (never trusted, nor kept)."""
    for leftover in directory.glob(f"{stem}*.partial"):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
