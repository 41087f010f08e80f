"""Multi-host benchmark: create -> ready of 1 master + N workers (default 4) on test hosts over
SSH, against the local provider and against Ray's own cluster launcher, in the same run; then a
first install on bare hosts, step by step.

Variants, each on the same 5 pre-baked test hosts (`disco testbed`, 127.0.230.x by default):

  dask/ssh        DISCO, provider ssh: POST /api/v1/clusters naming the hosts, follow the
                  cluster's event stream until "ready"; then DELETE until "deleted", and a scan
                  of every host (its /proc, its files, its listening sockets) for what is left
  spark/ssh       as dask/ssh
  ray/ssh         as dask/ssh, DISCO's ray framework (ready when the head counts N+1 nodes)
  ray/launcher    `ray up` with Ray's on-premise provider over SSH (benchmarks/ray_launcher.py),
                  ready when the head counts N+1 alive nodes (the same question DISCO's ray
                  readiness asks, as often); then `ray down` and the same scan of the hosts
  dask/local      DISCO, the local provider, on this machine
  spark/local     as dask/local

Rounds interleave the variants. After them, `--bare` (on by default) runs Dask and Spark 1+1
on two fresh hosts of the bare image each (a first install: Python venv, packages, Java) and
reports the bootstrap's steps with their seconds, from the cluster's own events.

Needs root and podman (as `disco testbed` does); builds the test-host images on first use.

    .venv/bin/python benchmarks/multihost.py --repeat 1 --json results/multihost.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ray_launcher  # noqa: E402  (a sibling module, like startup)
from startup import (BenchError, ServiceManager, _follow_until, _poll_state, _timeline,  # noqa: E402
                     machine_info, settle, sigterm_as_interrupt, tail)

from disco.testbed import TestHost, Testbed  # noqa: E402

VARIANTS = ["dask/ssh", "spark/ssh", "ray/ssh", "ray/launcher", "dask/local", "spark/local"]
LABELS = {
    "dask/ssh": "Dask   DISCO over SSH",
    "spark/ssh": "Spark  DISCO over SSH",
    "ray/ssh": "Ray    DISCO over SSH",
    "ray/launcher": "Ray    ray up (on-premise provider)",
    "dask/local": "Dask   DISCO local provider",
    "spark/local": "Spark  DISCO local provider",
}
# (what, numerator, denominator)
RATIOS = [
    ("DISCO Ray over SSH / ray up", "ray/ssh", "ray/launcher"),
    ("DISCO Dask over SSH / ray up", "dask/ssh", "ray/launcher"),
    ("DISCO Spark over SSH / ray up", "spark/ssh", "ray/launcher"),
    ("DISCO Dask over SSH / DISCO Dask local", "dask/ssh", "dask/local"),
    ("DISCO Spark over SSH / DISCO Spark local", "spark/ssh", "spark/local"),
]
SPARK_PROPERTIES = {"worker_memory": "768m"}  # 5 JVMs on a 2-core, shared machine
STEP = re.compile(r"(\w+) ([\d.]+) s( \(as it was\))?")


@dataclass
class Run:
    variant: str
    round: int
    seconds: float | None           # create -> ready; None when it failed
    delete_seconds: float | None = None
    left_behind: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


# -- the site: test hosts, a service manager, the host pool ----------------------------------------


class Site:
    def __init__(self, work: Path, address_base: str, net_base: int) -> None:
        self.work = work
        self.testbed = Testbed("bench", address_base, state_dir=work / "testbed", progress=_say)
        self.bare_testbeds: list[Testbed] = []
        self.sm = ServiceManager(work / "sm", net_base)
        self.api: httpx.Client | None = None

    def open(self, hosts: int) -> None:
        self.testbed.up(hosts, image="baked")
        self.sm.start()
        self.api = self.sm.client()  # the first start's token is an admin's
        self.add_hosts(self.testbed)

    def disco(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.api is not None
        token = self.api.headers["X-Auth-Token"]
        done = subprocess.run([sys.executable, "-m", "disco.cli.main", *args, "--url", self.sm.url, "--token", token],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise BenchError(f"disco {' '.join(args)}: {done.stderr.strip()}")
        return done

    def add_hosts(self, testbed: Testbed) -> None:
        inventory = self.work / f"{testbed.name}.yaml"
        inventory.write_text(testbed.inventory())
        self.disco("hosts", "add", "--from", str(inventory))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.api is not None:
                self.api.close()
        self.sm.stop()
        for testbed in [self.testbed, *self.bare_testbeds]:
            testbed.down()

    def scan(self, hosts: list[TestHost], cluster_id: str) -> dict[str, list[str]]:
        """What of a cluster is on each host: processes marked with it, its directory, and
        listening sockets on the host's address other than sshd's."""
        found: dict[str, list[str]] = {}
        for host in hosts:
            inside = self.testbed_of(host).exec(host, ["sh", "-c",
                                                       f"grep -l 'DISCO_CLUSTER={cluster_id}' /proc/[0-9]*/environ 2>/dev/null;"
                                                       f"ls -d /opt/disco/clusters/{cluster_id} 2>/dev/null; true"]).stdout.split()
            ports = [p for p in listening(host.address) if p != 22]
            if inside or ports:
                found[host.name] = inside + [f"port {p}" for p in ports]
        return found

    def testbed_of(self, host: TestHost) -> Testbed:
        return next(t for t in [self.testbed, *self.bare_testbeds] if host in t.hosts())


def listening(address: str) -> list[int]:
    """TCP ports listening on `address` (this machine's sockets: test hosts share its network)."""
    out = subprocess.run(["ss", "-Htln"], capture_output=True, text=True).stdout
    ports = []
    for line in out.splitlines():
        local = line.split()[3]
        host, _, port = local.rpartition(":")
        if host.strip("[]") == address:
            ports.append(int(port))
    return sorted(ports)


def _say(message: str) -> None:
    print(f"  {message}", flush=True)


# -- DISCO ----------------------------------------------------------------------------------------


def disco_run(site: Site, variant: str, rnd: int, workers: int) -> Run:
    framework, provider = variant.split("/")
    assert site.api is not None
    api = site.api
    hosts = site.testbed.hosts()[: workers + 1]
    spec: dict[str, Any] = {"frameworks": [{"name": framework, "properties": SPARK_PROPERTIES}
                                           if framework == "spark" else {"name": framework}],
                            "workers": workers}
    if provider == "ssh":
        spec |= {"provider": "ssh", "provider_options": {"hosts": ",".join(h.name for h in hosts)}}
    busy = settle()
    cluster_id = ""
    try:
        wall0, t0 = time.time(), time.perf_counter()
        made = api.post("/api/v1/clusters", json=spec)
        if made.status_code != 201:
            raise BenchError(f"create failed: {made.status_code} {made.text}")
        cluster_id = made.json()["id"]
        site.sm.cluster_ids.append(cluster_id)
        _follow_until(api, cluster_id, {"ready", "failed"}, timeout_s=600)
        seconds = time.perf_counter() - t0
        body = api.get(f"/api/v1/clusters/{cluster_id}").json()
        if body["state"] != "ready":
            raise BenchError(f"cluster {cluster_id} failed: {body['status_reason']}")
        deleting = time.perf_counter()
        api.delete(f"/api/v1/clusters/{cluster_id}").raise_for_status()
        _poll_state(api, cluster_id, {"deleted"}, 0.1, timeout_s=300)
        delete_s = time.perf_counter() - deleting
        gone, cluster_id = cluster_id, ""
        left = site.scan(hosts, gone) if provider == "ssh" else {}
        return Run(variant, rnd, seconds, delete_s, left,
                   detail={"cluster_id": body["id"], "cpu_busy_before": busy, "timeline": _timeline(body, wall0)})
    except BenchError as exc:
        return Run(variant, rnd, None, error=str(exc), detail={"cluster_id": cluster_id})
    finally:
        if cluster_id:  # failed half-way: still delete it
            with contextlib.suppress(Exception):
                api.delete(f"/api/v1/clusters/{cluster_id}")
                _poll_state(api, cluster_id, {"deleted"}, 0.2, timeout_s=300)


# -- ray up ---------------------------------------------------------------------------------------


def launcher_run(site: Site, rnd: int, workers: int) -> Run:
    hosts = site.testbed.hosts()[: workers + 1]
    config = site.work / "ray-cluster.yaml"
    config.write_text(yaml.safe_dump(ray_launcher.cluster_config("bench", hosts[0], hosts[1:])))
    log = site.work / "ray.log"
    venv_bin = Path(sys.executable).parent
    busy = settle()
    run = Run("ray/launcher", rnd, None, detail={"cpu_busy_before": busy, "log": str(log)})
    try:
        times = ray_launcher.launch(venv_bin, config, hosts[0], workers + 1, log)
        run.seconds = times["ready_s"]
        run.detail["ray_up_returned_s"] = round(times["ray_up_s"], 2)
    except (ray_launcher.LauncherError, subprocess.TimeoutExpired) as exc:
        run.error = str(exc)
    try:
        run.delete_seconds = ray_launcher.ray_cli(venv_bin, config, "down", log, 300)
    except (ray_launcher.LauncherError, subprocess.TimeoutExpired) as exc:
        run.error = run.error or str(exc)
    run.left_behind = ray_launcher.leftovers(site.testbed, hosts)
    ray_launcher.clear(site.testbed, hosts)
    return run


# -- first install on bare hosts -------------------------------------------------------------------


def bare_run(site: Site, framework: str, k: int, address_base: str) -> Run:
    """1+1 on two hosts fresh from the bare image; the bootstrap's steps per host."""
    testbed = Testbed(f"bench-bare{k}", address_base, state_dir=site.work / "testbed", progress=_say)
    site.bare_testbeds.append(testbed)
    hosts = testbed.up(2, image="bare")
    site.add_hosts(testbed)
    try:
        saved = site.testbed
        site.testbed = testbed  # disco_run takes the first hosts of site.testbed
        run = disco_run(site, f"{framework}/ssh", 0, 1)
    finally:
        site.testbed = saved
        for host in hosts:
            with contextlib.suppress(BenchError):
                site.disco("hosts", "remove", host.name)
        testbed.down()
        site.bare_testbeds.remove(testbed)
    run.variant = f"{framework}/bare"
    run.detail["steps"] = bootstrap_steps(run.detail.get("timeline", []))
    return run


def bootstrap_steps(timeline: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per node, the bootstrap's total and its steps, from the "... bootstrapped in X s: ..."
    install events."""
    nodes: dict[str, dict[str, Any]] = {}
    for row in timeline:
        message = row["message"]
        if row["step"] != "install" or " bootstrapped in " not in message:
            continue
        head, _, steps = message.partition(": ")
        node = head.split(" bootstrapped in ")[0]
        total = float(head.split(" bootstrapped in ")[1].split()[0])
        parsed = [{"step": m.group(1), "seconds": float(m.group(2)), "changed": not m.group(3)}
                  for m in STEP.finditer(steps)]
        # Before its steps, the transport uploads the bundle and disco's wheel, and the
        # bootstrap script makes sure the host can make a venv (python3-venv from apt on a bare
        # Debian): that time is the total less the steps'.
        nodes[node] = {"total_s": total, "steps": parsed,
                       "before_steps_s": round(total - sum(p["seconds"] for p in parsed), 1)}
    return nodes


# -- report -----------------------------------------------------------------------------------------


def summarize(runs: list[Run]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for variant in {r.variant for r in runs}:
        mine = [r for r in runs if r.variant == variant]
        ok = [r.seconds for r in mine if r.seconds is not None]
        deletes = [r.delete_seconds for r in mine if r.delete_seconds is not None]
        out[variant] = {"runs": len(mine), "failed": sum(r.seconds is None for r in mine),
                        "median_s": round(statistics.median(ok), 2) if ok else None,
                        "min_s": round(min(ok), 2) if ok else None,
                        "delete_median_s": round(statistics.median(deletes), 2) if deletes else None,
                        "runs_leaving_something": sum(bool(r.left_behind) for r in mine)}
    return out


def print_variants(summary: dict[str, dict[str, Any]], labels: dict[str, str], title: str) -> None:
    """The table of summarize()'s variants, in the order of `labels`."""
    print(f"\ncreate -> ready, {title} (median of the runs that worked)")
    width = max(len(label) for label in labels.values())
    print(f"  {'variant':{width}} {'ready s':>8} {'min s':>7} {'delete s':>9} {'failed':>7} {'left something':>15}")
    for variant in [v for v in labels if v in summary]:
        s = summary[variant]
        print(f"  {labels[variant]:{width}} {fmt(s['median_s']):>8} {fmt(s['min_s']):>7} "
              f"{fmt(s['delete_median_s']):>9} {s['failed']:>7} {s['runs_leaving_something']:>15}")


def print_problems(runs: list[Run]) -> None:
    for run in runs:
        if run.error:
            print(f"  {run.variant} round {run.round} FAILED: {run.error}")
        if run.left_behind:
            print(f"  {run.variant} round {run.round} left behind: {json.dumps(run.left_behind)[:600]}")


def fmt(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def write_results(path: Path, benchmark: str, args: argparse.Namespace, runs: list[Run], **results: Any) -> None:
    """All of a run as JSON: the machine, the date, the arguments, `results`, every run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    machine = machine_info(Path("/nonexistent"))
    machine["load_avg"] = os.getloadavg()
    path.write_text(json.dumps({
        "benchmark": benchmark, "machine": machine, "date": dt.datetime.now().isoformat(timespec="seconds"),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        **results, "runs": [asdict(r) for r in runs]}, indent=2))
    print(f"\nJSON results: {path}")


def print_report(summary: dict[str, dict[str, Any]], runs: list[Run], workers: int) -> list[dict[str, Any]]:
    print_variants(summary, LABELS, f"1 master + {workers} workers")
    ratios = []
    for what, top, bottom in RATIOS:
        a, b = summary.get(top, {}).get("median_s"), summary.get(bottom, {}).get("median_s")
        if a and b:
            ratios.append({"what": what, "ratio": round(a / b, 3)})
            print(f"  ratio {what}: {a / b:.3f}")
    print_problems(runs)
    for run in runs:
        if run.variant.endswith("/bare") and run.seconds is not None:
            print(f"\nfirst install, {run.variant.split('/')[0]} 1+1 on bare hosts: ready in {run.seconds:.1f} s")
            for node, info in run.detail["steps"].items():
                steps = ", ".join(f"{s['step']} {s['seconds']:.1f}" + ("" if s["changed"] else " (as it was)")
                                  for s in info["steps"])
                print(f"  {node}: bootstrap {info['total_s']:.1f} s = upload + bootstrap script "
                      f"{info['before_steps_s']:.1f}, then {steps}")
    return ratios


# -- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every variant (default 1)")
    parser.add_argument("--workers", type=int, default=4, help="workers per cluster (default 4)")
    parser.add_argument("--only", nargs="+", choices=VARIANTS, default=VARIANTS)
    parser.add_argument("--no-bare", dest="bare", action="store_false", help="leave out the first install")
    parser.add_argument("--address-base", default="127.0.230", help="test hosts' addresses (default 127.0.230)")
    parser.add_argument("--bare-address-base", default="127.0.231")
    parser.add_argument("--disco-net-base", type=int, default=241, help="the local provider's 127.N.x.x")
    parser.add_argument("--json", type=Path, help="write all results here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs)")
    # run_all.py hands every benchmark the same extra arguments; ignore those meant for others.
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"multihost: ignoring {' '.join(unknown)}", file=sys.stderr)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("multihost: test hosts need root (podman with host networking)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="disco-bench-mh-"))
    site = Site(work, args.address_base, args.disco_net_base)
    runs: list[Run] = []
    failed = True
    print(f"multi-host benchmark: {', '.join(args.only)}; 1+{args.workers}; {args.repeat} round(s); "
          f"hosts on {args.address_base}.x; work dir {work}", flush=True)
    with sigterm_as_interrupt():
        try:
            site.open(args.workers + 1)
            if "ray/launcher" in args.only:
                ray_launcher.prepare_hosts(site.testbed, site.testbed.hosts())
            for rnd in range(args.repeat):
                for variant in args.only:
                    print(f"==> round {rnd + 1}: {LABELS[variant]}", flush=True)
                    run = (launcher_run(site, rnd, args.workers) if variant == "ray/launcher"
                           else disco_run(site, variant, rnd, args.workers))
                    runs.append(run)
                    print(f"    {'%.2f s' % run.seconds if run.seconds is not None else 'FAILED: ' + str(run.error)}",
                          flush=True)
            if args.bare:
                for k, framework in enumerate(["dask", "spark"]):
                    print(f"==> first install: {framework} 1+1 on bare hosts", flush=True)
                    runs.append(bare_run(site, framework, k, f"{args.bare_address_base}"))
            failed = False
        finally:
            if failed:
                print(f"service manager log:\n{tail(site.sm.log, 3000)}", file=sys.stderr)
            site.close()
            if failed or args.keep:
                print(f"working directory (logs) kept: {work}", file=sys.stderr)
            else:
                shutil.rmtree(work, ignore_errors=True)
    summary = summarize(runs)
    ratios = print_report(summary, runs, args.workers)
    if args.json:
        write_results(args.json, "multihost", args, runs, summary=summary, ratios=ratios)
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything this benchmark started has been stopped", file=sys.stderr)
        sys.exit(130)
