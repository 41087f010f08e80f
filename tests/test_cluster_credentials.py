"""Authenticated cluster endpoints: a client without the cluster's credentials gets nothing
done; the credentials the tenant gets from the API (`disco cluster env`, disco.connect) work."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import psutil
import pytest

from disco.cluster.credentials import new_credentials, self_signed_certificate
from disco.frameworks.model import ClientDef, FrameworkDef
from sm_fixtures import ServiceManager, cluster_processes, wait_state, wait_until

CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith(("DASK_", "SPARK_", "DISCO_", "PYSPARK_"))}


def disco_env(sm: ServiceManager, token: str, config_home: Path) -> dict[str, str]:
    return {**CLEAN_ENV, "DISCO_URL": sm.url, "DISCO_TOKEN": token, "XDG_CONFIG_HOME": str(config_home)}


def cluster_env(sm: ServiceManager, token: str, config_home: Path, ref: str,
                *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "disco.cli.main", "cluster", "env", ref, *extra],
                          env=disco_env(sm, token, config_home), capture_output=True, text=True, timeout=60)


def run_after_eval(exports: str, code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """What a user does: eval "$(disco cluster env ID)" in a shell, then run Python there."""
    return subprocess.run(["bash", "-c", 'eval "$1" && exec "$2" -c "$3"', "bash", exports, sys.executable, code],
                          env=CLEAN_ENV, capture_output=True, text=True, timeout=timeout)


def secrets_of(sm: ServiceManager, cluster_id: str) -> dict[str, str]:
    from disco.cluster.secrets import SecretBox
    store = sm.store()
    try:
        sealed = store.get_cluster(cluster_id).secrets_enc
    finally:
        store.close()
    return SecretBox(sm.data_dir).open(sealed)["credentials"]


def assert_nowhere_in_clear(sm: ServiceManager, api: httpx.Client, cluster_id: str,
                            credentials: dict[str, str]) -> None:
    """The credentials are in no API answer but their own, no event, log or command line."""
    values = [credentials["tls_key"].splitlines()[1], credentials["spark_secret"], credentials["token"]]
    public = [api.get(f"/api/v1/clusters/{cluster_id}").text, api.get("/api/v1/clusters").text,
              api.get(f"/api/v1/clusters/{cluster_id}/deployment.log").text, (sm.data_dir / "sm.log").read_text()]
    for entry in api.get(f"/api/v1/clusters/{cluster_id}/logs").json():
        public.append(api.get(entry["url"]).text)
    public += [" ".join(p.cmdline()) for p in cluster_processes(cluster_id)]
    raw_db = b"".join(path.read_bytes() for path in sm.data_dir.glob("disco.sqlite*"))
    for value in values:
        assert not any(value in text for text in public)
        assert value.encode() not in raw_db  # sealed at rest


# -- quick checks of the pieces ---------------------------------------------------------------

def test_each_cluster_gets_its_own_credentials() -> None:
    from cryptography import x509
    one, two = new_credentials("a"), new_credentials("b")
    assert all(one[key] != two[key] for key in one)
    cert = x509.load_pem_x509_certificate(one["tls_cert"].encode())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca  # its own CA
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["disco-a"]
    assert len(one["token"]) >= 40 and all("!" <= ch <= "~" for ch in one["token"])


@pytest.mark.parametrize("path", ["/etc/passwd", "../up", "a/../../b", ".hidden", "a//b", ""])
def test_framework_files_stay_inside_the_directory(path: str) -> None:
    with pytest.raises(ValueError, match="must be relative"):
        FrameworkDef(name="x", files={path: "content"})
    with pytest.raises(ValueError, match="must be relative"):
        ClientDef(files={path: "content"})


def test_client_file_env_must_name_a_written_file() -> None:
    with pytest.raises(ValueError, match="neither a file nor a directory"):
        ClientDef(files={"conf/a.pem": "x"}, file_env={"CA": "conf/b.pem"})
    ClientDef(files={"conf/a.pem": "x"}, file_env={"CA": "conf/a.pem", "DIR": "conf", "HERE": "."})


# -- Dask ----------------------------------------------------------------------------------

DASK_JOB = "import distributed; c = distributed.Client(timeout=20); print('SUM', c.submit(sum, range(10)).result())"


@pytest.mark.slow
def test_dask_answers_only_holders_of_the_cluster_certificate(sm: ServiceManager, api: httpx.Client,
                                                              tmp_path: Path) -> None:
    made = api.post("/api/v1/clusters", json={"name": "tls-dask", "frameworks": ["dask"], "workers": 1})
    assert made.status_code == 201, made.text
    cluster = wait_state(api, made.json()["id"], {"ready", "failed"}, timeout=90)
    assert cluster["state"] == "ready", cluster["status_reason"]
    address = cluster["outputs"]["frameworks"]["dask"]["scheduler_address"]
    assert address.startswith("tls://")

    # Tenant-scoped: another tenant learns nothing, not even that the cluster exists.
    with sm.client("tenant-b") as other:
        refused = other.get(f"/api/v1/clusters/{cluster['id']}/credentials")
    assert refused.status_code == 404 and refused.json()["error"]["code"]
    assert httpx.get(f"{sm.url}/api/v1/clusters/{cluster['id']}/credentials", trust_env=False).status_code == 401
    answer = api.get(f"/api/v1/clusters/{cluster['id']}/credentials")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    dask = answer.json()["frameworks"]["dask"]
    assert dask["env"]["DASK_SCHEDULER_ADDRESS"] == address
    credentials = secrets_of(sm, cluster["id"])
    assert dask["files"]["cluster.pem"] == credentials["tls_cert"]

    # Without the certificate: plain TCP, TLS without a client certificate, and TLS with a
    # certificate of one's own all fail.
    plain = address.replace("tls://", "tcp://")
    for code in (f"import distributed; distributed.Client({plain!r}, timeout=5)",
                 f"import distributed; distributed.Client({address!r}, timeout=5)"):
        attempt = subprocess.run([sys.executable, "-c", code], env=CLEAN_ENV, capture_output=True, text=True,
                                 timeout=60)
        assert attempt.returncode != 0 and "SUM" not in attempt.stdout
    cert, key = self_signed_certificate("intruder")
    (tmp_path / "own.pem").write_text(cert)
    (tmp_path / "own.key").write_text(key)
    intruder = textwrap.dedent(f"""
        import distributed
        from distributed.security import Security
        own = Security(tls_ca_file={str(tmp_path / 'own.pem')!r}, tls_client_cert={str(tmp_path / 'own.pem')!r},
                       tls_client_key={str(tmp_path / 'own.key')!r}, require_encryption=True)
        distributed.Client({address!r}, security=own, timeout=5)
    """)
    attempt = subprocess.run([sys.executable, "-c", intruder], env=CLEAN_ENV, capture_output=True, text=True,
                             timeout=60)
    assert attempt.returncode != 0, attempt.stdout

    # With `eval "$(disco cluster env NAME)"`, a Client() with no argument runs tasks.
    config_home = tmp_path / "config"
    token = sm.token()
    printed = cluster_env(sm, token, config_home, "tls-dask")
    assert printed.returncode == 0, printed.stderr
    assert f"export DASK_SCHEDULER_ADDRESS={address}" in printed.stdout
    ran = run_after_eval(printed.stdout, DASK_JOB)
    assert "SUM 45" in ran.stdout, ran.stderr[-2000:]

    # The files are private; --output json says the same as the export lines.
    private = config_home / "disco" / "clusters" / cluster["id"]
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    for path in private.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    data = json.loads(cluster_env(sm, token, config_home, cluster["id"][:8], "--output", "json").stdout)
    assert data["id"] == cluster["id"] and data["directory"] == str(private)
    assert data["env"]["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"] == str(private / "dask" / "cluster.key")
    assert (private / "dask" / "cluster.key").read_text() == credentials["tls_key"]

    # The Python helper does the same in-process.
    helper = textwrap.dedent(f"""
        from disco.connect import dask_client
        with dask_client({cluster['id']!r}, timeout=20) as client:
            print("SUM", client.submit(sum, range(10)).result())
    """)
    ran = subprocess.run([sys.executable, "-c", helper], env=disco_env(sm, token, tmp_path / "config2"),
                         capture_output=True, text=True, timeout=120)
    assert "SUM 45" in ran.stdout, ran.stderr[-2000:]

    # Errors: an unknown cluster, and the other tenant's cluster, are "not found" for the CLI too.
    missing = cluster_env(sm, token, config_home, "no-such-cluster", "--output", "json")
    assert missing.returncode == 2 and json.loads(missing.stdout)["error"]["code"] == "no_such_cluster"
    foreign = cluster_env(sm, sm.token("tenant-b"), tmp_path / "config-b", cluster["id"])
    assert foreign.returncode == 2 and not (tmp_path / "config-b" / "disco" / "clusters" / cluster["id"]).exists()

    assert_nowhere_in_clear(sm, api, cluster["id"], credentials)
    # `disco cluster delete` also removes the files `disco cluster env` wrote.
    deleted = subprocess.run([sys.executable, "-m", "disco.cli.main", "cluster", "delete", "tls-dask", "--wait"],
                             env=disco_env(sm, token, config_home), capture_output=True, text=True, timeout=90)
    assert deleted.returncode == 0, deleted.stderr
    assert not private.exists()
    gone = api.get(f"/api/v1/clusters/{cluster['id']}/credentials")
    assert gone.status_code == 409 and gone.json()["error"]["code"] == "invalid_state"


# -- Spark ---------------------------------------------------------------------------------

SPARK_JOB = textwrap.dedent("""
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.appName("{name}").config("spark.executor.memory", "512m")
             .config("spark.ui.enabled", "false"){master}.getOrCreate())
    words = spark.sparkContext.parallelize(["a b", "b c", "c c"] * 100, 4)
    print("RESULT", sorted(words.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(lambda x, y: x + y).collect()))
    spark.stop()
""")


def spark_apps(master_ui: str, ui_token: str) -> list[str]:
    state = httpx.get(f"{master_ui.rstrip('/')}/json/", headers={"Authorization": f"Bearer {ui_token}"},
                      trust_env=False).json()
    return [app["name"] for app in state["activeapps"] + state["completedapps"]]


@pytest.mark.slow
def test_spark_refuses_drivers_without_the_secret(sm: ServiceManager, tmp_path: Path) -> None:
    token = sm.token("spark-user")
    with sm.client("spark-user") as api:
        made = api.post("/api/v1/clusters", json={"frameworks": [
            {"name": "spark", "properties": {"worker_memory": "768m"}}], "workers": 1})
        assert made.status_code == 201, made.text
        cluster = wait_state(api, made.json()["id"], {"ready", "failed"}, timeout=240)
        assert cluster["state"] == "ready", cluster["status_reason"]
        master_url = cluster["outputs"]["frameworks"]["spark"]["master_url"]
        master_ui = cluster["outputs"]["frameworks"]["spark"]["web_uis"]["master_ui"]
        ui_token = api.get(f"/api/v1/clusters/{cluster['id']}/credentials").json()[
            "frameworks"]["spark"]["env"]["DISCO_UI_TOKEN"]

        # A driver with only the master's address never gets an application registered.
        driver = subprocess.Popen(
            [sys.executable, "-c", SPARK_JOB.format(name="intruder", master=f".master({master_url!r})"
                                                    ".config('spark.driver.host', '127.0.0.1')")],
            env={**CLEAN_ENV, "SPARK_LOCAL_IP": "127.0.0.1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        master_log = f"/api/v1/clusters/{cluster['id']}/logs/master/spark-master"
        try:
            # Spark's driver retries its registration for a minute; the master's log says why
            # it is refused at the first attempt.
            wait_until(lambda: "Expected SaslMessage" in api.get(master_log).text, timeout=90,
                       what="the master refusing an unauthenticated driver")
        finally:
            driver.kill()
            out, _ = driver.communicate()
        assert "RESULT" not in out
        assert "intruder" not in spark_apps(master_ui, ui_token)

        # With the exports of `disco cluster env`, a builder with no master and no secret runs.
        printed = cluster_env(sm, token, tmp_path / "config", cluster["id"])
        assert printed.returncode == 0, printed.stderr
        assert "SPARK_CONF_DIR" in printed.stdout and "spark_secret" not in printed.stdout
        conf = (tmp_path / "config" / "disco" / "clusters" / cluster["id"] / "spark" / "spark-defaults.conf")
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
        credentials = secrets_of(sm, cluster["id"])
        assert f"spark.authenticate.secret {credentials['spark_secret']}" in conf.read_text()
        job = subprocess.Popen(["bash", "-c", 'eval "$1" && exec "$2" -c "$3"', "bash", printed.stdout,
                                sys.executable, SPARK_JOB.format(name="tenant", master="")],
                               env=CLEAN_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # While it runs, no process shows the secret on its command line.
        seen = []
        while job.poll() is None and len(seen) < 200:
            for proc in psutil.Process(job.pid).children(recursive=True):
                try:
                    seen.append(" ".join(proc.cmdline()))
                except psutil.Error:
                    pass
            try:
                job.wait(0.2)
            except subprocess.TimeoutExpired:
                pass
        out, err = job.communicate(timeout=180)
        assert "RESULT [('a', 100), ('b', 200), ('c', 300)]" in out, err[-3000:]
        assert any("java" in line for line in seen)
        assert not any(credentials["spark_secret"] in line for line in seen)
        assert "tenant" in spark_apps(master_ui, ui_token)
        assert_nowhere_in_clear(sm, api, cluster["id"], credentials)
        assert api.delete(f"/api/v1/clusters/{cluster['id']}").status_code == 202
        wait_state(api, cluster["id"], {"deleted"}, timeout=60)


# -- Map/Reduce ------------------------------------------------------------------------------

WORDCOUNT = textwrap.dedent("""
    from disco.core import Job, result_iterator

    def map(line, params):
        for word in line.split():
            yield word, 1

    if __name__ == "__main__":
        job = Job().run(input=["raw://a b", "raw://b c c"], map=map)
        print("RESULT", sorted(result_iterator(job.wait())))
""")


@pytest.mark.slow
def test_mapreduce_answers_only_the_cluster_token(sm: ServiceManager, api: httpx.Client, tmp_path: Path) -> None:
    made = api.post("/api/v1/clusters", json={"frameworks": ["mapreduce"], "workers": 1})
    assert made.status_code == 201, made.text
    cluster = wait_state(api, made.json()["id"], {"ready", "failed"}, timeout=90)
    assert cluster["state"] == "ready", cluster["status_reason"]  # its readiness check sent the token
    master_url = cluster["outputs"]["frameworks"]["mapreduce"]["master_url"]
    credentials = secrets_of(sm, cluster["id"])

    assert httpx.get(f"{master_url}/disco/ctrl/nodeinfo", trust_env=False).status_code == 401
    wrong = httpx.get(f"{master_url}/disco/ctrl/nodeinfo", headers={"Authorization": "Bearer not-the-token"},
                      trust_env=False)
    assert wrong.status_code == 401
    script = tmp_path / "count.py"
    script.write_text(WORDCOUNT)
    refused = subprocess.run([sys.executable, str(script)], env={**CLEAN_ENV, "DISCO_MASTER": master_url},
                             capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert refused.returncode != 0 and "RESULT" not in refused.stdout

    printed = cluster_env(sm, sm.token(), tmp_path / "config", cluster["id"])
    assert printed.returncode == 0, printed.stderr
    assert f"export DISCO_MASTER={master_url}" in printed.stdout
    ran = subprocess.run(["bash", "-c", 'eval "$1" && exec "$2" "$3"', "bash", printed.stdout, sys.executable,
                          str(script)], env=CLEAN_ENV, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "RESULT [('a', 1), ('b', 1), ('b', 1), ('c', 1), ('c', 1)]" in ran.stdout, ran.stderr[-3000:]
    assert_nowhere_in_clear(sm, api, cluster["id"], credentials)
    assert api.delete(f"/api/v1/clusters/{cluster['id']}").status_code == 202
    wait_state(api, cluster["id"], {"deleted"}, timeout=60)
