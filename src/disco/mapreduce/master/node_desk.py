"""The master's side of the master <-> node protocol (see the package docstring): what each
`/disco/node/*` request does to the master's state."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from disco.mapreduce.master.data import output_from_json
from disco.mapreduce.master.errors import RequestError
from disco.mapreduce.master.master import Master
from disco.mapreduce.master.nodes import NodeState
from disco.mapreduce.master.tasks import TaskState

log = logging.getLogger(__name__)


def register(m: Master, body: dict[str, Any]) -> dict[str, Any]:
    host = body.get("host")
    if not isinstance(host, str) or not host or "/" in host:
        raise RequestError("register needs a host name")
    try:
        slots = max(0, int(body.get("slots", 1)))
        port = int(body.get("port", m.config.port))
        put_port = int(body.get("put_port") or 0)
    except (TypeError, ValueError):
        raise RequestError("slots and ports must be integers") from None
    old = m.registry.nodes.get(host)
    if old is not None and old.connected:
        m.node_lost(old, f"node {host} registered again; its old tasks are lost")
    node = m.registry.register(host, slots, port, m.table_slots.get(host))
    node.put_port = put_port
    log.info("node %s registered with %d slots", host, node.slots)
    m.scheduler.kick()
    return {"session": node.session, "poll_hold": m.config.poll_hold,
            "node_timeout": m.config.node_timeout, "master": m.config.url,
            "purged": list(m.purged)}


def _session(m: Master, body: dict[str, Any]) -> NodeState:
    node = m.registry.session(str(body.get("host")), str(body.get("session")))
    if node is None:
        raise RequestError("unknown or expired node session; register again", 410)
    node.last_seen = time.monotonic()
    return node


async def poll(m: Master, body: dict[str, Any]) -> dict[str, Any]:
    node = _session(m, body)
    seq = int(body.get("seq", 0))
    node.poll_seq = seq
    node.diskfree = int(body.get("diskfree", node.diskfree) or 0)
    node.diskused = int(body.get("diskused", node.diskused) or 0)
    _reconcile(m, node, seq, body.get("running", []))
    if not m.stopping.is_set():
        await node.wait_for_orders(m.config.poll_hold)
    if m.registry.session(node.host, node.session) is None:
        raise RequestError("node session ended", 410)
    return node.take_orders(seq)


def _reconcile(m: Master, node: NodeState, seq: int, running: list[Any]) -> None:
    """Tasks handed out in an earlier poll that the node does not know: their assignment
    was lost on the way (or the node lost them); run them again."""
    try:
        held = {(str(j), int(t), int(a)) for j, t, a in running}
    except (TypeError, ValueError):
        raise RequestError("poll 'running' is a list of [job, taskid, attempt]") from None
    for key, task in list(node.running.items()):
        sent = node.delivered.get(key)
        if sent is None or sent >= seq:
            continue
        if (task.job, task.taskid, task.attempt) not in held:
            m.fail_running(task, node, "error", f"node {node.host} lost the task's assignment")


async def results(m: Master, body: dict[str, Any]) -> None:
    """Several task ends at once, after the events that precede them; answered once the
    journal holds them (one fsync shared by every request waiting at the time)."""
    node = _session(m, body)
    reports = body.get("results", [])
    events = body.get("events", [])
    if not isinstance(reports, list) or not isinstance(events, list):
        raise RequestError("results and events must be lists")
    _events(m, node, events)
    for report in reports:
        if isinstance(report, dict):
            _result(m, node, report)
    if m.durability.pending:
        await m.sync()


def _result(m: Master, node: NodeState, body: dict[str, Any]) -> None:
    job = m.jobs.get(str(body.get("job")))
    if job is None or not job.active:
        return
    task = job.tasks.get(int(body.get("taskid", -1)))
    if (task is None or task.state is not TaskState.RUNNING or task.host != node.host
            or task.attempt != int(body.get("attempt", -1))):
        return  # an answer for an attempt that no longer counts
    status = body.get("status")
    message = str(body.get("message", ""))
    if status == "done":
        try:
            outputs = [output_from_json(o) for o in body.get("outputs", [])]
        except (ValueError, TypeError, KeyError) as exc:
            m.fail_running(task, node, "error", f"node sent malformed outputs: {exc}")
            return
        m.release(task)
        node.job_ok += 1
        seconds = body.get("seconds")
        job.task_done(task, node.host, outputs,
                      float(seconds) if isinstance(seconds, (int, float)) else None)
    elif status == "fatal":
        node.error += 1
        m.fail_running(task, node, "fatal", message)
    elif status == "input_error":
        node.data_error += 1
        failed = body.get("failed_inputs") or []
        m.fail_running(task, node, "input_error", message, failed)
    else:
        node.error += 1
        m.fail_running(task, node, "error", message or f"task ended with {status!r}")


def events(m: Master, body: dict[str, Any]) -> None:
    _events(m, _session(m, body), body.get("events", []))


def _events(m: Master, node: NodeState, entries: list[Any]) -> None:
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 2:
            continue
        job = m.jobs.get(str(entry[0]))
        if job is not None and job.active:
            job.event(str(entry[1]), node.host)


async def inputs(m: Master, body: dict[str, Any]) -> dict[str, Any]:
    """More inputs for a running task of a concurrent stage: answer once there are inputs
    beyond the `known` first ones, or the list is complete, or after input_hold."""
    node = _session(m, body)
    job = m.jobs.get(str(body.get("job")))
    task = job.tasks.get(int(body.get("taskid", -1))) if job is not None and job.active else None
    if (job is None or task is None or task.state is not TaskState.RUNNING
            or task.host != node.host or task.attempt != int(body.get("attempt", -1))):
        return {"status": "gone", "inputs": []}
    known = int(body.get("known", 0))
    if not task.inputs_done and len(task.inputs) <= known and not m.stopping.is_set():
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task.input_watchers.append(fut)
        try:
            await asyncio.wait_for(fut, m.config.input_hold)
        except TimeoutError:
            pass
        if not job.active or task.state is not TaskState.RUNNING:
            return {"status": "gone", "inputs": []}
    done, inputs = job.inputs_for(task, known)
    return {"status": "done" if done else "more", "inputs": inputs}


def jobpack(m: Master, name: str) -> Path:
    job = m.jobs.get(name)
    if job is None or not job.pack_path.exists():
        raise RequestError(f"unknown job {name!r}", 404)
    return job.pack_path
