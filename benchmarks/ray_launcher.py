"""Ray's own cluster launcher as a peer of DISCO's SSH provider: `ray up` with Ray's on-premise
("local") node provider over SSH, on the same test hosts, and `ray down`.

Ray needs more of a host than DISCO does: rsync on every host (ray up copies its bootstrap
config and key to the head with it; the head copies to the workers), `ray` on the login
shell's PATH, and, on a machine where all hosts share one network namespace (test hosts do),
a port block per node, which Ray's own config cannot compute per host: the worker start
command derives it in the shell from the address sshd answered on ($SSH_CONNECTION).
`prepare_hosts` does the first two once, outside any timing, as an admin would before
running `ray up`."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from disco.testbed import TestHost, Testbed

VENV_BIN = "/opt/disco/venv/bin"       # where the baked image has Ray
PORT_BLOCK_BASE = 30000                 # node i's 32 ports start at PORT_BLOCK_BASE + 32 * i
DASHBOARD_PORT = 8265
READY_POLL_S = 0.5                      # as often as DISCO's ray readiness asks
NUM_CPUS = 1                            # DISCO's ray defaults, so both clusters are alike
OBJECT_STORE_BYTES = 100_000_000


class LauncherError(RuntimeError):
    pass


def _block(address: str) -> int:
    return PORT_BLOCK_BASE + 32 * int(address.rsplit(".", 1)[1])


def _node_ports(block: str) -> str:
    """Ray's per-node ports from a port block given as a shell expression."""
    offsets = {"node-manager-port": 2, "object-manager-port": 3, "dashboard-agent-listen-port": 4,
               "dashboard-agent-grpc-port": 5, "runtime-env-agent-port": 6, "metrics-export-port": 7,
               "min-worker-port": 10, "max-worker-port": 31}
    return " ".join(f"--{flag}=$(({block}+{offset}))" for flag, offset in offsets.items())


def cluster_config(name: str, head: TestHost, workers: list[TestHost]) -> dict[str, Any]:
    gcs = _block(head.address)
    common = f"--num-cpus={NUM_CPUS} --object-store-memory={OBJECT_STORE_BYTES} --disable-usage-stats"
    head_start = (f"B={gcs}; RAY_enable_autoscaler_v2=0 AUTOSCALER_METRIC_PORT=$((B+8)) "
                  f"DASHBOARD_METRIC_PORT=$((B+9)) ray start --head --node-ip-address={head.address} "
                  f"--port=$B --ray-client-server-port=$((B+1)) --dashboard-host={head.address} "
                  f"--dashboard-port={DASHBOARD_PORT} {_node_ports('B')} {common} "
                  "--autoscaling-config=~/ray_bootstrap_config.yaml")
    worker_start = ("set -- $SSH_CONNECTION; IP=$3; "
                    f"B=$(({PORT_BLOCK_BASE} + 32 * ${{IP##*.}})); "
                    f"ray start --address={head.address}:{gcs} --node-ip-address=$IP "
                    f"{_node_ports('B')} {common}")
    return {
        "cluster_name": name,
        "provider": {"type": "local", "head_ip": head.address, "worker_ips": [w.address for w in workers]},
        "auth": {"ssh_user": head.user, "ssh_private_key": head.key},
        "min_workers": len(workers), "max_workers": len(workers),
        "upscaling_speed": 100.0, "idle_timeout_minutes": 5,
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [],
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": ["ray stop", head_start],
        "worker_start_ray_commands": ["ray stop", worker_start],
    }


def prepare_hosts(testbed: Testbed, hosts: list[TestHost]) -> None:
    """What Ray needs on a host beyond what DISCO needs (see the module's text)."""
    for host in hosts:
        done = testbed.exec(host, ["sh", "-c", "command -v rsync || (apt-get update -q && "
                                   "DEBIAN_FRONTEND=noninteractive apt-get install -y -q rsync)"],
                            check=False, timeout=600)
        if done.returncode != 0:
            raise LauncherError(f"rsync could not be installed on {host.name}: {done.stderr[-800:]}")
        testbed.exec(host, ["sh", "-c", f"grep -q '{VENV_BIN}' /root/.bashrc || "
                            f"echo 'export PATH={VENV_BIN}:$PATH' >> /root/.bashrc"])


def alive_nodes(head: TestHost) -> int:
    """Live nodes as the head counts them: the state API DISCO's ray readiness asks too."""
    url = f"http://{head.address}:{DASHBOARD_PORT}/api/v0/nodes?limit=10000&detail=false"
    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
        body = httpx.get(url, timeout=2, trust_env=False).json()
        return sum(1 for node in body["data"]["result"]["result"] if node.get("state") == "ALIVE")
    return 0


def ray_cli(venv_bin: Path, config: Path, verb: str, log: Path, timeout_s: float) -> float:
    """`ray up|down -y CONFIG`, its output appended to `log`; seconds it took."""
    started = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n==> ray {verb}\n")
        out.flush()
        done = subprocess.run([str(venv_bin / "ray"), verb, "-y", "--no-config-cache", str(config)]
                              if verb == "up" else [str(venv_bin / "ray"), verb, "-y", str(config)],
                              stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s,
                              env={"PATH": f"{venv_bin}:/usr/bin:/bin", "HOME": str(Path.home()),
                                   "RAY_USAGE_STATS_ENABLED": "0"})
    if done.returncode != 0:
        raise LauncherError(f"ray {verb} failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - started


def launch(venv_bin: Path, config: Path, head: TestHost, nodes: int, log: Path,
           timeout_s: float = 600) -> dict[str, float]:
    """ray up, then wait until the head reports `nodes` alive; the seconds of both."""
    started = time.perf_counter()
    up_s = ray_cli(venv_bin, config, "up", log, timeout_s)
    deadline = started + timeout_s
    while (count := alive_nodes(head)) < nodes:
        if time.perf_counter() > deadline:
            raise LauncherError(f"{count}/{nodes} Ray nodes alive after {timeout_s:g} s; see {log}")
        time.sleep(READY_POLL_S)
    return {"ray_up_s": up_s, "ready_s": time.perf_counter() - started}


RAY_FILES = "/tmp/ray /root/ray_bootstrap_key.pem /root/ray_bootstrap_config.yaml /root/ray_results"
# Ray's processes in a host: every one has "ray" in its command line (the venv's ray package);
# not this scan's own shell and its forks ("sh -c", whose text names Ray's files).
RAY_PROCESSES = "ps -eo pid=,args= | awk '$2 != \"sh\" && tolower($0) ~ /[r]ay/'"


def leftovers(testbed: Testbed, hosts: list[TestHost]) -> dict[str, list[str]]:
    """Ray's processes and files still on each host (seen inside the host)."""
    found: dict[str, list[str]] = {}
    for host in hosts:
        scan = testbed.exec(host, ["sh", "-c", f"{RAY_PROCESSES}; ls -d {RAY_FILES} 2>/dev/null; true"]
                            ).stdout.splitlines()
        if scan:
            found[host.name] = [line.strip()[:120] for line in scan]
    return found


def clear(testbed: Testbed, hosts: list[TestHost]) -> None:
    """What `ray down` left, removed by hand (its processes by pid, its files), so the next
    run starts from clean hosts."""
    for host in hosts:
        testbed.exec(host, ["sh", "-c", f"for p in $({RAY_PROCESSES} | awk '{{print $1}}'); do kill -9 $p; done; "
                            f"rm -rf {RAY_FILES}; true"], check=False)
