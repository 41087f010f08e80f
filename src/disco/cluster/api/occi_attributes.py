"""Mapping between the seed's `icclab.disco.*` OCCI attributes and DISCO's cluster spec."""

from __future__ import annotations

import re
from typing import Any

from disco.cluster.api.occi_format import MalformedOcci
from disco.cluster.models import Cluster
from disco.cluster.spec import ClusterSpec, parse_spec
from disco.errors import InvalidSpec
from disco.frameworks.catalog import Catalog
from disco.frameworks.inject import parse_inject

PREFIX = "icclab.disco."
COMPONENTS = PREFIX + "components."
INJECT = PREFIX + "dependencies.inject"
SLAVECOUNT = COMPONENTS + "heat.slavecount"
# OpenStack settings of the seed; kept for the OpenStack provider, unused elsewhere.
HEAT_OPTIONS = {"masterimage", "slaveimage", "masterflavor", "slaveflavor", "networkname",
                "externalnetworkname", "mastername", "slavename"}
DEPLOYER_OPTIONS = {"username", "region", "type", "path", "project", "auth_url"}
# Components the original always had; asking for them is harmless and means nothing here.
IMPLICIT_COMPONENTS = {"heat", "shell", "parameters"}
EXTENSIONS = {"provider", "name", "idle_timeout", "max_age"}
SECRET_ATTRIBUTE = PREFIX + "deployer.password"
_INTEGER = re.compile(r"[+-]?[0-9]{1,9}")


def spec_from_attributes(attrs: dict[str, str], catalog: Catalog) -> tuple[ClusterSpec, dict[str, Any]]:
    """A cluster spec and the secrets to keep encrypted, from create-request attributes."""
    data: dict[str, Any] = {"provider_options": {}}
    secrets: dict[str, Any] = {}
    requested: dict[str, dict[str, str]] = {}
    if INJECT in attrs:
        for name in parse_inject(attrs[INJECT]):
            if name not in IMPLICIT_COMPONENTS:
                requested.setdefault(name, {})
    for name, value in attrs.items():
        if name == INJECT or name.startswith("occi.core.") and name != "occi.core.title":
            continue
        if name == "occi.core.title":
            data["name"] = value
        elif name == SLAVECOUNT:
            data["workers"] = integer_attribute(name, value)
        elif name == SECRET_ATTRIBUTE:
            secrets["deployer_password"] = value
        elif name.startswith(COMPONENTS):
            component, _, prop = name[len(COMPONENTS):].partition(".")
            if not prop or "." in prop:
                raise InvalidSpec(f"attribute {name} must be icclab.disco.components.<framework>.<property>",
                                  code="unknown_attribute", details={"attribute": name})
            if component == "heat":
                if prop not in HEAT_OPTIONS:
                    raise InvalidSpec(f"unknown heat attribute {name}", code="unknown_attribute",
                                      details={"attribute": name, "known": sorted(HEAT_OPTIONS)})
                data["provider_options"][f"heat.{prop}"] = value
            else:
                catalog.get(component)  # unknown framework -> clear 4xx
                requested.setdefault(component, {})[prop] = value
        elif name.startswith(PREFIX + "deployer."):
            option = name[len(PREFIX + "deployer."):]
            if option not in DEPLOYER_OPTIONS:
                raise InvalidSpec(f"unknown deployer attribute {name}", code="unknown_attribute",
                                  details={"attribute": name})
            data["provider_options"][f"deployer.{option}"] = value
        elif name.startswith(PREFIX) and name[len(PREFIX):] in EXTENSIONS:
            key = name[len(PREFIX):]
            if key in ("idle_timeout", "max_age"):
                data[f"{key}_s"] = integer_attribute(name, value)
            else:
                data[key] = value
        else:
            raise InvalidSpec(f"unknown attribute {name}", code="unknown_attribute", details={"attribute": name})
    data["frameworks"] = [{"name": fw, "properties": props} for fw, props in requested.items()]
    return parse_spec(data), secrets


def reject_control_characters(attrs: dict[str, str]) -> None:
    """Attribute values arrive escaped (`\\u0000`); once decoded, only tab, newline and carriage
    return among the control characters are text a cluster spec can hold."""
    for name, value in attrs.items():
        bad = next((c for c in value if (ord(c) < 0x20 and c not in "\t\n\r") or ord(c) == 0x7F), None)
        if bad is not None:
            raise MalformedOcci(f"attribute {name} contains the control character U+{ord(bad):04X}",
                                code="control_character", details={"attribute": name})


def integer_attribute(name: str, value: str) -> int:
    """A whole number in ASCII digits; `int()` alone would also take "1_0" (as 10) or
    non-ASCII digits such as "٣", and any number of digits."""
    text = value.strip()
    if not _INTEGER.fullmatch(text):
        raise InvalidSpec(f"attribute {name} must be an integer, got {value[:40]!r}",
                          code="invalid_attribute", details={"attribute": name})
    return int(text)


STACK_STATUS = {
    "pending": "CREATE_IN_PROGRESS", "provisioning": "CREATE_IN_PROGRESS",
    "installing": "CREATE_IN_PROGRESS", "ready": "CREATE_COMPLETE", "failed": "CREATE_FAILED",
    "suspended": "SUSPEND_COMPLETE", "deleting": "DELETE_IN_PROGRESS", "deleted": "DELETE_COMPLETE",
}


def attributes_of(cluster: Cluster, private_key: str, base_url: str) -> dict[str, Any]:
    spec = cluster.spec
    attrs: dict[str, Any] = {
        "occi.core.id": cluster.id,
        "occi.core.title": cluster.name,
        "mcn.service.state": cluster.state,
        "stackid": f"disco_{cluster.id}",
        "stack_status": STACK_STATUS.get(cluster.state, "UNKNOWN"),
        "runstate": "suspended" if cluster.state == "suspended" else "running",
        "external_ip": cluster.outputs.get("master_host") or next(
            (n.host for n in cluster.nodes if n.role == "master" and n.host), ""),
        "ssh_key_name": f"disco_sshkey-{cluster.id}",
        "ssh_public_key": cluster.ssh_public_key,
        "ssh_private_key": private_key,
        SLAVECOUNT: cluster.workers,
        INJECT: "{" + ", ".join(f"'{fw['name']}': ''" for fw in spec.get("frameworks", [])) + "}",
        PREFIX + "provider": cluster.provider,
        PREFIX + "deployment_log": f"{base_url}/api/v1/clusters/{cluster.id}/deployment.log",
    }
    if cluster.status_reason:
        attrs["stack_status_reason"] = cluster.status_reason
    for option, value in spec.get("provider_options", {}).items():
        attrs[f"{COMPONENTS}{option}" if option.startswith("heat.") else f"{PREFIX}{option}"] = value
    for framework, props in spec.get("properties", {}).items():
        for prop, value in props.items():
            if value is not None:  # a property left unset (derived from the node) has no attribute
                attrs[f"{COMPONENTS}{framework}.{prop}"] = value
    for framework, outputs in cluster.outputs.get("frameworks", {}).items():
        for key, value in outputs.items():
            if key == "web_uis":
                for ui, url in value.items():
                    attrs[f"{PREFIX}frameworks.{framework}.ui.{ui}"] = url
            else:
                attrs[f"{PREFIX}frameworks.{framework}.{key}"] = value
    return attrs
