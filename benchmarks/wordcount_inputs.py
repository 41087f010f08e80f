"""Word count with the user's own map, combiner and reduce, over DDFS, http:// and raw://
inputs: DISCO against the same functions run by a bare multiprocessing.Pool(2).

    python benchmarks/wordcount_inputs.py --mb 64 --repeat 3
    python benchmarks/wordcount_inputs.py --mb 4 --raw-inputs 100 --repeat 1   # quick check
    python benchmarks/wordcount_inputs.py --only pool2 disco disco-packed spark-rdd dask-bag

The user functions (below: wc_map, wc_combiner, wc_reduce) are written as a Disco user
writes them; every method runs exactly these, and must give the same counts as
collections.Counter over the text (checked):

  pool2       the baseline: multiprocessing.Pool(2), one pool task per input (the same
              inputs DISCO's map tasks get). In a worker: the input's bytes read, wc_map
              called per line, each pair through wc_combiner (one buffer per partition,
              as Disco keeps them), split into 2 partitions by hash; then each partition's
              pairs reduced by wc_reduce in the same pool. No framework.
  disco       DISCO Map/Reduce (master + 2 nodes of 1 slot on 127.190.1.x), map=wc_map,
              combiner=wc_combiner, reduce=wc_reduce, 2 partitions, results read back;
              one map task per input, as Disco runs them.
  disco-packed  raw:// only: the same job with scheduler={"inputs_per_task": --pack}, the
              documented option that gives each map task several small inputs (default 50:
              8 tasks for 400 inputs).
  spark-rdd   PySpark local[2]: mapPartitions(map + combiner) / partitionBy(2) /
              mapPartitions(reduce), the same three functions (printed beside, no target).
  dask-bag    dask.bag on a 2-process LocalCluster: map_partitions(map + combiner), then
              the reduce on each of the 2 partitions (printed beside, no target).

Input kinds (each counted by every method, in rounds, methods alternated):

  ddfs   the text cut into --pieces whole-line pieces, pushed into DDFS (2 replicas) before
         the clock (the push is timed and printed separately); DISCO reads tag://; the
         baseline, Spark and Dask read the same pieces from local files.
  http   the same pieces served by a plain http.server on 127.190.1.9; DISCO's inputs and
         the baseline's are the same http:// URLs (the baseline fetches them with urllib
         in its workers); Spark and Dask read the local files.
  raw    --raw-inputs small pieces (about --raw-kb KB each) of the text in raw:// URLs (the
         data is in the URL, so raw:// is for small data); the baseline gets the same
         strings, Spark parallelizes them, Dask makes a bag of them.

DISCO's runtime is started once, before the clock, and kept for every job, as users run
jobs on a running cluster; the start and stop are timed and the cold number (job + start +
stop) is printed too. The target is on the job: disco ≥ 0.9 × pool2 for each input kind,
printed as PASS/MISS (for raw://, disco-packed's ratio is printed beside disco's).
"""

from __future__ import annotations

import argparse
import collections
import http.server
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wordcount import DiscoRuntime, make_text, split_file  # noqa: E402

NET = "127.190.1"
HTTP_HOST = f"{NET}.9"
PARTITIONS = 2


# -- the user's functions, as a Disco user writes them ---------------------------------------------


def wc_map(line, params):  # type: ignore[no-untyped-def]
    for word in line.split():
        yield word, 1


def wc_combiner(key, value, buffer, done, params):  # type: ignore[no-untyped-def]
    if done:
        return buffer.items()
    buffer[key] = buffer.get(key, 0) + value


def wc_reduce(iter, params):  # type: ignore[no-untyped-def]  # noqa: A002 - Disco's own name
    from disco.util import kvgroup
    for word, counts in kvgroup(sorted(iter)):
        yield word, sum(counts)


# -- the same functions without a framework --------------------------------------------------------


def map_and_combine(lines: Iterable[Any]) -> list[list[tuple[Any, Any]]]:
    """wc_map per line, its pairs through wc_combiner with one buffer per partition (as
    Disco keeps them), each partition's combined pairs."""
    buffers: list[dict[Any, Any]] = [{} for _ in range(PARTITIONS)]
    for line in lines:
        for key, value in wc_map(line, None):
            wc_combiner(key, value, buffers[hash(key) % PARTITIONS], False, None)
    return [list(wc_combiner(None, None, buffer, True, None)) for buffer in buffers]


def reduce_partition(pairs: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    return list(wc_reduce(iter(pairs), None))


def _from_file(path: str) -> list[list[tuple[Any, Any]]]:
    with open(path, "rb") as src:
        return map_and_combine(src.read().splitlines())


def _from_url(url: str) -> list[list[tuple[Any, Any]]]:
    with urllib.request.urlopen(url) as reply:
        return map_and_combine(reply.read().splitlines())


def _from_string(text: str) -> list[list[tuple[Any, Any]]]:
    return map_and_combine(text.splitlines())


def run_pool2(work: Callable[[Any], list[list[tuple[Any, Any]]]], inputs: list[Any]) -> dict[Any, int]:
    with multiprocessing.Pool(2) as pool:
        parts: list[list[tuple[Any, Any]]] = [[] for _ in range(PARTITIONS)]
        for partial_parts in pool.imap_unordered(work, inputs):
            for label, pairs in enumerate(partial_parts):
                parts[label] += pairs
        counts: dict[Any, int] = {}
        for reduced in pool.imap_unordered(reduce_partition, parts):
            counts.update(reduced)
    return counts


# -- inputs --------------------------------------------------------------------------------------


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    # Headers and body are two writes: without this the body waits for a delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:  # one line per request is noise
        pass


class FileServer:
    """A plain HTTP server for a folder on loopback, in a thread of this process."""

    def __init__(self, folder: Path) -> None:
        handler = partial(QuietHandler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer((HTTP_HOST, 0), handler)
        self.url = f"http://{HTTP_HOST}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def raw_pieces(text: Path, count: int, kilobytes: float) -> list[str]:
    """`count` whole-line pieces of about `kilobytes` KB from the start of the text."""
    pieces, wanted = [], int(kilobytes * 1024)
    with open(text) as src:
        while len(pieces) < count:
            block = src.read(wanted)
            if not block:
                break
            pieces.append(block + src.readline())
    return pieces


def expected_counts(texts: Iterable[bytes]) -> dict[bytes, int]:
    total: collections.Counter[bytes] = collections.Counter()
    for data in texts:
        total.update(data.split())
    return dict(total)


# -- DISCO, Spark, Dask ----------------------------------------------------------------------------


def run_disco(runtime: DiscoRuntime, inputs: list[str], inputs_per_task: int = 1) -> dict[Any, int]:
    from disco.core import Job, result_iterator

    job = Job(name="wordcount", master=runtime.url).run(
        input=inputs, map=wc_map, combiner=wc_combiner, reduce=wc_reduce, partitions=PARTITIONS,
        scheduler={"inputs_per_task": inputs_per_task})
    counts = dict(result_iterator(job.wait(poll_interval=0.2)))
    job.purge()
    return counts


class Spark:
    def __init__(self) -> None:
        from pyspark.sql import SparkSession

        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
        # Spark's Python workers run `python3` from PATH unless told: this interpreter, which
        # imports disco (wc_reduce uses disco.util.kvgroup), as every other method's does.
        os.environ["PYSPARK_PYTHON"] = sys.executable
        self.session = (SparkSession.builder.master("local[2]").appName("wordcount-inputs")
                        .config("spark.driver.host", "127.0.0.1")
                        .config("spark.driver.bindAddress", "127.0.0.1")
                        .config("spark.ui.enabled", "false")
                        .config("spark.ui.showConsoleProgress", "false").getOrCreate())
        self.sc = self.session.sparkContext
        self.sc.setLogLevel("ERROR")

    def run(self, rdd: Any) -> dict[Any, int]:
        parts = rdd.mapPartitions(lambda lines: [map_and_combine(lines)])
        by_label = parts.flatMap(enumerate).partitionBy(PARTITIONS, lambda label: label)
        reduced = by_label.mapPartitions(
            lambda items: wc_reduce((kv for _label, pairs in items for kv in pairs), None))
        return dict(reduced.collect())

    def files(self, paths: list[Path]) -> dict[Any, int]:
        return self.run(self.sc.textFile(",".join(map(str, paths)), minPartitions=len(paths)))

    def strings(self, texts: list[str]) -> dict[Any, int]:
        return self.run(self.sc.parallelize(texts, len(texts)).flatMap(str.splitlines))

    def close(self) -> None:
        self.session.stop()


class Dask:
    def __init__(self) -> None:
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                    host="127.0.0.1", dashboard_address=None)
        self.client = Client(self.cluster)

    def run(self, bag: Any) -> dict[Any, int]:
        import dask

        parts = bag.map_partitions(lambda lines: [map_and_combine(lines)]).to_delayed()
        reduced = [dask.delayed(reduce_partition)(
            dask.delayed(lambda chunks, label: [kv for c in chunks for p in c for kv in p[label]])(parts, label))
            for label in range(PARTITIONS)]
        counts: dict[Any, int] = {}
        for pairs in dask.compute(*reduced):
            counts.update(pairs)
        return counts

    def files(self, paths: list[Path]) -> dict[Any, int]:
        import dask.bag as db
        return self.run(db.read_text([str(p) for p in paths], blocksize=None))

    def strings(self, texts: list[str]) -> dict[Any, int]:
        import dask.bag as db
        return self.run(db.from_sequence(texts, npartitions=len(texts)).map(str.splitlines).flatten())

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


# -- the run ---------------------------------------------------------------------------------------


def _as_bytes(counts: dict[Any, int]) -> dict[bytes, int]:
    return {k.encode() if isinstance(k, str) else k: v for k, v in counts.items()}


def timed(what: Callable[[], dict[Any, int]]) -> tuple[float, dict[bytes, int]]:
    started = time.perf_counter()
    counts = what()
    return time.perf_counter() - started, _as_bytes(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=64.0, help="text for ddfs and http (default 64)")
    parser.add_argument("--pieces", type=int, default=16, help="inputs for ddfs and http (default 16)")
    parser.add_argument("--raw-inputs", type=int, default=400, help="raw:// inputs (default 400)")
    parser.add_argument("--raw-kb", type=float, default=8.0, help="KB of text per raw:// input (default 8)")
    parser.add_argument("--pack", type=int, default=50, help="disco-packed's inputs_per_task (default 50)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kinds", nargs="+", choices=["ddfs", "http", "raw"], default=["ddfs", "http", "raw"])
    methods = ["pool2", "disco", "disco-packed", "spark-rdd", "dask-bag"]
    parser.add_argument("--only", nargs="+", choices=methods, default=methods)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="disco-wc-inputs-"))
    runtime = server = spark = dask_ = None
    try:
        text = work / "zipf.txt"
        make_text(text, args.mb)
        size_mb = text.stat().st_size / (1 << 20)
        pieces = split_file(text, work / "pieces", max(1 << 16, text.stat().st_size // args.pieces))
        raw = raw_pieces(text, args.raw_inputs, args.raw_kb)
        raw_mb = sum(map(len, raw)) / (1 << 20)
        expected = {"ddfs": expected_counts(p.read_bytes() for p in pieces)}
        expected["http"] = expected["ddfs"]
        expected["raw"] = expected_counts(t.encode() for t in raw)
        sizes = {"ddfs": size_mb, "http": size_mb, "raw": raw_mb}
        print(f"{size_mb:.1f} MB in {len(pieces)} pieces (ddfs, http); {raw_mb:.2f} MB in "
              f"{len(raw)} raw:// inputs; load average {os.getloadavg()}", flush=True)

        started = time.perf_counter()
        runtime = DiscoRuntime(work / "runtime", net=NET)
        up_seconds = time.perf_counter() - started
        os.environ["DISCO_MASTER"], os.environ["DISCO_PORT"] = runtime.url, str(runtime.port)
        server = FileServer(work / "pieces")
        inputs: dict[str, dict[str, Any]] = {"pool2": {}, "disco": {}}
        if "ddfs" in args.kinds:
            from disco.ddfs import DDFS
            started = time.perf_counter()
            DDFS(runtime.url).push("data:wordcount", [str(p) for p in pieces], replicas=2)
            print(f"pushed {len(pieces)} pieces into DDFS (2 replicas) in "
                  f"{time.perf_counter() - started:.2f} s (not in the job's time)", flush=True)
            inputs["disco"]["ddfs"] = ["tag://data:wordcount"]
            inputs["pool2"]["ddfs"] = (_from_file, [str(p) for p in pieces])
        urls = [f"{server.url}/{p.name}" for p in pieces]
        inputs["disco"]["http"] = urls
        inputs["pool2"]["http"] = (_from_url, urls)
        inputs["disco"]["raw"] = [f"raw://{t}" for t in raw]
        inputs["pool2"]["raw"] = (_from_string, raw)

        if "spark-rdd" in args.only:
            started = time.perf_counter()
            spark = Spark()
            print(f"Spark up in {time.perf_counter() - started:.1f} s", flush=True)
        if "dask-bag" in args.only:
            started = time.perf_counter()
            dask_ = Dask()
            print(f"Dask up in {time.perf_counter() - started:.1f} s", flush=True)

        def method(name: str, kind: str) -> Callable[[], dict[Any, int]]:
            if name == "pool2":
                return lambda: run_pool2(*inputs["pool2"][kind])
            if name == "disco":
                return lambda: run_disco(runtime, inputs["disco"][kind])  # type: ignore[arg-type]
            if name == "disco-packed":
                return lambda: run_disco(runtime, inputs["disco"][kind], args.pack)  # type: ignore[arg-type]
            runner = spark if name == "spark-rdd" else dask_
            if kind == "raw":
                return lambda: runner.strings(raw)  # type: ignore[union-attr]
            return lambda: runner.files(pieces)  # type: ignore[union-attr]

        def runs(kind: str) -> list[str]:  # packing is for small inputs: raw:// only
            return [m for m in args.only if m != "disco-packed" or kind == "raw"]

        times: dict[str, dict[str, list[float]]] = {k: {m: [] for m in runs(k)} for k in args.kinds}
        for round_ in range(args.repeat):
            for kind in args.kinds:
                for name in runs(kind):
                    seconds, counts = timed(method(name, kind))
                    if counts != expected[kind]:
                        raise SystemExit(f"{name} over {kind}: wrong counts ({len(counts)} words, "
                                         f"{len(expected[kind])} expected)")
                    times[kind][name].append(seconds)
                    print(f"round {round_ + 1} {kind:>4} {name:>9}  {seconds:7.2f} s  "
                          f"{sizes[kind] / seconds:6.1f} MB/s", flush=True)

        started = time.perf_counter()
        runtime.close()
        down_seconds = time.perf_counter() - started
        runtime = None
        print(f"\nDISCO runtime: up {up_seconds:.2f} s, down {down_seconds:.2f} s "
              f"(added to the job for the cold number); load average {os.getloadavg()}")
        results: dict[str, Any] = {"mb": sizes, "load_average": os.getloadavg(), "seconds": times,
                                   "inputs_per_task_packed": args.pack,
                                   "runtime_up": up_seconds, "runtime_down": down_seconds}
        for kind in args.kinds:
            best = {name: min(t) for name, t in times[kind].items()}
            print(f"{kind}: best of {args.repeat}: " + ", ".join(
                f"{name} {s:.2f} s ({sizes[kind] / s:.1f} MB/s)" for name, s in best.items()))
            for name in ("disco", "disco-packed"):
                if "pool2" not in best or name not in best:
                    continue
                ratio = best["pool2"] / best[name]
                cold = best["pool2"] / (best[name] + up_seconds + down_seconds)
                medians = (sorted(times[kind]["pool2"])[args.repeat // 2]
                           / sorted(times[kind][name])[args.repeat // 2])
                print(f"  {name} ≥ 0.9 × pool2 over {kind}: ratio {ratio:.2f} "
                      f"({'PASS' if ratio >= 0.9 else 'MISS'}; medians {medians:.2f}; "
                      f"cold, runtime started and stopped: {cold:.2f})")
                key = kind if name == "disco" else f"{kind}-packed"
                results.setdefault("ratio", {})[key] = ratio
                results.setdefault("ratio_cold", {})[key] = cold
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        for thing in (dask_, spark, server, runtime):
            if thing is not None:
                thing.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
