"""DDFS on a master that is not the cluster's DDFS authority (docs/mapreduce.md, "Several
masters"): one master of a pool keeps every tag; the others ask it.

Tags are written by one master only (see `tags`: once loaded, the master's copy is the truth),
so a second master with tags of its own would overwrite the first one's versions on the nodes.
A master started with `--ddfs-authority URL` therefore has no tags, no node links and no
garbage collector: its jobs read `tag://` inputs and save `disco:results:<job>` through the
authority's HTTP API, and its `/ddfs/*` routes pass requests on to it (`proxy`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from disco.comm_auth import DDFS_TOKEN_HEADER
from disco.mapreduce.auth import bearer_headers
from disco.mapreduce.ddfs.errors import DdfsError, unavailable
from disco.mapreduce.ddfs.service import expand_input
from disco.mapreduce.master.data import DataOutput

TIMEOUT = httpx.Timeout(60.0, connect=5.0)


class RemoteDdfs:
    """What the job coordinators call (`expand_input`, `save_results`), done by the authority."""

    def __init__(self, authority: str, token: str | None) -> None:
        self.authority = authority.rstrip("/")
        self.headers = bearer_headers(token)
        self.http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        # Cluster traffic: never through a proxy of the environment.
        # The cluster token goes with the jobs' own calls; forwarded requests carry their
        # client's headers instead (see proxy).
        self.http = httpx.AsyncClient(timeout=TIMEOUT, trust_env=False)

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    async def _call(self, method: str, path: str, token: str | None = None,
                    body: Any = None) -> Any:
        assert self.http is not None
        headers = {**self.headers, **({DDFS_TOKEN_HEADER: token} if token else {})}
        try:
            resp = await self.http.request(method, f"{self.authority}{path}", headers=headers,
                                           json=body)
        except httpx.HTTPError as exc:
            raise unavailable(f"the DDFS authority {self.authority} did not answer: {exc}") from None
        if resp.status_code >= 400:
            raise DdfsError(resp.status_code, resp.text)
        return resp.json()

    def results_tag(self, jobname: str) -> str:
        return f"disco:results:{jobname}"

    async def save_results(self, jobname: str, results: list[list[str]]) -> str:
        tag = self.results_tag(jobname)
        await self._call("PUT", f"/ddfs/tag/{quote(tag, safe=':')}/ddfs:urls", body=results)
        return f"tag://{tag}"

    async def expand_input(self, inp: DataOutput) -> list[DataOutput]:
        async def read(name: str, token: str | None) -> Any:
            return await self._call("GET", f"/ddfs/tag/{quote(name, safe=':')}", token)
        return await expand_input(inp, read)
