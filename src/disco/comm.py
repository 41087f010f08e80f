"""HTTP for the client and the worker: whole-body requests and streamed reads.

Streamed reads of plain ``http://`` URLs (what tasks read from the cluster's nodes, and most
inputs) go through the standard library's ``http.client``, with connections kept alive per
host; httpx, which costs a process ~0.1 s to import, is loaded only for the rest (https,
redirects, proxies and .netrc from the environment, whole-body requests).

Failures become :class:`disco.error.CommError` with the HTTP status in ``.code`` (None when
nothing answered), which is a :class:`~disco.error.DataError`: inside a task it means "try
another replica, or retry the task elsewhere".

Traffic to Disco's own master and nodes ignores proxy environment variables
(``trust_env=False``): a cluster's hosts talk to each other directly.

Requests to the cluster's master and nodes carry the cluster token (DISCO_CLUSTER_TOKEN) when
one is configured; :mod:`disco.comm_auth` says which requests those are, for every redirect
too. ``scope=`` names the cluster explicitly (``disco.core.Disco`` passes its own settings
and master); by default it comes from the settings (environment).
"""

from __future__ import annotations

import abc
import base64
import io
import json
import os
import threading
from collections.abc import Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from disco import comm_auth
from disco.comm_auth import ClusterScope
from disco.error import CommError

if TYPE_CHECKING:
    import http.client

    import httpx

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 600.0
_clients: dict[bool, Any] = {}  # trust_env -> httpx.Client
_clients_lock = threading.Lock()
DEFAULT: Any = object()  # scope=DEFAULT: the cluster the settings name, if they hold a token
_HOOKS = {"request": [comm_auth.hook]}


def _lazy_tls_transport() -> httpx.BaseTransport:
    """httpx's own transport, certificates verified as ever, made on the first https://
    request: loading the CA bundle costs a process ~40 ms, and tasks mostly read plain
    http:// from the cluster's nodes."""
    import httpx

    class LazyTLSTransport(httpx.BaseTransport):
        def __init__(self) -> None:
            self._transport: httpx.HTTPTransport | None = None
            self._lock = threading.Lock()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            with self._lock:
                if self._transport is None:
                    self._transport = httpx.HTTPTransport(trust_env=False)  # as its client
            return self._transport.handle_request(request)

        def close(self) -> None:
            if self._transport is not None:
                self._transport.close()

    return LazyTLSTransport()


def client(trust_env: bool = False) -> httpx.Client:
    """A per-process client (connection pooling); one that honours proxy settings, one not."""
    import httpx

    with _clients_lock:
        if trust_env not in _clients:
            timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
            if trust_env:  # proxies for http and https come from the environment
                _clients[trust_env] = httpx.Client(trust_env=True, follow_redirects=True,
                                                   timeout=timeout, event_hooks=_HOOKS)
            else:
                # verify=False is for the plain-http transport only, which never does TLS:
                # every https:// URL (redirects too) goes to the verifying transport.
                _clients[trust_env] = httpx.Client(
                    trust_env=False, follow_redirects=True, timeout=timeout, verify=False,
                    mounts={"https://": _lazy_tls_transport()}, event_hooks=_HOOKS)
        return _clients[trust_env]


def _prepare(url: str, headers: dict[str, str], auth: tuple[str, str] | None,
             trust_env: bool, scope: Any) -> tuple[dict[str, Any], bool]:
    """The extensions and auth arguments of a request, and whether it may use a proxy.

    With a cluster token in use, a DDFS tag token moves out of the Authorization header
    (see comm_auth), and requests to the cluster never go through a proxy."""
    effective: ClusterScope | None = comm_auth.scope_for() if scope is DEFAULT else scope
    kwargs: dict[str, Any] = {"extensions": {comm_auth.EXTENSION: effective}, "auth": auth}
    if effective is not None:
        if auth is not None:
            headers.update(comm_auth.ddfs_token_headers(auth[1]))
            kwargs["auth"] = None
        if trust_env:
            import httpx

            if effective.covers(httpx.URL(url)):
                trust_env = False
    return kwargs, trust_env


def error_text(response: httpx.Response) -> str:
    """What a failed response says: the message of an error envelope, else its text."""
    return _error_message(response.content[:2000], response.reason_phrase)


def request(method: str, url: str, data: bytes | str | None = None, *,
            headers: dict[str, str] | None = None, offset: int = 0,
            auth: tuple[str, str] | None = None, timeout: float | None = None,
            trust_env: bool = False, scope: Any = DEFAULT) -> httpx.Response:
    """Send a request and return the complete response; errors become CommError."""
    import httpx

    headers = dict(headers or {})
    if offset:
        headers["Range"] = f"bytes={offset}-"
    content = data.encode() if isinstance(data, str) else data
    kwargs, trust_env = _prepare(url, headers, auth, trust_env, scope)
    kwargs.update(headers=headers, content=content)
    if timeout is not None:
        kwargs["timeout"] = httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT))
    try:
        response = client(trust_env).request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise CommError(f"{type(exc).__name__}: {exc}", url) from None
    if response.status_code == 416 and offset:
        return response  # asked for bytes past the end: nothing new
    if response.status_code >= 400:
        raise CommError(error_text(response), url, response.status_code)
    return response


def download(url: str, data: bytes | str | None = None, *, method: str | None = None,
             offset: int = 0, headers: dict[str, str] | None = None,
             auth: tuple[str, str] | None = None, timeout: float | None = None,
             trust_env: bool = False, scope: Any = DEFAULT) -> bytes:
    """The body of a GET (or a POST when ``data`` is given)."""
    method = method or ("POST" if data is not None else "GET")
    response = request(method, url, data, headers=headers, offset=offset, auth=auth,
                       timeout=timeout, trust_env=trust_env, scope=scope)
    if response.status_code == 416:
        return b""
    if offset and response.status_code == 200:
        return response.content[offset:]  # the server ignored the Range header
    return response.content


class _StreamedBody(io.RawIOBase):
    """A streamed HTTP GET body as a binary file: ``read``, ``readline``, line iteration.

    The body is not held in memory, so inputs of any size can be read. A connection that
    breaks mid-body raises CommError, and a body shorter than its Content-Length too.
    Subclasses give the chunks (`_next_chunk`: None at the end) and `size`.
    """

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.size: int | None = None
        self._buffer = b""
        self._received = 0
        self._eof = False

    @abc.abstractmethod
    def _next_chunk(self) -> bytes | None:
        """The body's next bytes, or None at its end."""

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """Append the next chunk to the buffer; False at the end of the body."""
        if self._eof:
            return False
        chunk = self._next_chunk()
        if chunk is None:
            self._eof = True
            if self.size is not None and self._received < self.size:
                raise CommError(f"body truncated at {self._received} of {self.size} bytes",
                                self.url)
            return False
        self._received += len(chunk)
        self._buffer += chunk
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
            data, self._buffer = self._buffer, b""
            return data
        while len(self._buffer) < size and self._fill():
            pass
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def readinto(self, target: Any) -> int:
        data = self.read(len(target))
        target[:len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0 or not self._fill():
                break
        end = self._buffer.find(b"\n")
        cut = len(self._buffer) if end < 0 else end + 1
        if size is not None and size >= 0:
            cut = min(cut, size)
        line, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return line

    def record_batches(self) -> Iterator[list[bytes]]:
        """The body's lines (each with its b"\\n", the last maybe without), in lists: each
        chunk received is split at once in C. Reading line by line took a copy of the rest of
        the buffer per line (a 2 MB input cost a task ~0.1 s more than the same file read
        from disk)."""
        while True:
            more = self._fill()
            buffer = self._buffer
            if not more:
                self._buffer = b""
                if buffer:
                    yield io.BytesIO(buffer).readlines()
                return
            cut = buffer.rfind(b"\n") + 1
            if cut:
                self._buffer = buffer[cut:]
                yield io.BytesIO(buffer[:cut]).readlines()

    def __iter__(self) -> Iterator[bytes]:  # type: ignore[override]
        return chain.from_iterable(self.record_batches())

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class HTTPInputStream(_StreamedBody):
    """A streamed GET through httpx: any URL, proxies, redirects, TLS."""

    def __init__(self, url: str, *, auth: tuple[str, str] | None = None,
                 trust_env: bool = False, offset: int = 0, scope: Any = DEFAULT) -> None:
        import httpx

        super().__init__(url)
        # Raw bytes are streamed, so ask for no content-coding: Content-Length then counts
        # exactly the bytes we read, which is how truncation is noticed.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            kwargs, trust_env = _prepare(url, headers, auth, trust_env, scope)
            request_ = client(trust_env).build_request("GET", url, headers=headers,
                                                       extensions=kwargs["extensions"])
            self._response = client(trust_env).send(request_, stream=True, auth=kwargs["auth"])
        except httpx.HTTPError as exc:
            raise CommError(f"{type(exc).__name__}: {exc}", url) from None
        if self._response.status_code >= 400:
            try:
                self._response.read()
            finally:
                self._response.close()
            raise CommError(error_text(self._response), url, self._response.status_code)
        length = self._response.headers.get("content-length")
        self.size = int(length) if length and length.isdigit() else None
        self._chunks: Iterator[bytes] = self._response.iter_raw(1 << 16)

    def _next_chunk(self) -> bytes | None:
        import httpx

        try:
            return next(self._chunks, None)
        except httpx.HTTPError as exc:
            raise CommError(f"connection broke after {self._received} bytes: {exc}",
                            self.url) from None

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()


class _PlainHTTPStream(_StreamedBody):
    """A streamed GET of a plain http:// URL with the standard library's http.client: what a
    task reads from the cluster's nodes (another node's partitions, DDFS blobs) and from plain
    web servers. Importing httpx cost each worker process ~0.1 s, a reduce task of a small job
    most of its time. `open` answers None where httpx must do it (a redirect, credentials in
    the URL)."""

    def __init__(self, url: str, response: http.client.HTTPResponse, conn: http.client.HTTPConnection) -> None:
        super().__init__(url)
        self._response = response
        self._conn = conn
        length = response.getheader("content-length")
        self.size = int(length) if length and length.isdigit() else None

    @classmethod
    def open(cls, url: str, auth: tuple[str, str] | None, offset: int, scope: Any) -> _PlainHTTPStream | None:
        import http.client

        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or parts.username is not None:
            return None
        try:
            port = parts.port or 80
        except ValueError:
            return None  # httpx says what is wrong with it
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        effective: ClusterScope | None = comm_auth.scope_for() if scope is DEFAULT else scope
        if effective is None:
            if auth is not None:
                pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
                headers["Authorization"] = f"Basic {pair}"
        else:
            covered = effective.covers(comm_auth.Origin("http", parts.hostname, port))
            if auth is not None:
                headers.update(comm_auth.ddfs_token_headers(auth[1]))
            if covered:
                headers["Authorization"] = f"Bearer {effective.token}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        while True:
            conn, reused = _IDLE.take(parts.hostname, port)
            try:
                if conn.sock is None:
                    conn.connect()
                    assert conn.sock is not None
                    conn.sock.settimeout(READ_TIMEOUT)
                conn.request("GET", target, headers=headers)
                response = conn.getresponse()
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if not reused:  # a kept connection the server has closed meanwhile: a new one
                    raise CommError(f"{type(exc).__name__}: {exc}", url) from None
        if 300 <= response.status < 400:
            conn.close()
            return None  # httpx follows redirects, with the cluster's rules for each hop
        if response.status >= 400:
            try:
                body = response.read(2000)
            except (OSError, http.client.HTTPException):
                body = b""
            finally:
                conn.close()
            raise CommError(_error_message(body, response.reason), url, response.status)
        return cls(url, response, conn)

    def _next_chunk(self) -> bytes | None:
        import http.client

        try:
            chunk = self._response.read1(1 << 16)
        except (OSError, http.client.HTTPException) as exc:
            raise CommError(f"connection broke after {self._received} bytes: {exc}",
                            self.url) from None
        return chunk or None

    def close(self) -> None:
        if not self.closed:
            if self._eof and self._received == self.size and not self._response.will_close:
                self._response.close()  # the whole body read: the connection can serve again
                _IDLE.give_back(self._conn)
            else:
                self._conn.close()
        super().close()


class _IdleConnections:
    """Per process, the kept-alive connections to each host: a reduce task reads many small
    files from the same other node, and a new connection each costs both ends."""

    KEEP = 4  # per host and port

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def take(self, host: str, port: int) -> tuple[http.client.HTTPConnection, bool]:
        """A kept connection (True) or a new, unconnected one (False)."""
        import http.client

        with self._lock:
            kept = self._idle.get((host, port))
            if kept:
                return kept.pop(), True
        return http.client.HTTPConnection(host, port, timeout=CONNECT_TIMEOUT), False

    def give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            kept = self._idle.setdefault((conn.host, conn.port), [])
            if len(kept) < self.KEEP:
                kept.append(conn)
                return
        conn.close()


_IDLE = _IdleConnections()


def _error_message(body: bytes, reason: str) -> str:
    """What a failed response says: the message of an error envelope, else its text."""
    text = body.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            message = json.loads(text)["error"]["message"]
            if isinstance(message, str):
                return message
        except (ValueError, KeyError, TypeError):
            pass
    return text[:500] or reason


def _environment_matters() -> bool:
    """Whether httpx with trust_env would do more than connect directly: a proxy or a .netrc
    file in the environment (SSL settings concern https:// only)."""
    names = ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NETRC")
    return any(os.environ.get(name) for name in names) or os.path.exists(os.path.expanduser("~/.netrc"))


def open_url(url: str, *, auth: tuple[str, str] | None = None, trust_env: bool = False,
             offset: int = 0, scope: Any = DEFAULT) -> _StreamedBody:
    if not trust_env or not _environment_matters():
        plain = _PlainHTTPStream.open(url, auth, offset, scope)
        if plain is not None:
            return plain
    return HTTPInputStream(url, auth=auth, trust_env=trust_env, offset=offset, scope=scope)


def open_remote(url: str, token: str | None = None) -> _StreamedBody:
    """Disco's name for a streamed read of ``url``, with a DDFS/job ``token`` if given."""
    return open_url(url, auth=("token", token) if token is not None else None)
