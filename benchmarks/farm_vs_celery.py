"""Issue 13 item 9: the task farm's lease + report round trips per second against Celery with
Redis (on this machine) as broker and result backend, same work, same shape, in one run.

Work: N tiny units, each a line of a few numbers; the result is their sum. Both sides have C
clients (default 50). Ours: C one-slot protocol clients as asyncio tasks in this process, each on
its own keep-alive HTTP/1.1 connection (farm_bench_client.py), each looping POST /work asking for
--batch seconds of work (units are estimated at 1 s; 10 is `disco farm client`'s ask for one
free slot) and carrying the previous leases' results, as `disco farm client` does (--mode
separate: POST /results, then POST /work). Celery's: one worker with a pool of C threads,
prefetch 1 (--celery-prefetch), acks_late. Timed on both sides: submitting the N units (a
project / N apply_async), all of them done (every report accepted / every result in), and every
result read back by the submitter (GET …/results / a ResultSet) and checked. Each farm run follows a Celery run of its
own (a pair, one ratio), database after database, --repeat times.
Servers and workers start before the clock. Our state is durable (SQLite WAL synchronous=FULL;
PostgreSQL); this machine's Redis keeps nothing on disk. Its database --redis-db (default 11)
must be empty at the start; it is flushed (that database only) at the end.

    .venv/bin/python benchmarks/farm_vs_celery.py                       # sqlite, postgresql, celery
    .venv/bin/python benchmarks/farm_vs_celery.py --db sqlite --units 1000 --batch 1 --repeat 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from farm_fixtures import PG_ADMIN_URL, FarmServer  # noqa: E402
from farm_bench_client import Tally, run as run_clients  # noqa: E402
from farm_protocol import ProtoClient  # noqa: E402


def make_lines(units: int, seed: int = 13) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(str(rng.randint(0, 1000)) for _ in range(4)) for _ in range(units)]


def expected(lines: list[str]) -> list[str]:
    return [str(sum(int(x) for x in line.split())) for line in lines]


# -- ours -------------------------------------------------------------------------------------------

def _cpu_s(pid: int) -> float:
    """A process's CPU time (user + system) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_farm(db: str, lines: list[str], clients: int, batch: int, exchange: bool, host: str) -> dict[str, float]:
    from sqlalchemy import create_engine, text
    import base64

    with tempfile.TemporaryDirectory() as tmp:
        pg_name, admin = None, None
        if db == "sqlite":
            url = f"sqlite:///{tmp}/farm.sqlite"
        else:
            pg_name = f"disco_farm_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{pg_name}"'))
            url = f"postgresql://postgres@127.0.0.1:5432/{pg_name}"
        server = FarmServer(Path(tmp) / "farm", url, extra_args=("--log-level", "warning"), host=host).start()
        try:
            with server.owner() as owner:
                key = owner.post("/api/v1/farm/keys", json={}).json()["key"]
                tokens = []
                for i in range(clients):  # enrolled, and each token seen once (an empty ask), before the clock
                    proto = ProtoClient(server.url, key, f"bench{i}")
                    assert proto.work(seconds=batch) == []
                    tokens.append(proto.http.headers["Authorization"][7:])
                    proto.close()
                # The clock stops when every unit's result is accepted (then read back and checked),
                # as Celery's ResultSet.get returns when every result is in.
                tally = Tally(len(lines))
                go = threading.Barrier(2)
                driver = threading.Thread(target=run_clients, args=(server.url, tokens, batch, exchange, tally, go))
                driver.start()
                cpu0, server_cpu0 = time.process_time(), _cpu_s(server.proc.pid)
                start = time.perf_counter()
                project = owner.post("/api/v1/farm/projects", json={
                    "code": {"kind": "container", "image": "busybox", "command": ["sum"]},
                    "input": {"kind": "inline", "text": "".join(line + "\n" for line in lines)},
                    "split": {"by": "lines", "size": 1}, "unit_seconds": 1}).json()["project_id"]
                go.wait()
                if not tally.done.wait(600):
                    raise RuntimeError("the farm did not finish in 600 s")
                got = owner.get(f"/api/v1/farm/projects/{project}/results").json()
                elapsed = time.perf_counter() - start
                cpu = {"bench_cpu_s": time.process_time() - cpu0, "server_cpu_s": _cpu_s(server.proc.pid) - server_cpu0,
                       "requests": tally.requests}
                driver.join()
            sums = [base64.b64decode(r["output"]).decode() for r in sorted(got["results"], key=lambda r: r["seq"])]
            assert got["complete"] and sums == expected(lines), "the farm lost or garbled results"
            return {"units_per_s": len(lines) / elapsed, **cpu}
        finally:
            server.stop()
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
                admin.dispose()


# -- Celery -----------------------------------------------------------------------------------------

def run_celery(redis_db: int, lines: list[str], clients: int) -> float:
    import redis

    url = f"redis://127.0.0.1:6379/{redis_db}"
    store = redis.Redis.from_url(url)
    if store.dbsize():
        raise SystemExit(f"Redis database {redis_db} is not empty: choose another with --redis-db")
    env = {**os.environ, "FARM_BENCH_REDIS": url,
           "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)}
    os.environ["FARM_BENCH_REDIS"] = url
    sys.path.insert(0, str(HERE))
    from celery.result import ResultSet
    from celery_sum_app import app, line_sum

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_sum_app", "worker", "--pool", "threads",
         "--concurrency", str(clients), "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-n", f"farmbench{uuid.uuid4().hex[:6]}@%h"],
        env=env, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=0.5):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Celery worker did not start: " + (worker.stderr.read() or b"").decode()[-2000:])
        start = time.perf_counter()
        results = ResultSet([line_sum.delay(line) for line in lines])
        sums = results.get(timeout=600)
        elapsed = time.perf_counter() - start
        assert sums == expected(lines), "Celery lost or garbled results"
        return len(lines) / elapsed
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        store.flushdb()  # this database only
        store.close()


# -- the run ----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=10,
                        help="seconds of work each /work asks for (one slot; units are estimated at 1 s): "
                             "10 is `disco farm client`'s default ask for one free slot")
    parser.add_argument("--mode", choices=["exchange", "separate"], default="exchange",
                        help="exchange: results ride on the next POST /work (what `disco farm client` does); "
                             "separate: POST /results, then POST /work")
    parser.add_argument("--host", default="127.0.0.1", help="the farm server's loopback address")
    parser.add_argument("--celery-prefetch", type=int, default=1,
                        help="tasks each Celery worker thread holds at a time (worker_prefetch_multiplier): 1, "
                             "or the farm's ask (--batch) for the same number of units a round trip")
    parser.add_argument("--redis-db", type=int, default=11)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    lines = make_lines(args.units)
    os.environ["FARM_BENCH_PREFETCH"] = str(args.celery_prefetch)  # read by celery_sum_app, here and in its worker
    rounds = []
    for n in range(args.repeat):
        for db in args.db:  # each farm run right after a Celery run of its own: a pair, one ratio
            load = os.getloadavg()
            celery = run_celery(args.redis_db, lines, args.clients)
            farm = run_farm(db, lines, args.clients, args.batch, args.mode == "exchange", args.host)
            rounds.append({"round": n + 1, "db": db, "celery_units_per_s": celery, **farm,
                           "ratio": farm["units_per_s"] / celery, "load_before": load, "load_after": os.getloadavg()})
            print(f"round {n + 1} {db}: farm {farm['units_per_s']:.0f} units/s, celery+redis {celery:.0f}: "
                  f"ratio {farm['units_per_s'] / celery:.2f} (server CPU {farm['server_cpu_s']:.1f} s, "
                  f"harness {farm['bench_cpu_s']:.1f} s, {farm['requests']} requests; load {load[0]:.1f})", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "benchmark": "farm_vs_celery", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "clients": args.clients, "units": args.units, "batch_seconds": args.batch, "mode": args.mode,
            "celery_prefetch": args.celery_prefetch,
            "rounds": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
