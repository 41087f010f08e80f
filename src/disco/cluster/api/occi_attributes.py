"""Mapping between the seed's `icclab.disco.*` OCCI attributes and DISCO's cluster spec."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from disco.cluster.api.occi_cloud import NOT_CONFIGURED, Credentials, merge
from disco.cluster.api.occi_format import MalformedOcci
from disco.cluster.models import Cluster
from disco.cluster.spec import ClusterSpec, parse_spec
from disco.errors import Conflict, InvalidSpec
from disco.frameworks.catalog import Catalog
from disco.frameworks.inject import parse_inject

PREFIX = "icclab.disco."
COMPONENTS = PREFIX + "components."
INJECT = PREFIX + "dependencies.inject"
SLAVECOUNT = COMPONENTS + "heat.slavecount"
PROVIDER = PREFIX + "provider"
OPENSTACK = "openstack"
# The seed's heat attributes that choose OpenStack resources -> the OpenStack provider's options.
# `network` and `cidr` are DISCO's: an existing network instead of a new one, the new one's CIDR.
HEAT_TO_OPTION = {"masterimage": "master_image", "slaveimage": "worker_image", "masterflavor": "master_flavor",
                  "slaveflavor": "worker_flavor", "externalnetworkname": "external_network",
                  "network": "network", "cidr": "cidr"}
OPTION_TO_HEAT = {option: heat for heat, option in HEAT_TO_OPTION.items()}
# Accepted for the seed's clients, not used: DISCO makes the cluster's network (networkname is
# "the name of the network to be created") and names it and the servers itself.
HEAT_UNUSED = {"networkname", "mastername", "slavename"}
HEAT_OPTIONS = set(HEAT_TO_OPTION) | HEAT_UNUSED
CREDENTIAL_OPTIONS = {"username", "password", "region"}
# Kept for the other providers as before; an OpenStack cluster's cloud is the admin's.
DEPLOYER_OPTIONS = {"type", "path", "project", "auth_url"}
# Components the original always had; asking for them is harmless and means nothing here.
IMPLICIT_COMPONENTS = {"heat", "shell", "parameters"}
EXTENSIONS = {"provider", "name", "idle_timeout", "max_age"}
_INTEGER = re.compile(r"[+-]?[0-9]{1,9}")


def spec_from_attributes(attrs: dict[str, str], catalog: Catalog, *, default_provider: str = "local",
                         headers: Credentials = Credentials(),
                         cloud: Callable[[Credentials], dict[str, Any]] | None = None) -> ClusterSpec:
    """A cluster spec from create-request attributes.

    The seed's heat attributes or OpenStack credentials (attributes or `headers`) make an
    OpenStack cluster unless `icclab.disco.provider` names another provider (then they are
    refused); its `cloud` comes from `cloud(credentials)` (occi_cloud.cloud_for)."""
    data: dict[str, Any] = {"provider_options": {}}
    requested: dict[str, dict[str, str]] = {}
    heat: dict[str, str] = {}
    given: dict[str, str] = {}
    deployer: dict[str, str] = {}
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
        elif name.startswith(COMPONENTS):
            component, _, prop = name[len(COMPONENTS):].partition(".")
            if not prop or "." in prop:
                raise InvalidSpec(f"attribute {name} must be icclab.disco.components.<framework>.<property>",
                                  code="unknown_attribute", details={"attribute": name})
            if component == "heat":
                if prop not in HEAT_OPTIONS:
                    raise InvalidSpec(f"unknown heat attribute {name}", code="unknown_attribute",
                                      details={"attribute": name, "known": sorted(HEAT_OPTIONS | {"slavecount"})})
                heat[prop] = value
                given[prop] = name
            else:
                catalog.get(component)  # unknown framework -> clear 4xx
                requested.setdefault(component, {})[prop] = value
        elif name.startswith(PREFIX + "deployer."):
            option = name[len(PREFIX + "deployer."):]
            if option not in DEPLOYER_OPTIONS | CREDENTIAL_OPTIONS:
                raise InvalidSpec(f"unknown deployer attribute {name}", code="unknown_attribute",
                                  details={"attribute": name})
            deployer[option] = value
            given[option] = name
        elif name.startswith(PREFIX) and name[len(PREFIX):] in EXTENSIONS:
            key = name[len(PREFIX):]
            if key in ("idle_timeout", "max_age"):
                data[f"{key}_s"] = integer_attribute(name, value)
            else:
                data[key] = value
        else:
            raise InvalidSpec(f"unknown attribute {name}", code="unknown_attribute", details={"attribute": name})
    data["frameworks"] = [{"name": fw, "properties": props} for fw, props in requested.items()]
    credentials = Credentials(**{k: v for k, v in deployer.items() if k in CREDENTIAL_OPTIONS})
    openstack_inputs = [given[k] for k in (*heat, *credentials_given(credentials))]
    provider = data.get("provider") or (OPENSTACK if openstack_inputs or headers.given else default_provider)
    if provider != OPENSTACK:
        if openstack_inputs:
            raise InvalidSpec(f"attribute {openstack_inputs[0]} is for OpenStack clusters, not for provider "
                              f"{provider!r} (leave out {PROVIDER}, or the attribute)",
                              code="openstack_attribute", details={"attribute": openstack_inputs[0]})
        # The seed README sends its X-User-* headers with every request: ignored here, as the
        # original did; never kept.
        data["provider_options"] = {f"deployer.{k}": v for k, v in deployer.items()}
        return parse_spec(data)
    refused = sorted(given[option] for option in DEPLOYER_OPTIONS & set(deployer))
    if refused:
        raise InvalidSpec(f"attribute {refused[0]} is not taken for OpenStack clusters: the service "
                          "manager's configured cloud says where and how to deploy", code="openstack_attribute",
                          details={"attribute": refused[0]})
    data["provider"] = OPENSTACK
    data["provider_options"] = {HEAT_TO_OPTION[k]: v for k, v in heat.items() if k in HEAT_TO_OPTION}
    if cloud is None:
        raise Conflict("this service manager cannot create OpenStack clusters here", code=NOT_CONFIGURED)
    data["cloud"] = cloud(merge(headers, credentials))
    return parse_spec(data)


def credentials_given(credentials: Credentials) -> list[str]:
    return [k for k in ("username", "password", "region") if getattr(credentials, k) is not None]


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


def stack_status(cluster: Cluster) -> str:
    """Heat's word for the cluster's state. Once ready, the stack's own status (the OpenStack
    provider's output) says more (e.g. UPDATE_COMPLETE after a scale); before, the stack may be
    complete while the frameworks are still starting, so the cluster's state is what counts."""
    if cluster.state == "ready":
        return str(cluster.outputs.get("stack_status") or STACK_STATUS["ready"])
    return STACK_STATUS.get(cluster.state, "UNKNOWN")


def attributes_of(cluster: Cluster, private_key: str, base_url: str) -> dict[str, Any]:
    spec = cluster.spec
    outputs = cluster.outputs
    attrs: dict[str, Any] = {
        "occi.core.id": cluster.id,
        "occi.core.title": cluster.name,
        "mcn.service.state": cluster.state,
        "stackid": outputs.get("stack_id") or f"disco_{cluster.id}",
        "stack_status": stack_status(cluster),
        "runstate": "suspended" if cluster.state == "suspended" else "running",
        "external_ip": outputs.get("external_ip") or outputs.get("master_host") or next(
            (n.host for n in cluster.nodes if n.role == "master" and n.host), ""),
        "ssh_key_name": outputs.get("ssh_key_name") or f"disco_sshkey-{cluster.id}",
        "ssh_public_key": outputs.get("ssh_public_key") or cluster.ssh_public_key,
        "ssh_private_key": private_key,
        SLAVECOUNT: cluster.workers,
        INJECT: "{" + ", ".join(f"'{fw['name']}': ''" for fw in spec.get("frameworks", [])) + "}",
        PROVIDER: cluster.provider,
        PREFIX + "deployment_log": f"{base_url}/api/v1/clusters/{cluster.id}/deployment.log",
    }
    if outputs.get("stack_name"):
        attrs["stack_name"] = outputs["stack_name"]
    if cluster.status_reason:
        attrs["stack_status_reason"] = cluster.status_reason
    for option, value in spec.get("provider_options", {}).items():
        if cluster.provider == OPENSTACK and option in OPTION_TO_HEAT:
            attrs[f"{COMPONENTS}heat.{OPTION_TO_HEAT[option]}"] = value
        else:
            attrs[f"{COMPONENTS}{option}" if option.startswith("heat.") else f"{PREFIX}{option}"] = value
    for framework, props in spec.get("properties", {}).items():
        for prop, value in props.items():
            if value is not None:  # a property left unset (derived from the node) has no attribute
                attrs[f"{COMPONENTS}{framework}.{prop}"] = value
    for framework, outputs_of in outputs.get("frameworks", {}).items():
        for key, value in outputs_of.items():
            if key == "web_uis":
                for ui, url in value.items():
                    attrs[f"{PREFIX}frameworks.{framework}.ui.{ui}"] = url
            else:
                attrs[f"{PREFIX}frameworks.{framework}.{key}"] = value
    return attrs
