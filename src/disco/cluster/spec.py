"""The typed cluster specification users submit (JSON body, YAML file, CLI flags or OCCI)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from disco.cluster.cloud_entry import check_cloud_entry
from disco.errors import InvalidSpec
from disco.frameworks.catalog import Catalog
from disco.frameworks.config_files import OverrideError, check_override, merge
from disco.frameworks.model import FrameworkDef

HOUR = 3600


class FrameworkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=32)
    properties: dict[str, Any] = {}
    # Raw settings merged into the framework's configuration files, by file name then key
    # (`{"hdfs-site.xml": {"dfs.blocksize": "268435456"}}`); they win over everything else.
    # Stored and shown as given: no place for secrets.
    overrides: dict[str, dict[str, Any]] = {}


class Access(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Who may reach the cluster's ports; providers with a firewall (OpenStack security
    # groups) turn these and the frameworks' declared ports into rules.
    allowed_cidrs: list[str] = ["127.0.0.0/8"]

    @field_validator("allowed_cidrs")
    @classmethod
    def _valid_cidrs(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(cidr, strict=False)) for cidr in value]


class ClusterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    provider: str | None = None
    masters: Annotated[StrictInt, Field(ge=1)] = 1
    workers: Annotated[StrictInt, Field(ge=0)] = 1
    frameworks: list[FrameworkRequest] = []
    access: Access = Access()
    idle_timeout_s: Annotated[StrictInt, Field(ge=0)] = 8 * HOUR
    max_age_s: Annotated[StrictInt, Field(ge=0)] = 7 * 24 * HOUR
    # Infrastructure settings only some providers read (OpenStack images, flavors, networks).
    provider_options: dict[str, str] = {}
    # The OpenStack provider's cloud: one clouds.yaml entry, credentials included. Write-only:
    # sealed with the cluster's secrets at create, never part of the stored spec nor of any
    # answer, event, log or plan (which show describe_cloud() of it at most).
    cloud: dict[str, Any] | None = None

    @field_validator("cloud", mode="before")
    @classmethod
    def _checked_cloud(cls, value: Any) -> Any:
        # InvalidSpec (not ValueError) passes through pydantic as it is: its own code
        # (invalid_cloud), and no pydantic error that could quote the entry.
        return None if value is None else check_cloud_entry(value)

    def __repr__(self) -> str:
        # A spec may be printed by a traceback or a debug line: never with its cloud.
        shown = self.model_dump(exclude={"cloud"})
        return f"ClusterSpec({shown!r}{', cloud=<hidden>' if self.cloud is not None else ''})"

    __str__ = __repr__

    @field_validator("frameworks", mode="before")
    @classmethod
    def _names_as_shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value


class ResolvedSpec(BaseModel):
    """A spec checked against the catalogue: dependencies added, properties typed."""

    spec: ClusterSpec
    order: list[str]
    properties: dict[str, dict[str, Any]]
    secrets: dict[str, dict[str, Any]]

    def public_dict(self) -> dict[str, Any]:
        data = self.spec.model_dump(exclude={"cloud"})
        data["resolved_frameworks"] = self.order
        data["properties"] = self.properties
        return data


def parse_spec(data: Any) -> ClusterSpec:
    try:
        return ClusterSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidSpec(_summarise(exc), details=_errors(exc)) from None


def load_spec_file(path: Path) -> ClusterSpec:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InvalidSpec(f"cannot read spec {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:  # PyYAML quotes the line, which may hold a cloud's password
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise InvalidSpec(f"spec {path} is not valid YAML{where}") from None
    return parse_spec(data)


def resolve(spec: ClusterSpec, catalog: Catalog, *, max_workers: int) -> ResolvedSpec:
    if spec.workers > max_workers:
        raise InvalidSpec(
            f"workers must be <= {max_workers} (the configured maximum), got {spec.workers}",
            code="too_many_workers", details={"max_workers": max_workers},
        )
    requested = [fw.name for fw in spec.frameworks]
    duplicates = sorted({n for n in requested if requested.count(n) > 1})
    if duplicates:
        raise InvalidSpec(f"framework listed twice: {', '.join(duplicates)}", code="duplicate_framework")
    order = catalog.resolve(requested)
    _check_masters(spec.masters, order, catalog)
    given = {fw.name: fw.properties for fw in spec.frameworks}
    checked_overrides = {fw.name: check_overrides(catalog.get(fw.name), fw.overrides) for fw in spec.frameworks}
    properties: dict[str, dict[str, Any]] = {}
    secrets: dict[str, dict[str, Any]] = {}
    for name in order:
        fw = catalog.get(name)
        values = fw.resolve_properties(given.get(name, {}))
        hidden = fw.secret_properties()
        properties[name] = {k: v for k, v in values.items() if k not in hidden}
        secrets[name] = {k: v for k, v in values.items() if k in hidden}
    # The stored spec keeps no secret values (nor the cloud); they live encrypted beside it.
    clean = spec.model_copy(update={"cloud": None, "frameworks": [
        FrameworkRequest(name=fw.name, properties={
            k: v for k, v in fw.properties.items() if k not in catalog.get(fw.name).secret_properties()
        }, overrides=checked_overrides[fw.name]) for fw in spec.frameworks
    ]})
    return ResolvedSpec(spec=clean, order=order, properties=properties, secrets=secrets)


def _check_masters(masters: int, order: list[str], catalog: Catalog) -> None:
    """Several masters only where every framework of the cluster can run them (the
    framework's `max_masters`); the refusal names the frameworks that cannot."""
    if masters == 1:
        return
    limits = {name: catalog.get(name).max_masters for name in order}
    short = sorted(name for name, most in limits.items() if most < masters)
    if short or not order:
        what = (f"framework{'s' if len(short) > 1 else ''} {', '.join(short)} "
                f"run{'' if len(short) > 1 else 's'} at most "
                f"{', '.join(str(limits[n]) for n in short)} master(s)" if short
                else "a cluster without frameworks runs no master process")
        raise InvalidSpec(f"masters: {masters} is not supported: {what}",
                          code="masters_not_supported",
                          details={"masters": masters, "max_masters": {n: limits[n] for n in short}})


MAX_OVERRIDES = 200  # per file: enough for any tuning, not a way to store data


def check_overrides(fw: FrameworkDef, overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The overrides as they will be merged (booleans and numbers as Hadoop and Spark spell
    them), or InvalidSpec (422 invalid_override) naming the file and key: a file the framework
    does not render, a key no override may set (locked), a value its format cannot hold."""
    checked: dict[str, dict[str, Any]] = {}
    for file_name, values in overrides.items():
        if len(values) > MAX_OVERRIDES:
            raise InvalidSpec(f"at most {MAX_OVERRIDES} overrides per file", code="invalid_override",
                              details={"framework": fw.name, "file": file_name})
        config = fw.config_files.get(file_name)
        if config is None:
            raise InvalidSpec(
                f"framework {fw.name} renders no configuration file {file_name!r} "
                f"(it renders: {', '.join(sorted(fw.config_files)) or 'none'})",
                code="invalid_override",
                details={"framework": fw.name, "file": file_name, "files": sorted(fw.config_files)})
        checked[file_name] = {}
        for key, value in values.items():
            top = key if config.format != "yaml" else key.split(".")[0]
            if key in config.locked or top in config.locked:
                raise InvalidSpec(f"{fw.name} {file_name}: {key} is set by DISCO and may not be overridden "
                                  "(it keeps the cluster's endpoints closed)", code="invalid_override",
                                  details={"framework": fw.name, "file": file_name, "key": key, "locked": True})
            try:
                checked_value = check_override(config.format, key, value)
                if config.format == "yaml":  # a dotted key is a path into the YAML's maps
                    nested: Any = checked_value
                    for part in reversed(key.split(".")[1:]):
                        nested = {part: nested}
                    checked[file_name] = merge("yaml", checked[file_name], {key.split(".")[0]: nested})
                else:
                    checked[file_name][key] = checked_value
            except OverrideError as exc:
                raise InvalidSpec(f"{fw.name} {file_name}: {exc}", code="invalid_override",
                                  details={"framework": fw.name, "file": file_name, "key": key}) from None
    return checked


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        parts.append(f"{where}: {err['msg']}")
    return "invalid cluster spec: " + "; ".join(parts)
