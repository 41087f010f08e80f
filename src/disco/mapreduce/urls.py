"""URL and path conventions shared by the master and the nodes.

A job's home on a node is `DISCO_DATA/<host>/<hh>/<jobname>/`, `hh` being the first byte of
md5(jobname) in hex; the same relative path appears in `disco://` and `dir://` URLs, so both
sides compute it here.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

# Schemes whose URL host names a machine that holds the data (and so can give locality).
_HOSTED_SCHEMES = frozenset({"disco", "dir", "http", "https", "ddfs"})


def hexhash(jobname: str) -> str:
    """First byte of md5(jobname) as two hex digits: spreads job homes over 256 folders."""
    return hashlib.md5(jobname.encode()).hexdigest()[:2]


def job_path(host: str, jobname: str) -> str:
    """A job home relative to DISCO_DATA (and to `/disco/` in URLs)."""
    return f"{host}/{hexhash(jobname)}/{jobname}"


def url_host(url: str) -> str | None:
    """The host holding the data a URL points to, or None when it is nowhere in particular
    (raw://, tag://, file://, plain paths)."""
    scheme, sep, _rest = url.partition("://")
    if not sep or scheme not in _HOSTED_SCHEMES:
        return None
    try:
        return urlsplit(url).hostname or None
    except ValueError:
        return None


def disco_to_http(url: str, port: int) -> str:
    """`disco://host/path` and `dir://host/path` as the HTTP URL the host's node serves."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("disco", "dir"):
        return url
    host, _slash, path = rest.partition("/")
    if ":" not in host:
        host = f"{host}:{port}"
    return f"http://{host}/{path}"
