"""Word count over generated Zipf-distributed text: DISCO Map/Reduce against its baselines.

    python benchmarks/wordcount.py --mb 200            # the issue's size; about 15 minutes
    python benchmarks/wordcount.py --mb 5 --repeat 1   # a quick check that everything runs

Every method counts the same file and must produce the same counts (checked), and its
throughput is MB of input per second of wall time, from start to counts in hand:

  counter        one process, collections.Counter over str.split() per chunk
  pool2          multiprocessing.Pool(2), a Counter per chunk, merged
  pool2-mapfn    the same, but each chunk counted by calling the canonical map function
                 per line and summing its pairs in a dict: the ceiling for a framework
                 that runs the user's map (not a target, a yardstick)
  dask-bag       dask.bag on a 2-process LocalCluster, flatten().frequencies()
  dask-counter   the same cluster, a Counter per partition, merged
  spark-rdd      PySpark local[2]: flatMap / map / reduceByKey
  disco          DISCO Map/Reduce, master + 2 nodes of 1 slot on loopback, the canonical
                 word count (map yields (word, 1), reduce sums), with sum_combiner
  disco-nocomb   the same without a combiner

With --repeat N the methods run in N rounds (each method once a round, so that every method
sees the machine at the same speed) and the best time of each counts.

Targets printed as PASS/MISS: disco ≥ 0.8 × pool2; disco-nocomb ≥ spark-rdd. For the
methods that start a runtime (Dask, Spark, DISCO) the throughput without starting and
stopping it, as on a cluster that is already running, is printed too (not used for the
targets).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import itertools
import json
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

CHUNK_BYTES = 8 << 20
VOCABULARY = 50_000
RUNTIME_SECONDS: dict[str, float] = {}  # starting and stopping each method's runtime, last run


# -- data -----------------------------------------------------------------------------------------


def make_text(path: Path, megabytes: float, seed: int = 7) -> None:
    """Words drawn from a Zipf(1) law over a fixed vocabulary, 12 words a line."""
    rng = random.Random(seed)
    words = [f"w{i:x}" for i in range(VOCABULARY)]
    cumulative = list(itertools.accumulate(1.0 / rank for rank in range(1, VOCABULARY + 1)))
    total = cumulative[-1]
    target = int(megabytes * (1 << 20))
    written = 0
    with open(path, "w") as out:
        while written < target:
            draws = [words[bisect.bisect(cumulative, rng.random() * total)] for _ in range(120_000)]
            lines = "\n".join(" ".join(draws[i:i + 12]) for i in range(0, len(draws), 12)) + "\n"
            out.write(lines)
            written += len(lines)


def split_file(path: Path, parts_dir: Path, part_bytes: int) -> list[Path]:
    """Whole-line pieces of about part_bytes, for methods that take one input per task
    (copied by the kernel: only the line ends are read here)."""
    parts_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    size = path.stat().st_size
    with open(path, "rb") as src:
        start = 0
        while start < size:
            src.seek(min(size, start + part_bytes))
            src.readline()
            end = src.tell()
            part = parts_dir / f"part-{len(parts):04d}.txt"
            with open(part, "wb") as dst:
                offset = start
                while offset < end:
                    offset += os.copy_file_range(src.fileno(), dst.fileno(), end - offset, offset)
            parts.append(part)
            start = end
    return parts


def chunks(path: Path) -> Iterator[str]:
    with open(path) as src:
        while True:
            block = src.read(CHUNK_BYTES)
            if not block:
                return
            yield block + src.readline()


# -- baselines ------------------------------------------------------------------------------------


def count_chunk(text: str) -> collections.Counter[str]:
    return collections.Counter(text.split())


def run_counter(path: Path, _work: Path) -> dict[str, int]:
    total: collections.Counter[str] = collections.Counter()
    for text in chunks(path):
        total.update(text.split())
    return dict(total)


def _pool2(path: Path, count: Callable[[str], dict[str, int]]) -> dict[str, int]:
    """Chunks counted by `count` in 2 processes, merged here."""
    total: collections.Counter[str] = collections.Counter()
    with multiprocessing.Pool(2) as pool:
        for partial in pool.imap_unordered(count, chunks(path)):
            total.update(partial)
    return dict(total)


def run_pool2(path: Path, _work: Path) -> dict[str, int]:
    return _pool2(path, count_chunk)


def count_chunk_with_map(text: str) -> dict[str, int]:
    """What any framework that calls the job's map per line must do at least: the canonical
    map function, its pairs summed in a dict (sum_combiner's work), nothing else."""
    sums: dict[str, int] = {}
    get = sums.get
    for line in text.splitlines():
        for key, value in wc_map(line, None):
            sums[key] = get(key, 0) + value
    return sums


def run_pool2_mapfn(path: Path, _work: Path) -> dict[str, int]:
    return _pool2(path, count_chunk_with_map)


def _dask_cluster(method: str) -> tuple[object, object]:
    from distributed import Client, LocalCluster

    started = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    client = Client(cluster)
    RUNTIME_SECONDS[method] = time.perf_counter() - started
    return cluster, client


def _dask_stop(method: str, cluster: object, client: object) -> None:
    started = time.perf_counter()
    client.close()  # type: ignore[attr-defined]
    cluster.close()  # type: ignore[attr-defined]
    RUNTIME_SECONDS[method] += time.perf_counter() - started


def run_dask_bag(path: Path, _work: Path) -> dict[str, int]:
    import dask.bag as db

    cluster, client = _dask_cluster("dask-bag")
    try:
        bag = db.read_text(str(path), blocksize=CHUNK_BYTES)
        return dict(bag.str.split().flatten().frequencies().compute())
    finally:
        _dask_stop("dask-bag", cluster, client)


def run_dask_counter(path: Path, _work: Path) -> dict[str, int]:
    import dask.bag as db

    cluster, client = _dask_cluster("dask-counter")
    try:
        bag = db.read_text(str(path), blocksize=CHUNK_BYTES)
        partials = bag.map_partitions(lambda lines: [collections.Counter(w for line in lines for w in line.split())])
        total: collections.Counter[str] = collections.Counter()
        for partial in partials.compute():
            total.update(partial)
        return dict(total)
    finally:
        _dask_stop("dask-counter", cluster, client)


def run_spark_rdd(path: Path, _work: Path) -> dict[str, int]:
    from pyspark.sql import SparkSession

    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # loopback only, whatever the hostname resolves to
    started = time.perf_counter()
    spark = (SparkSession.builder.master("local[2]").appName("wordcount-bench")
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.ui.enabled", "false").config("spark.driver.memory", "2g").getOrCreate())
    RUNTIME_SECONDS["spark-rdd"] = time.perf_counter() - started
    try:
        lines = spark.sparkContext.textFile(str(path), minPartitions=max(2, path.stat().st_size // CHUNK_BYTES))
        pairs = lines.flatMap(str.split).map(lambda word: (word, 1)).reduceByKey(lambda a, b: a + b)
        return dict(pairs.collect())
    finally:
        started = time.perf_counter()
        spark.stop()
        RUNTIME_SECONDS["spark-rdd"] += time.perf_counter() - started


# -- DISCO ----------------------------------------------------------------------------------------


def _free_port(hosts: list[str]) -> int:
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = probe.getsockname()[1]
        try:
            for host in hosts[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port on all hosts")


class DiscoRuntime:
    """A master and two nodes (one slot each: 2 cores) on 127.N.0.x (or on ``net``.x when
    given, e.g. "127.190.1"), stopped in close()."""

    def __init__(self, root: Path, net: str | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        net = net or f"127.{random.randint(200, 230)}.0"
        self.hosts = [f"{net}.{i}" for i in (1, 2, 3)]
        self.port = _free_port(self.hosts)
        self.url = f"http://{self.hosts[0]}:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCO_", "DDFS_"))}
        self.procs: list[subprocess.Popen[bytes]] = []
        self._start([sys.executable, "-m", "disco.mapreduce.master", "--host", self.hosts[0],
                     "--port", str(self.port), "--data", str(root / "master")], root / "master.log", env)
        for host in self.hosts[1:]:  # started with the master: they register once it is up
            self._start([sys.executable, "-m", "disco.mapreduce.node", "--master", self.url, "--host", host,
                         "--port", str(self.port), "--data", str(root / host), "--slots", "1",
                         "--put-port", str(_free_port([host]))], root / f"{host}.log", env)
        try:
            _wait_until(lambda: len(_nodes(self.url)) == 2)
        except BaseException:
            self.close()
            raise

    def _start(self, argv: list[str], log: Path, env: dict[str, str]) -> None:
        with open(log, "ab") as handle:
            self.procs.append(subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env,
                                               start_new_session=True))

    def close(self) -> None:
        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, 15)
            except ProcessLookupError:
                continue
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(5)


def _nodes(url: str) -> list[str]:
    import httpx

    try:
        reply = httpx.get(f"{url}/disco/ctrl/nodeinfo", timeout=5)
    except httpx.HTTPError:  # the master is not up yet
        return []
    return [h for h, n in reply.json().items() if n["connected"]]


def _wait_until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError("timed out")


def wc_map(line, params):  # type: ignore[no-untyped-def]
    for word in line.split():
        yield word, 1


def wc_reduce(iter, params):  # type: ignore[no-untyped-def]  # noqa: A002 - Disco's own name
    from disco.util import kvgroup
    for word, counts in kvgroup(sorted(iter)):
        yield word, sum(counts)


def _run_disco(path: Path, work: Path, combiner: bool) -> dict[str, int]:
    from disco.core import Job, result_iterator
    from disco.func import sum_combiner

    parts = split_file(path, work / "parts", max(1 << 20, path.stat().st_size // 16))
    started = time.perf_counter()
    runtime = DiscoRuntime(work / "runtime")
    method = "disco" if combiner else "disco-nocomb"
    RUNTIME_SECONDS[method] = time.perf_counter() - started
    previous = os.environ.get("DISCO_MASTER"), os.environ.get("DISCO_PORT")
    os.environ["DISCO_MASTER"], os.environ["DISCO_PORT"] = runtime.url, str(runtime.port)
    try:
        args = {"combiner": sum_combiner} if combiner else {}
        job = Job(name="wordcount", master=runtime.url).run(
            input=[f"file://{p}" for p in parts], map=wc_map, reduce=wc_reduce, partitions=2, **args)
        # file:// inputs yield bytes lines (Disco's Python 3 rule), so the words are bytes.
        counts = {k.decode() if isinstance(k, bytes) else k: v for k, v in result_iterator(job.wait())}
        job.purge()
        return counts
    finally:
        for key, value in zip(("DISCO_MASTER", "DISCO_PORT"), previous):
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        started = time.perf_counter()
        runtime.close()
        RUNTIME_SECONDS[method] += time.perf_counter() - started


METHODS: dict[str, Callable[[Path, Path], dict[str, int]]] = {
    "counter": run_counter,
    "pool2": run_pool2,
    "pool2-mapfn": run_pool2_mapfn,
    "dask-bag": run_dask_bag,
    "dask-counter": run_dask_counter,
    "spark-rdd": run_spark_rdd,
    "disco": lambda path, work: _run_disco(path, work, combiner=True),
    "disco-nocomb": lambda path, work: _run_disco(path, work, combiner=False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=200.0, help="size of the generated text (default 200)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", nargs="+", choices=sorted(METHODS), default=list(METHODS))
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="disco-wordcount-"))
    try:
        text = work / "zipf.txt"
        started = time.perf_counter()
        make_text(text, args.mb)
        size_mb = text.stat().st_size / (1 << 20)
        print(f"generated {size_mb:.1f} MB of Zipf text in {time.perf_counter() - started:.1f} s")
        expected = run_counter(text, work)
        names = list(dict.fromkeys(args.only))
        best = dict.fromkeys(names, float("inf"))
        best_warm = dict.fromkeys(names, float("inf"))
        # Rounds outside, methods inside: the machine's speed drifts (by a quarter within an
        # hour here), and this way every method of a round sees the same machine.
        for round_ in range(args.repeat):
            if args.repeat > 1:
                print(f"round {round_ + 1} of {args.repeat}")
            for name in names:
                run_dir = work / f"{name}-{round_}"
                run_dir.mkdir()
                t0 = time.perf_counter()
                counts = METHODS[name](text, run_dir)
                seconds = time.perf_counter() - t0
                shutil.rmtree(run_dir, ignore_errors=True)
                if counts != expected:
                    raise SystemExit(f"{name}: wrong counts ({len(counts)} words, {len(expected)} expected)")
                best[name] = min(best[name], seconds)
                line = f"{name:>13}  {seconds:7.2f} s  {size_mb / seconds:6.1f} MB/s"
                if name in RUNTIME_SECONDS:
                    up = seconds - RUNTIME_SECONDS.pop(name)
                    best_warm[name] = min(best_warm[name], up)
                    line += f"   runtime already up: {up:6.2f} s  {size_mb / up:6.1f} MB/s"
                print(line, flush=True)
        results = {name: size_mb / best[name] for name in names}
        warm = {name: size_mb / best_warm[name] for name in names if best_warm[name] < best[name]}
        if args.repeat > 1:
            print("best of each method:")
            for name in names:
                line = f"{name:>13}  {best[name]:7.2f} s  {results[name]:6.1f} MB/s"
                if name in warm:
                    line += f"   runtime already up: {best_warm[name]:6.2f} s  {warm[name]:6.1f} MB/s"
                print(line)
        _targets(results)
        if args.json:
            args.json.write_text(json.dumps({"mb": size_mb, "mb_per_s": results,
                                             "mb_per_s_runtime_up": warm}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _targets(results: dict[str, float]) -> None:
    checks = [("disco ≥ 0.8 × pool2", "disco", "pool2", 0.8), ("disco-nocomb ≥ spark-rdd", "disco-nocomb", "spark-rdd", 1.0),
              ("(yardstick) disco / pool2-mapfn", "disco", "pool2-mapfn", 0.0),
              ("(yardstick) pool2-mapfn / pool2", "pool2-mapfn", "pool2", 0.0)]
    for label, ours, base, limit in checks:
        if ours in results and base in results:
            ratio = results[ours] / results[base]
            verdict = ("PASS" if ratio >= limit else "MISS") if limit else ""
            print(f"{label:<34} ratio {ratio:5.2f}  {verdict}")


if __name__ == "__main__":
    main()
