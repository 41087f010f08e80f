"""A cloud node's user_data: the node bootstrap (disco.node.bootstrap, the same script the SSH
provider runs), then a signal to the node's `booted` wait condition — SUCCESS with the node's
SSH host key as its data (the service manager learns the key from Heat, an authenticated
channel, and pins it: no trust on first use), or FAILURE with the bootstrap's last lines, so a
stack whose node cannot install fails at once with the reason.

The node's `ready` signal is not sent here: its command is kept in a root-only file,
`<BOOT_DIR>/signal-ready`, which the service manager runs over SSH once the node's frameworks
are ready (the master's last, once it has seen its workers), so the stack completes only then.

Heat fills `$boot_signal$`, `$wait_signal$` (the handles' curl commands), `$master_ip$` and
`$node_ip$` (see placeholders.py) through `str_replace`; nothing here is secret (the bundle
holds none; a handle's token can only signal that handle)."""

from __future__ import annotations

BOOT_DIR = "/var/lib/disco-boot"
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"
SIGNAL_READY = f"{BOOT_DIR}/signal-ready"

_TEMPLATE = r"""#!/bin/sh
# DISCO cloud node @NODE@: the node bootstrap, then a signal to Heat.
set -u
umask 077
mkdir -p @BOOT_DIR@
cd @BOOT_DIR@
cat > bootstrap.sh <<'DISCO_NODE_BOOTSTRAP_END'
@SCRIPT@DISCO_NODE_BOOTSTRAP_END
cat > signal-ready <<'DISCO_SIGNAL_READY_END'
#!/bin/sh
# Run by the service manager (over SSH, as root) once this node's frameworks are ready.
exec $wait_signal$ --retry 10 --retry-delay 2 --data-binary '{"status": "SUCCESS", "id": "@NODE@", "reason": "frameworks ready"}'
DISCO_SIGNAL_READY_END
chmod 700 signal-ready
@AUTHORIZE@if sh bootstrap.sh > bootstrap.out 2> bootstrap.log; then status=SUCCESS; else status=FAILURE; fi
python3 -I - "$status" @NODE@ > signal.json <<'DISCO_SIGNAL_END'
import json, sys
status, node = sys.argv[1:]
if status == "SUCCESS":
    with open("@HOST_KEY@") as key:
        data = key.read().strip()
    reason = "bootstrapped"
else:
    with open("bootstrap.log", errors="replace") as log:
        data = "".join(log.readlines()[-8:])[-1500:]
    reason = "the node bootstrap failed: " + (data.strip().splitlines() or ["no output"])[-1][-300:]
print(json.dumps({"status": status, "id": node, "reason": reason, "data": data}))
DISCO_SIGNAL_END
$boot_signal$ --retry 10 --retry-delay 2 --data-binary @signal.json
"""


_AUTHORIZE = """# The servers' key pair is the user's own: the service manager's key is added beside it.
home=$(getent passwd @USER@ | cut -d: -f6)
install -d -m 700 -o @USER@ "$home/.ssh"
echo '@KEY@' >> "$home/.ssh/authorized_keys"
chown @USER@ "$home/.ssh/authorized_keys"
chmod 600 "$home/.ssh/authorized_keys"
"""


def node_user_data(node: str, bootstrap_script: str, *, authorized_key: str = "", login_user: str = "") -> str:
    """The user_data of one node (`node`: its name, the id of its signal). `authorized_key`: a
    public key `login_user` must accept besides the key pair's (when the key pair is the
    user's own, the service manager still needs its way in)."""
    if "DISCO_NODE_BOOTSTRAP_END" in bootstrap_script:
        raise ValueError("the bootstrap script holds this user_data's own end marker")
    if not node.replace("-", "").isalnum():
        raise ValueError(f"node name {node!r}: letters, digits and '-' only")
    script = bootstrap_script if bootstrap_script.endswith("\n") else bootstrap_script + "\n"
    authorize = ""
    if authorized_key:
        if not login_user.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"login user {login_user!r} is not a login name")
        if "'" in authorized_key or "\n" in authorized_key.strip():
            raise ValueError("the authorized key must be one OpenSSH public key line")
        authorize = _AUTHORIZE.replace("@USER@", login_user).replace("@KEY@", authorized_key.strip())
    values = {"@NODE@": node, "@BOOT_DIR@": BOOT_DIR, "@HOST_KEY@": HOST_KEY, "@AUTHORIZE@": authorize}
    text = _TEMPLATE
    for marker, value in values.items():
        text = text.replace(marker, value)
    return text.replace("@SCRIPT@", script)
