#!/usr/bin/env python3
"""Run Disco's own test suite (from a Disco checkout) against this repository's Map/Reduce.

    python tools/run_disco_suite.py --disco-src ~/src/disco [--include-slow] [--only test_simple]

Disco's `tests/` and `lib/test/` are copied to a scratch folder (they are Disco's code: they
are never copied into this repository), given the mechanical Python 3 edits (print
statements, base64's encodestring/decodestring, `.next()`), and run file by file with plain
unittest. Each file of `tests/` gets a fresh master and two nodes of two slots on loopback
addresses of their own (127.N.0.1-3, free ports, a cluster token), started from this
repository's `src/`, and the environment Disco's harness reads: DISCO_MASTER, DISCO_PORT,
DDFS_PUT_PORT, DISCO_TEST_HOST, DISCO_TEST_PORT, DISCO_EVENTS= and
DISCO_SETTINGS_FILE=/dev/null. `lib/test/` holds unit tests that need no cluster.

Tests that fetch from the internet are not run (NEEDS_INTERNET): nothing leaves loopback.
Prints a table per file and one per tier, with passed/failed/errors/skipped/not run, and
the failing test methods; `--json PATH` writes the same as JSON. Exit status 0 when nothing
failed. test_50k (50,000 map tasks; its two jobs take 4-6 minutes on 2 shared cores) runs
by default; `--skip-slow` leaves it out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psutil

REPO_SRC = Path(__file__).resolve().parent.parent / "src"
SLOW = {"test_50k"}
# Tests that fetch from the internet are not run: this runner sends nothing off loopback.
# A file name alone: the whole file; with a test: those tests of it.
NEEDS_INTERNET: dict[str, list[str]] = {
    "test_examples": [],  # Disco's examples/ (not copied) on discoproject.org's chekhov.txt
    "test_ddfs": ["DDFSWriteTestCase.test_chunk"],  # chunks the same text from its URL
}
# Files of tests/ that start no job and check Disco's default settings (test_util's
# test_urlresolve expects the default master, http://<hostname>:8989): run as lib/test's are,
# with no cluster and no DISCO_MASTER, as on a machine with Disco installed and not configured.
DEFAULT_SETTINGS = {"test_util"}
FILE_TIMEOUT = 900.0

# Runs one test module with unittest in the test process; the last stdout line is JSON.
DRIVER = r"""
import json, sys, unittest
name = lambda test: test.id().split(".", 1)[-1]
def flat(suite):
    for test in suite:
        yield from flat(test) if isinstance(test, unittest.TestSuite) else [test]
tests = list(flat(unittest.defaultTestLoader.loadTestsFromName(sys.argv[1])))
left_out = [name(t) for t in tests if name(t) in sys.argv[2:]]
suite = unittest.TestSuite(t for t in tests if name(t) not in sys.argv[2:])
result = unittest.TextTestRunner(stream=sys.stderr, verbosity=2).run(suite)
print(json.dumps({"run": result.testsRun, "left_out": left_out,
                  "failures": [name(t) for t, _ in result.failures],
                  "errors": [name(t) for t, _ in result.errors],
                  "skipped": [[name(t), why] for t, why in result.skipped],
                  "expected_failures": len(result.expectedFailures),
                  "unexpected_successes": [name(t) for t in result.unexpectedSuccesses]}))
"""


# -- the Python 3 edits ------------------------------------------------------------------------
_PRINT_TO = re.compile(r"^(\s*)print\s*>>\s*([\w.]+)\s*,\s*(.*?)\s*$")
_PRINT = re.compile(r"^(\s*)print(?:\s+(?![=(])(.*?))?\s*$")
_NEXT = re.compile(r"([\w.]+(?:\([^()]*\))?)\.next\(\)")


def py3_edits(source: str) -> str:
    """Only what Python 3 itself changed; the tests' logic is left as Disco wrote it."""
    lines = []
    for line in source.splitlines(keepends=True):
        body, newline = line.rstrip("\r\n"), line[len(line.rstrip("\r\n")):]
        if (m := _PRINT_TO.match(body)):
            body = f"{m.group(1)}print({m.group(3)}, file={m.group(2)})"
        elif (m := _PRINT.match(body)):
            args = m.group(2) or ""
            if args.endswith(","):
                body = f'{m.group(1)}print({args[:-1]}, end=" ")'
            else:
                body = f"{m.group(1)}print({args})"
        lines.append(body + newline)
    text = "".join(lines)
    text = text.replace(".encodestring(", ".encodebytes(").replace(".decodestring(",
                                                                   ".decodebytes(")
    return _NEXT.sub(r"next(\1)", text)


def copy_suite(disco_src: Path, scratch: Path) -> list[Path]:
    """Disco's tests/ and lib/test/ under ``scratch``, edited; the test files in order."""
    files = []
    for part in ("tests", "lib/test"):
        source = disco_src / part
        if not source.is_dir():
            raise SystemExit(f"{source} is not there: --disco-src must be a Disco checkout")
        target = scratch / part
        shutil.copytree(source, target)
        for path in sorted(target.rglob("*.py")):
            path.write_text(py3_edits(path.read_text(encoding="utf-8")), encoding="utf-8")
        files += sorted(target.glob("test_*.py"))
    return files


def tier(path: Path) -> str:
    if path.parent.name == "test" and path.parent.parent.name == "lib":
        return "unit (lib/test)"
    text = path.read_text(encoding="utf-8")
    if "ddfs" in path.stem or path.stem in ("test_gc", "test_chunker"):  # DDFS and its chunker
        return "ddfs"
    if "TestPipe" in text or "disco.worker.pipeline" in text:
        return "pipeline"
    return "classic"


# -- a cluster on loopback -----------------------------------------------------------------------
def free_port(addresses: list[str], avoid: set[int]) -> int:
    for _ in range(200):
        port = random.randint(20000, 45000)
        if port in avoid:
            continue
        try:
            for address in addresses:
                with socket.socket() as sock:
                    sock.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


class LoopbackCluster:
    """A master on 127.N.0.1 and two nodes on 127.N.0.2-3, all started from REPO_SRC."""

    def __init__(self, root: Path, nodes: int = 2, slots: int = 2) -> None:
        self.root = root
        net = random.randint(100, 200)
        self.master_host = f"127.{net}.0.1"
        self.node_hosts = [f"127.{net}.0.{i + 2}" for i in range(nodes)]
        self.port = free_port([self.master_host, *self.node_hosts], set())
        self.put_port = free_port(self.node_hosts, {self.port})
        self.test_port = free_port([self.master_host], {self.port, self.put_port})
        self.url = f"http://{self.master_host}:{self.port}"
        self.slots = slots
        self.token = secrets.token_urlsafe(32)
        self.procs: list[subprocess.Popen[bytes]] = []
        root.mkdir(parents=True)
        token_file = root / "cluster.token"
        token_file.touch(mode=0o600)
        token_file.write_text(self.token + "\n")
        self.token_args = ["--token-file", str(token_file)]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCO_", "DDFS_"))}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_SRC), *filter(None, [os.environ.get("PYTHONPATH")])])
        return env

    def client_env(self) -> dict[str, str]:
        return {**self.env(), "DISCO_MASTER": self.url, "DISCO_PORT": str(self.port),
                "DDFS_PUT_PORT": str(self.put_port), "DISCO_TEST_HOST": self.master_host,
                "DISCO_TEST_PORT": str(self.test_port), "DISCO_EVENTS": "",
                "DISCO_SETTINGS_FILE": os.devnull, "DISCO_CLUSTER_TOKEN": self.token}

    def _start(self, args: list[str], log: str) -> None:
        with open(self.root / log, "wb") as out:
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self.env(), start_new_session=True))

    def start(self) -> None:
        self._start(["disco.mapreduce.master", "--host", self.master_host, "--port",
                     str(self.port), "--data", str(self.root / "master"), *self.token_args],
                    "master.log")
        http = httpx.Client(timeout=5, trust_env=False,
                            headers={"Authorization": f"Bearer {self.token}"})
        try:
            self._wait(lambda: self._get(http, "/disco/version") is not None, "the master")
            for host in self.node_hosts:
                self._start(["disco.mapreduce.node", "--master", self.url, "--host", host,
                             "--port", str(self.port), "--data", str(self.root / host),
                             "--slots", str(self.slots), "--put-port", str(self.put_port),
                             *self.token_args], f"node-{host}.log")
            self._wait(lambda: self._connected(http) >= set(self.node_hosts), "the nodes")
        finally:
            http.close()

    def _get(self, http: httpx.Client, path: str) -> object | None:
        try:
            reply = http.get(self.url + path)
        except httpx.HTTPError:
            return None
        return reply.json() if reply.status_code == 200 else None

    def _connected(self, http: httpx.Client) -> set[str]:
        info = self._get(http, "/disco/ctrl/nodeinfo") or {}
        return {host for host, node in dict(info).items() if node.get("connected")}

    def _wait(self, ready: object, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():  # type: ignore[operator]
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"{what} did not come up; see the logs in {self.root}")
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop_group(proc)
        # Workers run in job homes under our folder: none may outlive the cluster.
        root = str(self.root.resolve())
        for process in psutil.process_iter(["cwd"]):
            if (process.info.get("cwd") or "").startswith(root):
                try:
                    process.kill()
                except psutil.Error:
                    pass


def _stop_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


# -- running the files ---------------------------------------------------------------------------
@dataclass
class FileResult:
    file: str
    tier: str
    run: int = 0
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: list[list[str]] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)  # they need the internet
    seconds: float = 0.0
    note: str = ""


def run_file(path: Path, scratch: Path, timeout: float) -> FileResult:
    result = FileResult(str(path.relative_to(scratch)), tier(path))
    if NEEDS_INTERNET.get(path.stem) == []:
        result.not_run = [f"{path.stem} (the whole file)"]
        return result
    started = time.monotonic()
    cluster = None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCO_", "DDFS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_SRC), *filter(None, [env.get("PYTHONPATH")])])
    env["DISCO_SETTINGS_FILE"] = os.devnull
    try:
        if result.tier != "unit (lib/test)" and path.stem not in DEFAULT_SETTINGS:
            cluster = LoopbackCluster(scratch / "clusters" / path.stem)
            cluster.start()
            env = cluster.client_env()
        log = scratch / "logs" / f"{path.stem}.log"
        log.parent.mkdir(exist_ok=True)
        with open(log, "wb") as err:
            proc = subprocess.Popen([sys.executable, "-c", DRIVER, path.stem,
                                     *NEEDS_INTERNET.get(path.stem, [])], cwd=path.parent,
                                    env=env, stdout=subprocess.PIPE, stderr=err,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _stop_group(proc)
                result.note = f"timed out after {timeout:.0f} s"
                result.errors.append(f"{path.stem} (timeout)")
                return result
        lines = out.decode("utf-8", "replace").strip().splitlines()
        try:
            counts = json.loads(lines[-1])
        except (IndexError, ValueError):
            result.note = f"no result (exit {proc.returncode}); see {log}"
            result.errors.append(f"{path.stem} (could not run)")
            return result
        result.run = counts["run"]
        result.failed = counts["failures"] + counts["unexpected_successes"]
        result.errors = counts["errors"]
        result.skipped = counts["skipped"]
        result.not_run = counts["left_out"]
        result.passed = (result.run - len(result.failed) - len(result.errors)
                         - len(result.skipped) - counts["expected_failures"])
        return result
    except RuntimeError as exc:
        result.note = str(exc)
        result.errors.append(f"{path.stem} (cluster)")
        return result
    finally:
        if cluster is not None:
            cluster.stop()
        result.seconds = time.monotonic() - started


# -- the report ----------------------------------------------------------------------------------
def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *map(line, rows)])


def report(results: list[FileResult]) -> str:
    head = ["file", "tier", "passed", "failed", "errors", "skipped", "not run", "seconds"]
    rows = [[r.file, r.tier, r.passed, len(r.failed), len(r.errors), len(r.skipped),
             len(r.not_run), f"{r.seconds:.0f}"] for r in results]
    tiers: dict[str, list[int]] = {}
    for r in results:
        t = tiers.setdefault(r.tier, [0] * 6)
        for i, n in enumerate([1, r.passed, len(r.failed), len(r.errors), len(r.skipped),
                               len(r.not_run)]):
            t[i] += n
    total = [sum(t[i] for t in tiers.values()) for i in range(6)]
    tier_rows = [[name, *t] for name, t in sorted(tiers.items())] + [["all", *total]]
    out = [table(rows, head), "",
           table(tier_rows, ["tier", "files", "passed", "failed", "errors", "skipped",
                             "not run"])]
    problems = [(r.file, kind, name) for r in results
                for kind, names in (("failed", r.failed), ("error", r.errors))
                for name in names]
    problems += [(r.file, "skipped", f"{name}: {why}") for r in results
                 for name, why in r.skipped]
    problems += [(r.file, "not run (needs the internet)", name) for r in results
                 for name in r.not_run]
    problems += [(r.file, "note", r.note) for r in results if r.note]
    if problems:
        out += ["", *(f"- {file}: {kind} {name}" for file, kind, name in problems)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disco-src", type=Path, required=True, help="a Disco checkout")
    parser.add_argument("--skip-slow", action="store_true",
                        help=f"leave out {', '.join(sorted(SLOW))} (4-6 minutes)")
    parser.add_argument("--include-slow", action="store_true",
                        help="kept for old command lines: the slow files run by default")
    parser.add_argument("--only", action="append", default=[],
                        help="run only this test file (by name, e.g. test_simple); repeatable")
    parser.add_argument("--timeout", type=float, default=FILE_TIMEOUT,
                        help="seconds one file may take (default %(default)s)")
    parser.add_argument("--json", type=Path, help="write the results there as JSON")
    parser.add_argument("--keep-scratch", action="store_true",
                        help="keep the scratch folder (copies, logs) and say where")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="disco-suite-"))
    try:
        files = copy_suite(args.disco_src.expanduser().resolve(), scratch)
        chosen = [f for f in files if (not args.only or f.stem in args.only)
                  and (not args.skip_slow or f.stem not in SLOW or f.stem in args.only)]
        if not chosen:
            raise SystemExit("no test file chosen")
        results = []
        for path in chosen:
            print(f"{path.relative_to(scratch)} ...", end=" ", flush=True, file=sys.stderr)
            results.append(run_file(path, scratch, args.timeout))
            r = results[-1]
            print(f"{r.passed} passed, {len(r.failed)} failed, {len(r.errors)} errors, "
                  f"{len(r.skipped)} skipped ({r.seconds:.0f} s)", file=sys.stderr)
        print(report(results))
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
        return 0 if not any(r.failed or r.errors for r in results) else 1
    finally:
        if args.keep_scratch:
            print(f"scratch folder: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
