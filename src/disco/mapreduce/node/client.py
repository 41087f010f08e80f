"""The node's HTTP client for the master <-> node protocol (see `disco.mapreduce.master`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from disco.mapreduce.auth import bearer_headers


class SessionExpired(Exception):
    """The master no longer knows this node's session: register again."""


class TokenRefused(httpx.HTTPError):
    """The master does not take this node's cluster token (or the node has none). Registering
    gives up on it; a later request that meets it fails like any other HTTP error."""


class MasterClient:
    def __init__(self, master: str, host: str, token: str | None = None) -> None:
        self.master = master.rstrip("/")
        self.host = host
        self.session = ""
        self.poll_hold = 2.0
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0),
                                      limits=httpx.Limits(max_connections=64),
                                      trust_env=False, headers=bearer_headers(token))

    async def close(self) -> None:
        await self.http.aclose()

    async def _post(self, path: str, body: dict[str, Any], timeout: float | None = None) -> Any:
        body = {"host": self.host, "session": self.session, **body}
        kwargs: dict[str, Any] = {"json": body}
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=5.0)
        resp = await self.http.post(f"{self.master}{path}", **kwargs)
        if resp.status_code == 410:
            raise SessionExpired(resp.text)
        if resp.status_code == 401:
            raise TokenRefused(f"the master at {self.master} refused this node's cluster token "
                               f"(401); start the node with the master's --token-file")
        resp.raise_for_status()
        return resp.json()

    async def register(self, slots: int, port: int, put_port: int = 0) -> dict[str, Any]:
        reply = await self._post("/disco/node/register",
                                 {"slots": slots, "port": port, "put_port": put_port})
        self.session = reply["session"]
        self.poll_hold = float(reply.get("poll_hold", 2.0))
        return reply

    async def poll(self, seq: int, running: list[list[Any]], disk: tuple[int, int]) -> dict[str, Any]:
        return await self._post("/disco/node/poll",
                                {"seq": seq, "running": running,
                                 "diskfree": disk[0], "diskused": disk[1]},
                                timeout=self.poll_hold + 30)

    async def results(self, reports: list[dict[str, Any]], events: list[list[str]]) -> None:
        """Several task ends in one request, after the events that precede them."""
        await self._post("/disco/node/results", {"results": reports, "events": events})

    async def events(self, events: list[list[str]]) -> None:
        await self._post("/disco/node/events", {"events": events})

    async def inputs(self, job: str, taskid: int, attempt: int, known: int) -> dict[str, Any]:
        return await self._post("/disco/node/inputs",
                                {"job": job, "taskid": taskid, "attempt": attempt, "known": known},
                                timeout=60)

    async def jobpack(self, job: str, dest: Path) -> None:
        """Download a job's pack to `dest` (via a temporary name, so a half copy never counts)."""
        tmp = dest.with_name(dest.name + ".partial")
        async with self.http.stream("GET", f"{self.master}/disco/node/jobpack",
                                    params={"name": job}, timeout=httpx.Timeout(300, connect=5)) as resp:
            resp.raise_for_status()
            with open(tmp, "wb") as f:
                async for chunk in resp.aiter_bytes(1 << 20):
                    f.write(chunk)
        os.replace(tmp, dest)
