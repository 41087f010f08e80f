# dask-gateway-server configuration for the start-up benchmark's baseline.
#
# Loaded by `dask-gateway-server -f benchmarks/gateway_config.py` inside .bench-venv (see
# setup_bench_venv.sh); startup.py passes its choices in BENCH_GATEWAY_* variables so this
# file stays static. Everything listens on 127.0.0.1 only.
#
# Two workarounds are needed for dask-gateway-server 2026.3 with its local backend:
#
# 1. LocalBackend.setup_working_directory collects the paths it must chown in a list and
#    adds the certificate and key paths with `paths.extend(path)`: a string is iterable, so
#    the list gains one entry per *character* of the path and the later os.chown() calls
#    run on names like "/" and "t". For LocalBackend that fails (or, as root, chowns the
#    wrong files). FixedLocalBackend below repeats the method with `append`, the intended
#    call; nothing else changes.
# 2. ClusterConfig's default commands are the `dask-scheduler` and `dask-worker` entry
#    points, which distributed no longer installs. We point scheduler_cmd and worker_cmd at
#    `python -m dask scheduler` / `python -m dask worker` of this venv, the same form of
#    command that DISCO's framework.yaml uses; the gateway appends its own flags (TLS,
#    ports 0, its scheduler preload) after them.
#
# To start the *same* cluster as DISCO's default Dask cluster, the workers run with
# --no-nanny and one thread (DISCO's defaults: `nanny: false`, `worker_threads: 1`), unless
# BENCH_GATEWAY_NANNY=1 asks for the gateway's own default (a nanny per worker).

import os
import sys

from dask_gateway_server.backends.local import LocalBackend

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)


class FixedLocalBackend(LocalBackend):
    """LocalBackend with workaround 1: `append` the TLS paths instead of `extend`."""

    def setup_working_directory(self, cluster):  # type: ignore[no-untyped-def]
        if self.clusters_directory:
            workdir = os.path.join(self.clusters_directory, cluster.name)
        else:
            import tempfile
            workdir = tempfile.mkdtemp(prefix="dask", suffix=cluster.name)
        certsdir = self.get_certs_directory(workdir)
        logsdir = self.get_logs_directory(workdir)
        paths = [workdir, certsdir, logsdir]
        for path in paths:
            os.makedirs(path, 0o700, exist_ok=True)
        cert_path, key_path = self._get_tls_paths(workdir)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        for path, data in [(cert_path, cluster.tls_cert), (key_path, cluster.tls_key)]:
            with os.fdopen(os.open(path, flags, 0o600), "wb") as fil:
                fil.write(data)
            paths.append(path)  # the fix: upstream has paths.extend(path)
        self.set_file_permissions(paths, cluster.username)
        return workdir


c.DaskGateway.backend_class = FixedLocalBackend
c.DaskGateway.address = os.environ["BENCH_GATEWAY_API_ADDRESS"]        # private API, 127.0.0.1
c.DaskGateway.log_level = os.environ.get("BENCH_GATEWAY_LOG_LEVEL", "WARN")
c.Proxy.address = os.environ["BENCH_GATEWAY_ADDRESS"]                  # public HTTP + TCP proxy
c.Proxy.tcp_address = os.environ["BENCH_GATEWAY_ADDRESS"]
c.SimpleAuthenticator.password = None  # anyone on loopback; this server lives for one run
# The clusters' processes run as the user the client logs in as: the benchmark's own
# user (getpass.getuser() in gateway_client.py), so LocalBackend's user switch is a no-op.
c.LocalBackend.clusters_directory = os.environ["BENCH_GATEWAY_CLUSTERS_DIR"]

_python = sys.executable  # this venv's interpreter
_nanny = os.environ.get("BENCH_GATEWAY_NANNY") == "1"
# Workaround 2: commands that exist.
c.ClusterConfig.scheduler_cmd = [_python, "-m", "dask", "scheduler"]
c.ClusterConfig.worker_cmd = [_python, "-m", "dask", "worker", "--nanny" if _nanny else "--no-nanny"]
c.ClusterConfig.worker_cores = 1
c.ClusterConfig.worker_threads = 1
