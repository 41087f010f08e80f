"""OpenStack benchmark: create -> ready of Spark 1 master + N workers (default 4) through DISCO's
OpenStack provider on the cloud in a box, broken down by phase, against the same cluster over
the SSH provider on 5 baked test hosts, in the same run.

Variants:

  spark/openstack  a real Heat (`disco testbed cloud`, on 127.0.<block>.200:8004) makes the
                   cluster's stack; each OS::Nova::Server is a podman container of the
                   `disco-baked` image booting its user_data with cloud-init (DISCO's node
                   bootstrap, then the `booted` signal); POST /api/v1/clusters with provider
                   openstack, the box's clouds.yaml entry as `cloud`; clock stops at `ready`
                   (the stack completes just before, on the nodes' ready signals)
  spark/ssh        as in multihost.py: the same service manager, provider ssh, 5 test hosts of
                   the baked image (the same image family as disco-baked, without cloud-init)

Per OpenStack run the phases (openstack_phases.py): Heat stack to addresses, container boot,
cloud-init, the node bootstrap, the provider seeing the booted signals, frameworks, the ready
signals to CREATE_COMPLETE. Then DELETE until "deleted", and a scan: no stack in Heat, no
container of the stack, nothing listening on the nodes' addresses.

Needs root and podman (as the tests); builds the images and Heat's venv on first use.

    .venv/bin/python benchmarks/openstack_cloud.py --repeat 3 --json results/openstack.json
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from multihost import (SPARK_PROPERTIES, Run, Site, _say, disco_run, fmt, listening, print_problems,  # noqa: E402
                       print_variants, write_results)
from multihost import summarize as summarize_variants  # noqa: E402
from openstack_phases import PHASES, STACK_LABEL, phases, servers_seen  # noqa: E402
from startup import (BenchError, _follow_until, _poll_state, _timeline, settle,  # noqa: E402
                     sigterm_as_interrupt, tail)

from disco.providers.openstack.heat_client import HeatStacks, connect  # noqa: E402
from disco.testbed import Testbed  # noqa: E402
from disco.testbed.cloud.catalogue import BOX_PROVIDER_OPTIONS  # noqa: E402
from disco.testbed.cloud.cloud import Cloud  # noqa: E402
from disco.testbed.podman import containers  # noqa: E402

VARIANTS = ["spark/openstack", "spark/ssh"]
LABELS = {"spark/openstack": "Spark  DISCO OpenStack (cloud in a box)", "spark/ssh": "Spark  DISCO over SSH"}


class Box:
    """The cloud in a box for the whole benchmark: up at the start, down (every stack, every
    container, its database) at the end, whatever happened."""

    def __init__(self, work: Path, block: int) -> None:
        self.block = block
        self.cloud = Cloud(f"bench{block}", state_dir=work / "cloud", progress=_say)
        self.entry: dict[str, Any] = {}
        self.started = False

    def up(self) -> None:
        self.started = True  # a failed up cleans itself; a half-made one is brought down by down()
        self.cloud.up(address=f"127.0.{self.block}.200", port=8004, server_range=f"127.0.{self.block}.0/25",
                      images=["disco-baked"])
        self.entry = yaml.safe_load(self.cloud.clouds_yaml())["clouds"][self.cloud.name]

    def heat(self) -> HeatStacks:
        return HeatStacks(connect(self.entry))

    def down(self) -> None:
        if self.started and self.cloud.state() is not None:
            self.cloud.down()

    def leftovers(self, cluster_id: str, stack_id: str, addresses: list[str]) -> dict[str, list[str]]:
        """What Heat, podman and this machine's sockets still hold of a cluster."""
        found: dict[str, list[str]] = {}
        if self.heat().find(f"disco-{cluster_id}") is not None:
            found["stack"] = [f"disco-{cluster_id}"]
        if stack_id and (left := containers(f"{STACK_LABEL}={stack_id}")):
            found["containers"] = [c["Names"][0] for c in left]
        for address in addresses:
            if ports := listening(address):
                found[address] = [f"port {p}" for p in ports]
        return found


def openstack_run(site: Site, box: Box, rnd: int, workers: int) -> Run:
    assert site.api is not None
    api = site.api
    spec = {"provider": "openstack", "workers": workers, "cloud": box.entry, "provider_options": BOX_PROVIDER_OPTIONS,
            "frameworks": [{"name": "spark", "properties": SPARK_PROPERTIES}]}
    busy = settle()
    cluster_id = ""
    try:
        wall0, t0 = time.time(), time.perf_counter()
        made = api.post("/api/v1/clusters", json=spec)
        if made.status_code != 201:
            raise BenchError(f"create failed: {made.status_code} {made.text}")
        cluster_id = made.json()["id"]
        _follow_until(api, cluster_id, {"ready", "failed"}, timeout_s=900)
        seconds = time.perf_counter() - t0
        body = api.get(f"/api/v1/clusters/{cluster_id}").json()
        if body["state"] != "ready":
            events = [f"{e['step']}: {e['message']}" for e in body.get("events", [])][-6:]
            raise BenchError(f"cluster {cluster_id} failed: {body['status_reason']} (last events: {events})")
        # What Heat and the servers recorded, read before the delete takes it away.
        stack_id = body["outputs"]["stack_id"]
        heat = box.heat()
        evidence = {"events": api.get(f"/api/v1/clusters/{cluster_id}/events").json(),
                    "heat_events": heat.events(stack_id), "resources": heat.resources(stack_id),
                    "servers": servers_seen(stack_id)}
        addresses = [n["host"] for n in body["nodes"] if n.get("host")]
        deleting = time.perf_counter()
        api.delete(f"/api/v1/clusters/{cluster_id}").raise_for_status()
        _poll_state(api, cluster_id, {"deleted"}, 0.2, timeout_s=300)
        delete_s = time.perf_counter() - deleting
        gone, cluster_id = cluster_id, ""
        left = box.leftovers(gone, stack_id, addresses)
        return Run("spark/openstack", rnd, seconds, delete_s, left, detail={
            "cluster_id": gone, "stack_id": stack_id, "cpu_busy_before": busy, "load_avg": os.getloadavg(),
            "phases": phases(wall0, **evidence), "timeline": _timeline(body, wall0),
            "evidence": {"wall0": wall0, **evidence}})  # raw: phases() can be run on it again
    except BenchError as exc:
        return Run("spark/openstack", rnd, None, error=str(exc), detail={"cluster_id": cluster_id})
    finally:
        if cluster_id:  # failed or interrupted half-way: still delete it (the box's down is the last resort)
            with contextlib.suppress(Exception):
                api.delete(f"/api/v1/clusters/{cluster_id}")
                _poll_state(api, cluster_id, {"deleted"}, 0.5, timeout_s=300)


# -- report -----------------------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def summarize(runs: list[Run]) -> dict[str, Any]:
    """multihost's summary per variant, and the OpenStack runs' phases."""
    out: dict[str, Any] = summarize_variants(runs)
    done = [r.detail["phases"] for r in runs if r.variant == "spark/openstack" and r.seconds is not None]
    if done:
        table: dict[str, Any] = {}
        for key, _ in PHASES:
            values = [p[key] for p in done if p.get(key) is not None]
            if values and isinstance(values[0], dict):  # per node: the medians of the nodes' median and max
                table[key] = {"median": _median([v["median"] for v in values]), "max": _median([v["max"] for v in values])}
            else:
                table[key] = {"median": _median(values)}
        table["milestones"] = {k: _median([p["milestones"][k] for p in done if p["milestones"].get(k) is not None])
                               for k in done[0]["milestones"]}
        table["cloud_init_stage_starts"] = {k: _median([p["cloud_init_stage_starts"][k]["median"] for p in done
                                                        if p["cloud_init_stage_starts"].get(k)])
                                            for k in done[0]["cloud_init_stage_starts"]}
        out["phases"] = table
    return out


def print_report(summary: dict[str, Any], runs: list[Run], workers: int) -> dict[str, float]:
    print_variants(summary, LABELS, f"Spark 1 master + {workers} workers")
    ratio: dict[str, float] = {}
    a, b = (summary.get(v, {}).get("median_s") for v in VARIANTS)
    if a and b:
        ratio = {"openstack/ssh": round(a / b, 3)}
        print(f"  ratio OpenStack / SSH: {a / b:.2f}")
    if "phases" in summary:
        table = summary["phases"]
        print("\nOpenStack phases (s; per-node phases: median node / slowest node)")
        for key, label in PHASES:
            row = table.get(key) or {}
            extra = f"  (slowest node {fmt(row['max'])})" if "max" in row else ""
            print(f"  {label:66} {fmt(row.get('median')):>7}{extra}")
        print("  cloud-init stages start, s after the container's start: "
              + ", ".join(f"{k} {fmt(v)}" for k, v in table["cloud_init_stage_starts"].items()))
        print("  critical path, s from the POST: "
              + ", ".join(f"{k} {fmt(v)}" for k, v in table["milestones"].items()))
    print_problems(runs)
    return ratio


# -- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every variant, interleaved (default 1)")
    parser.add_argument("--workers", type=int, default=4, help="workers per cluster (default 4)")
    parser.add_argument("--only", nargs="+", choices=VARIANTS, default=VARIANTS)
    parser.add_argument("--cloud-block", type=int, default=232,
                        help="the box on 127.0.N.x: Heat on .200, servers .1-.126 (default 232)")
    parser.add_argument("--address-base", default="127.0.233", help="test hosts' addresses (default 127.0.233)")
    parser.add_argument("--disco-net-base", type=int, default=242, help="the local provider's 127.N.x.x (unused)")
    parser.add_argument("--json", type=Path, help="write all results here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs)")
    # run_all.py hands every benchmark the same extra arguments; ignore those meant for others.
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"openstack: ignoring {' '.join(unknown)}", file=sys.stderr)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("openstack: the cloud in a box and the test hosts need root (podman, host networking)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="disco-bench-os-"))
    site = Site(work, args.address_base, args.disco_net_base)
    # A name of its own: a testbed's down removes every container labelled with its name, and
    # multihost.py's "bench" may be running beside this benchmark.
    site.testbed = Testbed("bench-os", args.address_base, state_dir=work / "testbed", progress=_say)
    box = Box(work, args.cloud_block)
    runs: list[Run] = []
    failed = True
    print(f"openstack benchmark: {', '.join(args.only)}; Spark 1+{args.workers}; {args.repeat} round(s); "
          f"cloud on 127.0.{args.cloud_block}.x, test hosts on {args.address_base}.x; work dir {work}", flush=True)
    with sigterm_as_interrupt():
        try:
            if "spark/openstack" in args.only:
                print("==> cloud in a box up", flush=True)
                box.up()
            if "spark/ssh" in args.only:
                site.open(args.workers + 1)
            else:
                site.sm.start()
                site.api = site.sm.client()
            for rnd in range(args.repeat):
                for variant in args.only:
                    print(f"==> round {rnd + 1}: {LABELS[variant]} (load average {os.getloadavg()[0]:.2f})", flush=True)
                    run = (openstack_run(site, box, rnd, args.workers) if variant == "spark/openstack"
                           else disco_run(site, variant, rnd, args.workers))
                    run.detail.setdefault("load_avg", os.getloadavg())
                    runs.append(run)
                    print(f"    {'%.2f s' % run.seconds if run.seconds is not None else 'FAILED: ' + str(run.error)}",
                          flush=True)
            failed = False
        finally:
            if failed:
                print(f"service manager log:\n{tail(site.sm.log, 3000)}", file=sys.stderr)
            try:
                site.close()  # the service manager, then the test hosts
            finally:
                box.down()    # every stack and server container, Heat, its database; then a scan
            if failed or args.keep:
                print(f"working directory (logs) kept: {work}", file=sys.stderr)
            else:
                shutil.rmtree(work, ignore_errors=True)
    summary = summarize(runs)
    ratio = print_report(summary, runs, args.workers)
    if args.json:
        write_results(args.json, "openstack_cloud", args, runs, summary=summary, ratio=ratio)
    return 1 if any(r.error or r.left_behind for r in runs) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything this benchmark started has been stopped", file=sys.stderr)
        sys.exit(130)
