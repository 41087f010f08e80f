"""JVM class-data archives for Spark's daemons, recorded by the service manager itself.

A daemon that maps an archive of the classes it loads starts in about half the time. Who
writes the archive matters: the JVM maps it into every daemon that names it, so an archive a
cluster's own JVM recorded (a process running its tenant's code, as its user) could carry
that tenant's tampering into every other tenant's daemons. So no cluster records one: the
first time a Spark cluster is rendered, this module starts a master and a worker of its own —
outside any cluster, on 127.0.0.1, with the clusters' exact classpath and flags — lets them
come up, stops them, and keeps what they recorded beside DISCO's Java support jar, owned by
the service manager and read-only to everybody else. Clusters rendered before it is done
start without an archive.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

ROLES = ("master", "worker")
_recording: set[str] = set()
_lock = threading.Lock()

# Run in the child before it execs spark-class: the recorder dies with the thread that
# started it (PR_SET_PDEATHSIG survives exec), so a killed service manager leaves no JVM.
_DIE_WITH_PARENT = ("import ctypes, os, sys\n"
                    "ctypes.CDLL(None).prctl(1, 9)\n"
                    "if os.getppid() != int(sys.argv[1]): os._exit(1)\n"
                    "os.execv(sys.argv[2], sys.argv[2:])\n")


def archive_option(role: str, spark_home: str, support_jar: str, java_opts: str) -> str:
    """`-XX:SharedArchiveFile=…` for a daemon of `role` when a trusted archive exists; else
    "" (and, once per service manager, the archives are recorded in the background)."""
    if role not in ROLES:
        return ""
    option = recorded_option(role, spark_home, support_jar, java_opts)
    if option:
        return option
    key = _key(spark_home, support_jar, java_opts)
    with _lock:
        if key not in _recording:
            _recording.add(key)
            threading.Thread(target=_record_quietly, args=(spark_home, support_jar, java_opts, key),
                             name="spark-archives", daemon=True).start()
    return ""


def recorded_option(role: str, spark_home: str, support_jar: str, java_opts: str) -> str:
    """The option for an archive recorded already, else "": looks, records nothing (a plan)."""
    if role not in ROLES:
        return ""
    path = archive_path(support_jar, role, _key(spark_home, support_jar, java_opts))
    return f"-XX:SharedArchiveFile={path}" if _trusted(path) else ""


def archive_path(support_jar: str, role: str, key: str) -> Path:
    return Path(support_jar).parent / f"spark-{role}-{key}.jsa"


def _key(spark_home: str, support_jar: str, java_opts: str) -> str:
    """What an archive depends on: the JVM, Spark's jars, our jar (its folder is named after
    its build) and the daemons' flags. A JVM refuses a mismatched archive anyway; the name
    keeps a new combination from being stuck with an old file."""
    java = os.path.realpath(shutil.which("java") or "java")
    try:
        java_stamp = str(os.stat(java).st_mtime_ns)
    except OSError:
        java_stamp = ""
    jars = Path(spark_home) / "jars"
    spark_stamp = str(jars.stat().st_mtime_ns) if jars.exists() else ""
    text = "\n".join([java, java_stamp, str(jars), spark_stamp, support_jar, " ".join(java_opts.split())])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _trusted(path: Path) -> bool:
    """Ours, and writable by nobody else (nor is its folder)."""
    try:
        st, folder = path.stat(), path.parent.stat()
    except OSError:
        return False
    uid = os.geteuid()
    return (st.st_uid == uid and folder.st_uid == uid and st.st_size > 0
            and not st.st_mode & 0o022 and not folder.st_mode & 0o022)


def _record_quietly(spark_home: str, support_jar: str, java_opts: str, key: str) -> None:
    started = time.monotonic()
    try:
        record(spark_home, support_jar, java_opts, key)
        log.info("recorded Spark's class-data archives in %.1f s", time.monotonic() - started)
    except Exception as exc:  # a missing archive only costs start-up time
        log.warning("could not record Spark's class-data archives: %s", exc)
        with _lock:
            _recording.discard(key)


def record(spark_home: str, support_jar: str, java_opts: str, key: str, timeout_s: float = 180.0) -> None:
    """Start a master and a worker with `-XX:ArchiveClassesAtExit`, wait until the worker has
    registered and both web UIs answered, stop them, and keep the archives they wrote."""
    folder = Path(support_jar).parent
    for stale in folder.glob(".recording-*"):  # left by a service manager killed mid-way
        shutil.rmtree(stale, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(prefix=".recording-", dir=folder))
    processes: list[subprocess.Popen] = []
    try:
        token = secrets.token_urlsafe(24)
        (scratch / "ui.token").write_text(token)
        properties = scratch / "spark.properties"
        properties.write_text(
            f"spark.ui.filters disco.ui.TokenFilter\n"
            f"spark.disco.ui.TokenFilter.param.tokenFile {scratch / 'ui.token'}\n"
            "spark.master.rest.enabled false\n")
        rpc, ui, worker_rpc, worker_ui = _free_ports(4)
        headers = {"Authorization": f"Bearer {token}"}
        master_url = f"http://127.0.0.1:{ui}/json/"
        processes.append(_start(spark_home, support_jar, java_opts, scratch, "master",
                                ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                 "--port", str(rpc), "--webui-port", str(ui),
                                 "--properties-file", str(properties)]))
        _wait(lambda: _json(master_url, headers) is not None, processes, timeout_s, "master")
        processes.append(_start(spark_home, support_jar, java_opts, scratch, "worker",
                                ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                 "--port", str(worker_rpc), "--webui-port", str(worker_ui),
                                 "--cores", "1", "--memory", "256m", "--work-dir", str(scratch / "work"),
                                 "--properties-file", str(properties), f"spark://127.0.0.1:{rpc}"]))
        _wait(lambda: (_json(master_url, headers) or {}).get("aliveworkers", 0) >= 1, processes,
              timeout_s, "worker")
        _wait(lambda: _json(f"http://127.0.0.1:{worker_ui}/json/", headers) is not None, processes,
              timeout_s, "worker UI")
        for proc in reversed(processes):  # the JVM writes its archive as it exits
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        for role in ROLES:
            recorded = scratch / f"{role}.jsa"
            if not recorded.exists() or recorded.stat().st_size == 0:
                raise RuntimeError(f"the {role} wrote no archive (see {scratch / role}.log)")
            recorded.chmod(0o644)
            os.replace(recorded, archive_path(support_jar, role, key))
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(scratch, ignore_errors=True)


def _start(spark_home: str, support_jar: str, java_opts: str, scratch: Path, role: str,
           args: list[str]) -> subprocess.Popen:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(scratch),
           "SPARK_HOME": spark_home, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(scratch),
           "SPARK_DAEMON_CLASSPATH": support_jar, "SPARK_DAEMON_MEMORY": "256m",
           "SPARK_DAEMON_JAVA_OPTS": f"{java_opts} -XX:ArchiveClassesAtExit={scratch / role}.jsa"}
    if "JAVA_HOME" in os.environ:
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    with open(scratch / f"{role}.log", "wb") as out:
        return subprocess.Popen([sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()),
                                 f"{spark_home}/bin/spark-class", *args],
                                env=env, cwd=scratch, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _wait(holds, processes: list[subprocess.Popen], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if holds():
            return
        if any(p.poll() is not None for p in processes):
            raise RuntimeError(f"a daemon exited while waiting for the {what}")
        time.sleep(0.2)
    raise RuntimeError(f"the {what} did not come up within {timeout_s:.0f} s")


def _json(url: str, headers: dict[str, str]) -> dict | None:
    try:
        answer = httpx.get(url, headers=headers, timeout=2.0)
        return answer.json() if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
