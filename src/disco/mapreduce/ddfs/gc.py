"""DDFS garbage collection and re-replication, run by the master.

A run goes through Disco's phases:

1. `build_map`: every reachable storage node lists what it holds; the master reads every live
   tag (one that some node holds, or that the master knows, and that is not deleted) to learn
   which blobs are referred to, counting delayed updates not yet committed.
2. `gc`: on each node, blobs no live tag refers to and older than `orphan_grace`, versions of
   live tags older than the current one, every version of deleted tags, and unfinished
   uploads older than `partial_grace` are deleted. `+deleted` forgets names deleted more
   than `deleted_expiry` ago once no node holds them.
3. `rr_blobs`: blobs referred to that fewer than DDFS_BLOB_REPLICAS reachable nodes hold are
   copied (node to node) until enough do, and the tags that refer to them list the new copies.
4. `rr_tags`: current tag versions held by fewer than DDFS_TAG_REPLICAS reachable nodes are
   written to more.

Copies on nodes of the DDFS GC blacklist do not count towards the replica counts, so that
their data is copied elsewhere and they can be removed ("safe" once nothing relies on them).

Deleting is only safe when every tag still has a reachable copy: with fewer unreachable
nodes than DDFS_TAG_REPLICAS that holds, as every tag version is written to that many nodes
(and re-replicated by this very collector). Otherwise, or when a live tag cannot be read,
phase 2 deletes nothing but unfinished uploads; re-replication goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from disco.mapreduce.ddfs.config import DdfsConfig
from disco.mapreduce.ddfs.errors import DdfsError
from disco.mapreduce.ddfs.links import NodeLinks, NodeRequestError, gather_hosts
from disco.mapreduce.ddfs.names import parse_url, relpath, unpack_objname
from disco.mapreduce.ddfs.tagdata import TagContent
from disco.mapreduce.ddfs.tags import Tags, TagState
from disco.mapreduce.timefmt import event_timestamp

log = logging.getLogger(__name__)

COPY_CONCURRENCY = 8


@dataclass
class Holdings:
    """What the reachable nodes hold, from their inventories."""

    blobs: dict[str, dict[str, tuple[str, int, float]]] = field(default_factory=dict)
    # tag name -> tag id -> host -> (vol, size)
    tags: dict[str, dict[str, dict[str, tuple[str, int]]]] = field(default_factory=dict)
    partials: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    def add(self, host: str, inventory: dict[str, Any]) -> None:
        for objname, vol, size, age in inventory.get("blobs", []):
            self.blobs.setdefault(objname, {})[host] = (vol, int(size), float(age))
        for tagid, vol, size in inventory.get("tags", []):
            name, _ts = unpack_objname(tagid)
            self.tags.setdefault(name, {}).setdefault(tagid, {})[host] = (vol, int(size))
        self.partials[host] = [(path, float(age)) for path, age in inventory.get("partials", [])]


@dataclass
class References:
    """Live tags and the blobs they refer to."""

    current: dict[str, TagContent] = field(default_factory=dict)
    users: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    unreadable: list[str] = field(default_factory=list)


class GarbageCollector:
    def __init__(self, tags: Tags, links: NodeLinks, config: DdfsConfig) -> None:
        self.tags = tags
        self.links = links
        self.config = config
        self.phase: str | None = None
        self.runs = 0
        self.last: dict[str, Any] | None = None
        self.safe_blacklist: set[str] = set()
        self._run: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ control

    def start_timer(self) -> None:
        self._timer = asyncio.create_task(self._periodic())

    async def stop(self) -> None:
        for task in (self._timer, self._run):
            if task is not None:
                task.cancel()

    @property
    def running(self) -> bool:
        return self._run is not None and not self._run.done()

    def start(self) -> bool:
        """Start a run unless one is going on; whether one was started."""
        if self.running:
            return False
        self._run = asyncio.create_task(self._logged_run())
        return True

    async def wait(self) -> None:
        if self._run is not None:
            await asyncio.shield(self._run)

    async def _periodic(self) -> None:
        await asyncio.sleep(self.config.gc_initial_wait)
        while True:
            self.start()
            await self.wait()
            await asyncio.sleep(self.config.gc_interval)

    async def _logged_run(self) -> None:
        started = time.time()
        try:
            stats = await self.collect()
        except Exception as exc:  # noqa: BLE001 - a failed run must not stop later ones
            log.exception("DDFS garbage collection failed")
            stats = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            self.phase = None
        self.runs += 1
        stats["duration"] = round(time.time() - started, 3)
        self.last = {"timestamp": event_timestamp(started), "stats": stats}
        log.info("DDFS garbage collection done: %s", stats)

    # ------------------------------------------------------------------ a run

    async def collect(self) -> dict[str, Any]:
        stats: dict[str, Any] = {}
        self.phase = "build_map"
        held, reachable, unreachable = await self._inventories()
        stats["unreachable"] = sorted(unreachable)
        deleted = await self.tags.deleted()
        refs = await self._references(held, deleted)
        safe = not refs.unreadable and len(unreachable) < self.config.tag_replicas
        if not safe:
            why = (f"tags {', '.join(refs.unreadable[:5])} could not be read" if refs.unreadable
                   else f"{len(unreachable)} storage nodes are unreachable")
            stats["deletion"] = f"skipped: {why}"

        self.phase = "gc"
        stats.update(await self._delete(held, refs, deleted, safe))
        if safe and not unreachable:
            stats["forgotten_deleted"] = await self._expire_deleted(held, deleted)

        self.phase = "rr_blobs"
        counting = reachable - self.links.gc_blacklist
        stats.update(await self._replicate_blobs(held, refs, reachable, counting))

        self.phase = "rr_tags"
        stats["replicated_tags"] = await self._replicate_tags(held, refs, counting)
        self._judge_blacklist(held, refs, counting)
        return stats

    async def _inventories(self) -> tuple[Holdings, set[str], set[str]]:
        hosts = [n.host for n in self.links.storage_nodes()]
        answers, failed = await gather_hosts(hosts, self.links.inventory)
        for host, why in failed.items():
            log.warning("DDFS GC: no inventory from %s: %s", host, why)
        held = Holdings()
        for host, inventory in answers.items():
            held.add(host, inventory)
        reachable = set(answers)
        return held, reachable, self.links.known_storage_hosts() - reachable

    async def _references(self, held: Holdings, deleted: dict[str, float]) -> References:
        refs = References()
        known = {e.name for e in self.tags.entries.values() if e.state is TagState.OK}
        names = (set(held.tags) | known) - set(deleted)
        for name in sorted(names):
            try:
                snap = await self.tags.snapshot(name)
            except DdfsError:
                refs.unreadable.append(name)
                continue
            if snap.state is not TagState.OK or snap.content is None:
                continue
            refs.current[name] = snap.content
            for replicas in snap.content.urls + snap.pending:
                for url in replicas:
                    parsed = parse_url(url)
                    if parsed is not None and parsed.kind == "blob":
                        refs.users[parsed.objname].add(name)
        return refs

    async def _delete(self, held: Holdings, refs: References, deleted: dict[str, float],
                      safe: bool) -> dict[str, Any]:
        blobs: dict[str, list[list[str]]] = defaultdict(list)
        tags: dict[str, list[list[str]]] = defaultdict(list)
        partials: dict[str, list[str]] = defaultdict(list)
        counts = {"blobs_deleted": 0, "blobs_kept": 0, "tags_deleted": 0, "tags_kept": 0,
                  "partials_deleted": 0}
        for host, entries in held.partials.items():
            for path, age in entries:
                if age > self.config.partial_grace:
                    partials[host].append(path)
                    counts["partials_deleted"] += 1
        for objname, holders in held.blobs.items():
            for host, (vol, _size, age) in holders.items():
                if safe and objname not in refs.users and age > self.config.orphan_grace:
                    blobs[host].append([objname, vol])
                    counts["blobs_deleted"] += 1
                else:
                    counts["blobs_kept"] += 1
        for name, versions in held.tags.items():
            current = refs.current.get(name)
            obsolete: list[str] = []
            if safe and name in deleted and current is None:
                obsolete = list(versions)
            elif safe and current is not None and current.id in versions:
                now_ts = unpack_objname(current.id)[1]
                obsolete = [t for t in versions if unpack_objname(t)[1] < now_ts]
            for tagid, holders in versions.items():
                for host, (vol, _size) in holders.items():
                    if tagid in obsolete:
                        tags[host].append([tagid, vol])
                        counts["tags_deleted"] += 1
                    else:
                        counts["tags_kept"] += 1
        for host in set(blobs) | set(tags) | set(partials):
            try:
                await self.links.delete(host, blobs[host], tags[host], partials[host])
            except NodeRequestError as exc:
                log.warning("DDFS GC: cannot delete on %s: %s", host, exc)
                continue
            for objname, _vol in blobs[host]:
                held.blobs.get(objname, {}).pop(host, None)
            for tagid, _vol in tags[host]:
                held.tags.get(unpack_objname(tagid)[0], {}).get(tagid, {}).pop(host, None)
        return counts

    async def _expire_deleted(self, held: Holdings, deleted: dict[str, float]) -> int:
        now = time.time()
        expired = [name for name, when in deleted.items()
                   if now - when > self.config.deleted_expiry
                   and not any(held.tags.get(name, {}).values())]
        if expired:
            await self.tags.forget_deleted(expired)
        return len(expired)

    async def _replicate_blobs(self, held: Holdings, refs: References, reachable: set[str],
                               counting: set[str]) -> dict[str, int]:
        additions: dict[str, list[str]] = defaultdict(list)
        lost = 0
        limit = asyncio.Semaphore(COPY_CONCURRENCY)

        async def copy(objname: str, source: str, vol: str, target: str) -> None:
            url = self.links.data_url(source, relpath("blob", objname, vol))
            async with limit:
                try:
                    new = await self.links.fetch(target, url, objname, vol)
                except NodeRequestError as exc:
                    log.warning("DDFS GC: cannot copy %s to %s: %s", objname, target, exc)
                    return
            additions[objname].append(new)
            held.blobs.setdefault(objname, {})[target] = (vol, 0, 0.0)

        copies = []
        for objname in sorted(refs.users):
            holders = held.blobs.get(objname, {})
            if not holders:
                lost += 1  # no reachable copy: nothing to copy from (yet)
                continue
            need = self.config.blob_replicas - len([h for h in holders if h in counting])
            if need <= 0:
                continue
            source = next((h for h in holders if h in counting), next(iter(holders)))
            for target in self.links.choose(need, exclude=holders):
                copies.append(copy(objname, source, holders[source][0], target))
        await asyncio.gather(*copies)
        changed_tags = 0
        users = sorted({t for objname in additions for t in refs.users[objname]})
        for name in users:
            mine = {o: additions[o] for o in additions if name in refs.users[o]}
            try:
                if await self.tags.add_replicas(name, mine, reachable):
                    changed_tags += 1
            except DdfsError as exc:
                log.warning("DDFS GC: cannot list new copies in tag %s: %s", name, exc)
        return {"replicated_blobs": sum(len(v) for v in additions.values()),
                "lost_blobs": lost, "retagged": changed_tags}

    async def _replicate_tags(self, held: Holdings, refs: References,
                              counting: set[str]) -> int:
        made = 0
        # refs.current has +deleted too: it is a tag like the others for replication.
        for name, content in sorted(refs.current.items()):
            versions = held.tags.get(name, {})
            if content.id not in versions:
                continue  # written after the inventory, to enough nodes
            holders = {h: vol for h, (vol, _size) in versions[content.id].items() if h in counting}
            if len(holders) >= self.config.tag_replicas:
                continue
            try:
                new_hosts = await self.tags.add_copies(name, content.id, holders)
            except DdfsError as exc:
                log.warning("DDFS GC: cannot copy tag %s: %s", name, exc)
                continue
            made += len(new_hosts)
            for host in new_hosts:
                versions[content.id][host] = ("vol0", 0)
        return made

    def _judge_blacklist(self, held: Holdings, refs: References, counting: set[str]) -> None:
        """A GC-blacklisted node is safe to remove when everything live it holds has enough
        copies elsewhere."""
        safe = set(self.links.gc_blacklist)
        for objname in refs.users:
            holders = held.blobs.get(objname, {})
            if len([h for h in holders if h in counting]) < self.config.blob_replicas:
                safe -= set(holders)
        for name, content in refs.current.items():
            holders = held.tags.get(name, {}).get(content.id, {})
            if len([h for h in holders if h in counting]) < self.config.tag_replicas:
                safe -= set(holders)
        self.safe_blacklist = safe
