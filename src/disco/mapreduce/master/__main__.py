"""`python -m disco.mapreduce.master --host H --port P --data DIR [--scheduler fair|fifo]
[--token-file PATH]`"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from disco.mapreduce.auth import TOKEN_ENV, TokenError, load_token, warn_if_open
from disco.mapreduce.ddfs import config as ddfs_config
from disco.mapreduce.master.app import serve
from disco.mapreduce.master.config import MasterConfig
from disco.mapreduce.master.scheduler import POLICIES


def parse_args(argv: list[str] | None = None) -> tuple[MasterConfig, str]:
    defaults = MasterConfig()
    p = argparse.ArgumentParser(prog="python -m disco.mapreduce.master",
                                description="Run a Disco map/reduce master.")
    p.add_argument("--host", default=defaults.host, help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=defaults.port, help="DISCO_PORT (default %(default)s)")
    p.add_argument("--data", type=Path, default=defaults.data, help="folder for job packs and events")
    p.add_argument("--scheduler", choices=POLICIES, default=defaults.scheduler if defaults.scheduler
                   in POLICIES else "fair", help="job queue policy (default %(default)s)")
    p.add_argument("--retry-base", type=float, default=defaults.retry_base,
                   help="seconds; a task failed n times waits min(n, 60) x this (default %(default)s)")
    p.add_argument("--node-timeout", type=float, default=defaults.node_timeout,
                   help="seconds without a poll before a node is lost (default %(default)s)")
    p.add_argument("--poll-hold", type=float, default=defaults.poll_hold,
                   help="seconds a node's poll is held when there is nothing for it (default %(default)s)")
    p.add_argument("--max-failure-rate", type=int, default=defaults.max_failure_rate,
                   help="failures of one task that kill its job (default %(default)s)")
    p.add_argument("--token-file", type=Path, default=None,
                   help=f"file holding the cluster token that every request must carry "
                        f"(default: {TOKEN_ENV} from the environment; neither: open to all)")
    p.add_argument("--instance", default="0/1", metavar="I/N",
                   help="this master is number I (from 0) of N masters over one node pool; its "
                        "job names never meet the others' (default %(default)s)")
    p.add_argument("--ddfs-authority", default="", metavar="URL",
                   help="the master that keeps the pool's DDFS tags (http://host:port); this "
                        "one passes DDFS requests on to it (default: this master is it)")
    p.add_argument("--log-level", default="INFO")
    ddfs_config.add_arguments(p)
    a = p.parse_args(argv)
    if a.poll_hold >= a.node_timeout:
        p.error("--poll-hold must be shorter than --node-timeout")
    try:
        ddfs = ddfs_config.from_arguments(a)
    except ValueError as exc:
        p.error(str(exc))
    try:
        instance, instances = (int(x) for x in a.instance.split("/"))
        if not 0 <= instance < instances:
            raise ValueError
    except ValueError:
        p.error(f"--instance is I/N with 0 <= I < N, not {a.instance!r}")
    authority = a.ddfs_authority.strip().rstrip("/") or None
    if authority is not None and not authority.startswith(("http://", "https://")):
        p.error("--ddfs-authority is the URL of a master, http://host:port")
    try:
        token = load_token(a.token_file)
    except TokenError as exc:
        p.error(str(exc))
    return MasterConfig(host=a.host, port=a.port, data=a.data.resolve(), scheduler=a.scheduler,
                        retry_base=a.retry_base, node_timeout=a.node_timeout,
                        poll_hold=a.poll_hold, max_failure_rate=a.max_failure_rate,
                        ddfs=ddfs, token=token, instance=instance, instances=instances,
                        ddfs_authority=authority), a.log_level


def main(argv: list[str] | None = None) -> None:
    config, level = parse_args(argv)
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s master %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per node request is noise
    warn_if_open(config.token, "master")
    serve(config)


if __name__ == "__main__":
    main()
