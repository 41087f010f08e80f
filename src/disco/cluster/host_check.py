"""Checking a pool host over SSH: its host key, the key we log in with, and what the node
bootstrap will need there (root or password-less sudo, python3, apt, disk under the prefix).

A check fails (the host becomes `unreachable`) when the host cannot be used: no connection,
a refused key, a host key other than the recorded one (never accepted silently), or no way to
become root. Lesser findings are listed as problems of a host that passed.
"""

from __future__ import annotations

import asyncio
import shlex
from typing import Any

from disco.cluster.hosts import IN_USE, HostPool
from disco.cluster.models import Host
from disco.providers.ssh import clean_host
from disco.providers.ssh_transport import SSHError, connect, fetch_host_key

PROBE_TIMEOUT_S = 60.0
LOW_DISK_MB = 2048
# One shell conversation; `key=value` lines. The prefix may not exist yet: df looks at its
# nearest existing parent.
PROBE_SCRIPT = """\
p={prefix}
while [ ! -d "$p" ]; do p=$(dirname "$p"); done
echo "os=$( (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") || uname -s)"
echo "arch=$(uname -m)"
echo "python3=$(python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)"
echo "uid=$(id -u)"
if sudo -n true 2>/dev/null; then echo sudo=yes; else echo sudo=no; fi
if command -v apt-get >/dev/null 2>&1; then echo apt=yes; else echo apt=no; fi
echo "disk_path=$p"
echo "disk_free_kb=$(df -Pk "$p" 2>/dev/null | awk 'NR==2 {{print $4}}')"
echo "mem_kb=$(awk '/^MemTotal:/ {{print $2}}' /proc/meminfo 2>/dev/null)"
echo "mem_max=$(cat /sys/fs/cgroup/memory.max 2>/dev/null)"
echo "cpus=$(nproc 2>/dev/null)"
"""


async def check_host(pool: HostPool, host_id: int) -> tuple[Host, bool]:
    """Check a host and record the outcome; the host as it is now, and whether its host key
    was recorded by this check (trust on first use)."""
    row = pool.get(host_id)
    first_use = False
    try:
        presented = await fetch_host_key(row.name, row.address, row.port, like=row.host_key)
        if not row.host_key:
            pool.record_host_key(row.id, presented, "first_use")
            row = pool.get(host_id)
            first_use = row.host_key == presented
        if presented != row.host_key:
            raise SSHError(f"{row.name}: host key changed: expected {row.host_key}, got {presented} "
                           "(a different or reinstalled machine, or someone in between); if the change is "
                           "expected, remove the host and add it again with its new key")
        facts = await _probe(pool, row)
    except SSHError as exc:
        return pool.record_check(host_id, False, str(exc), {"facts": {}, "problems": [str(exc)]}), first_use
    problems = _problems(row, facts)
    blocking = [p for p in problems if p.startswith("cannot become root")]
    error = f"{row.name}: {blocking[0]}" if blocking else ""
    cleaned: list[str] = []
    if not blocking and row.state != IN_USE:
        # A host no cluster holds must hold nothing of one (e.g. quarantined when a delete
        # could not reach it) before it is free again.
        try:
            cleaned = await clean_host(pool.spec(row))
        except SSHError as exc:
            return pool.record_check(host_id, False, str(exc), {"facts": facts, "problems": [str(exc)]}), first_use
    return pool.record_check(host_id, not blocking, error,
                             {"facts": facts, "problems": problems, "cleaned": cleaned}), first_use


async def _probe(pool: HostPool, row: Host) -> dict[str, Any]:
    spec = pool.spec(row)
    connection = await connect(spec)
    try:
        done = await asyncio.wait_for(
            connection.run("sh -s", input=PROBE_SCRIPT.format(prefix=shlex.quote(row.prefix)), check=False),
            PROBE_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise SSHError(f"{row.name}: the check's commands did not finish within {PROBE_TIMEOUT_S:g} s") from None
    finally:
        connection.close()
    values = dict(line.split("=", 1) for line in str(done.stdout or "").splitlines() if "=" in line)
    free_kb = values.get("disk_free_kb", "")
    return {
        "os": values.get("os", ""), "arch": values.get("arch", ""),
        "python3": values.get("python3") or None,
        "root": values.get("uid") == "0", "sudo": values.get("sudo") == "yes", "apt": values.get("apt") == "yes",
        "disk_path": values.get("disk_path", ""),
        "disk_free_mb": int(free_kb) // 1024 if free_kb.isdigit() else None,
        # The host's size as the node's own `facts` will report it (MemTotal, lowered to a
        # cgroup's limit; the CPUs it may use): what a plan sizes derived settings from.
        "memory_bytes": _memory_bytes(values.get("mem_kb", ""), values.get("mem_max", "")),
        "cpus": int(values["cpus"]) if values.get("cpus", "").isdigit() else None,
    }


def _memory_bytes(mem_kb: str, cgroup_max: str) -> int | None:
    sizes = [int(mem_kb) * 1024] if mem_kb.isdigit() else []
    sizes += [int(cgroup_max)] if cgroup_max.isdigit() else []
    return min(sizes) if sizes else None


def _problems(row: Host, facts: dict[str, Any]) -> list[str]:
    problems = []
    if not facts["root"] and not facts["sudo"]:
        problems.append(f"cannot become root: {row.user} is not root and has no password-less sudo "
                        f"(`sudo -n true` failed); DISCO installs packages and makes users there as root")
    if not facts["python3"]:
        problems.append("no python3: the bootstrap will install it with apt-get, so the host needs a package "
                        "mirror it can reach")
    if not facts["apt"]:
        problems.append("no apt-get: the bootstrap installs OS packages with apt (Debian or Ubuntu hosts)")
    if facts["disk_free_mb"] is not None and facts["disk_free_mb"] < LOW_DISK_MB:
        problems.append(f"only {facts['disk_free_mb']} MB free under {facts['disk_path']}; frameworks need a few GB")
    return problems
