"""The client's loop: one thread talks to the server (ask for work by seconds × free slots,
heartbeat running instances, report finished ones in batches, with the next ask when there is
one), one thread per slot runs units.
Every request that fails (no connection, 5xx, 429) backs off with full jitter and honours
Retry-After; results wait in memory and are sent again (the server answers a resent report
`duplicate`, so resending is always safe)."""

from __future__ import annotations

import base64
import collections
import hashlib
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

from disco.taskfarm.client import identity
from disco.taskfarm.client.backoff import Backoff, retry_after
from disco.taskfarm.client.slots import Job, Outcome, Slot, Stopped
from disco.taskfarm.client.stats import SlotMeter

MAX_BATCH = 1000
INLINE_OUTPUT_BYTES = 1_000_000  # the server takes about 1 MiB inline (base64); more is uploaded


_say_lock = threading.Lock()


def _say(line: str) -> None:
    with _say_lock:  # slot threads finish at once: one line each, never interleaved
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Unavailable(Exception):
    """The server did not answer usefully: back off."""

    def __init__(self, message: str, retry: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry


class Refused(Exception):
    """A 4xx other than 429: retrying the same request will not help."""


@dataclass
class Options:
    server: str
    slots: list[Slot]
    state_dir: Path
    key: str = ""
    name: str = "volunteer"
    seconds_per_slot: float = 10.0
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    heartbeat_s: float | None = None  # default: a third of the shortest lease running
    stats_s: float = 10.0  # idle or not, a heartbeat (with the slots' CPU and memory) at least this often
    unit_timeout: float = 3600.0
    max_units: int = 0  # stop after this many (tests); 0: run until stopped
    say: Callable[[str], None] = field(default=lambda line: _say(line))


@dataclass
class Running:
    """A leased instance: waiting for a slot (`slot` None) or running in one."""

    lease: dict[str, Any]
    job: Job
    expires: float
    slot: Slot | None = None


class Agent:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.http = httpx.Client(base_url=opts.server.rstrip("/") + "/api/v1/farm", timeout=30, trust_env=False)
        self.backoff = Backoff(opts.backoff_base, opts.backoff_cap)
        self.code_dir = opts.state_dir / "code"
        self.free: queue.SimpleQueue[Slot] = queue.SimpleQueue()
        for slot in opts.slots:
            self.free.put(slot)
        self.running: dict[int, Running] = {}
        self.pending: collections.deque[int] = collections.deque()  # leased, waiting for a slot
        self.done: list[dict[str, Any]] = []  # results not yet acknowledged by the server
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.next_work = 0.0
        self.next_heartbeat = 0.0
        self.counts = {"ok": 0, "failed": 0, "reported": 0, "stopped": 0}
        self.meter = SlotMeter()
        self.send_stats = True  # off if the server is older and refuses them
        self.combined = True  # results carried by POST /work; off if the server is older and refuses them
        self.started = time.monotonic()

    # -- requests ----------------------------------------------------------------------------------

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            answer = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from None
        if answer.status_code == 429 or answer.status_code >= 500:
            raise Unavailable(f"HTTP {answer.status_code}", retry_after(answer.headers.get("Retry-After")))
        if answer.status_code >= 400:
            raise Refused(f"HTTP {answer.status_code}: {answer.text[:500]}")
        return answer

    def enroll(self) -> None:
        state = identity.load(self.opts.state_dir, self.opts.server)
        if state is None:
            if not self.opts.key:
                raise Refused("not enrolled yet and no enrollment key (--key-file, or DISCO_FARM_KEY)")
            while True:
                try:
                    answer = self.call("POST", "/clients", headers={"X-Farm-Key": self.opts.key},
                                       json=identity.enrollment(self.opts.name, len(self.opts.slots)))
                    break
                except Unavailable as exc:
                    self._wait_out(exc)
            state = {"server": self.opts.server, **answer.json()}
            identity.save(self.opts.state_dir, state)
            self.opts.say(f"enrolled as client {state['client_id']}")
        self.client_id = state["client_id"]
        self.http.headers["Authorization"] = f"Bearer {state['client_token']}"

    def _wait_out(self, exc: Unavailable) -> None:
        wait = self.backoff.failed(exc.retry)
        self.opts.say(f"server unavailable ({exc}); retrying in {wait:.1f} s")
        self.stopping.wait(wait)
        if self.stopping.is_set():
            raise KeyboardInterrupt

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> int:
        self.enroll()
        self.code_dir.mkdir(parents=True, exist_ok=True)
        while not self.stopping.is_set():
            if self.opts.max_units and self.counts["reported"] >= self.opts.max_units and not self.running:
                break
            self._dispatch()
            if self.backoff.ready():
                try:
                    self._step()
                    self.backoff.succeeded()
                except Unavailable as exc:
                    wait = self.backoff.failed(exc.retry)
                    self.opts.say(f"server unavailable ({exc}); retrying in {wait:.1f} s")
            self.wake.wait(min(0.5, max(0.02, self.backoff.remaining() or 0.5)))
            self.wake.clear()
        self.shutdown()
        return 0

    def _step(self) -> None:
        self._heartbeat()
        free = self.free.qsize() - len(self.pending)
        if free > 0 and time.monotonic() >= self.next_work and not self.stopping.is_set():
            self._ask(free)  # finished results go with it
        else:
            self._report()

    def _ask(self, free: int) -> None:
        """Ask for seconds × free slots of work, carrying the results ready (BOINC's scheduler
        RPC: one request, one transaction on the server, where two would do)."""
        ask: dict[str, Any] = {"seconds": self.opts.seconds_per_slot * free, "slots": free}
        batch = self._ready() if self.combined else []
        if not self.combined:
            self._report()
        try:
            answer = self.call("POST", "/work", json={**ask, "results": batch} if batch else ask)
        except Refused as exc:
            if not batch or not str(exc).startswith("HTTP 422"):
                raise
            self.combined = False  # a server from before results in /work: report, then ask
            self._report()
            answer = self.call("POST", "/work", json=ask)
        body = answer.json()
        if batch:
            self._acknowledged(batch, body.get("results") or [])
        if not body["leases"]:
            self.next_work = time.monotonic() + float(body.get("retry_after_s") or 1.0)
            return
        for lease in body["leases"]:
            self._start(lease)

    def _start(self, lease: dict[str, Any]) -> None:
        try:
            job = self._job(lease)
        except Unavailable:
            raise
        except Exception as exc:  # a bad input or code: this unit fails, the client goes on
            self._finish(lease, Outcome(False, error=f"{type(exc).__name__}: {exc}"))
            return
        with self.lock:
            self.running[lease["instance_id"]] = Running(lease, job, lease["lease_expires"])
            self.pending.append(lease["instance_id"])
        # An idle client's next heartbeat may be stats_s away: a short lease needs one sooner.
        self.next_heartbeat = min(self.next_heartbeat, time.monotonic() + self._heartbeat_every())
        self._dispatch()

    def _dispatch(self) -> None:
        """Leased instances into free slots (the server may lease more units than slots: they queue)."""
        while self.pending and not self.free.empty() and not self.stopping.is_set():
            with self.lock:
                run = self.running.get(self.pending.popleft())
                if run is None:  # gone while it waited
                    continue
                run.slot = self.free.get()
            threading.Thread(target=self._work, args=(run.lease, run.slot, run.job), daemon=True).start()

    def _job(self, lease: dict[str, Any]) -> Job:
        spec = lease["input"]
        data = base64.b64decode(spec["inline"]) if spec.get("inline") is not None else self._fetch(spec["url"])
        if hashlib.sha256(data).hexdigest() != spec["sha256"]:
            raise ValueError("the unit's input does not match its SHA-256")
        code = lease["code"]
        if code["kind"] == "container":
            return Job("container", data, image=code["image"], command=tuple(code["command"]))
        path = self.code_dir / f"{code['sha256']}.pkl"
        if not path.exists():  # fetched once per project code, checked, kept by its hash
            pickled = self._fetch(code["url"])
            if hashlib.sha256(pickled).hexdigest() != code["sha256"]:
                raise ValueError("the project's code does not match its SHA-256")
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(pickled)
            tmp.replace(path)
        return Job("python", data, code_path=path, sha256=code["sha256"])

    def _fetch(self, url: str) -> bytes:
        return self.call("GET", url).content

    def _work(self, lease: dict[str, Any], slot: Slot, job: Job) -> None:
        try:
            outcome = slot.run(job, self.opts.unit_timeout)
        except Stopped:
            outcome = None
        except Exception as exc:  # the slot itself broke: report it, keep the client alive
            outcome = Outcome(False, error=f"slot: {type(exc).__name__}: {exc}")
        with self.lock:
            self.running.pop(lease["instance_id"], None)
            if not self.running:  # idle now: say so soon (the owner's dashboard shows the slots)
                self.next_heartbeat = min(self.next_heartbeat, time.monotonic() + 0.5)
        self.free.put(slot)
        if outcome is None:
            self.counts["stopped"] += 1
            self.opts.say(f"unit {lease['unit_id']} (instance {lease['instance_id']}) stopped")
        else:
            self._finish(lease, outcome)
        self.wake.set()

    def _finish(self, lease: dict[str, Any], outcome: Outcome) -> None:
        item: dict[str, Any] = {"instance_id": lease["instance_id"], "attempt": lease["attempt"],
                                "cpu_s": round(outcome.cpu_s, 4)}
        if outcome.ok and len(outcome.output) > INLINE_OUTPUT_BYTES:  # uploaded before its report
            item |= {"status": "ok", "output_sha256": hashlib.sha256(outcome.output).hexdigest(),
                     "_upload": outcome.output}
            self.counts["ok"] += 1
            self.opts.say(f"unit {lease['unit_id']} done: {len(outcome.output)} bytes in {outcome.cpu_s:.2f} s")
        elif outcome.ok:
            item |= {"status": "ok", "output": base64.b64encode(outcome.output).decode()}
            self.counts["ok"] += 1
            self.opts.say(f"unit {lease['unit_id']} done: {len(outcome.output)} bytes in {outcome.cpu_s:.2f} s")
        else:
            item |= {"status": "error", "error": outcome.error[:10000]}
            self.counts["failed"] += 1
            self.opts.say(f"unit {lease['unit_id']} failed: {outcome.error[:200]}")
        with self.lock:
            self.done.append(item)

    def _ready(self) -> list[dict[str, Any]]:
        """The results to send (up to MAX_BATCH), large outputs uploaded first."""
        with self.lock:
            batch = self.done[:MAX_BATCH]
        for item in batch:
            if "_upload" in item:  # PUT again after a failure is harmless: same bytes, same hash
                try:
                    self.call("PUT", f"/instances/{item['instance_id']}/output", content=item["_upload"],
                              headers={"X-Output-SHA256": item["output_sha256"]})
                except Refused as exc:  # e.g. over the project's max_output_bytes: the unit failed
                    item.pop("output_sha256")
                    item |= {"status": "error", "error": f"output upload refused: {exc}"[:10000]}
                del item["_upload"]
        return batch

    def _report(self) -> None:
        batch = self._ready()
        if batch:
            answer = self.call("POST", "/results", json={"results": batch})
            self._acknowledged(batch, answer.json()["results"])

    def _acknowledged(self, batch: list[dict[str, Any]], answers: list[dict[str, Any]]) -> None:
        with self.lock:
            del self.done[:len(batch)]  # acknowledged: whatever each answer says, sending again changes nothing
        self.counts["reported"] += len(batch)
        for item in answers:
            if item["status"] == "refused":
                self.opts.say(f"instance {item['instance_id']} refused: {item.get('reason', '')}")

    def _heartbeat_every(self) -> float:
        if self.opts.heartbeat_s:
            return self.opts.heartbeat_s
        with self.lock:
            spans = [r.expires - time.time() for r in self.running.values()]
        return max(0.2, min(min(spans, default=self.opts.stats_s) / 3, self.opts.stats_s))

    def _slot_stats(self) -> list[dict[str, Any]]:
        with self.lock:
            held = {id(r.slot): iid for iid, r in self.running.items() if r.slot is not None}
        return [self.meter.measure(i, slot, held.get(id(slot))) for i, slot in enumerate(self.opts.slots)]

    def _heartbeat(self) -> None:
        if time.monotonic() < self.next_heartbeat:
            return
        with self.lock:
            ids = list(self.running)
        body: dict[str, Any] = {"instances": ids}
        if self.send_stats:
            body["slots"] = self._slot_stats()
        try:
            answer = self.call("POST", "/heartbeat", json=body)
        except Refused as exc:
            if "slots" not in body or not str(exc).startswith("HTTP 422"):
                raise
            self.send_stats = False  # a server from before slot stats: heartbeats without them
            del body["slots"]
            answer = self.call("POST", "/heartbeat", json=body)
        for entry in answer.json()["instances"]:
            with self.lock:
                run = self.running.get(entry["instance_id"])
                if run is not None and not entry["gone"] and entry["lease_expires"]:
                    run.expires = entry["lease_expires"]
            if run is not None and entry["gone"]:  # reissued, done elsewhere, or cancelled: stop it
                if run.slot is not None:
                    run.slot.stop()
                else:
                    with self.lock:
                        self.running.pop(entry["instance_id"], None)
                    self.counts["stopped"] += 1
        self.next_heartbeat = time.monotonic() + self._heartbeat_every()

    # -- the end -----------------------------------------------------------------------------------

    def stop(self, *_: Any) -> None:
        self.stopping.set()
        self.wake.set()

    def shutdown(self) -> None:
        """Stop the slots, then report what is done (one try each: the server may be gone)."""
        with self.lock:
            runs = list(self.running.values())
        for run in runs:
            if run.slot is not None:
                run.slot.stop()
        for slot in self.opts.slots:
            slot.kill()
        try:
            self._report()
        except (Unavailable, Refused) as exc:
            self.opts.say(f"could not report {len(self.done)} results on the way out: {exc}")
        self.http.close()

    def summary(self) -> str:
        took = time.monotonic() - self.started
        c = self.counts
        return (f"summary: {c['ok']} units done, {c['failed']} failed, {c['stopped']} stopped, "
                f"{c['reported']} reported, {len(self.done)} unreported, in {took:.1f} s "
                f"({c['ok'] / took if took else 0:.1f} units/s)")


def install_signals(agent: Agent) -> dict[int, Any]:
    """SIGTERM and SIGINT stop the agent; the handlers they had, to put back."""
    return {signum: signal.signal(signum, agent.stop) for signum in (signal.SIGTERM, signal.SIGINT)}


def main(opts: Options) -> int:
    agent = Agent(opts)
    previous = install_signals(agent)
    try:
        code = agent.run()
    except KeyboardInterrupt:
        agent.shutdown()
        code = 0
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        agent.shutdown()
        code = 2
    finally:
        # Run in-process (a test, or a program embedding the client), the caller's handlers
        # come back: a later Ctrl-C must not go to an agent that has ended.
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    opts.say(agent.summary())
    return code
