"""A tag's content, its JSON form, its attributes and who may read or change it.

A stored tag version is JSON: `{"version": 1, "id": "<name>$<ts>", "last-modified":
"YYYY/MM/DD HH:MM:SS", "read-token": str|null, "write-token": str|null, "urls": [[replica
url, ...], ...], "user-data": {attr: str}}`. Clients never see the tokens in a whole tag;
they read them one at a time as the attributes `ddfs:read-token` and `ddfs:write-token`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from disco.mapreduce.ddfs.names import url_to_name
from disco.mapreduce.timefmt import event_timestamp

# The token the master uses for its own operations (saving job results, GC, the +deleted
# metatag): it passes every check and never ends up in a tag.
INTERNAL = object()

MAX_ATTRIBUTE_NAME = 1024          # bytes of a user attribute name
MAX_ATTRIBUTE_VALUE = 1 << 20      # bytes of a user attribute value, as JSON


@dataclass
class TagContent:
    id: str
    last_modified: str
    read_token: str | None = None
    write_token: str | None = None
    urls: list[list[str]] = field(default_factory=list)
    user: dict[str, str] = field(default_factory=dict)

    def stored(self) -> dict[str, Any]:
        """The whole version, tokens included, as written to the nodes."""
        return {"version": 1, "id": self.id, "last-modified": self.last_modified,
                "read-token": self.read_token, "write-token": self.write_token,
                "urls": self.urls, "user-data": self.user}

    def public(self) -> dict[str, Any]:
        """What `GET /ddfs/tag/<tag>` shows: everything but the tokens."""
        return {"version": 1, "id": self.id, "last-modified": self.last_modified,
                "urls": self.urls, "user-data": self.user}

    def encode(self) -> bytes:
        return json.dumps(self.stored()).encode()

    def renamed(self, new_id: str) -> TagContent:
        """The next version: a new id and modification time, the same content."""
        return replace(self, id=new_id, last_modified=event_timestamp(),
                       urls=[list(r) for r in self.urls], user=dict(self.user))

    @classmethod
    def decode(cls, obj: Any) -> TagContent:
        """Parse a stored version; ValueError if it is not one."""
        if isinstance(obj, (bytes, str)):
            obj = json.loads(obj)
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
            raise ValueError("a tag is a JSON object with an id")
        urls = obj.get("urls", [])
        user = obj.get("user-data") or {}
        if not valid_urls(urls) or not isinstance(user, dict):
            raise ValueError(f"tag {obj['id']} has malformed urls or user-data")
        read, write = obj.get("read-token"), obj.get("write-token")
        if not all(t is None or isinstance(t, str) for t in (read, write)):
            raise ValueError(f"tag {obj['id']} has malformed tokens")
        return cls(id=obj["id"], last_modified=str(obj.get("last-modified", "")),
                   read_token=read, write_token=write, urls=urls,
                   user={str(k): v for k, v in user.items()})


@dataclass(frozen=True)
class Attrib:
    """What part of a tag a request is about: `all`, `urls`, `read-token`, `write-token`,
    `user` (with the attribute's `name`) or `unknown` (a reserved `ddfs:` name)."""

    kind: str
    name: str = ""


ALL = Attrib("all")
URLS = Attrib("urls")
READ_TOKEN = Attrib("read-token")
WRITE_TOKEN = Attrib("write-token")
UNKNOWN = Attrib("unknown")

_RESERVED = {"ddfs:urls": URLS, "ddfs:read-token": READ_TOKEN, "ddfs:write-token": WRITE_TOKEN}


def split_tag_path(path: str, default: Attrib) -> tuple[str, Attrib]:
    """`tag` or `tag/attr` (the part of `/ddfs/tag/...` after the prefix)."""
    tag, _slash, attr = path.partition("/")
    if not attr:
        return tag, default
    if attr in _RESERVED:
        return tag, _RESERVED[attr]
    if attr.startswith("ddfs:"):
        return tag, UNKNOWN
    return tag, Attrib("user", attr)


def valid_urls(value: Any) -> bool:
    """A tag's urls: a list of replica lists of strings."""
    return isinstance(value, list) and all(
        isinstance(replicas, list) and all(isinstance(u, str) for u in replicas)
        for replicas in value)


def valid_value(attrib: Attrib, value: Any) -> bool:
    if attrib == URLS:
        return valid_urls(value)
    return isinstance(value, str)


def privilege(token: Any, read_token: str | None, write_token: str | None,
              wanted: str) -> str | None:
    """What `token` may do with a tag holding these tokens, asking for `wanted` ("read" or
    "write"): "write", "read", or None (refused). A tag without a token lets anyone in;
    a token that opens the write lock also opens the read lock."""
    def opens(lock: str | None) -> bool:
        return token is INTERNAL or lock is None or token == lock

    can_write = opens(write_token)
    if wanted == "write":
        return "write" if can_write else None
    if opens(read_token):
        if write_token is None or write_token == read_token or can_write:
            return "write"
        return "read"
    # An unset write token would otherwise let anyone read a read-protected tag.
    if write_token is not None and can_write:
        return "write"
    return None


def merge_urls(new: list[list[str]], old: list[list[str]] | None,
               nodup: bool) -> tuple[bool, list[list[str]]]:
    """Add `new` to a tag's urls (`old`, None when the tag does not exist yet): newest first.
    With `nodup` (`update=1`) entries whose blob or tag name the tag already has, or that an
    earlier entry of `new` has, are dropped. Returns (changed, urls)."""
    if not nodup:
        if old is None:
            return True, [list(r) for r in new]
        if not new:
            return False, old
        return True, [list(r) for r in new] + old
    if old is None and not new:
        return True, []  # an empty update still creates the tag
    seen = {n for n in (url_to_name(r[0]) for r in old or [] if r) if n is not None}
    merged = list(old or [])
    changed = old is None
    for replicas in new:
        name = url_to_name(replicas[0]) if replicas else None
        if name is not None:
            if name in seen:
                continue
            seen.add(name)
        merged.insert(0, list(replicas))
        changed = True
    return changed, merged
