"""``tag://[user:token@][host/]name``: a DDFS tag, expanded to its blobs.

The tag is read from the master's ``/ddfs/tag/<name>`` (``{"urls": [[replica, ...], ...],
...}``); entries that are themselves ``tag://`` URLs are expanded recursively. As an input
stream, the blobs are read one after the other (each from its first readable replica).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

from disco.error import DiscoError
from disco.util import master_url, schemesplit, urlresolve, urlsplit, urltoken


def _default_master() -> str | None:
    from disco.worker import current_task
    task = current_task()
    if task is not None and task.master:
        return master_url(task.master, task.disco_port)
    return None


def resolve_tag(url: str, master: str | None = None, token: str | None = None) -> list[list[str]]:
    """The blobs of a tag (recursively through nested tags), each a list of replica URLs."""
    from disco import comm
    from disco.settings import DiscoSettings
    master = master_url(master) if master else (_default_master() or master_url(None))
    default_token = token or DiscoSettings()["DDFS_READ_TOKEN"]
    seen: set[str] = set()

    def walk(tag_url: str) -> Iterator[list[str]]:
        _scheme, _loc, name = urlsplit(tag_url)
        if not name:
            raise DiscoError(f"no tag name in {tag_url}")
        if name in seen:
            return
        seen.add(name)
        tok = urltoken(tag_url) or default_token
        auth = ("token", tok) if tok else None
        try:
            tag = json.loads(comm.download(urlresolve(tag_url, master), auth=auth))
        except ValueError:
            raise DiscoError(f"tag {name} is not valid JSON") from None
        for replicas in tag.get("urls", []):
            replicas = [replicas] if isinstance(replicas, str) else list(replicas)
            if replicas and schemesplit(replicas[0])[0] == "tag":
                yield from walk(replicas[0])
            elif replicas:
                yield replicas

    return list(walk(url))


def input_stream(fd: Any, size: Any, url: str, params: Any) -> tuple[Any, None, str]:
    from disco.schemes.scheme_dir import ConcatenatedInput
    return io.BufferedReader(ConcatenatedInput(resolve_tag(url))), None, url
