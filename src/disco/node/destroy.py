"""`destroy`: nothing of the cluster's node left on the host. The supervisor stops what it
knows; then a /proc scan (not anyone's memory) finds what still carries the node's marks or
runs as the cluster's user, and kills it; then the user and the directory go. The answer
says what was found and whether anything is left."""

from __future__ import annotations

import shutil
import time
from typing import Any

from disco.node import control, users
from disco.node.bundle import BundleError
from disco.node.layout import CLUSTER_ENV, NodeDir
from disco.node.proc_scan import environ, is_live, listeners, node_processes
from disco.node.supervisor import kill_process


def destroy(node: NodeDir, grace_s: float) -> dict[str, Any]:
    cluster_id, node_name = node.ids()
    try:
        bundle = node.load_bundle()
        listen = (bundle.host, bundle.log_port)
    except (FileNotFoundError, BundleError):
        listen = None
    stopped: list[str] = []
    supervisor = _supervisor_pid(node)
    if control.answers(node.socket):
        stopped = control.call(node.socket, {"op": "shutdown", "grace": grace_s}, timeout_s=grace_s * 50 + 30)["stopped"]
    if supervisor is not None:
        _wait_gone(supervisor, cluster_id)

    # The cluster's user is the node's mark only when no other node of the cluster lives here.
    siblings = [d for d in node.path.parent.glob("*") if d != node.path and d.is_dir()]
    user = users.find_user(cluster_id) if not siblings else None
    uid = user.uid if user else None
    found = node_processes(cluster_id, node_name, node.path, uid)
    deadline = time.monotonic() + 10.0
    left = found
    while left and time.monotonic() < deadline:
        for process in left:
            kill_process(process.pid)
        time.sleep(0.05)
        left = node_processes(cluster_id, node_name, node.path, uid)

    removed_user = users.remove_user(cluster_id) if not left and not siblings else None
    existed = node.path.exists()
    if existed and not left:
        shutil.rmtree(node.path)
        try:
            node.path.parent.rmdir()  # the cluster's directory, once its last node is gone
        except OSError:
            pass
    still_listening = listen is not None and listeners(*listen)
    return {
        "stopped": stopped,
        "found": [p.as_dict() for p in found],
        "left": [p.as_dict() for p in left],
        "user_removed": removed_user,
        "dir_removed": existed and not node.path.exists(),
        "listening": still_listening,
        "clean": not left and not node.path.exists() and not still_listening
                 and (bool(siblings) or users.find_user(cluster_id) is None),
    }


def _supervisor_pid(node: NodeDir) -> int | None:
    try:
        return int(node.pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _wait_gone(pid: int, cluster_id: str) -> None:
    """The supervisor exits after a shutdown; one that does not (or did not answer) is killed."""
    deadline = time.monotonic() + 5.0
    while is_live(pid) and environ(pid).get(CLUSTER_ENV) == cluster_id:
        if time.monotonic() > deadline:
            kill_process(pid)
            if time.monotonic() > deadline + 5.0:
                return  # the scan that follows reports it
        time.sleep(0.05)
