"""`python -m disco.mapreduce.node --master http://H:P [--master http://H2:P2 ...] --host N
--port P --data DIR [--slots S] [--share K ...] [--token-file PATH]`

Runs the data server on N:P, the DDFS upload server on N:PUT_PORT and one supervisor per master
on one event loop; SIGTERM or SIGINT stop them all and kill every worker still running. With
several masters each gets its share of the slots (`--share`, one per master; default: an even
split) and a supervisor of its own, so a master that dies takes none of the others' tasks along.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvicorn

from disco.mapreduce.auth import TOKEN_ENV, TokenError, guarded, load_token, warn_if_open
from disco.mapreduce.ddfs.node_server import UploadServer
from disco.mapreduce.node.client import TokenRefused
from disco.mapreduce.node.config import NodeConfig, split_slots
from disco.mapreduce.node.dataserver import create_app
from disco.mapreduce.node.supervisor import Supervisor


class _Server(uvicorn.Server):
    """uvicorn re-raises a captured SIGTERM once it has stopped, which would end the process
    before the workers are killed; signals are handled in `run` instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def parse_args(argv: list[str] | None = None) -> tuple[list[NodeConfig], str, str]:
    """One configuration per master (the first one's master is the node's own), the log level
    and the address to listen on."""
    p = argparse.ArgumentParser(prog="python -m disco.mapreduce.node",
                                description="Run a Disco map/reduce node.")
    p.add_argument("--master", required=True, action="append",
                   help="a master's URL, http://host:port; repeat it (or separate URLs with "
                        "commas) for a node that serves several masters")
    p.add_argument("--share", type=int, action="append", default=None,
                   help="with several masters: the slots each gets, one --share per master in "
                        "their order (default: the slots split evenly, at least 1 each)")
    p.add_argument("--host", default=os.uname().nodename,
                   help="this node's name in disco:// URLs, and the address to listen on")
    p.add_argument("--port", type=int, default=int(os.environ.get("DISCO_PORT", "8989")),
                   help="DISCO_PORT: where this node serves its data (default %(default)s)")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("DISCO_DATA", "disco-data")),
                   help="DISCO_DATA folder")
    p.add_argument("--slots", type=int, default=os.cpu_count() or 1,
                   help="tasks run at once (default: one per CPU, %(default)s)")
    p.add_argument("--ddfs-data", type=Path, default=None, help="DDFS_DATA (default DATA/ddfs)")
    p.add_argument("--put-port", type=int, default=int(os.environ.get("DDFS_PUT_PORT", "8990")),
                   help="DDFS_PUT_PORT: where this node takes DDFS uploads (default %(default)s)")
    p.add_argument("--listen", default=None, help="address to listen on (default: --host)")
    p.add_argument("--worker-start-timeout", type=float, default=30.0,
                   help="seconds a worker has to say WORKER (default %(default)s)")
    p.add_argument("--no-worker-reuse", dest="reuse_workers", action="store_false",
                   help="one worker process per task, as Disco had it (default: a worker "
                        "that offers it runs the job's next task on this node too)")
    p.add_argument("--token-file", type=Path, default=None,
                   help=f"file holding the cluster token (the master's): sent to the master and "
                        f"other nodes, asked of every request here, given to workers (default: "
                        f"{TOKEN_ENV} from the environment; neither: open to all)")
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    try:
        token = load_token(a.token_file)
    except TokenError as exc:
        p.error(str(exc))
    masters = [url.strip() for arg in a.master for url in arg.split(",") if url.strip()]
    if not masters:
        p.error("--master needs a URL")
    if len(set(masters)) != len(masters):
        p.error("a master is named twice")
    slots = max(0, a.slots)
    try:
        shares = split_slots(slots, len(masters), a.share) if len(masters) > 1 else [None]
    except ValueError as exc:
        p.error(str(exc))
    if len(masters) == 1 and a.share:
        p.error("--share is for a node with several masters")
    cfg = NodeConfig(master=masters[0], host=a.host, data=a.data.resolve(), port=a.port,
                     slots=slots, ddfs_data=a.ddfs_data, put_port=a.put_port,
                     worker_start_timeout=a.worker_start_timeout,
                     reuse_workers=a.reuse_workers, token=token)
    if len(masters) == 1:
        return [cfg], a.log_level, a.listen or a.host
    configs = [replace(cfg, master=url, slots=share, share=share)
               for url, share in zip(masters, shares, strict=True)]
    return configs, a.log_level, a.listen or a.host


def _status(supervisors: list[Supervisor]) -> dict[str, Any]:
    """The status page: one master's supervisor as before, several under `masters`."""
    if len(supervisors) == 1:
        return supervisors[0].status()
    return {"host": supervisors[0].cfg.host, "masters": [s.status() for s in supervisors]}


async def _first_end(works: list[asyncio.Task[None]]) -> None:
    try:
        done, _pending = await asyncio.wait(works, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in works:
            w.cancel()
        await asyncio.gather(*works, return_exceptions=True)
    for w in done:
        if not w.cancelled() and w.exception() is not None:
            raise w.exception()  # type: ignore[misc]


async def run(configs: list[NodeConfig], listen: str) -> None:
    cfg = configs[0]
    supervisors = [Supervisor(c) for c in configs]
    app = guarded(create_app(cfg.data, lambda: _status(supervisors), cfg.ddfs), cfg.token)
    server = _Server(uvicorn.Config(app,
                                    host=listen, port=cfg.port, log_level="warning",
                                    access_log=False, lifespan="off", timeout_graceful_shutdown=2))
    uploads = UploadServer(cfg.ddfs, cfg.host, listen, cfg.put_port, _Server, token=cfg.token)
    if uploads.start():
        for supervisor in supervisors:
            supervisor.put_port = cfg.put_port
    # One task per master; the first to end (a token refused) ends the node.
    works = [asyncio.create_task(s.run()) for s in supervisors]
    work = asyncio.create_task(_first_end(works))
    serving = asyncio.create_task(server.serve())

    def stop() -> None:
        server.should_exit = True
        uploads.stop()
        work.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    done, _pending = await asyncio.wait({work, serving}, return_when=asyncio.FIRST_COMPLETED)
    stop()
    await asyncio.gather(work, serving, uploads.wait(), return_exceptions=True)
    if serving in done and serving.exception() is not None:
        raise serving.exception()  # type: ignore[misc]
    if serving in done and not server.started:
        raise SystemExit(f"cannot serve {listen}:{cfg.port}")
    if work in done and not work.cancelled() and isinstance(work.exception(), TokenRefused):
        raise SystemExit(str(work.exception()))


def main(argv: list[str] | None = None) -> None:
    configs, level, listen = parse_args(argv)
    cfg = configs[0]
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format=f"%(asctime)s node {cfg.host} %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll is noise
    warn_if_open(cfg.token, "node")
    cfg.data.mkdir(parents=True, exist_ok=True)
    asyncio.run(run(configs, listen))


if __name__ == "__main__":
    main()
