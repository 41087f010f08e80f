"""The schema of `framework.yaml`, as pydantic models (unknown keys are errors)."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from disco.errors import InvalidProperty

NAME_RE = r"^[a-z][a-z0-9_-]{0,31}$"
# A file a framework places in a node's (or a client's) directory: a relative path of plain
# segments, so that no key can climb out with `..` or an absolute path.
FILE_PATH_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PropertyDef(Strict):
    type: Literal["int", "float", "bool", "str"]
    default: Any = None
    description: str = ""
    min: float | None = None
    max: float | None = None
    choices: list[str] | None = None
    pattern: str | None = None
    secret: bool = False

    @model_validator(mode="after")
    def _constraints_fit_type(self) -> "PropertyDef":
        if (self.min is not None or self.max is not None) and self.type not in ("int", "float"):
            raise ValueError(f"min/max apply to int and float properties, not {self.type}")
        if self.pattern is not None:
            if self.type != "str":
                raise ValueError("pattern applies to str properties only")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"invalid pattern {self.pattern!r}: {exc}") from None
        if self.choices is not None and self.type != "str":
            raise ValueError("choices apply to str properties only")
        return self

    def coerce(self, framework: str, name: str, value: Any) -> Any:
        """Turn a JSON or OCCI (string) value into this property's type, or explain why not."""
        where = f"{framework}.{name}"
        try:
            result = _COERCE[self.type](value)
        except (TypeError, ValueError):
            raise InvalidProperty(
                f"property {where} must be of type {self.type}, got {value!r}",
                details={"property": where, "expected": self.type},
            ) from None
        if self.min is not None and result < self.min:
            raise InvalidProperty(f"property {where} must be >= {self.min:g}, got {result}",
                                  details={"property": where, "min": self.min})
        if self.max is not None and result > self.max:
            raise InvalidProperty(f"property {where} must be <= {self.max:g}, got {result}",
                                  details={"property": where, "max": self.max})
        if self.choices is not None and result not in self.choices:
            raise InvalidProperty(f"property {where} must be one of {self.choices}, got {result!r}",
                                  details={"property": where, "choices": self.choices})
        if self.pattern is not None and not re.fullmatch(self.pattern, str(result)):
            raise InvalidProperty(f"property {where} must match {self.pattern!r}, got {result!r}",
                                  details={"property": where, "pattern": self.pattern})
        return result


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ValueError(value)


_INT_TEXT = re.compile(r"[+-]?[0-9]{1,18}")
_FLOAT_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _to_int(value: Any) -> int:
    # Python's int() also takes "1_0" and non-ASCII digits; a property value should not.
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(value)
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(value)
    if isinstance(value, str) and not _FLOAT_TEXT.fullmatch(value.strip()):
        raise ValueError(value)
    result = float(value)
    if not math.isfinite(result):  # nan would pass every min/max check
        raise ValueError(value)
    return result


def _to_str(value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(value)
    text = str(value)
    # Properties end up on command lines and in config files: no control characters.
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(value)
    return text


_COERCE = {"int": _to_int, "float": _to_float, "bool": _to_bool, "str": _to_str}


def _check_file_paths(files: dict[str, str]) -> dict[str, str]:
    for path in files:
        if not FILE_PATH_RE.fullmatch(path):
            raise ValueError(f"file path {path!r} must be relative: '/'-separated names of letters, "
                             "digits, '_', '-' and '.', none starting with '.'")
    return files


FilePaths = Annotated[dict[str, str], AfterValidator(_check_file_paths)]


class PortDef(Strict):
    port: int = Field(ge=1, le=65535)
    role: Literal["master", "worker"]
    scheme: str = "tcp"
    web: bool = False
    path: str = "/"
    description: str = ""
    # With several masters (the spec's `masters`, up to the framework's max_masters), master
    # i (from 0) listens on port + i: the port is opened and shown once per master.
    per_master: bool = False


class ProcessDef(Strict):
    name: str = Field(pattern=NAME_RE)
    command: list[str] = Field(min_length=1)
    env: dict[str, str] = {}
    # Start this process only once the address accepts TCP connections: Spark workers
    # otherwise fall into a registration back-off of up to 15 s when they beat the master.
    wait_for_tcp: str | None = None
    # For `{{ python }} -m module …` commands: modules a provider may import ahead of time
    # and fork the process from (the local provider does), saving each process's imports.
    preload: list[str] = []
    # "module:function" calls a preloaded process makes first, for modules that read the
    # environment when imported (e.g. dask.config:refresh).
    after_fork: list[str] = []
    # Files this process reads (relative path under the node's directory -> templated text),
    # written privately (0600) before it starts; `{{ credentials.… }}` may appear here.
    files: FilePaths = {}
    # Run once per master of the spec's `masters` (master role only): the i-th (from 0) sees
    # `instance.index` = i, is named <framework>-<name>-<i+1> past the first, and templates
    # give each its own port and data (docs/frameworks.md).
    per_master: bool = False


class RoleDef(Strict):
    processes: list[ProcessDef] = []


SHA256_RE = r"^[0-9a-f]{64}$"
SHA512_RE = r"^[0-9a-f]{128}$"


class DownloadDef(Strict):
    """A file a node fetches before its processes start, checked against its SHA-256 or
    SHA-512 (Apache publishes SHA-512 only). The URL is `url`, or `base` + "/" + `path`, where
    an admin's DISCO_DOWNLOAD_MIRROR replaces `base` (private clouds without internet)."""

    url: str | None = Field(default=None, pattern=r"^https?://")
    base: str | None = Field(default=None, pattern=r"^https?://[^\s]*[^/\s]$")
    path: str | None = Field(default=None, pattern=f"^{FILE_PATH_RE.pattern}$")
    sha256: str | None = Field(default=None, pattern=SHA256_RE)
    sha512: str | None = Field(default=None, pattern=SHA512_RE)
    # Where it lands, relative to the node's software prefix (e.g. /opt/disco).
    dest: str = Field(pattern=f"^{FILE_PATH_RE.pattern}$")
    # A .tar.gz unpacked into the directory `dest` (its single top folder kept), not copied.
    unpack: bool = False

    @model_validator(mode="after")
    def _one_source_one_checksum(self) -> "DownloadDef":
        if (self.url is None) == (self.base is None or self.path is None):
            raise ValueError("a download needs either url, or base and path")
        if self.url is not None and (self.base or self.path):
            raise ValueError("a download takes url or base+path, not both")
        if self.sha256 and self.sha512:
            raise ValueError("a download takes sha256 or sha512, not both")
        return self

    @property
    def file_name(self) -> str:
        return (self.url or self.path or "").rstrip("/").rsplit("/", 1)[-1]


class InstallDef(Strict):
    """What a host made from scratch needs before this framework's processes can run there
    (the local provider has it already: it runs where the service manager runs)."""

    # Debian/Ubuntu package names, installed with apt when missing.
    os_packages: list[str] = []
    # Python distributions installed into the node's venv, pinned to the version installed
    # beside the service manager (so a node runs what the service manager was tested with).
    python_packages: list[str] = []
    downloads: list[DownloadDef] = []


CONFIG_NAME_RE = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"


class ConfigFileDef(Strict):
    """A configuration file rendered from a map of keys to (templated) values in its
    software's own format, so that users' raw overrides merge into it key by key
    (config_files.py). A value that renders to "" is left out of the file."""

    path: str = Field(pattern=f"^{FILE_PATH_RE.pattern}$")
    format: Literal["hadoop-xml", "properties", "yaml"]
    roles: list[Literal["master", "worker"]] = ["master", "worker"]
    values: dict[str, Any] = {}
    # Keys no override may set: what keeps the cluster's endpoints closed (authentication,
    # its secret, the addresses daemons bind to).
    locked: list[str] = []


class HttpCall(Strict):
    method: Literal["GET", "POST", "PUT", "DELETE"] = "POST"
    url: str
    json_body: Any = Field(default=None, alias="json")
    headers: dict[str, str] = {}
    timeout_s: float = 30.0


class CommandCall(Strict):
    """A command run on the master's node, with the framework's environment there (so a
    framework's own client, with the cluster's credentials, can do what needs doing)."""

    command: list[str] = Field(min_length=1)
    timeout_s: float = Field(default=60.0, gt=0)


class Readiness(Strict):
    """A framework-level check: ready means the framework says so, not that processes run."""

    kind: Literal["http_json", "http", "command", "none"] = "none"
    url: str | None = None
    # http_json with several answers: each URL's JSON is `data.<name>` (e.g. a NameNode's and
    # a ResourceManager's counts); ready_when sees them all.
    urls: dict[str, str] = {}
    ready_when: str | None = None
    status_text: str | None = None
    # Sent with http and http_json checks, e.g. the cluster's token:
    # {Authorization: "Bearer {{ credentials.token }}"}.
    headers: dict[str, str] = {}
    command: list[str] | None = None
    timeout_s: float = Field(default=120.0, gt=0)
    interval_s: float = Field(default=0.2, gt=0)

    @model_validator(mode="after")
    def _fields_for_kind(self) -> "Readiness":
        if self.kind == "http_json" and not ((self.url or self.urls) and self.ready_when):
            raise ValueError("readiness kind http_json needs url and ready_when (or urls and ready_when)")
        if self.url and self.urls:
            raise ValueError("readiness takes url or urls, not both")
        if self.kind == "http" and not self.url:
            raise ValueError("readiness kind http needs url")
        if self.kind == "command" and not self.command:
            raise ValueError("readiness kind command needs command")
        return self


class Activity(Strict):
    """How to tell that a cluster is in use, so idle timeouts never stop a busy one."""

    url: str
    busy_when: str
    headers: dict[str, str] = {}
    # Asked of every master (url rendered with instance.index = 0, 1, ...): busy if any is.
    per_master: bool = False


class ClientDef(Strict):
    """What a tenant's client needs to connect (GET /clusters/{id}/credentials and
    `disco cluster env`), rendered with the cluster's credentials: `files` are written in a
    private directory of the client's, `env` are plain variables, and `file_env` variables
    name a path in that directory ("." for the directory itself)."""

    env: dict[str, str] = {}
    files: FilePaths = {}
    file_env: dict[str, str] = {}

    @model_validator(mode="after")
    def _file_env_names_files(self) -> "ClientDef":
        dirs = {"."} | {"/".join(p.split("/")[:i]) for p in self.files for i in range(1, p.count("/") + 1)}
        for name, path in self.file_env.items():
            if path not in self.files and path not in dirs:
                raise ValueError(f"file_env {name} names {path!r}, which is neither a file nor a "
                                 "directory of client.files")
        return self


class FrameworkDef(Strict):
    name: str = Field(pattern=NAME_RE)
    version: str = ""
    # A Python distribution whose installed version is this framework's version.
    version_from: str | None = None
    description: str = ""
    depends: list[str] = []
    # How many masters the framework can run over one set of workers (the spec's `masters`;
    # a spec asking for more than a framework of it declares is refused, naming it).
    max_masters: int = Field(default=1, ge=1, le=16)
    properties: dict[str, PropertyDef] = {}
    ports: dict[str, PortDef] = {}
    env: dict[str, str] = {}
    # Files every process of the framework reads, as ProcessDef.files.
    files: FilePaths = {}
    # Values computed per node from its capacity (node.memory_mb, node.cpus) and the cluster,
    # in order (each sees the ones before it as derived.<name>); numbers come out as ints.
    derived: dict[str, str] = {}
    # Configuration files by the name users' overrides address them with (e.g. hdfs-site.xml).
    config_files: dict[Annotated[str, Field(pattern=CONFIG_NAME_RE)], ConfigFileDef] = {}
    roles: dict[Literal["master", "worker"], RoleDef] = {}
    install: InstallDef = InstallDef()
    readiness: Readiness = Readiness()
    scale_down: HttpCall | CommandCall | None = None
    activity: Activity | None = None
    outputs: dict[str, str] = {}
    client: ClientDef | None = None

    @model_validator(mode="after")
    def _defaults_are_valid(self) -> "FrameworkDef":
        for prop_name, prop in self.properties.items():
            if prop.default is not None:
                try:
                    prop.coerce(self.name, prop_name, prop.default)
                except InvalidProperty as exc:  # a packaging bug: report it as a schema error
                    raise ValueError(f"default of {prop_name}: {exc.message}") from None
        return self

    @model_validator(mode="after")
    def _per_master_on_masters(self) -> "FrameworkDef":
        worker = self.roles.get("worker")
        if worker is not None and any(p.per_master for p in worker.processes):
            raise ValueError("per_master is for processes of the master role")
        if any(p.per_master and p.role != "master" for p in self.ports.values()):
            raise ValueError("per_master is for ports of the master role")
        return self

    @model_validator(mode="after")
    def _config_paths_are_free(self) -> "FrameworkDef":
        paths = [c.path for c in self.config_files.values()]
        clash = sorted({p for p in paths if paths.count(p) > 1} | (set(paths) & set(self.files)))
        if clash:
            raise ValueError(f"config file path(s) used twice: {', '.join(clash)}")
        for name, config in self.config_files.items():
            if config.format != "yaml":
                bad = [k for k in config.values if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*", k)]
                if bad:
                    raise ValueError(f"config file {name}: keys {bad} are not dotted names")
        return self

    def resolve_properties(self, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with the user's values, each checked against its declaration."""
        unknown = sorted(set(given) - set(self.properties))
        if unknown:
            raise InvalidProperty(
                f"unknown propert{'y' if len(unknown) == 1 else 'ies'} for framework "
                f"{self.name}: {', '.join(unknown)} (known: {', '.join(sorted(self.properties)) or 'none'})",
                code="unknown_property",
                details={"framework": self.name, "unknown": unknown},
            )
        values = {name: prop.default for name, prop in self.properties.items()}
        for name, value in given.items():
            values[name] = self.properties[name].coerce(self.name, name, value)
        return values

    def secret_properties(self) -> set[str]:
        return {name for name, prop in self.properties.items() if prop.secret}
