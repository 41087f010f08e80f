"""Runs every benchmark (`./run bench`); each writes its JSON results under --out.

    python benchmarks/run_all.py                     # all benchmarks, default settings
    python benchmarks/run_all.py --repeat 5          # extra arguments go to each benchmark
    python benchmarks/run_all.py --bench startup --only dask   # one benchmark, Dask only
    python benchmarks/run_all.py --bench multihost --repeat 2  # clusters on test hosts over SSH
    python benchmarks/run_all.py --bench openstack_cloud     # Spark through the cloud in a box vs SSH
    python benchmarks/run_all.py --bench farm_vs_celery      # the task farm vs Celery + Redis (extra: bench)

A benchmark is a module here with main(argv) -> exit code that accepts --json PATH; add
it to BENCHMARKS to include it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["startup", "multihost", "openstack_cloud", "farm_vs_celery"]  # multihost, openstack_cloud: root and podman


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", nargs="+", choices=BENCHMARKS, default=BENCHMARKS,
                        help="which benchmarks (default: all)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for the JSON results")
    args, rest = parser.parse_known_args(argv)
    sys.path.insert(0, str(HERE))
    worst = 0
    for name in args.bench:
        print(f"==> benchmark {name}", flush=True)
        module = importlib.import_module(name)
        worst = max(worst, module.main([*rest, "--json", str(args.out / f"{name}.json")]))
    return worst


if __name__ == "__main__":
    sys.exit(main())
