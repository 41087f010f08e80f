"""`run`: a short command on the node, in its work/ directory, as the cluster's user (when
root), with the node's marks; its exit code and output.

    stdin:  {"argv": ["java", "-version"], "env": {}, "timeout_s": 30}
    stdout: {"exit_code": 0, "output": "openjdk version …", "timed_out": false}
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

from disco.node import users
from disco.node.layout import CLUSTER_ENV, NODE_ENV, PROCESS_ENV, NodeDir

_MAX_OUTPUT = 1 << 20


def run_command(node: NodeDir, request: dict[str, Any]) -> dict[str, Any]:
    argv = request.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("argv must be a non-empty list of strings")
    env_in = request.get("env", {})
    if not isinstance(env_in, dict) or not all(isinstance(v, str) for v in env_in.values()):
        raise ValueError("env must map names to strings")
    timeout_s = float(request.get("timeout_s", 60))
    bundle = node.load_bundle()
    prefix = bundle.prefix.rstrip("/")
    env = {"PATH": f"{prefix}/venv/bin:/usr/local/bin:/usr/bin:/bin", "HOME": str(node.work), "LANG": "C.UTF-8",
           **env_in, CLUSTER_ENV: bundle.cluster_id, NODE_ENV: bundle.node, PROCESS_ENV: "_run"}
    as_user: dict[str, Any] = {}
    user = users.find_user(bundle.cluster_id) if users.isolating() else None
    if users.isolating() and user is None:
        raise ValueError(f"the cluster's user {users.user_name(bundle.cluster_id)} is missing: run install first")
    if user is not None:
        as_user = {"user": user.uid, "group": user.gid, "extra_groups": []}
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             cwd=node.work, env=env, start_new_session=True, **as_user)
    timed_out = False
    try:
        output, _ = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(child.pid, signal.SIGKILL)
        output, _ = child.communicate()
    try:
        os.killpg(child.pid, signal.SIGKILL)  # nothing it started outlives the command
    except (ProcessLookupError, PermissionError):
        pass
    return {"exit_code": None if timed_out else child.returncode,
            "output": output[-_MAX_OUTPUT:].decode(errors="replace"), "timed_out": timed_out}
