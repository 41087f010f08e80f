"""A node's DDFS storage: the objects under DDFS_DATA, written, listed and deleted.

Uploads go to `!partial-<object>-<random>` next to their final place and are linked to the
final name only once complete, so a reader never sees half an object, and an object, once
there, never changes (a second upload of the same name is refused). The node keeps an index
of its tag versions by tag name, built by one scan of the tag folders the first time it is
needed, because a tag's folder depends on the version's timestamp and could not be found by
name otherwise. Only this process writes under DDFS_DATA, so the index stays true.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from disco.mapreduce.ddfs.names import (
    DEFAULT_VOLUME,
    KINDS,
    PARTIAL_PREFIX,
    VOLUME_RE,
    Timestamp,
    hexhash,
    object_url,
    relpath,
    unpack_objname,
    valid_objname,
)


class StoreError(Exception):
    """A request the store refuses; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TagFile:
    tagid: str
    ts: Timestamp
    vol: str


class DdfsStore:
    def __init__(self, root: Path, host: str) -> None:
        self.root = root
        self.host = host
        self._tags: dict[str, list[TagFile]] | None = None
        self._index_lock = asyncio.Lock()

    # ------------------------------------------------------------------ paths

    def path(self, kind: str, objname: str, vol: str = DEFAULT_VOLUME) -> Path:
        return self.root / relpath(kind, objname, vol)

    def check(self, vol: str, kind: str, hh: str, objname: str) -> None:
        if not VOLUME_RE.match(vol) or kind not in KINDS:
            raise StoreError("no such DDFS location", 404)
        if not valid_objname(objname) or hh != hexhash(objname):
            raise StoreError(f"invalid object name {objname!r}", 403)

    # ------------------------------------------------------------------ writing

    async def receive(self, kind: str, objname: str, chunks: AsyncIterator[bytes],
                      vol: str = DEFAULT_VOLUME) -> str:
        """Store an object from `chunks`; its disco:// URL. Raises StoreError (409) when an
        object of that name exists, and passes on whatever ends the upload early."""
        final = self.path(kind, objname, vol)
        if kind == "tag":
            await self._tag_index()  # before the file exists, so the first scan cannot race it
        if final.exists():
            raise StoreError(f"{objname} exists already", 409)
        partial = final.with_name(f"{PARTIAL_PREFIX}{objname}-{secrets.token_hex(4)}")
        await asyncio.to_thread(final.parent.mkdir, parents=True, exist_ok=True)
        handle = await asyncio.to_thread(open, partial, "xb")
        try:
            try:
                async for chunk in chunks:
                    if chunk:
                        await asyncio.to_thread(handle.write, chunk)
            finally:
                await asyncio.to_thread(handle.close)
            # A link, unlike a rename, never replaces an object that appeared meanwhile.
            await asyncio.to_thread(os.link, partial, final)
        except FileExistsError:
            raise StoreError(f"{objname} exists already", 409) from None
        finally:
            await asyncio.to_thread(_unlink, partial)
        if kind == "tag":
            self._index_tag(objname, vol)
        return object_url(self.host, kind, objname, vol)

    async def receive_bytes(self, kind: str, objname: str, data: bytes,
                            vol: str = DEFAULT_VOLUME) -> str:
        async def once() -> AsyncIterator[bytes]:
            yield data
        return await self.receive(kind, objname, once(), vol)

    # ------------------------------------------------------------------ tags

    def _scan_tags(self) -> dict[str, list[TagFile]]:
        index: dict[str, list[TagFile]] = {}
        for vol, _kind, _hh, objname, _path in self._walk(kinds=("tag",)):
            if not objname.startswith(PARTIAL_PREFIX):
                name, ts = unpack_objname(objname)
                index.setdefault(name, []).append(TagFile(objname, ts, vol))
        return index

    async def _tag_index(self) -> dict[str, list[TagFile]]:
        """The index, scanned once; it is changed only on the event loop afterwards."""
        if self._tags is None:
            async with self._index_lock:
                if self._tags is None:
                    self._tags = await asyncio.to_thread(self._scan_tags)
        return self._tags

    def _index_tag(self, tagid: str, vol: str) -> None:
        assert self._tags is not None
        name, ts = unpack_objname(tagid)
        self._tags.setdefault(name, []).append(TagFile(tagid, ts, vol))

    def _unindex_tag(self, tagid: str) -> None:
        if self._tags is None:
            return
        name, _ts = unpack_objname(tagid)
        kept = [f for f in self._tags.get(name, []) if f.tagid != tagid]
        if kept:
            self._tags[name] = kept
        else:
            self._tags.pop(name, None)

    async def latest_tag(self, name: str) -> tuple[TagFile, bytes] | None:
        """The newest version of tag `name` held here, with its bytes."""
        index = await self._tag_index()
        versions = sorted(index.get(name, []), key=lambda f: f.ts, reverse=True)
        for version in versions:
            try:
                data = await asyncio.to_thread(self.path("tag", version.tagid, version.vol).read_bytes)
            except FileNotFoundError:
                continue  # deleted behind our back: the next one will do
            return version, data
        return None

    async def tag_names(self) -> list[str]:
        index = await self._tag_index()
        return sorted(name for name, versions in index.items() if versions)

    # ------------------------------------------------------------------ listing, deleting

    def _walk(self, kinds: tuple[str, ...] = KINDS) -> Iterator[tuple[str, str, str, str, Path]]:
        """(vol, kind, hh, file name, path) of every file under DDFS_DATA, partials included
        (their names start with `!partial-`)."""
        if not self.root.is_dir():
            return
        for vol_dir in self.root.iterdir():
            if not VOLUME_RE.match(vol_dir.name):
                continue
            for kind in kinds:
                kind_dir = vol_dir / kind
                if not kind_dir.is_dir():
                    continue
                for hh_dir in kind_dir.iterdir():
                    if not hh_dir.is_dir():
                        continue
                    for entry in hh_dir.iterdir():
                        if entry.name.startswith(PARTIAL_PREFIX) or valid_objname(entry.name):
                            yield vol_dir.name, kind, hh_dir.name, entry.name, entry

    def _inventory(self) -> dict[str, Any]:
        now = time.time()
        blobs: list[list[Any]] = []
        tags: list[list[Any]] = []
        partials: list[list[Any]] = []
        for vol, kind, hh, name, path in self._walk():
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            age = max(0.0, now - st.st_mtime)
            if name.startswith(PARTIAL_PREFIX):
                partials.append([f"{vol}/{kind}/{hh}/{name}", age])
            elif kind == "blob":
                blobs.append([name, vol, st.st_size, age])
            else:
                tags.append([name, vol, st.st_size])
        return {"blobs": blobs, "tags": tags, "partials": partials}

    async def inventory(self) -> dict[str, Any]:
        """Every blob `[name, vol, size, age]`, tag version `[id, vol, size]` and unfinished
        upload `[relative path, age]` held here; ages in seconds."""
        return await asyncio.to_thread(self._inventory)

    def _delete(self, blobs: list[list[str]], tags: list[list[str]], partials: list[str]) -> int:
        deleted = 0
        for kind, entries in (("blob", blobs), ("tag", tags)):
            for objname, vol in entries:
                if valid_objname(objname) and VOLUME_RE.match(vol) \
                        and _unlink(self.path(kind, objname, vol)):
                    deleted += 1
        for rel in partials:
            parts = rel.split("/")
            if len(parts) == 4 and VOLUME_RE.match(parts[0]) and parts[1] in KINDS \
                    and parts[3].startswith(PARTIAL_PREFIX) and "/" not in parts[3] \
                    and parts[2] not in ("..", "."):
                if _unlink(self.root.joinpath(*parts)):
                    deleted += 1
        return deleted

    async def delete(self, blobs: list[list[str]], tags: list[list[str]],
                     partials: list[str]) -> int:
        """Delete blobs and tag versions (`[name, vol]` each) and partial uploads (relative
        paths, as the inventory lists them); how many files went."""
        valid = [[t, v] for t, v in tags if valid_objname(t)]
        for tagid, _vol in valid:
            self._unindex_tag(tagid)  # first: a reader must not pick a version being deleted
        return await asyncio.to_thread(self._delete, blobs, valid, partials)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
