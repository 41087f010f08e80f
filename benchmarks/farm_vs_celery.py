"""Issue 13 item 9: the task farm's lease + report round trips per second against Celery with
Redis (on this machine) as broker and result backend, same work, same shape, in one run.

Work: N tiny units, each a line of a few numbers; the result is their sum. Both sides have C
clients as threads (default 50): on ours, C threads in this process each loop POST /work
(--batch units) then POST /results; on Celery's, one worker with a pool of C threads, prefetch 1,
acks_late. Timed on both sides: submitting the N units (a project / N apply_async), all of them
done (every report accepted / every result in), and every result read back by the submitter
(GET …/results / a ResultSet) and checked.
Servers and workers start before the clock. Our state is durable (SQLite WAL synchronous=FULL;
PostgreSQL); this machine's Redis keeps nothing on disk. Its database --redis-db (default 11)
must be empty at the start; it is flushed (that database only) at the end.

    .venv/bin/python benchmarks/farm_vs_celery.py                       # sqlite, postgresql, celery
    .venv/bin/python benchmarks/farm_vs_celery.py --db sqlite --units 1000 --batch 20 --json out.json
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

from farm_fixtures import PG_ADMIN_URL, FarmServer  # noqa: E402
from farm_protocol import ProtoClient, ok, unit_input  # noqa: E402


def make_lines(units: int, seed: int = 13) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(str(rng.randint(0, 1000)) for _ in range(4)) for _ in range(units)]


def expected(lines: list[str]) -> list[str]:
    return [str(sum(int(x) for x in line.split())) for line in lines]


# -- ours -------------------------------------------------------------------------------------------

def run_farm(db: str, lines: list[str], clients: int, batch: int) -> float:
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
        server = FarmServer(Path(tmp) / "farm", url, extra_args=("--log-level", "warning")).start()
        try:
            with server.owner() as owner:
                key = owner.post("/api/v1/farm/keys", json={}).json()["key"]
                workers = [ProtoClient(server.url, key, f"bench{i}") for i in range(clients)]
                go = threading.Barrier(clients + 1)
                # The clock stops when every unit's result is accepted (then read back and checked),
                # as Celery's ResultSet.get returns when every result is in: not when the last
                # client thread, polling an empty farm, has given up.
                accepted = [0]
                count_lock = threading.Lock()
                finished = threading.Event()

                def loop(client: ProtoClient) -> None:
                    go.wait()
                    try:
                        run(client)
                    finally:  # a client that failed stops the run: the check below then fails
                        finished.set()

                def run(client: ProtoClient) -> None:
                    while not finished.is_set():
                        leases = client.work(seconds=batch, slots=batch)
                        if not leases:
                            finished.wait(0.05)
                            continue
                        answers = client.report([ok(lease, str(sum(int(x) for x in unit_input(lease).split())).encode())
                                                 for lease in leases])
                        with count_lock:
                            accepted[0] += sum(a["status"] in ("accepted", "late_accepted") for a in answers)
                            if accepted[0] >= len(lines):
                                finished.set()

                threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
                for t in threads:
                    t.start()
                start = time.perf_counter()
                project = owner.post("/api/v1/farm/projects", json={
                    "code": {"kind": "container", "image": "busybox", "command": ["sum"]},
                    "input": {"kind": "inline", "text": "".join(line + "\n" for line in lines)},
                    "split": {"by": "lines", "size": 1}, "unit_seconds": 1}).json()["project_id"]
                go.wait()
                if not finished.wait(600):
                    raise RuntimeError("the farm did not finish in 600 s")
                got = owner.get(f"/api/v1/farm/projects/{project}/results").json()
                elapsed = time.perf_counter() - start
                for t in threads:
                    t.join()
                for w in workers:
                    w.close()
            sums = [base64.b64decode(r["output"]).decode() for r in sorted(got["results"], key=lambda r: r["seq"])]
            assert got["complete"] and sums == expected(lines), "the farm lost or garbled results"
            return len(lines) / elapsed
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
    env = {**os.environ, "FARM_BENCH_REDIS": url, "PYTHONPATH": str(HERE)}
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
    parser.add_argument("--batch", type=int, default=1, help="units per /work request on our side")
    parser.add_argument("--redis-db", type=int, default=11)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    lines = make_lines(args.units)
    rows: dict[str, list[float]] = {"celery": []}
    for _ in range(args.repeat):
        rows["celery"].append(run_celery(args.redis_db, lines, args.clients))
        print(f"celery+redis: {rows['celery'][-1]:.0f} units/s", flush=True)
        for db in args.db:
            rows.setdefault(db, []).append(run_farm(db, lines, args.clients, args.batch))
            print(f"farm {db}: {rows[db][-1]:.0f} units/s", flush=True)
    best = {k: max(v) for k, v in rows.items()}
    for db in args.db:
        print(f"{db}: {best[db]:.0f} units/s vs celery {best['celery']:.0f}: ratio {best[db] / best['celery']:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "benchmark": "farm_vs_celery", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load": os.getloadavg()},
            "clients": args.clients, "units": args.units, "batch": args.batch,
            "units_per_s": rows, "best": best,
            "ratio": {db: best[db] / best["celery"] for db in args.db}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
