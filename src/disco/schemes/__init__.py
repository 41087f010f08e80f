"""URL schemes of task inputs: ``disco.schemes.scheme_<name>.input_stream(fd, size, url, params)``.

Each returns ``(file_object, size_or_None, url)``. :func:`open_location` is the common way to
get at bytes named by a ``disco://``, ``dir://``, ``http(s)://`` or ``file://`` URL or a
plain path: inside a worker, data on the worker's own host is read from the local disk
(``disco/...`` under DISCO_DATA, ``ddfs/...`` under DDFS_DATA); anything else over HTTP at
the host's DISCO_PORT.
"""

from __future__ import annotations

import importlib
import os
import re
from typing import Any

from disco.error import DataError, DiscoError
from disco.util import schemesplit, urlsplit

_SCHEME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def input_stream(stream: Any, size: Any, url: str, params: Any, globals: Any = None) -> Any:
    """Dispatch to ``disco.schemes.scheme_<scheme>.input_stream``."""
    scheme = schemesplit(url)[0].lower() or "file"
    if not _SCHEME_RE.match(scheme):
        raise DiscoError(f"Unsupported URL scheme {scheme!r} in {url}")
    try:
        module = importlib.import_module(f"disco.schemes.scheme_{scheme}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.endswith(f"scheme_{scheme}"):
            raise DiscoError(f"Unknown URL scheme {scheme!r} in {url}: no module "
                             f"disco.schemes.scheme_{scheme}") from None
        raise
    return module.input_stream(stream, size, url, params)


def _locality() -> dict[str, Any]:
    """Where this process runs, for urlsplit: the task's host and data roots in a worker."""
    from disco.worker import current_task
    task = current_task()
    if task is None:
        return {}
    return {"localhost": task.host, "disco_port": task.disco_port,
            "disco_data": task.disco_data, "ddfs_data": task.ddfs_data}


def open_location(url: str, *, trust_env: bool = False,
                  auth: tuple[str, str] | None = None) -> tuple[Any, int | None, str]:
    """Open the bytes named by ``url``; errors become DataError (CommError over HTTP)."""
    scheme, rest = schemesplit(url)
    if scheme in ("", "file"):
        return open_local(rest if scheme else url, url)
    if scheme not in ("disco", "dir", "http", "https"):
        raise DataError(f"cannot open a {scheme}:// URL as a file", url)
    split_scheme, loc, path = urlsplit(url, **_locality())
    if split_scheme == "file":
        return open_local(path, url)
    if split_scheme == "dir":  # an index on another node: served on its DISCO_PORT
        split_scheme = "http"
        if not loc.port:
            port = _locality().get("disco_port") or _settings_port()
            loc = type(loc)((loc.host, str(port)))
    from disco import comm  # importing an HTTP client costs ~0.1 s: only when one is needed
    target = f"{split_scheme}://{loc}/{path}"
    stream = comm.open_url(target, auth=auth, trust_env=trust_env)
    return stream, stream.size, url


def open_local(path: str, url: str | None = None) -> tuple[Any, int, str]:
    if path.startswith("//"):  # file:///abs -> rest is '/abs'; file://host/abs is not ours
        path = path[1:]
    try:
        fd = open(path, "rb")
        size = os.fstat(fd.fileno()).st_size
    except OSError as exc:
        raise DataError(f"cannot open local file: {exc.strerror or exc}", url or path) from None
    return fd, size, url or path


def _settings_port() -> int:
    from disco.settings import DiscoSettings
    return DiscoSettings()["DISCO_PORT"]
