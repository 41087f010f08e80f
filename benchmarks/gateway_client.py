"""One timed dask-gateway cluster start, run by startup.py inside .bench-venv.

dask_gateway is installed only in .bench-venv, so startup.py (in the project's .venv) runs
this as a subprocess and reads one JSON line per phase from its stdout:

    {"phase": "loaded"}                    imports done; waits for a line ("go") on stdin
    {"phase": "ready", "seconds": ...}     new_cluster + scale + wait_for_workers
    {"phase": "stopping"}                  after the next line ("stop") on stdin

The pauses let startup.py sample memory and CPU over the timed part only, and time the
shutdown itself (cluster.shutdown() only asks the server; the processes end later).

Imports happen before the clock starts, as DISCO's client is already running when its
clock starts.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time

from dask_gateway import BasicAuth, Gateway


def say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True, help="http://127.0.0.1:PORT of the gateway")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()

    # The backend runs the cluster's processes as the user who logs in: log in as ourselves.
    gateway = Gateway(args.address, auth=BasicAuth(getpass.getuser(), "bench"))
    say(phase="loaded")
    sys.stdin.readline()
    started = time.perf_counter()
    cluster = gateway.new_cluster()
    try:
        cluster.scale(args.workers)
        client = cluster.get_client(set_as_default=False)
        client.wait_for_workers(args.workers, timeout=args.timeout)
        say(phase="ready", seconds=time.perf_counter() - started, name=cluster.name)
        client.close()
        sys.stdin.readline()
    finally:
        say(phase="stopping")
        cluster.shutdown()


if __name__ == "__main__":
    main()
