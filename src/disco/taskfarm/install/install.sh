#!/bin/sh
# Installs `disco farm client` for a volunteer, without root: a venv under one prefix directory,
# the enrollment key copied there (mode 0600), and a systemd user unit (or, where there is no
# user systemd, a plain nohup runner). Everything it makes is listed in PREFIX/.manifest, and
# `--uninstall` removes exactly that: the prefix, the unit file, and the directories it created.
#
#   sh install.sh --server URL --key-file FILE [--slots N] [--prefix DIR] [--mode systemd|nohup]
#                 [--source PIP-REQUIREMENT-OR-PATH]
#   sh install.sh --uninstall [--prefix DIR]
#
# Check this file's SHA-256 against docs/taskfarm.md before running it.
set -eu

PREFIX="${HOME}/.local/share/disco-farm"
UNIT_DIR="${XDG_CONFIG_HOME:-${HOME}/.config}/systemd/user"
UNIT_NAME="disco-farm-client.service"
SERVER="" KEY_FILE="" SLOTS=1 MODE=auto SOURCE=disco UNINSTALL=0 PYTHON="${PYTHON:-python3}"

die() { echo "install.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --server) SERVER="${2:?}"; shift 2 ;;
        --key-file) KEY_FILE="${2:?}"; shift 2 ;;
        --slots) SLOTS="${2:?}"; shift 2 ;;
        --prefix) PREFIX="${2:?}"; shift 2 ;;
        --mode) MODE="${2:?}"; shift 2 ;;
        --source) SOURCE="${2:?}"; shift 2 ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path" ;; esac
MARK="$PREFIX/.manifest"

# mkdir -p that records every directory it creates (deepest last), so uninstall can remove them.
mkdirs() {
    _missing=""
    _d="$1"
    while [ ! -d "$_d" ]; do _missing="$_d
$_missing"; _d=$(dirname "$_d"); done
    mkdir -p "$1"
    printf '%s' "$_missing" | while IFS= read -r _m; do [ -n "$_m" ] && echo "dir $_m" >> "$CREATED"; done
    return 0
}

have_user_systemd() { command -v systemctl >/dev/null 2>&1 && systemctl --user show-environment >/dev/null 2>&1; }

uninstall() {
    [ -f "$MARK" ] || die "$PREFIX was not made by this installer (no $MARK): nothing removed"
    if grep -q "^unit " "$MARK"; then
        systemctl --user disable --now "$UNIT_NAME" >/dev/null 2>&1 || true
    fi
    if [ -f "$PREFIX/client.pid" ]; then
        pid=$(cat "$PREFIX/client.pid")
        if kill -TERM "$pid" 2>/dev/null; then  # the client reports what it finished, then exits
            i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    grep "^unit " "$MARK" | cut -c6- | while IFS= read -r f; do rm -f "$f"; echo "removed $f"; done
    if grep -q "^unit " "$MARK"; then systemctl --user daemon-reload >/dev/null 2>&1 || true; fi
    dirs=$(grep "^dir " "$MARK" | cut -c5- | sort -r)  # deepest first
    rm -rf "$PREFIX"
    echo "removed $PREFIX"
    printf '%s\n' "$dirs" | while IFS= read -r d; do
        [ -n "$d" ] && [ -d "$d" ] && rmdir "$d" 2>/dev/null && echo "removed $d"
    done
    return 0
}

if [ "$UNINSTALL" = 1 ]; then uninstall; exit 0; fi

[ -n "$SERVER" ] || die "--server URL is required"
[ -n "$KEY_FILE" ] && [ -r "$KEY_FILE" ] || die "--key-file FILE (the enrollment key) is required and must be readable"
case "$SLOTS" in ''|*[!0-9]*) die "--slots must be a number" ;; esac
[ -e "$PREFIX" ] && die "$PREFIX exists already (--uninstall first, or another --prefix)"
if [ "$MODE" = auto ]; then if have_user_systemd; then MODE=systemd; else MODE=nohup; fi; fi

CREATED=$(mktemp)
mkdirs "$PREFIX"
mv "$CREATED" "$MARK"
CREATED="$MARK"
chmod 700 "$PREFIX"
echo "made $PREFIX"

# venv's ensurepip, pip and the builds it runs (caches, a Rust toolchain's settings) write under
# $HOME: give them a home inside the prefix, removed after, so nothing is left that --uninstall
# could not tell from the volunteer's own files.
mkdir "$PREFIX/.build-home"
HOME="$PREFIX/.build-home" "$PYTHON" -m venv "$PREFIX/venv"
HOME="$PREFIX/.build-home" "$PREFIX/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "$SOURCE" >&2
rm -rf "$PREFIX/.build-home"
echo "installed disco ($SOURCE) into $PREFIX/venv"

umask 077
cp "$KEY_FILE" "$PREFIX/key"
echo "copied the enrollment key to $PREFIX/key (mode 0600)"
cat > "$PREFIX/run" <<RUN
#!/bin/sh
# The volunteer's client; the key is read from a file, never given on the command line.
exec "$PREFIX/venv/bin/disco" farm client --server "$SERVER" --slots $SLOTS \\
    --key-file "$PREFIX/key" --state-dir "$PREFIX/state"
RUN
chmod 700 "$PREFIX/run"
echo "wrote $PREFIX/run"

if [ "$MODE" = systemd ]; then
    mkdirs "$UNIT_DIR"
    cat > "$UNIT_DIR/$UNIT_NAME" <<UNIT
[Unit]
Description=DISCO farm client (volunteer computing for $SERVER)

[Service]
ExecStart=$PREFIX/run
Restart=on-failure
KillSignal=SIGTERM
TimeoutStopSec=30

[Install]
WantedBy=default.target
UNIT
    echo "unit $UNIT_DIR/$UNIT_NAME" >> "$MARK"
    systemctl --user daemon-reload
    systemctl --user enable --now "$UNIT_NAME"
    echo "started the systemd user unit $UNIT_NAME (systemctl --user status $UNIT_NAME)"
else
    nohup "$PREFIX/run" > "$PREFIX/client.log" 2>&1 < /dev/null &
    echo $! > "$PREFIX/client.pid"
    echo "started the client with nohup: pid $(cat "$PREFIX/client.pid"), log $PREFIX/client.log"
fi
echo "to remove everything: sh install.sh --uninstall --prefix $PREFIX"
