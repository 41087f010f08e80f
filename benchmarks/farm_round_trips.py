"""Task farm round trips: lease + report per second, against a real `disco farm server` with
durable state (SQLite WAL, synchronous=FULL; or PostgreSQL on this machine), tiny units.

Each of C client threads loops: POST /work for `--batch` units, POST /results with them all.
A round trip is one lease + one report of one unit; batched requests carry several. The server
(one uvicorn process) and the clients share this machine's cores.

    .venv/bin/python benchmarks/farm_round_trips.py --db sqlite --clients 10 --units 2000
    .venv/bin/python benchmarks/farm_round_trips.py --db postgresql --batch 20

Item 9, the comparison with Celery + Redis: benchmarks/farm_vs_celery.py (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from farm_fixtures import PG_ADMIN_URL, FarmServer  # noqa: E402
from farm_protocol import ProtoClient, ok, unit_input  # noqa: E402


def run(db: str, clients: int, units: int, batch: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        pg_name = None
        if db == "sqlite":
            url = f"sqlite:///{tmp}/farm.sqlite"
        else:
            pg_name = f"disco_farm_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{pg_name}"'))
            url = f"postgresql://postgres@127.0.0.1:5432/{pg_name}"
        server = FarmServer(Path(tmp) / "farm", url, extra_args=("--log-level", "warning")).start()
        try:
            with server.owner() as owner:
                owner.post("/api/v1/farm/projects", json={
                    "code": {"kind": "container", "image": "busybox", "command": ["cat"]},
                    "input": {"kind": "inline", "text": "".join(f"{i}\n" for i in range(units))},
                    "split": {"by": "lines", "size": 1}, "unit_seconds": 1}).raise_for_status()
                key = owner.post("/api/v1/farm/keys", json={}).json()["key"]
            workers = [ProtoClient(server.url, key, f"bench{i}") for i in range(clients)]
            done = [0] * clients

            def loop(i: int) -> None:
                client = workers[i]
                while True:
                    leases = client.work(seconds=batch, slots=batch)
                    if not leases:
                        return
                    client.report([ok(lease, unit_input(lease)) for lease in leases])
                    done[i] += len(leases)

            start = time.perf_counter()
            threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - start
            for w in workers:
                w.close()
            assert sum(done) == units, (sum(done), units)
            return units / elapsed
        finally:
            server.stop()
            if pg_name:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
                admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    rate = run(args.db, args.clients, args.units, args.batch)
    print(f"{args.db}: {args.clients} clients, batch {args.batch}: {rate:.0f} units leased+reported+assimilated/s")


if __name__ == "__main__":
    main()
