"""The placeholders a role's user_data may contain; the template fills them with Heat's
`str_replace` (and the worker group's index substitution) when the stack is created."""

from __future__ import annotations

WAIT_SIGNAL = "$wait_signal$"
BOOT_SIGNAL = "$boot_signal$"
MASTER_IP = "$master_ip$"
NODE_IP = "$node_ip$"
WORKER_COUNT = "$worker_count$"
WORKER_INDEX = "%index%"
# A node's name (`master`, `worker-1`, …) where its boot script needs it: a stand-in that is
# itself a valid node name, so that a worker's bundle can be rendered (and checked) once for
# every worker; the worker's template names the worker from its group index (worker-<index+1>,
# as DISCO numbers workers from 1).
NODE_NAME = "disco-node-name-standin"

# What each one becomes, and in which role's script.
PLACEHOLDERS: dict[str, str] = {
    WAIT_SIGNAL: "master and workers: a curl command (ending in the URL) that signals this "
                 "node's own `ready` wait handle, once its frameworks run (the master: once it "
                 "has seen its workers); append --data-binary '{\"status\": \"SUCCESS\"}' "
                 "(or FAILURE with a \"reason\")",
    BOOT_SIGNAL: "master and workers: the same for this node's `booted` wait handle, signalled "
                 "when the node bootstrap has installed everything, with the node's SSH host "
                 "key as the signal's data (the service manager pins it)",
    MASTER_IP: "master and workers: the master's fixed IP on the cluster network",
    NODE_IP: "master and workers: this node's own fixed IP",
    WORKER_COUNT: "master only: the number of workers the stack was created with, for the "
                  "master to wait for before it signals",
    NODE_NAME: "master and workers: the node's name as DISCO knows it (master, worker-1, …)",
    WORKER_INDEX: "workers only: the worker's index in the group, 0..N-1 (Heat's ResourceGroup)",
}
