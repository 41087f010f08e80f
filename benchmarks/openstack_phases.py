"""Where the time of an OpenStack cluster's create goes, read from what each party recorded:
the cluster's own events (the service manager), Heat's resource events, podman (each server
container's start) and the servers themselves (cloud-init's log, the user_data's files).

Every clock is this machine's (the servers are containers on its kernel), so times from the
four sources can be subtracted. Heat's event times have whole seconds only: a phase bounded by a
Heat event is ±1 s; the others are to the millisecond."""

from __future__ import annotations

import datetime as dt
import json
import re
import statistics
import subprocess
from typing import Any

STACK_LABEL = "disco.cloud.stack"      # the box's label on every server container (box_containers.py)
ADDRESS_LABEL = "disco.cloud.address"  # = the server's first address
BOOT_DIR = "/var/lib/disco-boot"       # the user_data's working directory (user_data.py)
# cloud-init.log: "2026-12-05 22:01:02,345 - util.py[DEBUG]: Cloud-init v. 22.4.2 running 'init-local' at …"
STAGE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*Cloud-init v\. \S+ running '([^']+)'")
BOOTED = re.compile(r"(\d+) node\(s\) booted and installed \(cloud-init\) in ([\d.]+) s")
COMPLETE = re.compile(r"stack \S+ (\w+) \(([\d.]+) s after the ready signals")

# (key, label): the phases as the report shows them, in order.
PHASES = [
    ("heat_addresses", "1 Heat stack: POST -> every server has an address"),
    ("container_boot", "2 container boot: server CREATE_IN_PROGRESS -> container started"),
    ("cloud_init", "3 cloud-init: container started -> bootstrap script starts"),
    ("bootstrap", "4 bootstrap: script start -> its booted signal sent"),
    ("signal_to_heat", "4b booted signal sent -> Heat's booted CREATE_COMPLETE"),
    ("booted_seen", "4c last signal sent -> provider's 'booted' event"),
    ("frameworks", "5 frameworks: 'booted' event -> frameworks ready"),
    ("ready_to_complete", "6 ready signals -> stack CREATE_COMPLETE"),
    ("frameworks_to_ready", "6b frameworks ready -> cluster ready (signals over SSH + 6)"),
]


def when(text: str) -> float:
    """An ISO time (Heat's have no zone: UTC) as seconds since the epoch."""
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def podman_json(*args: str) -> Any:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    return json.loads(done.stdout or "[]")


def servers_seen(stack_id: str) -> list[dict[str, Any]]:
    """Each server container of the stack: its id, address, start time, and what the server
    itself recorded (cloud-init's stage starts; the bootstrap's start and end from the files the
    user_data writes just before and just after it)."""
    found = []
    for container in podman_json("ps", "-a", "--format", "json", "--filter", f"label={STACK_LABEL}={stack_id}"):
        inspected = podman_json("inspect", container["Id"])[0]
        inside = subprocess.run(
            ["podman", "exec", container["Id"], "sh", "-c",
             f"cd {BOOT_DIR} && stat -c '%n %.9Y' bootstrap.sh signal.json; grep \"running '\" /var/log/cloud-init.log"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL).stdout
        files = dict(line.split() for line in inside.splitlines() if re.match(r"^\S+ [\d.]+$", line))
        stages = {m.group(2): when(m.group(1).replace(",", ".")) for m in map(STAGE.match, inside.splitlines()) if m}
        found.append({"container": container["Id"][:12], "name": container["Names"][0],
                      "address": container["Labels"].get(ADDRESS_LABEL, ""),
                      "started": _podman_time(inspected["State"]["StartedAt"]),
                      "bootstrap_start": float(files["bootstrap.sh"]) if "bootstrap.sh" in files else None,
                      "bootstrap_end": float(files["signal.json"]) if "signal.json" in files else None,
                      "cloud_init_stages": stages})
    return found


def _podman_time(text: str) -> float:
    """podman's "2026-12-05 22:01:02.123456789 +0000 UTC" (or RFC 3339) as epoch seconds."""
    text = text.strip()
    m = re.match(r"^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(\.\d+)?\s*([+-]\d\d:?\d\d|Z)?", text)
    if not m:
        raise ValueError(f"podman time {text!r}")
    zone = (m.group(4) or "+00:00").replace("Z", "+00:00")
    if len(zone) == 5:
        zone = zone[:3] + ":" + zone[3:]
    fraction = (m.group(3) or ".0")[:7]
    return dt.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{fraction}{zone}").timestamp()


def _stack_of(event: dict[str, Any]) -> str:
    """The id of the (nested) stack an event belongs to, from its `stack` link."""
    for link in event.get("links", []):
        if link.get("rel") == "stack":
            return str(link["href"]).rstrip("/").rsplit("/", 1)[-1]
    return ""


def heat_servers(heat_events: list[dict[str, Any]], resources: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """server id -> {"in_progress": its CREATE_IN_PROGRESS, "complete": its CREATE_COMPLETE,
    "booted": its node's booted wait condition's CREATE_COMPLETE}, from Heat's events."""
    out: dict[str, dict[str, float]] = {}
    for resource in resources:
        if resource.get("resource_type") != "OS::Nova::Server":
            continue
        stack, logical = _stack_of(resource), resource["logical_resource_id"]
        wait = "master_booted" if logical == "master" else "booted"
        times: dict[str, float] = {}
        for event in heat_events:
            if _stack_of(event) != stack:
                continue
            status, name = event.get("resource_status"), event.get("logical_resource_id")
            if name == logical and status == "CREATE_IN_PROGRESS":
                times.setdefault("in_progress", when(event["event_time"]))
            elif name == logical and status == "CREATE_COMPLETE":
                times["complete"] = when(event["event_time"])
            elif name == wait and status == "CREATE_COMPLETE":
                times["booted"] = when(event["event_time"])
        out[str(resource.get("physical_resource_id"))] = times
    return out


def phases(wall0: float, events: list[dict[str, Any]], heat_events: list[dict[str, Any]],
           resources: list[dict[str, Any]], servers: list[dict[str, Any]]) -> dict[str, Any]:
    """The phases of one create, in seconds; `wall0`: the epoch time just before the POST."""
    heat = heat_servers(heat_events, resources)
    nodes = []
    for server in servers:
        times = next((t for sid, t in heat.items() if sid[:12] and server["name"].endswith(sid[:12])), {})
        node = {"name": server["name"], "address": server["address"], **{k: times.get(k) for k in ("in_progress", "complete", "booted")},
                "started": server["started"], "bootstrap_start": server["bootstrap_start"],
                "bootstrap_end": server["bootstrap_end"], "stages": server["cloud_init_stages"]}
        nodes.append(node)
    cluster = _cluster_marks(events)
    spans = {
        "container_boot": [n["started"] - n["in_progress"] for n in nodes if n["in_progress"]],
        "cloud_init": [n["bootstrap_start"] - n["started"] for n in nodes if n["bootstrap_start"]],
        "bootstrap": [n["bootstrap_end"] - n["bootstrap_start"] for n in nodes if n["bootstrap_end"] and n["bootstrap_start"]],
        "signal_to_heat": [n["booted"] - n["bootstrap_end"] for n in nodes if n["booted"] and n["bootstrap_end"]],
    }
    # cloud-init's stages, per node: from the container's start to each stage's start.
    stage_spans: dict[str, list[float]] = {}
    for node in nodes:
        for stage, at in node["stages"].items():
            stage_spans.setdefault(stage, []).append(at - node["started"])
    last_end = max((n["bootstrap_end"] for n in nodes if n["bootstrap_end"]), default=None)
    out: dict[str, Any] = {
        "heat_addresses": _rel(cluster.get("addresses"), wall0),
        "container_boot": _spread(spans["container_boot"]),
        "cloud_init": _spread(spans["cloud_init"]),
        "bootstrap": _spread(spans["bootstrap"]),
        "signal_to_heat": _spread(spans["signal_to_heat"]),
        "booted_seen": _diff(cluster.get("booted"), last_end),
        "frameworks": _diff(cluster.get("frameworks"), cluster.get("booted")),
        "ready_to_complete": cluster.get("complete_s"),
        "frameworks_to_ready": _diff(cluster.get("ready"), cluster.get("frameworks")),
        "cloud_init_stage_starts": {k: _spread(v) for k, v in stage_spans.items()},
        "provider_booted_s": cluster.get("booted_s"),
        # The critical path: when the last node (or the cluster) reached each point, from the POST.
        "milestones": {
            "stack_create_in_progress": _rel(_stack_started(heat_events), wall0),
            "addresses": _rel(cluster.get("addresses"), wall0),
            "last_server_in_progress": _rel(max((n["in_progress"] for n in nodes if n["in_progress"]), default=None), wall0),
            "last_container_started": _rel(max((n["started"] for n in nodes), default=None), wall0),
            "last_bootstrap_start": _rel(max((n["bootstrap_start"] for n in nodes if n["bootstrap_start"]), default=None), wall0),
            "last_bootstrap_end": _rel(last_end, wall0),
            "last_heat_booted": _rel(max((n["booted"] for n in nodes if n["booted"]), default=None), wall0),
            "booted_event": _rel(cluster.get("booted"), wall0),
            "frameworks_ready": _rel(cluster.get("frameworks"), wall0),
            "stack_complete_event": _rel(cluster.get("complete"), wall0),
            "ready": _rel(cluster.get("ready"), wall0),
        },
        "nodes": [{**n, **{k: _rel(n[k], wall0) for k in ("in_progress", "complete", "booted", "started",
                                                          "bootstrap_start", "bootstrap_end")},
                   "stages": {k: _rel(v, wall0) for k, v in n["stages"].items()}} for n in nodes],
    }
    return out


def _cluster_marks(events: list[dict[str, Any]]) -> dict[str, Any]:
    """From the cluster's events: when the provider had every address (its provisioning event
    naming them, sent once create_nodes returns), when it saw all nodes booted, when the last
    framework was ready, when the stack completed, and `ready`."""
    marks: dict[str, Any] = {}
    for event in events:
        at, step, message = when(event["at"]), event["step"], event["message"]
        if step == "provisioning" and "master=" in message:
            marks["addresses"] = at
        elif m := BOOTED.search(message):
            marks["booted"], marks["booted_s"] = at, float(m.group(2))
        elif m := COMPLETE.search(message):
            marks["complete"], marks["complete_s"] = at, float(m.group(2))
        elif step == "ready" and "complete" in marks:
            marks["ready"] = at
        elif "booted" in marks and "complete" not in marks and step not in ("install", "installing", "ready"):
            marks["frameworks"] = at  # a framework's own step (spark: …): the last one before the ready signals
    return marks


def _stack_started(heat_events: list[dict[str, Any]]) -> float | None:
    """The top stack's CREATE_IN_PROGRESS: Heat has the create request."""
    for event in heat_events:
        if event.get("resource_status") == "CREATE_IN_PROGRESS" and str(event.get("logical_resource_id", "")).startswith("disco-"):
            return when(event["event_time"])
    return None


def _rel(at: float | None, wall0: float) -> float | None:
    return None if at is None else round(at - wall0, 3)


def _diff(end: float | None, start: float | None) -> float | None:
    return None if end is None or start is None else round(end - start, 3)


def _spread(values: list[float]) -> dict[str, float] | None:
    """Over the nodes: median and max (the critical path is the slowest node)."""
    if not values:
        return None
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3), "min": round(min(values), 3)}
