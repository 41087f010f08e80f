"""Names of DDFS objects, their timestamps, and where they live.

An *object* is a blob or a tag version, named `<name>$<timestamp>` (the object name, or tag
id). The timestamp is Disco's: the time as megaseconds, seconds and microseconds in hex,
joined by `-` (`530-1bcc5-203f7`), so that versions of a tag compare by time. Objects are
stored on a node under `DDFS_DATA/<vol>/<blob|tag>/<hh>/<object name>`, `hh` being the first
byte of md5(object name) in hex, and are addressed as `disco://<host>/ddfs/<vol>/<kind>/<hh>/
<object name>`.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

NAME_RE = re.compile(r"^[A-Za-z0-9_\-@:]+$")
# An object name, its timestamp included, must fit in a file name (255 bytes) with the
# `!partial-` prefix and a random suffix of an upload in progress; 200 leaves room for both.
MAX_NAME_LENGTH = 200
TIMESTAMP_RE = re.compile(r"^[0-9a-f]+-[0-9a-f]+-[0-9a-f]+$")
VOLUME_RE = re.compile(r"^vol[0-9]+$")
PARTIAL_PREFIX = "!partial-"
KINDS = ("blob", "tag")
DEFAULT_VOLUME = "vol0"
# The metatag listing deleted tags. Its name is not a valid user tag name, so no user can
# create or write it through the HTTP API.
DELETED_TAG = "+deleted"

Timestamp = tuple[int, int, int]


def valid_name(name: str) -> bool:
    return bool(NAME_RE.match(name)) and len(name) <= MAX_NAME_LENGTH


def safe_name(name: str) -> str:
    """`name` with every character DDFS does not allow replaced by `_`."""
    return re.sub(r"[^A-Za-z0-9_\-@:]", "_", name)


def timestamp(when: float | None = None) -> Timestamp:
    micros = int((time.time() if when is None else when) * 1_000_000)
    seconds, micro = divmod(micros, 1_000_000)
    mega, sec = divmod(seconds, 1_000_000)
    return (mega, sec, micro)


def format_timestamp(ts: Timestamp) -> str:
    # Disco writes zero as "00" and other numbers without leading zeros.
    return "-".join(f"{part:x}" if part else "00" for part in ts)


def parse_timestamp(text: str) -> Timestamp:
    if not TIMESTAMP_RE.match(text):
        raise ValueError(f"not a DDFS timestamp: {text!r}")
    mega, sec, micro = (int(part, 16) for part in text.split("-"))
    return (mega, sec, micro)


def later(ts: Timestamp, than: Timestamp) -> Timestamp:
    """`ts`, or the microsecond after `than` when `ts` is not later: versions of one tag
    must have distinct, increasing timestamps even when written within a microsecond."""
    if ts > than:
        return ts
    mega, sec, micro = than
    micro += 1
    if micro == 1_000_000:
        micro, sec = 0, sec + 1
        if sec == 1_000_000:
            sec, mega = 0, mega + 1
    return (mega, sec, micro)


def timestamp_seconds(ts: Timestamp) -> float:
    mega, sec, micro = ts
    return mega * 1_000_000 + sec + micro / 1_000_000


def pack_objname(name: str, ts: Timestamp) -> str:
    return f"{name}${format_timestamp(ts)}"


def unpack_objname(objname: str) -> tuple[str, Timestamp]:
    """`name$timestamp` -> (name, timestamp); ValueError for anything else."""
    name, sep, stamp = objname.rpartition("$")
    if not sep or not name:
        raise ValueError(f"not a DDFS object name: {objname!r}")
    return name, parse_timestamp(stamp)


def valid_objname(objname: str) -> bool:
    try:
        name, _ts = unpack_objname(objname)
    except ValueError:
        return False
    return valid_name(name) or name == DELETED_TAG


def hexhash(objname: str) -> str:
    return hashlib.md5(objname.encode()).hexdigest()[:2]


def relpath(kind: str, objname: str, vol: str = DEFAULT_VOLUME) -> str:
    """Where an object lives under DDFS_DATA (and under `/ddfs/` in URLs)."""
    return f"{vol}/{kind}/{hexhash(objname)}/{objname}"


def object_url(host: str, kind: str, objname: str, vol: str = DEFAULT_VOLUME) -> str:
    return f"disco://{host}/ddfs/{relpath(kind, objname, vol)}"


@dataclass(frozen=True)
class DdfsUrl:
    """A URL naming a DDFS object on a host (any scheme: disco://, http://...)."""

    host: str
    vol: str
    kind: str
    objname: str

    @property
    def name(self) -> str:
        return self.objname.rpartition("$")[0]


def parse_url(url: str) -> DdfsUrl | None:
    """The object a URL names, or None when it is not a DDFS object URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    segments = unquote(parts.path).split("/")
    if len(segments) != 6 or segments[:2] != ["", "ddfs"]:
        return None
    _empty, _ddfs, vol, kind, hh, objname = segments
    if not VOLUME_RE.match(vol) or kind not in KINDS or hh != hexhash(objname) \
            or not valid_objname(objname) or not parts.hostname:
        return None
    return DdfsUrl(parts.hostname, vol, kind, objname)


def url_to_name(url: str) -> str | None:
    """What `update=1` compares to drop duplicates: a blob's name without its timestamp, a
    tag URL's tag name; None for URLs that name neither (those are never duplicates)."""
    if url.startswith("tag://"):
        return url[len("tag://"):]
    parsed = parse_url(url)
    return parsed.name if parsed is not None else None
