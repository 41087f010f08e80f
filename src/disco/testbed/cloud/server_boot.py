"""What a cloud server runs as its main process (under podman's --init, catatonit, as PID 1):
the boot of a cloud VM without systemd. cloud-init's four stages run in the order systemd
would run them; sshd starts after `init` (host keys made, the key pair's public key installed),
listening on the server's addresses only, before the config and final stages (the user_data
runs in final), as on a VM where SSH answers while user_data still runs. The stages run in the
background so that SIGTERM (`podman stop`) ends the server at once, whatever stage it is in."""

from __future__ import annotations

SERVER_BOOT_SCRIPT = """#!/bin/sh
# $@: the server's addresses
trap 'exit 0' TERM INT
mkdir -p /run/sshd
listen=""
for address in "$@"; do listen="$listen -o ListenAddress=$address:22"; done
{
  cloud-init init --local
  cloud-init init
  /usr/sbin/sshd -e $listen
  cloud-init modules --mode=config
  cloud-init modules --mode=final
} >/var/log/disco-boot.log 2>&1 &
sleep infinity &
wait
"""
