#!/usr/bin/env bash
# Creates .bench-venv: dask-gateway (client + server) for the start-up benchmark's baseline.
# It lives apart from .venv so the project's own environment is never touched. Dask and
# distributed are pinned to the versions in .venv, so both sides run the same Dask.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
BENCH_VENV=${BENCH_VENV:-.bench-venv}
GATEWAY_VERSION=${GATEWAY_VERSION:-2026.3.0}

dask_version=$(.venv/bin/python -c 'import dask; print(dask.__version__)')
distributed_version=$(.venv/bin/python -c 'import distributed; print(distributed.__version__)')
want="gateway=$GATEWAY_VERSION dask=$dask_version distributed=$distributed_version"
stamp="$BENCH_VENV/.bench-installed"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x "$BENCH_VENV/bin/python" ]; then
  echo "==> creating $BENCH_VENV" >&2
  "$PY" -m venv "$BENCH_VENV"
fi
echo "==> installing $want into $BENCH_VENV" >&2
"$BENCH_VENV/bin/python" -m pip install --quiet --upgrade pip
"$BENCH_VENV/bin/python" -m pip install --quiet \
  "dask-gateway==$GATEWAY_VERSION" "dask-gateway-server[local]==$GATEWAY_VERSION" \
  "dask==$dask_version" "distributed==$distributed_version" psutil
echo "$want" > "$stamp"
