"""Tags on the master: every operation on one tag runs alone, in arrival order.

Each tag has an entry holding an asyncio lock; an operation takes the lock, loads the tag if
the master does not know it yet (the newest version any reachable node holds), and changes
it by writing a new version, `<name>$<timestamp>`, to DDFS_TAG_REPLICAS nodes (the nodes of
the current version first). Once loaded, the master's copy is the truth: only the master
writes tags. A tag no node holds is looked for again at every request, as a node that was
away may bring it back.

Deleting a tag adds `tag://<name>` to the `+deleted` metatag (with the time of deletion in
its user-data, for the garbage collector), and writing the tag again takes it out. Locks are
only ever taken in the order "a tag, then +deleted", so they cannot deadlock.

Delayed updates (`?delayed=1`) of an existing tag are buffered and committed together after
`delayed_flush` seconds, or before any other operation on the tag; each caller is answered
when its update is committed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from disco.mapreduce.ddfs import errors
from disco.mapreduce.ddfs.config import DdfsConfig
from disco.mapreduce.ddfs.errors import DdfsError
from disco.mapreduce.ddfs.links import NodeLinks, gather_hosts
from disco.mapreduce.ddfs.names import (
    DELETED_TAG,
    later,
    object_url,
    pack_objname,
    parse_url,
    timestamp,
    unpack_objname,
    url_to_name,
    valid_name,
)
from disco.mapreduce.ddfs.tagdata import (
    ALL,
    INTERNAL,
    MAX_ATTRIBUTE_VALUE,
    READ_TOKEN,
    URLS,
    WRITE_TOKEN,
    Attrib,
    TagContent,
    merge_urls,
    privilege,
    valid_urls,
    valid_value,
)
from disco.mapreduce.timefmt import event_timestamp

MAX_USER_ATTRIBUTES = 1000


class TagState(Enum):
    UNKNOWN = "unknown"   # not looked for yet
    MISSING = "missing"   # no reachable node holds it
    DELETED = "deleted"   # listed in +deleted
    OK = "ok"


Waiter = asyncio.Future[list[str]]


@dataclass(eq=False)
class TagEntry:
    name: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    state: TagState = TagState.UNKNOWN
    content: TagContent | None = None
    replicas: list[str] = field(default_factory=list)   # hosts holding content.id
    locations: list[str] = field(default_factory=list)  # disco:// URLs of those copies
    # update=1 or not -> (callers waiting, urls to add, newest first)
    delayed: dict[bool, tuple[list[Waiter], list[list[str]]]] | None = None


@dataclass(frozen=True)
class Snapshot:
    """A tag as the garbage collector sees it."""

    state: TagState
    content: TagContent | None
    replicas: list[str]
    pending: list[list[str]]  # urls of delayed updates not yet committed


class Tags:
    def __init__(self, links: NodeLinks, config: DdfsConfig) -> None:
        self.links = links
        self.config = config
        self.entries: dict[str, TagEntry] = {}
        self._flushers: set[asyncio.Task[None]] = set()

    def entry(self, name: str) -> TagEntry:
        if name not in self.entries:
            self.entries[name] = TagEntry(name)
        return self.entries[name]

    def _user_entry(self, name: str) -> TagEntry:
        if not valid_name(name):
            raise errors.invalid_tag()
        return self.entry(name)

    async def stop(self) -> None:
        for task in self._flushers:
            task.cancel()
        for entry in self.entries.values():
            for waiters, _urls in (entry.delayed or {}).values():
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(errors.unavailable("the master is stopping"))

    # ------------------------------------------------------------------ client operations

    async def get(self, name: str, attrib: Attrib, token: Any) -> Any:
        """The tag (without tokens) or one of its attributes, as JSON-able data."""
        entry = self._readable_entry(name)
        async with entry.lock:
            await self._ready(entry)
            if entry.state is not TagState.OK:
                raise errors.tag_not_found()
            granted = self._authorize(entry, token, "read")
            content = entry.content
            assert content is not None
            if attrib == ALL:
                return content.public()
            if attrib == URLS:
                return content.urls
            if attrib == READ_TOKEN:
                return content.read_token
            if attrib == WRITE_TOKEN:
                if granted != "write":
                    raise errors.unauthorized()
                return content.write_token
            if attrib.kind == "user" and attrib.name in content.user:
                return content.user[attrib.name]
            raise errors.attribute_not_found()

    def _readable_entry(self, name: str) -> TagEntry:
        # +deleted may be read (it is how deleted tags can be seen), never written by users.
        return self.entry(name) if name == DELETED_TAG else self._user_entry(name)

    async def update(self, name: str, urls: Any, token: Any, nodup: bool,
                     delayed: bool) -> list[str]:
        """Add urls to a tag (creating it); the locations of the tag's copies."""
        if not valid_urls(urls):
            raise DdfsError(403, "Invalid url object")
        entry = self._user_entry(name)
        async with entry.lock:
            await self._ensure(entry)
            if delayed and entry.state is TagState.OK:
                self._authorize(entry, token, "write")
                waiter = self._buffer(entry, urls, nodup)
            else:
                await self._flush(entry)
                self._authorize(entry, token, "write")
                return await self._update_now(entry, urls, nodup, token)
        return await waiter

    async def put(self, name: str, attrib: Attrib, value: Any, token: Any) -> list[str]:
        """Replace the urls, a token or a user attribute (creating the tag)."""
        if attrib.kind not in ("urls", "read-token", "write-token", "user"):
            raise errors.attribute_not_found()
        if not valid_value(attrib, value):
            raise DdfsError(403, "Invalid attribute key or value")
        if attrib.kind == "user" and len(json.dumps(value)) > MAX_ATTRIBUTE_VALUE:
            raise DdfsError(403, "Attribute value too big.")
        entry = self._user_entry(name)
        async with entry.lock:
            await self._ready(entry)
            self._authorize(entry, token, "write")
            return await self._write(entry, token, lambda c: _set(c, attrib, value))

    async def delete_attrib(self, name: str, attrib: Attrib, token: Any) -> None:
        if attrib.kind not in ("urls", "read-token", "write-token", "user"):
            raise errors.attribute_not_found()
        entry = self._user_entry(name)
        async with entry.lock:
            await self._ready(entry)
            if entry.state is not TagState.OK:
                raise errors.attribute_not_found()
            self._authorize(entry, token, "write")
            await self._write(entry, token, lambda c: _unset(c, attrib))

    async def delete(self, name: str, token: Any) -> None:
        entry = self._user_entry(name)
        async with entry.lock:
            await self._ready(entry)
            if entry.state is TagState.DELETED:
                return
            self._authorize(entry, token, "write")
            # Even a tag no reachable node holds is marked: a node that is away may hold it.
            await self._mark_deleted(name)
            entry.state, entry.content = TagState.DELETED, None
            entry.replicas, entry.locations = [], []

    async def names(self, prefix: str) -> list[str]:
        """Every tag whose name starts with prefix, deleted ones excepted."""
        hosts = [n.host for n in self.links.storage_nodes()]
        answers, failed = await gather_hosts(hosts, self.links.tag_names)
        if failed:
            raise errors.unavailable(f"{len(failed)} nodes did not answer")
        found = {n for names in answers.values() for n in names}
        found |= {e.name for e in self.entries.values() if e.state is TagState.OK}
        gone = set(await self.deleted()) | {e.name for e in self.entries.values()
                                            if e.state is TagState.DELETED}
        return sorted(n for n in found if n.startswith(prefix) and n not in gone
                      and valid_name(n))

    # ------------------------------------------------------------------ loading

    async def _ensure(self, entry: TagEntry) -> None:
        if entry.state in (TagState.UNKNOWN, TagState.MISSING):
            await self._load(entry)

    async def _ready(self, entry: TagEntry) -> None:
        await self._ensure(entry)
        await self._flush(entry)

    async def _load(self, entry: TagEntry) -> None:
        if entry.name != DELETED_TAG and entry.name in await self.deleted():
            entry.state = TagState.DELETED
            return
        hosts = [n.host for n in self.links.storage_nodes()]
        if not hosts:
            raise errors.unavailable("no DDFS nodes are connected")
        answers, failed = await gather_hosts(hosts, lambda h: self.links.latest_tag(h, entry.name))
        versions: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for host, answer in answers.items():
            if answer is not None and isinstance(answer.get("id"), str):
                versions.setdefault(answer["id"], []).append((host, answer))
        for tagid in sorted(versions, key=lambda i: unpack_objname(i)[1], reverse=True):
            try:
                content = TagContent.decode(versions[tagid][0][1]["data"])
            except ValueError:
                continue  # a corrupt version: an older one will have to do
            holders = versions[tagid]
            entry.state, entry.content = TagState.OK, content
            entry.replicas = [h for h, _a in holders]
            entry.locations = [object_url(h, "tag", tagid, str(a.get("vol", "vol0")))
                               for h, a in holders]
            return
        if failed:
            # The tag may be on a node that did not answer: do not claim it does not exist.
            raise errors.unavailable(f"{len(failed)} nodes did not answer")
        entry.state, entry.content = TagState.MISSING, None
        entry.replicas, entry.locations = [], []

    # ------------------------------------------------------------------ writing

    def _authorize(self, entry: TagEntry, token: Any, wanted: str) -> str:
        content = entry.content if entry.state is TagState.OK else None
        granted = privilege(token, content.read_token if content else None,
                            content.write_token if content else None, wanted)
        if granted is None:
            raise errors.unauthorized()
        return granted

    async def _update_now(self, entry: TagEntry, urls: list[list[str]], nodup: bool,
                          token: Any) -> list[str]:
        old = entry.content.urls if entry.state is TagState.OK and entry.content else None
        changed, merged = merge_urls(urls, old, nodup)
        if not changed:
            return list(entry.locations)
        return await self._write(entry, token, lambda c: setattr(c, "urls", merged))

    async def _write(self, entry: TagEntry, token: Any,
                     change: Callable[[TagContent], None]) -> list[str]:
        """Commit a new version: the current one (or, for a new tag, an empty one whose
        tokens are the writer's token) with `change` applied."""
        ts = timestamp()
        if entry.state is TagState.OK and entry.content is not None:
            ts = later(ts, unpack_objname(entry.content.id)[1])
            content = entry.content.renamed(pack_objname(entry.name, ts))
        else:
            owner = None if token is INTERNAL else token
            content = TagContent(id=pack_objname(entry.name, ts),
                                 last_modified=event_timestamp(), read_token=owner,
                                 write_token=owner)
        change(content)
        if len(content.user) > MAX_USER_ATTRIBUTES:
            raise DdfsError(403, "Too many attributes.")
        was_deleted = entry.state is TagState.DELETED
        await self._commit(entry, content)
        if was_deleted:
            await self._unmark_deleted(entry.name)
        return list(entry.locations)

    async def _commit(self, entry: TagEntry, content: TagContent) -> None:
        """Write a version to tag_replicas nodes (at least tag_min_replicas, or fail and
        take back the copies written) and make it the tag's current one."""
        data = content.encode()
        done: dict[str, str] = {}
        tried: set[str] = set()
        while len(done) < self.config.tag_replicas:
            batch = self.links.choose(self.config.tag_replicas - len(done), exclude=tried,
                                      prefer=entry.replicas)
            if not batch:
                break
            tried.update(batch)
            answers, _failed = await gather_hosts(
                batch, lambda h: self.links.put_tag(h, content.id, data))
            done.update(answers)
        if len(done) < self.config.tag_min_replicas:
            await self._retract(content.id, done)
            raise errors.unavailable(f"tag {entry.name} could be written to {len(done)} nodes, "
                                     f"{self.config.tag_min_replicas} needed")
        entry.state, entry.content = TagState.OK, content
        entry.replicas, entry.locations = list(done), list(done.values())

    async def _retract(self, tagid: str, written: dict[str, str]) -> None:
        """Delete copies of a version that did not reach enough nodes, so that it does not
        surface as the newest when the tag is next loaded."""
        async def drop(host: str) -> int:
            parsed = parse_url(written[host])
            vol = parsed.vol if parsed else "vol0"
            return await self.links.delete(host, tags=[[tagid, vol]])
        await gather_hosts(written, drop)

    # ------------------------------------------------------------------ delayed updates

    def _buffer(self, entry: TagEntry, urls: list[list[str]], nodup: bool) -> Waiter:
        if entry.delayed is None:
            entry.delayed = {}
            flusher = asyncio.create_task(self._flush_later(entry))
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        waiters, pending = entry.delayed.setdefault(nodup, ([], []))
        pending[:0] = [list(r) for r in urls]
        waiter: Waiter = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        return waiter

    async def _flush_later(self, entry: TagEntry) -> None:
        await asyncio.sleep(self.config.delayed_flush)
        async with entry.lock:
            await self._flush(entry)

    async def _flush(self, entry: TagEntry) -> None:
        buffered, entry.delayed = entry.delayed, None
        for nodup in sorted(buffered or {}):
            waiters, urls = buffered[nodup]  # type: ignore[index]
            try:
                # The callers were authorized when they were buffered.
                result = await self._update_now(entry, urls, nodup, INTERNAL)
            except DdfsError as exc:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
            else:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(result)

    # ------------------------------------------------------------------ +deleted

    async def deleted(self) -> dict[str, float]:
        """Deleted tag names, with when they were deleted (0 when not known)."""
        entry = self.entry(DELETED_TAG)
        async with entry.lock:
            await self._ensure(entry)
            if entry.state is not TagState.OK or entry.content is None:
                return {}
            out: dict[str, float] = {}
            for replicas in entry.content.urls:
                name = url_to_name(replicas[0]) if replicas else None
                if name is not None:
                    out[name] = _float(entry.content.user.get(name))
            return out

    async def _mark_deleted(self, name: str) -> None:
        entry = self.entry(DELETED_TAG)
        async with entry.lock:
            await self._ensure(entry)

            def add(content: TagContent) -> None:
                _changed, content.urls = merge_urls([[f"tag://{name}"]], content.urls, True)
                content.user[name] = repr(time.time())

            await self._write(entry, INTERNAL, add)

    async def _unmark_deleted(self, name: str) -> None:
        await self.forget_deleted([name])

    async def forget_deleted(self, names: list[str]) -> None:
        """Take names out of +deleted."""
        entry = self.entry(DELETED_TAG)
        gone = set(names)
        async with entry.lock:
            await self._ensure(entry)
            if entry.state is not TagState.OK or entry.content is None:
                return
            if not any(r and url_to_name(r[0]) in gone for r in entry.content.urls):
                return

            def drop(content: TagContent) -> None:
                content.urls = [r for r in content.urls if not r or url_to_name(r[0]) not in gone]
                for n in gone:
                    content.user.pop(n, None)

            await self._write(entry, INTERNAL, drop)

    # ------------------------------------------------------------------ for the GC

    async def snapshot(self, name: str) -> Snapshot:
        entry = self.entry(name)
        async with entry.lock:
            await self._ensure(entry)
            pending = [r for _w, urls in (entry.delayed or {}).values() for r in urls]
            return Snapshot(entry.state, entry.content, list(entry.replicas), pending)

    async def add_replicas(self, name: str, additions: dict[str, list[str]],
                           reachable: set[str]) -> bool:
        """Add the new copies of re-replicated blobs (objname -> URLs) to a tag; copies on
        reachable hosts are listed first. True if the tag changed."""
        entry = self.entry(name)
        async with entry.lock:
            await self._ready(entry)
            if entry.state is not TagState.OK or entry.content is None:
                return False
            new_urls, changed = [], False
            for replicas in entry.content.urls:
                objnames = {p.objname for p in map(parse_url, replicas) if p is not None}
                extra = [u for o in sorted(objnames) for u in additions.get(o, [])
                         if u not in replicas]
                if extra:
                    changed = True
                    replicas = _live_first(replicas + extra, reachable)
                new_urls.append(replicas)
            if changed:
                await self._write(entry, INTERNAL, lambda c: setattr(c, "urls", new_urls))
            return changed

    async def add_copies(self, name: str, tagid: str, holders: dict[str, str]) -> list[str]:
        """Write the current version `tagid`, found on `holders` (host -> volume), to more
        nodes until tag_replicas reachable nodes hold it; the hosts given a copy."""
        entry = self.entry(name)
        async with entry.lock:
            await self._ensure(entry)
            content = entry.content
            if entry.state is not TagState.OK or content is None or content.id != tagid:
                return []  # changed meanwhile: the new version went to enough nodes
            need = self.config.tag_replicas - len(holders)
            targets = self.links.choose(need, exclude=holders) if need > 0 else []
            data = content.encode()
            answers, _failed = await gather_hosts(
                targets, lambda h: self.links.put_tag(h, tagid, data))
            locations = {h: object_url(h, "tag", tagid, vol) for h, vol in holders.items()}
            locations.update(answers)
            entry.replicas, entry.locations = list(locations), list(locations.values())
            return list(answers)


def _set(content: TagContent, attrib: Attrib, value: Any) -> None:
    if attrib == URLS:
        content.urls = value
    elif attrib == READ_TOKEN:
        content.read_token = value
    elif attrib == WRITE_TOKEN:
        content.write_token = value
    else:
        content.user[attrib.name] = value


def _unset(content: TagContent, attrib: Attrib) -> None:
    if attrib == URLS:
        content.urls = []
    elif attrib == READ_TOKEN:
        content.read_token = None
    elif attrib == WRITE_TOKEN:
        content.write_token = None
    else:
        content.user.pop(attrib.name, None)


def _live_first(urls: list[str], reachable: set[str]) -> list[str]:
    def rank(url: str) -> int:
        parsed = parse_url(url)
        return 0 if parsed is not None and parsed.host in reachable else 1
    return sorted(urls, key=rank)  # stable: the order within each group is kept


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
