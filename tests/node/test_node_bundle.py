"""The node bundle: typed, JSON both ways, and bad input named clearly (no processes)."""

from __future__ import annotations

import hashlib
import json

import pytest

from disco.node.bundle import BundleError, Download, NodeBundle, PythonEnv
from disco.node.launch import Launch, LaunchError

TOKEN_HASH = hashlib.sha256(b"t").hexdigest()


def make(**fields: object) -> NodeBundle:
    values: dict[str, object] = dict(cluster_id="c-1", node="worker-0", role="worker", host="10.1.2.3",
                                     log_token_sha256=TOKEN_HASH)
    values.update(fields)
    return NodeBundle(**values)  # type: ignore[arg-type]


def test_round_trip_through_json() -> None:
    bundle = make(os_packages=["openjdk-17-jre-headless"],
                  python=PythonEnv(requirements=["pyspark==3.5.1"], index_url="https://pypi.example/simple"),
                  downloads=[Download("https://example.org/x.jar", "a" * 64, "lib/x.jar")],
                  files={"conf/spark-defaults.conf": "spark.ui.port 8080\n"})
    text = bundle.to_json()
    assert "\n" not in text  # the bootstrap script embeds it in a here-document
    assert NodeBundle.from_json(text) == bundle
    assert json.loads(text)["prefix"] == "/opt/disco"
    assert bundle.node_dir == "/opt/disco/clusters/c-1/worker-0"


@pytest.mark.parametrize(("fields", "message"), [
    ({"node": "../x"}, "node"),
    ({"prefix": "relative/dir"}, "prefix"),
    ({"os_packages": ["java; rm -rf /"]}, "os package"),
    ({"python": PythonEnv(requirements=["--index-url=http://evil"])}, "pip options"),
    ({"python": PythonEnv(index_url="https://user:pw@pypi.example/simple")}, "credentials"),
    ({"downloads": [Download("https://example.org/x", "BAD", "x")]}, "sha256"),
    ({"downloads": [Download("https://example.org/x", "a" * 64, "../../etc/passwd")]}, "relative path"),
    ({"downloads": [Download("ftp://example.org/x", "a" * 64, "x")]}, "http(s) URL"),
    ({"files": {"/etc/motd": "x"}}, "relative path"),
    ({"log_token_sha256": "plain-token"}, "log_token_sha256"),
    ({"log_port": 70000}, "log_port"),
])
def test_bad_bundles_are_refused_with_the_field_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        make(**fields)
    assert "pw" not in str(caught.value)  # an error never quotes a credential


def test_unknown_fields_and_other_formats_are_refused() -> None:
    data = make().to_dict()
    with pytest.raises(BundleError, match="unknown bundle fields: secret"):
        NodeBundle.from_dict({**data, "secret": "x"})
    with pytest.raises(BundleError, match="format 2"):
        NodeBundle.from_dict({**data, "format": 2})
    with pytest.raises(BundleError, match="not JSON"):
        NodeBundle.from_json("{")


@pytest.mark.parametrize(("launch", "message"), [
    ({"name": "a b", "argv": ["x"]}, "name"),
    ({"name": "a", "argv": []}, "argv"),
    ({"name": "a", "argv": ["x"], "env": {"1X": "y"}}, "env"),
    ({"name": "a", "argv": ["x"], "files": {"../k": "y"}}, "relative path"),
    ({"name": "a", "argv": ["x"], "wait_for_tcp": "host"}, "host:port"),
    ({"name": "a", "argv": ["x"], "restart": {"tries": 1}}, "bad launch"),
])
def test_bad_launches_are_refused(launch: dict[str, object], message: str) -> None:
    with pytest.raises(LaunchError, match=message):
        Launch.from_dict(launch)
