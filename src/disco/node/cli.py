"""The node CLI, what every transport calls: `python3 -m disco.node <command> …`.

Each command prints one JSON object on stdout and logs human text on stderr; exit code 0 on
success, 1 with {"error": "…"} otherwise. Every command may be run again. See docs/node.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from disco.node import control
from disco.node.layout import NodeDir, node_dir_arg

log = logging.getLogger("disco.node")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m disco.node", description="DISCO's commands on a node")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_node_dir(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--node-dir", type=node_dir_arg, required=True,
                         help="<prefix>/clusters/<cluster-id>/<node>")
        return sub

    sub = commands.add_parser("install", help="install what the bundle names (idempotent)")
    sub.add_argument("--bundle", type=Path, required=True)
    with_node_dir("supervise", "start the node's supervisor unless it runs")
    with_node_dir("start", "start a launch (JSON on stdin) unless it runs")
    sub = with_node_dir("status", "the node's processes")
    sub.add_argument("name", nargs="?")
    sub = with_node_dir("stop", "stop every process, newest first")
    sub.add_argument("--grace", type=float, default=10.0)
    sub = with_node_dir("destroy", "stop everything and remove the node's processes, user and files")
    sub.add_argument("--grace", type=float, default=10.0)
    sub = with_node_dir("log", "bytes of a process's log (or deploy.log), base64")
    sub.add_argument("name", nargs="?", help="a process; without it: --deploy")
    sub.add_argument("--deploy", action="store_true", help="deploy.log")
    sub.add_argument("--offset", type=int, default=0)
    sub.add_argument("--limit", type=int, default=1 << 20)
    with_node_dir("run", "run a short command (JSON on stdin)")
    commands.add_parser("facts", help="this venv's interpreter, paths, OS and Java")
    sub = with_node_dir("_supervisor", argparse.SUPPRESS)
    sub.add_argument("--ready-fd", type=int)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    args = _parser().parse_args(argv)
    if args.command == "_supervisor":
        return _run_supervisor(args.node_dir, args.ready_fd)
    try:
        result = _dispatch(args)
    except (OSError, ValueError, RuntimeError, ConnectionError, TimeoutError) as exc:
        print(json.dumps({"error": str(exc), "kind": type(exc).__name__}))
        log.error("%s failed: %s", args.command, exc)
        return 1
    print(json.dumps(result))
    return 0 if result.get("clean", True) else 1


def _dispatch(args: argparse.Namespace) -> dict[str, Any]:
    command = args.command
    if command == "install":
        from disco.node.install import install
        return install(args.bundle)
    if command == "facts":
        from disco.node.facts import facts
        return facts()
    node: NodeDir = args.node_dir
    if command == "supervise":
        from disco.node.daemon import ensure_supervisor
        return ensure_supervisor(node)
    if command == "start":
        launch = _stdin_json()
        return {"pid": control.call(node.socket, {"op": "start", "launch": launch}, timeout_s=3600)["pid"]}
    if command == "status":
        reply = control.call(node.socket, {"op": "status", "name": args.name})
        return {"processes": reply["processes"], "supervisor": reply["supervisor"]}
    if command == "stop":
        reply = control.call(node.socket, {"op": "stop", "grace": args.grace}, timeout_s=args.grace * 50 + 30)
        return {"stopped": reply["stopped"]}
    if command == "destroy":
        from disco.node.destroy import destroy
        return destroy(node, args.grace)
    if command == "log":
        return _read_log(node, args)
    if command == "run":
        from disco.node.run_command import run_command
        return run_command(node, _stdin_json())
    raise ValueError(f"unknown command {command}")


def _stdin_json() -> Any:
    try:
        return json.load(sys.stdin)
    except json.JSONDecodeError as exc:
        raise ValueError(f"stdin is not JSON: {exc}") from None


def _read_log(node: NodeDir, args: argparse.Namespace) -> dict[str, Any]:
    from disco.node.launch import PROCESS_NAME
    if args.deploy:
        path = node.deploy_log
    elif args.name and PROCESS_NAME.match(args.name):
        path = node.logs / f"{args.name}.log"
    else:
        raise ValueError("name a process (letters, digits, '_', '.', '-') or give --deploy")
    if args.offset < 0 or args.limit < 0:
        raise ValueError("offset and limit must not be negative")
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(args.offset)
            data = handle.read(args.limit)
    except FileNotFoundError:
        raise FileNotFoundError(f"no log {path.name} on this node") from None
    return {"data": base64.b64encode(data).decode(), "offset": args.offset,
            "next_offset": args.offset + len(data), "size": size}


def _run_supervisor(node: NodeDir, ready_fd: int | None) -> int:
    """The daemon itself (daemon.py started it)."""
    from disco.node.daemon import hold_pid_file
    from disco.node.supervisor import Supervisor
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    held = hold_pid_file(node)
    if held is None:  # another supervisor runs for this node
        if ready_fd is not None:
            os.write(ready_fd, b"ready\n")
        return 0
    try:
        supervisor = Supervisor(node)
        supervisor.serve(ready_fd)
    except Exception as exc:
        log.exception("supervisor failed")
        if ready_fd is not None:
            try:
                os.write(ready_fd, f"{type(exc).__name__}: {exc}\n".encode())
            except OSError:
                pass
        return 1
    node.pid_file.unlink(missing_ok=True)
    held.close()
    return 0
