"""Files fetched by URL and checked against their SHA-256: kept in the node's cache by hash,
then copied to their destination. A transfer or a copy is staged and renamed, so a run that
is killed leaves no partial file where a later run would trust it."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

from disco.node.bundle import Download

_CHUNK = 1 << 16


class ChecksumError(RuntimeError):
    def __init__(self, url: str, expected: str, actual: str) -> None:
        super().__init__(f"{url}: SHA-256 is {actual}, expected {expected}")
        self.url, self.expected, self.actual = url, expected, actual


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_download(download: Download, prefix: Path, timeout_s: float = 60.0) -> bool:
    """Put the download at prefix/dest; whether anything changed."""
    dest = prefix / download.dest
    if dest.is_file() and file_sha256(dest) == download.sha256:
        return False
    cached = fetch_to_cache(download.url, download.sha256, prefix / "cache" / "sha256", timeout_s)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(dest.parent, f".{dest.name}.")
    staging = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    try:
        shutil.copyfile(cached, staging)
        os.chmod(staging, 0o644)
        os.replace(staging, dest)
    finally:
        staging.unlink(missing_ok=True)
    return True


def fetch_to_cache(url: str, sha256: str, cache: Path, timeout_s: float) -> Path:
    """cache/<sha256>, fetched from url unless it is there and intact."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / sha256
    if target.is_file():
        if file_sha256(target) == sha256:
            return target
        target.unlink()
    _remove_leftovers(cache, f".{sha256}.")
    staging = cache / f".{sha256}.{os.getpid()}.partial"
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer, open(staging, "wb") as out:
            while chunk := answer.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise ChecksumError(url, sha256, digest.hexdigest())
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    return target


def _remove_leftovers(directory: Path, stem: str) -> None:
    """Partial files of an earlier run that was killed (never trusted, but not kept either)."""
    for leftover in directory.glob(f"{stem}*.partial"):
        leftover.unlink(missing_ok=True)
