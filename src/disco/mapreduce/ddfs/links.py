"""The master's side of its DDFS requests to nodes (served by `node_app` on each node's
DDFS_PUT_PORT), and the choice of nodes that get new data.

Only connected nodes that announced a PUT port at registration store DDFS data. Nodes that
are blacklisted (Disco's "store no new data here") or on the DDFS GC blacklist (being
drained) get no new blobs or tag versions, but are still read from.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from disco.mapreduce.auth import bearer_headers
from disco.mapreduce.ddfs.names import DEFAULT_VOLUME, hexhash
from disco.mapreduce.master.nodes import NodeState

if TYPE_CHECKING:
    from disco.mapreduce.master.master import Master

T = TypeVar("T")

MIN_FREE_SPACE = 1 << 30  # bytes: nodes with less get new data only when nothing else can


class NodeRequestError(Exception):
    """A node did not do what the master asked (unreachable, or it refused)."""


class NodeLinks:
    def __init__(self, master: Master, timeout: float) -> None:
        self.master = master
        self.timeout = timeout
        self.gc_blacklist: set[str] = set()
        self.http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        # Cluster traffic never goes through the proxies of the master's environment.
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, connect=5.0),
                                      trust_env=False, limits=httpx.Limits(max_connections=200),
                                      headers=bearer_headers(self.master.config.token))

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    # ------------------------------------------------------------------ which nodes

    def storage_nodes(self) -> list[NodeState]:
        """Nodes that can be read from now."""
        return [n for n in self.master.registry.nodes.values() if n.connected and n.put_port]

    def known_storage_hosts(self) -> set[str]:
        """Every node that ever stored DDFS data for this master, reachable or not."""
        return {h for h, n in self.master.registry.nodes.items() if n.put_port}

    def reachable_hosts(self) -> set[str]:
        return {n.host for n in self.storage_nodes()}

    def writable_hosts(self, exclude: Iterable[str] = ()) -> list[str]:
        excluded = set(exclude) | self.gc_blacklist
        return [n.host for n in self.storage_nodes()
                if not n.blacklisted and n.host not in excluded]

    def choose(self, k: int, exclude: Iterable[str] = (), prefer: Iterable[str] = ()) -> list[str]:
        """Up to k writable hosts: those in `prefer` first, then hosts with room chosen at
        random (so that data spreads), then the fullest ones, emptiest first."""
        candidates = self.writable_hosts(exclude)
        preferred = [h for h in prefer if h in candidates]
        nodes = self.master.registry.nodes

        def roomy(host: str) -> bool:
            free = nodes[host].diskfree
            return free == 0 or free > MIN_FREE_SPACE  # 0: not reported yet

        rest = [h for h in candidates if h not in preferred]
        spacious = [h for h in rest if roomy(h)]
        random.shuffle(spacious)
        crowded = sorted((h for h in rest if not roomy(h)), key=lambda h: -nodes[h].diskfree)
        return (preferred + spacious + crowded)[:k]

    def put_url(self, host: str, objname: str) -> str:
        """Where a client uploads the new blob `objname` (`name$timestamp`) to `host`."""
        node = self.master.registry.nodes[host]
        return f"http://{host}:{node.put_port}/ddfs/{DEFAULT_VOLUME}/blob/{hexhash(objname)}/{objname}"

    def data_url(self, host: str, relpath: str) -> str:
        """An object on `host` as its data server serves it."""
        node = self.master.registry.nodes[host]
        return f"http://{host}:{node.port}/ddfs/{relpath}"

    # ------------------------------------------------------------------ requests

    def _base(self, host: str) -> str:
        node = self.master.registry.nodes.get(host)
        if node is None or not node.put_port:
            raise NodeRequestError(f"{host} stores no DDFS data")
        return f"http://{host}:{node.put_port}/ddfs/node"

    async def _call(self, method: str, host: str, path: str, body: Any = None,
                    missing_ok: bool = False) -> Any:
        assert self.http is not None, "DDFS links used before start()"
        content = None if body is None else (body if isinstance(body, bytes)
                                             else json.dumps(body).encode())
        try:
            resp = await self.http.request(method, f"{self._base(host)}{path}", content=content)
        except httpx.HTTPError as exc:
            raise NodeRequestError(f"{host}: {type(exc).__name__}: {exc}") from None
        if resp.status_code == 404 and missing_ok:
            return None
        if resp.status_code >= 400:
            raise NodeRequestError(f"{host} answered {resp.status_code}: {resp.text[:300]}")
        try:
            return resp.json()
        except ValueError:
            raise NodeRequestError(f"{host} answered with non-JSON") from None

    async def latest_tag(self, host: str, name: str) -> dict[str, Any] | None:
        return await self._call("GET", host, f"/tag/{name}", missing_ok=True)

    async def put_tag(self, host: str, tagid: str, data: bytes) -> str:
        return str(await self._call("PUT", host, f"/tag/{tagid}", data))

    async def tag_names(self, host: str) -> list[str]:
        return [str(n) for n in await self._call("GET", host, "/tagnames")]

    async def inventory(self, host: str) -> dict[str, Any]:
        return await self._call("GET", host, "/inventory")

    async def delete(self, host: str, blobs: Iterable[list[str]] = (),
                     tags: Iterable[list[str]] = (), partials: Iterable[str] = ()) -> int:
        reply = await self._call("POST", host, "/delete", {"blobs": list(blobs),
                                                          "tags": list(tags),
                                                          "partials": list(partials)})
        return int(reply.get("deleted", 0))

    async def fetch(self, host: str, source: str, objname: str, vol: str) -> str:
        reply = await self._call("POST", host, "/fetch",
                                 {"source": source, "objname": objname, "vol": vol})
        return str(reply["url"])


async def gather_hosts(hosts: Iterable[str], call: Callable[[str], Awaitable[T]]
                       ) -> tuple[dict[str, T], dict[str, str]]:
    """Run `call(host)` for every host at once: (answers, errors) by host."""
    hosts = list(hosts)
    results = await asyncio.gather(*(call(h) for h in hosts), return_exceptions=True)
    answers: dict[str, T] = {}
    errors: dict[str, str] = {}
    for host, result in zip(hosts, results):
        if isinstance(result, NodeRequestError):
            errors[host] = str(result)
        elif isinstance(result, BaseException):
            raise result
        else:
            answers[host] = result
    return answers, errors
