"""Where a framework's downloads come from and what they must hash to, as this service
manager's admin configures it (private clouds without internet):

- DISCO_DOWNLOAD_MIRROR: an http(s) URL that replaces the `base` of every download given as
  base + path (e.g. a mirror of https://archive.apache.org/dist with the same layout);
- DISCO_DOWNLOAD_CHECKSUMS: a file of checksums as Apache publishes them, one per line, either
  `<hex>  <file name>` or `SHA512 (<file name>) = <hex>`; it gives the checksum of a download
  whose framework.yaml has none (a release whose published hash could not be pinned here), and
  may not contradict one that has.

Tenants cannot choose URLs: the hosts fetch only what the catalogue and the admin name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from disco.errors import DiscoError
from disco.frameworks.model import DownloadDef

_GNU_LINE = re.compile(r"^([0-9a-fA-F]{64}|[0-9a-fA-F]{128})\s+\*?(\S+)$")
_BSD_LINE = re.compile(r"^SHA(256|512)\s*\((\S+)\)\s*=\s*([0-9a-fA-F]+)$")


def download_mirror() -> str:
    mirror = os.environ.get("DISCO_DOWNLOAD_MIRROR", "").strip().rstrip("/")
    if mirror and not re.match(r"^https?://[^\s/]+", mirror):
        raise DiscoError(f"DISCO_DOWNLOAD_MIRROR {mirror!r} is not an http(s) URL", code="bad_setting")
    return mirror


def admin_checksums() -> dict[str, tuple[str, str]]:
    """File name -> (algorithm, hex digest) from DISCO_DOWNLOAD_CHECKSUMS."""
    path = os.environ.get("DISCO_DOWNLOAD_CHECKSUMS", "").strip()
    if not path:
        return {}
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise DiscoError(f"DISCO_DOWNLOAD_CHECKSUMS: cannot read {path}: {exc}", code="bad_setting") from None
    return parse_checksums(text)


def parse_checksums(text: str) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        gnu, bsd = _GNU_LINE.match(line), _BSD_LINE.match(line)
        if gnu:
            digest, name = gnu.group(1).lower(), gnu.group(2)
        elif bsd and len(bsd.group(3)) == int(bsd.group(1)) // 4:
            digest, name = bsd.group(3).lower(), bsd.group(2)
        else:
            raise DiscoError(f"DISCO_DOWNLOAD_CHECKSUMS: cannot read the line {line[:80]!r}", code="bad_setting")
        found[name] = ("sha512" if len(digest) == 128 else "sha256", digest)
    return found


def resolve_download(download: DownloadDef, *, require_checksum: bool = True) -> tuple[str, str, str]:
    """The download as a node fetches it: (URL, sha256, sha512), one checksum "" (both "" only
    when not required); the URL is the mirror's when one is set."""
    url = download.url or f"{download_mirror() or download.base}/{download.path}"
    algorithm, digest = ("sha512", download.sha512) if download.sha512 else ("sha256", download.sha256 or "")
    admin = admin_checksums().get(download.file_name)
    if admin is not None:
        if digest and admin != (algorithm, digest):
            raise DiscoError(f"DISCO_DOWNLOAD_CHECKSUMS gives {download.file_name} another checksum "
                             "than its framework pins", code="bad_setting")
        algorithm, digest = admin
    if not digest and require_checksum:
        raise DiscoError(f"{download.file_name} has no checksum: put the SHA-512 its publisher gives in the "
                         "file DISCO_DOWNLOAD_CHECKSUMS names (docs/hadoop-zeppelin.md)", code="missing_checksum")
    return url, (digest if algorithm == "sha256" else ""), (digest if algorithm == "sha512" else "")
