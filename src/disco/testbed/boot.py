"""What a test host runs as its main process (under podman's --init, catatonit, as PID 1).

Like a cloud VM's first boot: install the login key for root, make the host's own SSH host
key, then serve SSH on the host's own address only. sshd runs in the foreground, so
`podman stop` (SIGTERM, passed on by catatonit) ends the host."""

from __future__ import annotations

BOOT_DIR = "/etc/disco-testbed"  # mounted read-only from the testbed's state directory

BOOT_SCRIPT = f"""#!/bin/sh
set -eu
address=$1
mkdir -p /run/sshd /root/.ssh
chmod 700 /root/.ssh
cp {BOOT_DIR}/authorized_keys /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
exec /usr/sbin/sshd -D -e -o "ListenAddress=$address:22" -h /etc/ssh/ssh_host_ed25519_key
"""
