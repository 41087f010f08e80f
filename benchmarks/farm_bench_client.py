"""The benchmark's farm clients: C one-slot clients as asyncio tasks on one event loop, each on
its own HTTP/1.1 keep-alive connection, speaking the protocol of docs/taskfarm.md as
`disco farm client` does: POST /work asking for `seconds` of work (one slot), carrying the
results of the previous leases (or, with exchange=False, a POST /results first, then the ask).
Fifty httpx client threads in one process cost the 2-core machine as much CPU as the server
did; this costs a fraction, so the number measures the server more than the harness.

Each unit's input is a line of numbers; the result is their sum (checked by the caller)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

PREFIX = "/api/v1/farm"


class Conn:
    """One keep-alive HTTP/1.1 connection: a request is written whole, its answer read by its
    Content-Length (the farm's answers always carry one)."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.head = (f"Host: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
                     "Content-Type: application/json\r\n").encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        data = json.dumps(body, separators=(",", ":")).encode()
        self.writer.write(b"POST " + (PREFIX + path).encode() + b" HTTP/1.1\r\n" + self.head
                          + b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
        status = int((await self.reader.readline()).split(b" ", 2)[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        answer = await self.reader.readexactly(length)
        if status != 200:
            raise RuntimeError(f"POST {path}: HTTP {status}: {answer[:500]!r}")
        return dict(json.loads(answer))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Tally:
    """Reports the server accepted, across the clients; `done` set when `target` is reached."""

    target: int
    accepted: int = 0
    requests: int = 0
    done: threading.Event = field(default_factory=threading.Event)

    def add(self, answers: list[dict[str, Any]]) -> None:
        self.accepted += sum(a["status"] in ("accepted", "late_accepted") for a in answers)
        if self.accepted >= self.target:
            self.done.set()


def _result(lease: dict[str, Any]) -> dict[str, Any]:
    line = base64.b64decode(lease["input"]["inline"])
    out = str(sum(int(x) for x in line.split())).encode()
    return {"instance_id": lease["instance_id"], "attempt": lease["attempt"], "status": "ok",
            "output": base64.b64encode(out).decode(), "cpu_s": 0.0}


async def _client(conn: Conn, seconds: float, exchange: bool, tally: Tally) -> None:
    results: list[dict[str, Any]] = []
    while not tally.done.is_set():
        ask: dict[str, Any] = {"seconds": seconds, "slots": 1}
        if results and exchange:
            body = await conn.post("/work", {**ask, "results": results})
            tally.add(body["results"])
        else:
            if results:
                tally.add((await conn.post("/results", {"results": results}))["results"])
            body = await conn.post("/work", ask)
        tally.requests += 1 + bool(results and not exchange)
        results = [_result(lease) for lease in body["leases"]]
        if not results and not tally.done.is_set():
            await asyncio.sleep(0.05)  # the farm is out of work for now: the others finish it


def run(url: str, tokens: list[str], seconds: float, exchange: bool, tally: Tally,
        started: threading.Barrier) -> None:
    """All clients until `tally` is done (call it in a thread; `started` waits with the caller)."""

    async def main() -> None:
        conns = [Conn(url, token) for token in tokens]
        for conn in conns:  # connected before the clock
            conn.reader, conn.writer = await asyncio.open_connection(conn.host, conn.port)
        await asyncio.get_running_loop().run_in_executor(None, started.wait)
        try:
            await asyncio.gather(*(_client(conn, seconds, exchange, tally) for conn in conns))
        finally:
            for conn in conns:
                conn.close()

    try:
        asyncio.run(main())
    finally:
        tally.done.set()  # a client that failed stops the run: the caller's check then fails
