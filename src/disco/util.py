"""Helpers that Disco users and the worker rely on (``from disco.util import kvgroup``).

Bytes and strings (Python 3):

- records read from ``raw://`` inputs are ``str``; lines read from ``http(s)://``, ``disco://``
  and ``file://`` inputs are ``bytes`` (newline included), as under Disco on Python 3;
- records read back with ``chain_reader`` have the types the writing task gave them;
- URLs, labels and index lines handled here are ``str``.
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import io
import json
import os
import pickle
import random
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from itertools import chain, groupby, islice
from operator import itemgetter
from typing import Any

from disco.error import CommError, DataError, DiscoError

JOBNAME_RE = re.compile(r"^[^/.]+@[0-9a-fA-F]+:[0-9a-fA-F]+:[0-9a-fA-F]+$")
SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9_\-@:]+$")


# -- iteration ---------------------------------------------------------------------------
def isiterable(obj: Any) -> bool:
    """True for containers and iterators, False for strings and bytes (they are values)."""
    return hasattr(obj, "__iter__") and not isinstance(obj, (str, bytes, bytearray))


def iskv(obj: Any) -> bool:
    return isinstance(obj, tuple) and len(obj) == 2


def iterify(obj: Any) -> Iterable[Any]:
    """``obj`` itself when it is iterable (strings are not), else ``[obj]``."""
    return obj if isiterable(obj) else [obj]


def listify(obj: Any) -> list[Any]:
    return list(iterify(obj))


def flatten(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every non-iterable item of arbitrarily nested iterables, depth first."""
    for item in iterable:
        if isiterable(item):
            yield from flatten(item)
        else:
            yield item


def chainify(iterable: Iterable[Iterable[Any]]) -> list[Any]:
    """Concatenate one level of nesting: ``[[1, 2], [3]] -> [1, 2, 3]``."""
    return list(chain.from_iterable(iterable))


def kvgroup(kviter: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Iterator[Any]]]:
    """Group the values of *consecutive* equal keys: ``(k, v)...`` becomes ``(k, values)...``.

    The input is not sorted first; use ``kvgroup(sorted(iter))`` (or ``sort=True`` on the
    job) so that equal keys are adjacent.
    """
    second = itemgetter(1)
    for key, pairs in groupby(kviter, itemgetter(0)):
        yield key, map(second, pairs)  # lazy, as a generator, and a C loop


def shuffled(obj: Iterable[Any]) -> list[Any]:
    """A randomly ordered list of the items of ``obj``."""
    items = listify(obj)
    random.shuffle(items)
    return items


def ilen(iterable: Iterable[Any]) -> int:
    return sum(1 for _ in iterable)


def partition(iterable: Iterable[Any], predicate: Callable[[Any], bool]) -> tuple[list, list]:
    yes, no = [], []
    for item in iterable:
        (yes if predicate(item) else no).append(item)
    return yes, no


_ARGCOUNTS: dict[Any, int] = {}  # func -> argcount(func): inspect.signature is slow


def argcount(func: Any) -> int:
    """How many positional arguments ``func`` still takes (``functools.partial`` aware).
    Remembered per function: a worker asks for every output a task opens (inspecting the
    signature each time cost ~5% of a small map task)."""
    try:
        return _ARGCOUNTS[func]
    except KeyError:
        pass
    except TypeError:  # unhashable: not remembered
        return _argcount(func)
    if len(_ARGCOUNTS) >= 1024:  # functions made per job (closures): bounded
        _ARGCOUNTS.clear()
    count = _ARGCOUNTS[func] = _argcount(func)
    return count


def _argcount(func: Any) -> int:
    import inspect
    if isinstance(func, partial):
        return max(0, argcount(func.func) - len(func.args)
                   - sum(1 for k in func.keywords or () if k in _positional_names(func.func)))
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        code = getattr(func, "__code__", None)
        return code.co_argcount if code else 0
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 1 << 16
    return sum(1 for p in params if p.kind in kinds)


def _positional_names(func: Any) -> set[str]:
    import inspect
    try:
        return {p.name for p in inspect.signature(func).parameters.values()}
    except (TypeError, ValueError):
        return set()


def globalize(obj: Any, names: dict[str, Any]) -> None:
    """Give a function the extra globals job functions see on a node, without overriding
    anything the function's module defines itself."""
    while isinstance(obj, partial):
        obj = obj.func
    obj = getattr(obj, "__func__", obj)  # staticmethod / bound method
    func_globals = getattr(obj, "__globals__", None)
    if isinstance(func_globals, dict):
        for key, value in names.items():
            func_globals.setdefault(key, value)


def hexhash(string: str | bytes) -> str:
    """The first md5 byte of ``string`` in hex: the ``hh`` directory of job homes."""
    data = string.encode("utf-8") if isinstance(string, str) else string
    return hashlib.md5(data).hexdigest()[:2]


def format_size(num: float) -> str:
    for unit in (" bytes", "KB", "MB", "GB", "TB"):
        if num < 1024.0:
            return f"{num:3.1f}{unit}"
        num /= 1024.0
    return f"{num:3.1f}PB"


# -- URLs --------------------------------------------------------------------------------
class netloc(tuple):
    """``(host, port)`` of a URL; port is a string, empty when the URL has none."""

    @classmethod
    def parse(cls, text: str) -> "netloc":
        text = text.rsplit("@", 1)[1] if "@" in text else text
        if text.startswith("["):  # IPv6 literal
            host, _, rest = text[1:].partition("]")
            return cls((host, rest.lstrip(":")))
        host, _, port = text.partition(":")
        return cls((host, port))

    @property
    def host(self) -> str:
        return self[0]

    @property
    def port(self) -> str:
        return self[1]

    def __bool__(self) -> bool:
        return bool(self[0])

    def __str__(self) -> str:
        return f"{self[0]}:{self[1]}" if self[1] else self[0]


def schemesplit(url: str | bytes) -> tuple[str, str]:
    """``'http://h/p' -> ('http', 'h/p')``; no scheme gives ``('', url)``. A URL given as
    bytes (a line read from an input, as in Disco's own tests) is read as UTF-8."""
    if isinstance(url, (bytes, bytearray)):
        url = bytes(url).decode("utf-8")
    if "://" in url:
        scheme, rest = url.split("://", 1)
        return scheme, rest
    return "", url


def localize(path: str, ddfs_data: str | None = None, disco_data: str | None = None) -> str:
    """A node-local path for the path of a ``disco://`` URL: ``ddfs/...`` is under
    DDFS_DATA, anything else (``disco/...``) is under DISCO_DATA, first component dropped."""
    prefix, _, rest = path.partition("/")
    if prefix == "ddfs":
        return os.path.join(ddfs_data or "", rest)
    return os.path.join(disco_data or "", rest)


def urlsplit(url: str | bytes, localhost: Any = None, disco_port: Any = None,
             **kwargs: Any) -> tuple[str, netloc, str]:
    """Split a URL into ``(scheme, netloc, path)``, resolving Disco's own schemes.

    - ``disco://host/path`` (and any URL on the Disco port) becomes ``file`` with a local
      path when ``host`` is ``localhost`` (the name of the node we run on, or True), and
      ``http`` on ``host:DISCO_PORT`` otherwise; ``disco_data=``/``ddfs_data=`` say where
      local data lives.
    - ``tag://name`` and ``tag://host/name``: the path is the tag name.
    """
    scheme, rest = schemesplit(url)
    locstr, _, path = rest.partition("/")
    if scheme == "tag":
        if not path:
            path, locstr = locstr, ""
        return scheme, netloc.parse(locstr), path
    port = str(disco_port or _settings()["DISCO_PORT"])
    host, url_port = netloc.parse(locstr)
    if scheme in ("disco", "dir") or (url_port == port and scheme == "http"):
        if localhost is True or (localhost and host == localhost):
            return "file", netloc(("", "")), localize(path, **kwargs)
        if scheme == "disco":
            return "http", netloc((host, port)), path
    return scheme, netloc.parse(locstr), path


def urljoin(parts: tuple[str, Any, str]) -> str:
    scheme, loc, path = parts
    return f"{scheme + '://' if scheme else ''}{str(loc) + '/' if loc else ''}{path}"


def urlresolve(url: str, master: str | None = None) -> str:
    """An HTTP URL for a Disco URL: ``disco://`` and ``dir://`` on DISCO_PORT of their host,
    ``tag://name`` at the master's ``/ddfs/tag/name``. A master address that gives no
    ``scheme://host`` (``disco-master``) cannot make such a URL: DiscoError says so."""
    def base(loc: netloc) -> str:
        if not loc:
            return (master or _settings()["DISCO_MASTER"]).rstrip("/")
        if not loc.port:
            return f"disco://{loc.host}"
        return f"http://{loc.host}:{loc.port}"
    scheme, loc, path = urlsplit(url)
    if scheme in ("dir", "tag"):
        where = base(loc)
        if not loc and not _has_scheme_and_host(where):
            raise DiscoError(f"cannot resolve {url}: the master address {where!r} is not "
                             f"a URL such as http://host:port (see DISCO_MASTER)")
        return urlresolve(f"{where}/ddfs/tag/{path}" if scheme == "tag" else f"{where}/{path}",
                          master)
    if scheme == "file":
        return url
    return f"{scheme}://{loc}/{path}" if scheme else url


def _has_scheme_and_host(url: str) -> bool:
    scheme, rest = schemesplit(url)
    return bool(scheme) and bool(rest.split("/", 1)[0])


def urltoken(url: str) -> str | None:
    """The DDFS token in ``tag://user:token@host/name`` (or ``tag://token@...``)."""
    _scheme, rest = schemesplit(url)
    locstr = rest.split("/", 1)[0]
    if "@" in locstr:
        auth = locstr.rsplit("@", 1)[0]
        return auth.split(":", 1)[1] if ":" in auth else auth
    return None


def jobname(url: str) -> str:
    """The job name in a result URL such as ``dir://host/disco/host/hh/<job>/.disco/x.results``."""
    scheme, _loc, path = urlsplit(url)
    if scheme not in ("disco", "dir", "http", "https", "file"):
        raise DiscoError(f"Cannot parse jobname from {url}")
    parts = [part for part in path.split("/") if part]
    for part in reversed(parts):
        if JOBNAME_RE.match(part):
            return part
    if len(parts) >= 2:
        return parts[-2]
    raise DiscoError(f"Cannot parse jobname from {url}")


def proxy_url(url: str, proxy: str | None = None, meth: str = "GET", to_master: bool = True) -> str:
    """Route a URL through DISCO_PROXY when one is set (Disco's proxy mode)."""
    proxy = _settings()["DISCO_PROXY"] if proxy is None else proxy
    scheme, loc, path = urlsplit(url)
    if proxy and scheme != "tag":
        if to_master:
            return f"{proxy}/{path}"
        return f"{proxy}/proxy/{loc.host}/{meth}/{path}"
    return url


# -- indexes (dir://) and input lists ----------------------------------------------------
def read_index(dir_url: str) -> Iterator[tuple[Any, str, int]]:
    """The ``(label, url, size)`` entries of a ``dir://`` index (lines ``label url size``).

    Labels that look like integers are returned as ``int``. Gzipped indexes are accepted.
    Inside a worker, an index on the worker's own host is read from the local disk.
    """
    from disco.schemes import open_location
    fd, _size, _url = open_location(dir_url)
    try:
        data = fd.read()
    finally:
        fd.close()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"corrupt gzipped index: {exc}", dir_url) from None
    for line in data.decode("utf-8").splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise DataError(f"bad index line {line!r}", dir_url)
        label: Any = fields[0]
        if label.lstrip("-").isdigit():
            label = int(label)
        size = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else 0
        yield label, fields[1], size


def parse_dir(dir_url: str, partition: Any = None, label: Any = None) -> list[str]:
    """The URLs listed in a ``dir://`` index, in label order; only those of ``partition``
    (alias ``label``) when it is given."""
    wanted = partition if partition is not None else label
    if isinstance(wanted, str) and wanted.lstrip("-").isdigit():
        wanted = int(wanted)
    entries = sorted(read_index(dir_url), key=lambda entry: (str(type(entry[0])), entry[0]))
    return [url for lbl, url, _size in entries if wanted is None or lbl == wanted]


def ispartitioned(inputs: Any) -> bool:
    if isiterable(inputs):
        inputs = list(inputs)
        return bool(inputs) and all(ispartitioned(i) for i in inputs)
    return isinstance(inputs, str) and inputs.startswith("dir://")


def urllist(url: Any, partid: Any = None, listdirs: bool = True, ddfs: str | None = None,
            token: str | None = None) -> list[list[str]]:
    """The inputs a URL stands for, each a list of replica URLs.

    A list of URLs is one input with those replicas; ``dir://`` expands to the entries of
    the index (of label ``partid`` when given); ``tag://`` to the blobs of the tag.
    """
    if isiterable(url):
        replicas = [str(u) for u in url]
        if len(replicas) == 1 or (replicas and all(
                schemesplit(u)[0] in ("dir", "tag") for u in replicas)):
            return urllist(replicas[0], partid=partid, listdirs=listdirs, ddfs=ddfs,
                           token=token)
        return [replicas]
    scheme, _loc, _path = urlsplit(url)
    if scheme == "dir" and listdirs:
        return [[entry] for entry in parse_dir(url, partition=partid)]
    if scheme == "tag":
        from disco.schemes.scheme_tag import resolve_tag
        return resolve_tag(url, master=ddfs, token=token)
    return [[url]]


def inputlist(inputs: Iterable[Any], *, expand_dirs: bool = True, ddfs: str | None = None,
              token: str | None = None) -> list[Any]:
    """The job's ``input`` as the jobdict carries it: each item a URL or a list of replica
    URLs. Tags become their blobs; indexes (``dir://``) their entries when ``expand_dirs``."""
    expanded: list[Any] = []
    for item in iterify(inputs):
        if isiterable(item):
            replicas = [str(url) for url in item]
            if replicas:
                expanded.append(replicas if len(replicas) > 1 else replicas[0])
            continue
        item = str(item)
        scheme = schemesplit(item)[0]
        if scheme == "tag" or (scheme == "dir" and expand_dirs):
            for replicas in urllist(item, ddfs=ddfs, token=token):
                expanded.append(replicas if len(replicas) > 1 else replicas[0])
        else:
            expanded.append(item)
    return expanded


# -- out-of-band data (needs DDFS on the master) -----------------------------------------
def master_url(master: str | None = None, port: Any = None) -> str:
    """The master as an HTTP base URL: accepts ``http://h:p``, ``disco://h`` or a bare host
    (``port`` or DISCO_PORT is added where none is given); None means DISCO_MASTER."""
    master = str(master or _settings()["DISCO_MASTER"])
    port = port or _settings()["DISCO_PORT"]
    if master.startswith("disco://"):
        master = master[len("disco://"):]
    if "://" not in master:
        master = f"http://{master}" if ":" in master.rsplit("]", 1)[-1] else f"http://{master}:{port}"
    return master.rstrip("/")


def oob_tag(jobname: str) -> str:
    return f"disco:job:oob:{jobname}"


def save_oob(master: str | None, jobname: str, key: str, value: bytes,
             ddfs_token: str | None = None) -> None:
    """Store ``value`` under ``key`` for the job, as a blob in the tag ``disco:job:oob:<job>``.

    Uses DDFS's HTTP API on the master: ``GET /ddfs/new_blob/<key>`` for PUT URLs, a PUT to
    each, then ``POST /ddfs/tag/<tag>?delayed=1`` with the new replica URLs.
    """
    from disco import comm
    if not SAFE_NAME_RE.match(key) or len(key) > 256:
        raise DiscoError(f"OOB key contains invalid characters ({key})")
    if isinstance(value, str):
        value = value.encode("utf-8")
    base = master_url(master)
    auth = ("token", ddfs_token) if ddfs_token else None
    replicas = _settings()["DDFS_BLOB_REPLICAS"]
    put_urls = json.loads(comm.download(f"{base}/ddfs/new_blob/{key}?replicas={replicas}",
                                        auth=auth))
    blob_urls = [json.loads(comm.download(url, value, method="PUT", auth=auth))
                 for url in put_urls]
    comm.download(f"{base}/ddfs/tag/{oob_tag(jobname)}?delayed=1",
                  json.dumps([blob_urls]), method="POST", auth=auth)


def load_oob(master: str | None, jobname: str, key: str) -> bytes:
    """The latest value stored under ``key`` for the job (see :func:`save_oob`)."""
    from disco import comm
    from disco.schemes import open_location
    base = master_url(master)
    tag = json.loads(comm.download(f"{base}/ddfs/tag/{oob_tag(jobname)}"))
    for replicas in reversed(tag.get("urls", [])):
        if replicas and blob_name(replicas[0]) == key:
            last: Exception | None = None
            for url in replicas:
                try:
                    fd, _size, _url = open_location(url)
                    try:
                        return fd.read()
                    finally:
                        fd.close()
                except (DataError, OSError) as exc:
                    last = exc
            raise DataError(f"no replica of OOB key {key} could be read: {last}", replicas[0])
    raise CommError(f"Unknown OOB key {key} for job {jobname}", f"{base}/ddfs/tag/"
                    f"{oob_tag(jobname)}", 404)


def blob_name(url: str) -> str:
    """``.../blob/hh/name$timestamp`` -> ``name``."""
    return url.rstrip("/").rsplit("/", 1)[-1].split("$", 1)[0]


# -- external programs -------------------------------------------------------------------
def external(files: list[str]) -> dict[str, bytes]:
    """Package an external program (the first file) and its supporting files, to be given
    as ``map`` or ``reduce``; see :mod:`disco.worker.classic.external`."""
    from disco.worker.classic.external import package
    return package(files)


# -- deprecated messaging helpers (Disco 0.4) -------------------------------------------
def msg(message: str) -> None:
    print(message)


def err(message: str) -> None:
    raise DiscoError(message)


def data_err(message: str, url: Any) -> None:
    raise DataError(message, url)


# -- sorting -----------------------------------------------------------------------------
def dsorted(iterable: Iterable[Any], key: Callable[[Any], Any] | None = None,
            buffer_bytes: int = 256 << 20, tempdir: str | None = None) -> Iterator[Any]:
    """Sort any number of items with bounded memory (a stable external merge sort).

    Items are collected until their pickled size passes ``buffer_bytes``; each such run is
    sorted in memory and spilled to a temporary file; the runs are then merged. Items only
    need to be picklable and their keys mutually orderable.
    """
    iterator = iter(iterable)
    runs: list[Any] = []
    buffer: list[Any] = []
    used = 0
    try:
        for item in iterator:
            buffer.append(item)
            # Sizing every item would cost a pickling each; sampling one in 64 is enough.
            if len(buffer) % 64 == 1:
                used += 64 * len(pickle.dumps(item, pickle.HIGHEST_PROTOCOL))
            if used >= buffer_bytes:
                buffer.sort(key=key)
                runs.append(_spill(buffer, tempdir))
                buffer, used = [], 0
        buffer.sort(key=key)
        if not runs:
            yield from buffer
            return
        runs.append(_spill(buffer, tempdir))
        buffer = []
        # heapq.merge breaks ties by run order, so equal keys keep their input order.
        yield from heapq.merge(*(_unspill(run) for run in runs), key=key)
    finally:
        for run in runs:
            run.close()


def _spill(items: list[Any], tempdir: str | None) -> Any:
    handle = tempfile.TemporaryFile(dir=tempdir)
    pickler = pickle.Pickler(handle, pickle.HIGHEST_PROTOCOL)
    for item in items:
        pickler.dump(item)
        pickler.clear_memo()  # memo would grow with the run and pin every item
    handle.seek(0)
    return handle


def _unspill(handle: Any) -> Iterator[Any]:
    reader = io.BufferedReader(handle) if not isinstance(handle, io.BufferedIOBase) else handle
    unpickler = pickle.Unpickler(reader)
    while True:
        try:
            yield unpickler.load()
        except EOFError:
            return


def take(n: int, iterable: Iterable[Any]) -> list[Any]:
    return list(islice(iterable, n))


# -- Disco's byte stuffing: data without zero bytes -----------------------------------------
# Each 0x01 and each 0x02 is doubled, and each 0x00 becomes 0x02 0x01 0x02. Read left to
# right, the result is a row of tokens: a 0x02 starting a token is followed by 0x02 (a
# doubled 0x02) or by 0x01 0x02 (a zero byte), a 0x01 by 0x01, so one scan undoes it.
_ENCODE = {b"\x00": b"\x02\x01\x02", b"\x01": b"\x01\x01", b"\x02": b"\x02\x02"}
_DECODE = {escaped: plain for plain, escaped in _ENCODE.items()}
_ENCODE_RE = re.compile(b"[\x00\x01\x02]")
_DECODE_RE = re.compile(b"\x02\x01\x02|\x02\x02|\x01\x01")


def encode(data: bytes) -> bytes:
    """``data`` with no zero bytes left, reversibly (:func:`decode`), as Disco encodes."""
    return _ENCODE_RE.sub(lambda m: _ENCODE[m.group()], data)


def decode(data: bytes) -> bytes:
    """The bytes that :func:`encode` was given."""
    return _DECODE_RE.sub(lambda m: _DECODE[m.group()], data)


def _settings() -> Any:
    from disco.settings import DiscoSettings
    return DiscoSettings()
