"""The node bundle: everything a node needs installed and configured for one cluster, as
typed data that travels as JSON (`bundle.json`). It holds no secret: secrets reach the
node as files under the node's `secrets/`, written 0600 by the transport.

    bundle = NodeBundle(cluster_id="6f1c…", node="master", role="master", host="10.0.0.5",
                        os_packages=["openjdk-17-jre-headless"],
                        python=PythonEnv(requirements=["pyspark==3.5.1"]),
                        downloads=[Download(url="https://…/x.jar", sha256="…", dest="lib/x.jar")],
                        log_token_sha256=hashlib.sha256(token).hexdigest())
    text = bundle.to_json();  NodeBundle.from_json(text) == bundle
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any

FORMAT = 1
DEFAULT_PREFIX = "/opt/disco"
DEFAULT_LOG_PORT = 8084
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA512 = re.compile(r"^[0-9a-f]{128}$")
_OS_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+:~-]+)?$")


class BundleError(ValueError):
    """A bundle that cannot be installed as given; the message says which field and why."""


@dataclass(frozen=True)
class Download:
    url: str
    # One checksum of the two: SHA-256, or SHA-512 (all Apache publishes); the other is "".
    sha256: str
    # Relative to the node prefix (e.g. "lib/x.jar"); a directory when `unpack`.
    dest: str
    sha512: str = ""
    # A .tar.gz unpacked into `dest` rather than copied there.
    unpack: bool = False

    @property
    def checksum(self) -> tuple[str, str]:
        """(algorithm, hex digest)."""
        return ("sha512", self.sha512) if self.sha512 else ("sha256", self.sha256)


@dataclass(frozen=True)
class DiscoWheel:
    """disco's own wheel, as built by disco.node.wheel.self_wheel."""
    filename: str
    sha256: str
    version: str


@dataclass(frozen=True)
class PythonEnv:
    # pip requirement strings, pinned to what the service manager runs.
    requirements: list[str] = field(default_factory=list)
    # For private networks: a package index, or a wheelhouse (a directory on the node or a
    # URL of one) that pip takes instead of the index. Neither may carry credentials; a
    # private index's login goes into secrets/pip.conf.
    index_url: str | None = None
    wheelhouse: str | None = None


@dataclass(frozen=True)
class NodeBundle:
    cluster_id: str
    node: str
    role: str
    # The node's address: what its processes and its log server bind to.
    host: str
    prefix: str = DEFAULT_PREFIX
    os_packages: list[str] = field(default_factory=list)
    python: PythonEnv = field(default_factory=PythonEnv)
    downloads: list[Download] = field(default_factory=list)
    # The frameworks' rendered configuration files that hold no secret, relative to work/.
    files: dict[str, str] = field(default_factory=dict)
    disco_wheel: DiscoWheel | None = None
    # SHA-256 (hex) of the cluster token that the log server on log_port asks for.
    log_token_sha256: str = ""
    log_port: int = DEFAULT_LOG_PORT
    format: int = FORMAT

    def __post_init__(self) -> None:
        _check(self)

    @property
    def node_dir(self) -> str:
        return f"{self.prefix.rstrip('/') or ''}/clusters/{self.cluster_id}/{self.node}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        # One line: the bootstrap script embeds it in a here-document.
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeBundle:
        if not isinstance(data, dict):
            raise BundleError("a bundle is a JSON object")
        data = dict(data)
        if data.get("format", FORMAT) != FORMAT:
            raise BundleError(f"bundle format {data.get('format')!r} is not {FORMAT}: "
                              "this node's disco is older or newer than the service manager's")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise BundleError(f"unknown bundle fields: {', '.join(unknown)}")
        try:
            if "python" in data:
                data["python"] = PythonEnv(**_obj(data["python"], "python"))
            if "downloads" in data:
                data["downloads"] = [Download(**_obj(d, "downloads[]")) for d in _list(data["downloads"], "downloads")]
            if data.get("disco_wheel") is not None:
                data["disco_wheel"] = DiscoWheel(**_obj(data["disco_wheel"], "disco_wheel"))
            return cls(**data)
        except TypeError as exc:  # a missing or unknown field of a nested object
            raise BundleError(f"bad bundle: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> NodeBundle:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BundleError(f"bundle is not JSON: {exc}") from None
        return cls.from_dict(data)


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BundleError(f"{where} must be an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise BundleError(f"{where} must be a list")
    return value


def _check(b: NodeBundle) -> None:
    for label, value in (("cluster_id", b.cluster_id), ("node", b.node), ("role", b.role)):
        if not isinstance(value, str) or not _NAME.match(value):
            raise BundleError(f"{label} {value!r} must be 1-64 letters, digits, '_', '.', '-'")
    if not isinstance(b.host, str) or not b.host or any(c in b.host for c in "/ \t\n"):
        raise BundleError(f"host {b.host!r} is not an address")
    if not isinstance(b.prefix, str) or not b.prefix.startswith("/") or ".." in PurePosixPath(b.prefix).parts:
        raise BundleError(f"prefix {b.prefix!r} must be an absolute path")
    for package in _list(b.os_packages, "os_packages"):
        if not isinstance(package, str) or not _OS_PACKAGE.match(package):
            raise BundleError(f"os package {package!r} is not a Debian package name")
    for requirement in _list(b.python.requirements, "python.requirements"):
        if not isinstance(requirement, str) or not requirement.strip() or requirement.lstrip().startswith("-"):
            raise BundleError(f"python requirement {requirement!r} is not a requirement (pip options are not allowed)")
    for url in (b.python.index_url, b.python.wheelhouse):
        if url is not None:
            check_url(url, allow_path=url == b.python.wheelhouse)
    for download in b.downloads:
        check_url(download.url, allow_path=False)
        if bool(download.sha256) == bool(download.sha512):
            raise BundleError(f"{download.url} needs one checksum: sha256 or sha512")
        if download.sha256 and not _SHA256.match(download.sha256):
            raise BundleError(f"sha256 of {download.url} must be 64 lower-case hex digits")
        if download.sha512 and not _SHA512.match(download.sha512):
            raise BundleError(f"sha512 of {download.url} must be 128 lower-case hex digits")
        if not isinstance(download.unpack, bool):
            raise BundleError(f"unpack of {download.url} must be true or false")
        relative_path(download.dest, f"dest of {download.url}")
    for name, content in _obj(b.files, "files").items():
        relative_path(name, "file")
        if not isinstance(content, str):
            raise BundleError(f"file {name!r} must be text")
    if b.disco_wheel is not None:
        if not re.match(r"^disco-[A-Za-z0-9.+_]+-py3-none-any\.whl$", b.disco_wheel.filename):
            raise BundleError(f"disco_wheel {b.disco_wheel.filename!r} is not a wheel of disco")
        if not _SHA256.match(b.disco_wheel.sha256):
            raise BundleError("disco_wheel.sha256 must be 64 lower-case hex digits")
    if not _SHA256.match(b.log_token_sha256 or ""):
        raise BundleError("log_token_sha256 must be the SHA-256 (hex) of the cluster token")
    if not isinstance(b.log_port, int) or not 0 < b.log_port < 65536:
        raise BundleError(f"log_port {b.log_port!r} is not a TCP port")


def relative_path(value: str, label: str) -> PurePosixPath:
    path = PurePosixPath(value) if isinstance(value, str) else None
    if path is None or not value or path.is_absolute() or ".." in path.parts or path == PurePosixPath("."):
        raise BundleError(f"{label} {value!r} must be a relative path inside its directory")
    return path


def check_url(url: str, *, allow_path: bool) -> None:
    """An http(s) URL (or, where allowed, an absolute path) that carries no credentials."""
    if allow_path and url.startswith("/"):
        return
    parts = urllib.parse.urlsplit(url)
    if parts.username or parts.password:
        # A bundle is no place for a secret (and neither is an error message that quotes it).
        raise BundleError("a URL in the bundle carries credentials; put them in secrets/pip.conf instead")
    if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.hostname):
        raise BundleError(f"{url!r} is not an http(s) URL")
