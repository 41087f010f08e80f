"""DDFS on the master: what the `/ddfs/*` handlers and the job coordinators call."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from disco.mapreduce.ddfs.config import DdfsConfig
from disco.mapreduce.ddfs.errors import DdfsError
from disco.mapreduce.ddfs.gc import GarbageCollector
from disco.mapreduce.ddfs.links import NodeLinks
from disco.mapreduce.ddfs.names import pack_objname, timestamp, valid_name
from disco.mapreduce.ddfs.tagdata import ALL, INTERNAL, URLS
from disco.mapreduce.ddfs.tags import Tags
from disco.mapreduce.master.data import DataOutput

if TYPE_CHECKING:
    from disco.mapreduce.master.master import Master

log = logging.getLogger(__name__)

MAX_TAG_DEPTH = 100  # nested tags deeper than this are a loop or a mistake


class Ddfs:
    def __init__(self, master: Master, config: DdfsConfig) -> None:
        self.config = config
        self.links = NodeLinks(master, config.node_timeout)
        self.tags = Tags(self.links, config)
        self.gc = GarbageCollector(self.tags, self.links, config)

    async def start(self) -> None:
        await self.links.start()
        self.gc.start_timer()

    async def stop(self) -> None:
        await self.gc.stop()
        await self.tags.stop()
        await self.links.stop()

    def new_blob(self, name: str, replicas: int | None, exclude: list[str]) -> list[str]:
        """PUT URLs for a new blob `name` on `replicas` distinct nodes."""
        if not valid_name(name):
            raise DdfsError(403, "Invalid prefix.")
        k = replicas if replicas is not None else self.config.blob_replicas
        if k < 1:
            raise DdfsError(403, "Invalid number of replicas.")
        hosts = self.links.choose(k, exclude=exclude)
        if len(hosts) < k:
            raise DdfsError(403, "Not enough nodes for replicas.")
        # One object name for all copies: they are the same blob.
        objname = pack_objname(name, timestamp())
        return [self.links.put_url(h, objname) for h in hosts]

    # ------------------------------------------------------------------ for jobs

    def results_tag(self, jobname: str) -> str:
        return f"disco:results:{jobname}"

    async def save_results(self, jobname: str, results: list[list[str]]) -> str:
        """Put a finished job's result URLs in `disco:results:<job>`; the tag's URL, which
        stands for them from now on (as in Disco, the data itself stays where it is)."""
        tag = self.results_tag(jobname)
        await self.tags.put(tag, URLS, results, INTERNAL)
        return f"tag://{tag}"

    async def expand_input(self, inp: DataOutput) -> list[DataOutput]:
        """A job input that is a `tag://[token@][host/]name` URL becomes one input per blob
        reachable from the tag (read with the URL's token); other inputs stay as they are."""
        return await expand_input(inp, lambda name, token: self.tags.get(name, ALL, token))

    # ------------------------------------------------------------------ GC blacklist

    def gc_blacklist(self, host: Any, on: bool) -> None:
        node = self.links.master.registry.nodes.get(host) if isinstance(host, str) else None
        if node is None:
            raise DdfsError(404, f"unknown node {host!r}")
        if on:
            self.links.gc_blacklist.add(host)
        else:
            self.links.gc_blacklist.discard(host)
            self.gc.safe_blacklist.discard(host)


TagReader = Callable[[str, str | None], Awaitable[Any]]


async def expand_input(inp: DataOutput, read_tag: TagReader) -> list[DataOutput]:
    """`Ddfs.expand_input` with tags read by `read_tag(name, token)` (the tag as `GET
    /ddfs/tag/<name>` answers it): here, or from the DDFS authority (see `remote`)."""
    from disco.util import urlsplit, urltoken

    if not inp.urls or not inp.urls[0].startswith("tag://"):
        return [inp]
    url = inp.urls[0]
    token = urltoken(url)
    blobs: list[tuple[str, ...]] = []
    seen: set[str] = set()

    async def walk(name: str, depth: int) -> None:
        if name in seen or depth > MAX_TAG_DEPTH:
            return
        seen.add(name)
        tag = await read_tag(name, token)
        for replicas in tag["urls"]:
            if not replicas:
                continue
            if replicas[0].startswith("tag://"):
                await walk(urlsplit(replicas[0])[2], depth + 1)
            else:
                blobs.append(tuple(replicas))

    try:
        await walk(urlsplit(url)[2], 0)
    except DdfsError as exc:
        raise RuntimeError(f"{url}: {exc.message}") from None
    return [DataOutput(inp.label, 0, replicas) for replicas in blobs]
