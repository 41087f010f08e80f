'''The bootstrap script: one self-contained POSIX `sh` script per node that brings a fresh
Debian or Ubuntu host to its cluster, for transports without a shell session (cloud-init
user-data) and over SSH alike. It holds no secret (the bundle holds none; secrets arrive as
files under the node's secrets/).

    wheel = self_wheel(cache_dir)
    bundle = NodeBundle(..., disco_wheel=wheel_ref(wheel))
    script = render_script(bundle, payload_url=None)   # SSH: the wheel is uploaded beside it
    script = render_script(bundle, "https://sm.example/payload/disco-….whl")  # cloud-init

What it does, each step skipped when done: python3 and its venv module from apt, the venv at
<prefix>/venv, disco's wheel (beside the script, or fetched from payload_url, checked by
SHA-256), the bundle into the node's directory, then `python -m disco.node install` and
`supervise`. Their JSON answers go to stdout, progress to stderr.
'''

from __future__ import annotations

import re
import shlex

from disco.node.bundle import NodeBundle, check_url

_TEMPLATE = r"""#!/bin/sh
# DISCO node bootstrap: cluster @CLUSTER@, node @NODE@ (@ROLE@). It holds no secret.
# Running it again changes nothing; running it after an interrupted run finishes the job.
set -eu
umask 022
PREFIX=@PREFIX@
NODE_DIR=@NODE_DIR@
WHEEL=@WHEEL@
WHEEL_SHA256=@WHEEL_SHA256@
WHEEL_VERSION=@WHEEL_VERSION@
PAYLOAD_URL=@PAYLOAD_URL@
HERE=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
VENV="$PREFIX/venv"
say() { printf '%s disco-bootstrap: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    say "installing python3 and python3-venv from apt"
    export DEBIAN_FRONTEND=noninteractive
    # An earlier run killed inside dpkg (the host died) left packages half unpacked or
    # configured: finish them (with apt's help for what dpkg alone cannot order).
    dpkg --configure -a >&2 || true
    apt-get -o DPkg::Lock::Timeout=300 update -q >&2
    # A package killed while being unpacked is half installed: dpkg will not configure it ("very
    # bad inconsistent state") and apt's fix-up stops on it. Dropping it lets the fix-up and the
    # install below put in the archive's current version (reinstalling pins the old one, which
    # the archive may have replaced since).
    broken=$(dpkg-query -W -f='${db:Status-Abbrev} ${binary:Package}\n' 2>/dev/null |
             awk 'substr($1, 2, 1) == "H" || substr($1, 3, 1) == "R" { print $2 }')
    if [ -n "$broken" ]; then
        say "dropping what an interrupted run left half installed: $broken"
        # shellcheck disable=SC2086  (one word a package)
        dpkg --remove --force-remove-reinstreq --force-depends $broken >&2 || true
    fi
    apt-get -o DPkg::Lock::Timeout=300 install -f -y -q >&2
    apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends python3 python3-venv >&2
fi
mkdir -p "$PREFIX/cache/wheels" "$NODE_DIR"

if ! "$VENV/bin/python" -I -m pip --version >/dev/null 2>&1; then
    say "making the venv $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
fi

installed=$("$VENV/bin/python" -I -c 'import importlib.metadata as m; print(m.version("disco"))' 2>/dev/null || true)
if [ "$installed" != "$WHEEL_VERSION" ]; then
    say "installing disco $WHEEL_VERSION"
    python3 -I - "$HERE/$WHEEL" "$PAYLOAD_URL" "$PREFIX/cache/wheels/$WHEEL" "$WHEEL_SHA256" <<'DISCO_FETCH_END'
import hashlib, os, shutil, sys, time, urllib.request
source, url, target, expected = sys.argv[1:]
def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
if os.path.isfile(target) and sha256(target) == expected:
    sys.exit(0)
partial = target + ".partial"
if os.path.isfile(source):
    shutil.copyfile(source, partial)
elif url:
    # The service manager may be restarting (or busy): refused connections and 5xx answers are
    # tried again for five minutes; a 4xx is final.
    for attempt in range(60):
        try:
            with urllib.request.urlopen(url, timeout=300) as answer, open(partial, "wb") as out:
                shutil.copyfileobj(answer, out)
            break
        except OSError as error:  # urllib.error.HTTPError is one
            if getattr(error, "code", 500) < 500 or attempt == 59:
                sys.exit("%s: %s" % (url, error))
            print("disco's wheel: %s did not answer (%s); again in 5 s" % (url, error), file=sys.stderr)
        time.sleep(5)
else:
    sys.exit("disco's wheel %s is not beside this script and no payload URL was given" % os.path.basename(target))
actual = sha256(partial)
if actual != expected:
    os.unlink(partial)
    sys.exit("%s: SHA-256 is %s, expected %s" % (url or source, actual, expected))
os.replace(partial, target)
DISCO_FETCH_END
    "$VENV/bin/python" -I -m pip install -q --disable-pip-version-check --no-deps --no-index \
        --force-reinstall "$PREFIX/cache/wheels/$WHEEL" >&2
fi

cat > "$NODE_DIR/.bundle.json.new" <<'DISCO_BUNDLE_END'
@BUNDLE@
DISCO_BUNDLE_END
mv -f "$NODE_DIR/.bundle.json.new" "$NODE_DIR/bundle.json"

say "installing the node"
"$VENV/bin/python" -I -m disco.node install --bundle "$NODE_DIR/bundle.json"
say "starting the supervisor"
"$VENV/bin/python" -I -m disco.node supervise --node-dir "$NODE_DIR"
say "done"
"""


def render_script(bundle: NodeBundle, payload_url: str | None = None) -> str:
    """The bootstrap script of a node. Without payload_url, disco's wheel must lie beside the
    script when it runs (as the SSH provider uploads it)."""
    if bundle.disco_wheel is None:
        raise ValueError("the bundle names no disco_wheel: the bootstrap installs disco from it")
    if payload_url is not None:
        check_url(payload_url, allow_path=False)  # http(s), no credentials: the script is no secret
    values = {
        "CLUSTER": bundle.cluster_id, "NODE": bundle.node, "ROLE": bundle.role,
        "PREFIX": shlex.quote(bundle.prefix.rstrip("/") or "/"), "NODE_DIR": shlex.quote(bundle.node_dir),
        "WHEEL": shlex.quote(bundle.disco_wheel.filename), "WHEEL_SHA256": bundle.disco_wheel.sha256,
        "WHEEL_VERSION": shlex.quote(bundle.disco_wheel.version),
        "PAYLOAD_URL": shlex.quote(payload_url or ""), "BUNDLE": bundle.to_json(),
    }
    return re.sub(r"@([A-Z0-9_]+)@", lambda found: values[found.group(1)], _TEMPLATE)
