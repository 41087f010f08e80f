"""The client of DDFS, Disco's distributed file system (``from disco.ddfs import DDFS``).

    from disco.ddfs import DDFS
    ddfs = DDFS("http://master:8989")
    ddfs.push("data:logs", ["./access.log"])          # upload blobs and tag them
    for replicas in ddfs.blobs("data:logs"): ...      # every blob reachable from the tag

Wherever a tag is expected, ``name`` and ``tag://name`` both do (and a list, whose first
item is taken). Tokens: an explicit ``token=`` argument, else the token in a
``tag://user:token@/name`` URL, else DDFS_READ_TOKEN (for reads) or DDFS_WRITE_TOKEN (for
changes) from the settings. HTTP errors raise :class:`disco.error.CommError`, with the
status in ``.code`` (401: a token is needed, 403: invalid name or request, 404: no such tag
or attribute).
"""

from __future__ import annotations

import io
import json
import os
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx

from disco import comm, comm_auth
from disco.error import CommError, DiscoError
from disco.fileutils import CHUNK_SIZE
from disco.settings import DiscoSettings
from disco.util import (
    isiterable,
    iterify,
    master_url,
    partition,
    proxy_url,
    schemesplit,
    urljoin,
    urlresolve,
    urlsplit,
    urltoken,
)
from disco.worker.task_io import MAX_RECORD_SIZE, DiscoOutputStream_v1

_UNSAFE = "[^A-Za-z0-9_\\-@:]"


class InvalidTag(DiscoError):
    """Not a tag name or tag URL."""


def canonizetag(tag: Any) -> str:
    """``name`` -> ``tag://name``; ``tag://...`` as it is; a list: its first item."""
    if tag and isiterable(tag):
        for first in tag:
            return canonizetag(first)
    if isinstance(tag, str) and tag:
        if tag.startswith("tag://"):
            return tag
        if "://" not in tag and "/" not in tag:
            return f"tag://{tag}"
    raise InvalidTag(f"Invalid tag: {tag!r}")


def canonizetags(tags: Any) -> list[str]:
    return [canonizetag(tag) for tag in iterify(tags)]


def istag(tag: Any) -> bool:
    try:
        canonizetag(tag)
        return True
    except InvalidTag:
        return False


def tagname(tag: Any) -> str:
    return urlsplit(canonizetag(tag))[2]


def relativizetag(tag: str, parent: str) -> str:
    """A tag found in ``parent`` lives on the same master as ``parent`` unless it names one."""
    _scheme, loc, name = urlsplit(canonizetag(tag))
    _scheme, parent_loc, _name = urlsplit(canonizetag(parent))
    return urljoin(("tag", loc or parent_loc, name))


def relativizetags(tags: Iterable[str], parent: str) -> list[str]:
    return [relativizetag(tag, parent) for tag in tags]


class BlobFile(io.RawIOBase):
    """A blob being read (what :meth:`DDFS.pull` yields): ``read()``, lines, ``len()``, and
    the ``url`` it is read from."""

    def __init__(self, stream: Any, size: int | None, url: str) -> None:
        super().__init__()
        self.stream, self.size, self.url = stream, size, url

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        data = self.stream.read(len(target))
        target[:len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        return self.stream.read(-1 if size is None else size)

    def __len__(self) -> int:
        return self.size or 0

    def close(self) -> None:
        if not self.closed:
            self.stream.close()
        super().close()


class DDFS:
    """DDFS at ``master`` (``http://host:port``, ``disco://host`` or a host; DISCO_MASTER by
    default)."""

    def __init__(self, master: str | None = None, proxy: str | None = None,
                 settings: DiscoSettings | None = None) -> None:
        self.settings = settings or DiscoSettings()
        self.proxy = proxy if proxy is not None else self.settings["DISCO_PROXY"]
        self.master = master_url(master or self.settings["DISCO_MASTER"],
                                 self.settings["DISCO_PORT"])

    def __repr__(self) -> str:
        return f"DDFS master at {self.master}"

    # -- names ---------------------------------------------------------------------------
    @classmethod
    def safe_name(cls, name: str) -> str:
        """``name`` with every character DDFS does not allow replaced by ``_``."""
        import re
        return re.sub(_UNSAFE, "_", name)

    @classmethod
    def blob_name(cls, url: str) -> str:
        """``.../hh/name$timestamp`` -> ``name``."""
        return url.rstrip("/").rsplit("/", 1)[-1].split("$", 1)[0]

    @classmethod
    def job_oob(cls, jobname: str) -> str:
        return f"disco:job:oob:{jobname}"

    @classmethod
    def job_tag(cls, jobname: str) -> str:
        """The tag a job run with ``save_results=True`` leaves its results in."""
        return f"disco:results:{jobname}"

    # -- reading tags --------------------------------------------------------------------
    def get(self, tag: Any, token: str | None = None) -> dict[str, Any]:
        """The tag: ``{"version", "id", "last-modified", "urls", "user-data"}``."""
        return self._request(canonizetag(tag), token=token)

    def urls(self, tag: Any, token: str | None = None) -> list[list[str]]:
        return self.get(tag, token=token)["urls"]

    def attrs(self, tag: Any, token: str | None = None) -> dict[str, str]:
        """The tag's user attributes."""
        return self.get(tag, token=token).get("user-data", {})

    def getattr(self, tag: Any, attr: str, token: str | None = None) -> Any:
        return self._request(canonizetag(tag), token=token, attr=attr)

    def exists(self, tag: Any) -> bool:
        """Whether the tag exists (a tag one may not read exists too)."""
        try:
            self._request(canonizetag(tag))
        except InvalidTag:
            return False
        except CommError as exc:
            if exc.code == 401:
                return True
            if exc.code in (403, 404):
                return False
            raise
        return True

    def list(self, prefix: str = "") -> list[str]:
        """The names of every tag that starts with ``prefix``."""
        return self._request(f"{self.master}/ddfs/tags/{prefix}")

    def walk(self, tag: Any, ignore_missing: bool = True, tagpath: tuple[str, ...] = (),
             token: str | None = None) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
        """Depth first through the tags reachable from ``tag``: ``(tagpath, tags, blobs)``
        for each, ``tagpath`` leading from ``tag`` to it. A missing tag gives ``((), ())``
        (or raises CommError without ``ignore_missing``). A tag already on the path is not
        entered again, so tags that refer to each other do not loop forever."""
        tag = canonizetag(tag)
        tagpath = tagpath + (tag,)
        try:
            urls = self.get(tag, token=token).get("urls", [])
        except CommError as exc:
            if ignore_missing and exc.code == 404:
                yield tagpath, (), ()
                return
            yield tagpath, None, None
            raise
        tags, blobs = partition(urls, _istag_entry)
        tags = canonizetags(tags)
        yield tagpath, tags, blobs
        for child in relativizetags(tags, tag):
            if child not in tagpath:
                yield from self.walk(child, ignore_missing=ignore_missing, tagpath=tagpath,
                                     token=token)

    def findtags(self, tags: Any = (), ignore_missing: bool = True,
                 token: str | None = None) -> Iterator[tuple[str, list[str], list[Any]]]:
        """Breadth first through the tags reachable from ``tags``, each once:
        ``(tag, tags it refers to, blobs)``."""
        seen: set[str] = set()
        queue = canonizetags(tags)
        while queue:
            tag = queue.pop(0)
            if tag in seen:
                continue
            seen.add(tag)
            try:
                urls = self.get(tag, token=token).get("urls", [])
            except CommError as exc:
                if ignore_missing and exc.code == 404:
                    continue
                raise
            found, blobs = partition(urls, _istag_entry)
            found = canonizetags(found)
            yield tag, found, blobs
            queue.extend(relativizetags(found, tag))

    def blobs(self, tag: Any, ignore_missing: bool = True,
              token: str | None = None) -> Iterator[list[str]]:
        """Every blob (a list of replica URLs) reachable from ``tag``."""
        for _path, _tags, blobs in self.walk(tag, ignore_missing=ignore_missing, token=token):
            yield from blobs or ()

    def pull(self, tag: Any, blobfilter: Callable[[str], bool] = lambda name: True,
             token: str | None = None) -> Iterator[BlobFile]:
        """The tag's blobs whose names pass ``blobfilter``, opened for reading, each from
        the first replica (in random order) that opens."""
        from disco.schemes import open_location
        for replicas in self.urls(tag, token=token):
            if not replicas or not blobfilter(self.blob_name(replicas[0])):
                continue
            replicas = list(replicas)
            random.shuffle(replicas)
            error: Exception | None = None
            for url in replicas:
                try:
                    stream, size, _url = open_location(proxy_url(url, proxy=self.proxy,
                                                                 to_master=False))
                except Exception as exc:  # noqa: BLE001 - any failure: try the next replica
                    error = exc
                    continue
                yield BlobFile(stream, size, url)
                break
            else:
                raise error or DiscoError(f"no replica of {replicas} could be read")

    # -- changing tags -------------------------------------------------------------------
    def tag(self, tag: Any, urls: list[list[str]], token: str | None = None,
            delayed: bool = False, update: bool = False) -> list[str]:
        """Add ``urls`` (replica lists) to the tag, creating it. ``update``: skip blobs and
        tags the tag has already; ``delayed``: let the master commit it with others (it
        answers once committed). Returns the URLs of the tag's copies."""
        flags = {name: "1" for name, on in (("delayed", delayed), ("update", update)) if on}
        url = canonizetag(tag) + (f"?{urlencode(flags)}" if flags else "")
        return self._request(url, body=_replica_lists(urls), token=token, method="POST")

    def put(self, tag: Any, urls: list[list[str]], token: str | None = None) -> list[str]:
        """Replace the tag's urls (creating it)."""
        return self._request(canonizetag(tag), body=_replica_lists(urls), token=token,
                             method="PUT")

    def setattr(self, tag: Any, attr: str, val: str, token: str | None = None) -> list[str]:
        """Set a user attribute, or ``ddfs:read-token`` / ``ddfs:write-token``."""
        return self._request(canonizetag(tag), body=val, token=token, method="PUT", attr=attr)

    def delattr(self, tag: Any, attr: str, token: str | None = None) -> Any:
        return self._request(canonizetag(tag), token=token, method="DELETE", attr=attr)

    def delete(self, tag: Any, token: str | None = None) -> Any:
        """Delete the tag (not its blobs: the garbage collector removes blobs no tag holds)."""
        return self._request(canonizetag(tag), token=token, method="DELETE")

    # -- tokens --------------------------------------------------------------------------
    def tokens(self, tag: Any, token: str | None = None) -> tuple[str | None, str | None]:
        """``(read token, write token)`` of the tag; the write token is None also when
        ``token`` does not open the write lock."""
        read = self.getattr(tag, "ddfs:read-token", token=token)
        try:
            write = self.getattr(tag, "ddfs:write-token", token=token)
        except CommError as exc:
            if exc.code != 401:
                raise
            write = None
        return read, write

    def chtok(self, tag: Any, new_token: str, read: bool = True, write: bool = True,
              token: str | None = None) -> None:
        """Set the tag's read and/or write token to ``new_token``."""
        self.setacl(tag, read_token=new_token if read else None,
                    write_token=new_token if write else None, token=token)

    def setacl(self, tag: Any, read_token: str | None = None, write_token: str | None = None,
               token: str | None = None) -> None:
        """Set the tokens given (None: leave that one as it is), authorized by ``token``.
        The read token goes first, while ``token`` still opens the write lock."""
        if read_token is not None:
            self.setattr(tag, "ddfs:read-token", read_token, token=token)
        if write_token is not None:
            self.setattr(tag, "ddfs:write-token", write_token, token=token)

    # -- blobs ---------------------------------------------------------------------------
    def push(self, tag: Any, files: Iterable[Any], replicas: int | None = None,
             exclude: Iterable[str] = (), retries: int = 10, delayed: bool = False,
             update: bool = False, token: str | None = None) -> tuple[list[str], list[list[str]]]:
        """Upload files as blobs and add them to the tag. A file is a path (named after its
        base name), or ``(path or file object or bytes, name)``. Returns (the URLs of the
        tag's copies, the blobs' replica URLs)."""
        blobs = [self._push(_aim(f), replicas=replicas, exclude=list(exclude), retries=retries)
                 for f in files]
        return self.tag(tag, blobs, token=token, delayed=delayed, update=update), blobs

    def upload(self, source: Any, name: str, replicas: int | None = None,
               retries: int = 10) -> list[str]:
        """Upload one blob named ``name`` (a path, a file object or bytes) without tagging
        it; its replica URLs. A blob no tag holds is removed by the garbage collector, so
        a caller that records these URLs and then tags them loses nothing but an orphan
        if it stops in between (the task farm's DDFS output does)."""
        return self._push((source, name), replicas=replicas, retries=retries)

    def chunk(self, tag: Any, urls: Iterable[Any], replicas: int | None = None,
              retries: int = 10, delayed: bool = False, update: bool = False,
              token: str | None = None, chunk_size: int = CHUNK_SIZE,
              max_record_size: int = MAX_RECORD_SIZE, **kwargs: Any
              ) -> tuple[list[str], list[list[str]]]:
        """Read the records of ``urls`` (lines, unless ``reader=`` or ``input_stream=`` say
        otherwise, as for :func:`disco.core.result_iterator`), store them in Disco's
        record format as blobs of about ``chunk_size`` bytes, and add these to the tag.
        A local file is ``./name`` (or an absolute path)."""
        from disco.core import result_iterator
        kwargs.setdefault("reader", None)
        blobs = []
        for source in urls:
            base = self.safe_name(os.path.basename(next(iter(iterify(source)))))
            records = result_iterator([source], **kwargs)
            for n, data in enumerate(chunks(records, chunk_size, max_record_size)):
                blobs.append(self._push((data, f"{base}-{n}"), replicas=replicas,
                                        retries=retries))
        return self.tag(tag, blobs, token=token, delayed=delayed, update=update), blobs

    def _push(self, aim: tuple[Any, str], replicas: int | None = None,
              exclude: list[str] | None = None, retries: int = 10) -> list[str]:
        """Upload one blob to ``replicas`` nodes; its replica URLs. A node that fails is
        excluded and the upload tried again elsewhere, ``retries`` times at most."""
        source, name = aim
        source = _replayable(source)
        exclude = list(exclude or [])
        while True:
            query = urlencode([(k, v) for k, v in (("replicas", replicas),
                                                   ("exclude", ",".join(exclude))) if v])
            targets = self._request(f"{self.master}/ddfs/new_blob/{name}?{query}")
            try:
                return [self._upload(url, source) for url in targets]
            except CommError as exc:
                if retries <= 0 or exc.code in (400, 403):
                    raise
                retries -= 1
                host = urlsplit(exc.url or "")[1].host
                if host and host not in exclude:
                    exclude.append(host)

    def _upload(self, url: str, source: Any) -> str:
        target = proxy_url(url, proxy=self.proxy, meth="PUT", to_master=False)
        with _open_source(source) as body:
            try:
                response = comm.client(False).request(
                    "PUT", target, content=body,
                    extensions={comm_auth.EXTENSION: self._scope()})
            except httpx.HTTPError as exc:
                raise CommError(f"{type(exc).__name__}: {exc}", url) from None
        if response.status_code >= 400:
            raise CommError(comm.error_text(response), url, response.status_code)
        return json.loads(response.content)

    # -- HTTP ----------------------------------------------------------------------------
    def _scope(self) -> comm_auth.ClusterScope | None:
        """The cluster token's reach, from this client's settings and master."""
        return comm_auth.scope_for(self.settings, self.master)

    def _token(self, url: str, token: str | None, method: str) -> str | None:
        if token is not None:
            return token
        found = urltoken(url) if schemesplit(url)[0] == "tag" else None
        if found is not None:
            return found
        return self.settings["DDFS_READ_TOKEN" if method == "GET" else "DDFS_WRITE_TOKEN"]

    def _resolve(self, url: str) -> str:
        """An HTTP URL for a ``tag://`` URL (or an attribute of one) or a master URL."""
        if schemesplit(url)[0] != "tag":
            return url
        query = ""
        if "?" in url:
            url, query = url.split("?", 1)
            query = "?" + query
        resolved = urlresolve(url, master=self.master)
        return proxy_url(resolved, proxy=self.proxy) + query

    def _request(self, url: str, body: Any = None, token: str | None = None,
                 method: str = "GET", attr: str | None = None) -> Any:
        """JSON in and out. ``attr``: the request is about that attribute of the tag
        ``url`` (a tag URL cannot carry it: ``tag://a/b`` is tag ``b`` on host ``a``)."""
        target = self._resolve(url)
        if attr is not None:
            target = f"{target}/{attr}"
        return self._json_call(url, target, None if body is None else json.dumps(body),
                               token, method)

    def _download(self, url: str, data: bytes | str | None = None, token: str | None = None,
                  method: str = "GET", to_master: bool = True) -> Any:
        """The JSON answer to a request for ``url`` (a ``tag://`` URL or any HTTP URL of the
        master, e.g. ``master + "/ddfs/ctrl/gc_status"``), ``data`` sent as it is. Not part
        of the documented API, but Disco's own scripts and tests call it by this name."""
        target = self._resolve(url)
        if schemesplit(url)[0] != "tag":
            target = proxy_url(target, proxy=self.proxy, meth=method, to_master=to_master)
        return self._json_call(url, target, data, token, method)

    def _json_call(self, url: str, target: str, data: bytes | str | None,
                   token: str | None, method: str) -> Any:
        """The JSON answer (None for an empty one) of ``target``, the HTTP URL for ``url``,
        with the token that ``url`` and ``token`` call for."""
        auth_token = self._token(url, token, method)
        raw = comm.download(target, data, method=method,
                            auth=("token", auth_token) if auth_token is not None else None,
                            scope=self._scope())
        return json.loads(raw) if raw.strip() else None


def _istag_entry(replicas: Any) -> bool:
    first = replicas[0] if isinstance(replicas, list) and replicas else replicas
    return isinstance(first, str) and first.startswith("tag://")


def _replica_lists(urls: Iterable[Any]) -> list[list[str]]:
    return [[str(u) for u in iterify(replicas)] for replicas in urls]


def _aim(item: Any) -> tuple[Any, str]:
    if isinstance(item, (str, os.PathLike)):
        return item, DDFS.safe_name(os.path.basename(os.fspath(item)))
    source, name = item
    return source, name


def _replayable(source: Any) -> Any:
    """A blob's source in a form that can be read once per replica: paths, bytes and
    seekable binary files as they are; any other stream read into memory."""
    if isinstance(source, (str, os.PathLike, bytes)):
        return source
    if isinstance(source, (bytearray, memoryview)):
        return bytes(source)
    if _seekable(source) and isinstance(source.read(0), bytes):
        return source
    data = source.read()
    return data.encode() if isinstance(data, str) else data


class _open_source:
    """A blob's bytes for one upload (see `_replayable`): a path is opened and closed
    again, a file is rewound and left open for the next replica."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.opened: Any = None

    def __enter__(self) -> Any:
        if isinstance(self.source, (str, os.PathLike)):
            self.opened = open(self.source, "rb")
            return self.opened
        if isinstance(self.source, bytes):
            return self.source
        self.source.seek(0)
        return self.source  # streamed by the HTTP client, never held whole

    def __exit__(self, *exc: Any) -> None:
        if self.opened is not None:
            self.opened.close()


def _seekable(obj: Any) -> bool:
    try:
        return bool(obj.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def chunks(records: Iterable[Any], chunk_size: int = CHUNK_SIZE,
           max_record_size: int = MAX_RECORD_SIZE) -> Iterator[bytes]:
    """Records in Disco's record format, cut into pieces of about ``chunk_size`` bytes that
    each begin at a record (so every piece can be read on its own)."""
    buffer = io.BytesIO()
    out = DiscoOutputStream_v1(buffer, max_record_size=max_record_size)
    for record in records:
        out.append(record)
        if out.size + out.hunk_size >= chunk_size:
            out.flush()
            yield buffer.getvalue()
            buffer = io.BytesIO()
            out = DiscoOutputStream_v1(buffer, max_record_size=max_record_size)
    out.flush()
    if buffer.tell():
        yield buffer.getvalue()
