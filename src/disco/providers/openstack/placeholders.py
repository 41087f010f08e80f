"""The placeholders a role's user_data may contain; the template fills them with Heat's
`str_replace` (and the worker group's index substitution) when the stack is created."""

from __future__ import annotations

WAIT_SIGNAL = "$wait_signal$"
MASTER_IP = "$master_ip$"
WORKER_COUNT = "$worker_count$"
WORKER_INDEX = "%index%"

# What each one becomes, and in which role's script.
PLACEHOLDERS: dict[str, str] = {
    WAIT_SIGNAL: "master and workers: a curl command (ending in the URL) that signals this "
                 "node's own wait handle; append --data-binary '{\"status\": \"SUCCESS\"}' "
                 "(or FAILURE with a \"reason\")",
    MASTER_IP: "master and workers: the master's fixed IP on the cluster network",
    WORKER_COUNT: "master only: the number of workers the stack was created with, for the "
                  "master to wait for before it signals",
    WORKER_INDEX: "workers only: the worker's index in the group, 0..N-1 (Heat's ResourceGroup)",
}
