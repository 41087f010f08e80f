"""What a cluster's spec may choose for its stack (`provider_options`, stored and shown in clear:
no secrets here — the cloud's credentials are the spec's sealed `cloud`), checked before the
cluster is recorded, and turned into a StackDesign."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from disco.errors import InvalidSpec
from disco.providers.option_patterns import decimal_range_pattern, matches, name_pattern, text_option, unknown_options
from disco.providers.openstack.design import (DEFAULT_CIDR, MAX_WAIT_TIMEOUT, ExistingKey, ExistingNetwork,
                                              GeneratedKey, NewNetwork, PortRule, StackDesign, UserData)

OPTIONS = {
    "image": "the image of every node (master_image / worker_image choose per role)",
    "master_image": "the master's image",
    "worker_image": "the workers' image",
    "flavor": "the flavor of every node (master_flavor / worker_flavor choose per role)",
    "master_flavor": "the master's flavor",
    "worker_flavor": "the workers' flavor",
    "network": "an existing network (name or id) for the nodes; without it DISCO makes one, routed to "
               "external_network",
    "cidr": f"the subnet DISCO makes, /25 or larger (default {DEFAULT_CIDR}; host bits are dropped: "
            "10.20.0.7/24 is 10.20.0.0/24)",
    "external_network": "the external network: the new network's router gateway and the floating IP's pool",
    "floating_ip": "true (default) or false: a floating IP for the master",
    "key_name": "a Nova key pair of yours the nodes also accept (DISCO keeps its own key for itself)",
    "user": "the image's login user with password-less sudo (default debian)",
    "timeout": "seconds each node may take to boot, install and get its frameworks ready (default 1800)",
}
DEFAULT_USER = "debian"
DEFAULT_TIMEOUT_S = 1800
# Each option's value, as a regular expression read whole (option_patterns.py): the check below
# and the published schema (OPTIONS_SCHEMA) use the same ones. Values are taken as given: no
# white space is stripped, no letter case folded.
_NAME = name_pattern(255)  # Glance, Nova and Neutron names: at most 255 characters
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
PATTERNS = {
    **{key: _NAME for key in ("image", "master_image", "worker_image", "flavor", "master_flavor",
                              "worker_flavor", "network", "external_network")},
    # An IPv4 network with its prefix length, at most /25: room for the master, MAX_WORKERS (64)
    # workers, the network and broadcast addresses, the gateway and DHCP. Host bits are dropped.
    "cidr": rf"^{_OCTET}(?:\.{_OCTET}){{3}}/(?:2[0-5]|1?[0-9])$",
    "floating_ip": "^(?:true|false)$",
    # Nova's key pair names (design.py's _KEY_NAME), with no space at either end.
    "key_name": r"^[A-Za-z0-9_.@-](?:[A-Za-z0-9_. @-]{0,253}[A-Za-z0-9_.@-])?$",
    "user": r"^[A-Za-z_][A-Za-z0-9_-]{0,31}$",
    "timeout": decimal_range_pattern(1, MAX_WAIT_TIMEOUT),
}
# Each role needs an image and a flavor: its own, or the common one.
ROLE_CHOICES = (("master_image", "image"), ("worker_image", "image"), ("master_flavor", "flavor"),
                ("worker_flavor", "flavor"))


def _needs_external_network(options: dict[str, str]) -> bool:
    """The router of a network DISCO makes, and a floating IP, need the external network
    (design.py says the same when the stack is designed; checked here before anything is stored)."""
    return not options.get("network") or options.get("floating_ip", "true") == "true"


def _options_schema() -> dict[str, Any]:
    """provider_options exactly as read_options takes them."""
    return {
        # An image and a flavor at least: provider_options may not be left out (see base.py).
        "type": "object", "additionalProperties": False, "minProperties": 2,
        "properties": {key: text_option(PATTERNS[key], OPTIONS[key]) for key in OPTIONS},
        "allOf": [
            *({"anyOf": [{"required": [role_key]}, {"required": [common]}]} for role_key, common in ROLE_CHOICES),
            {"not": {"required": ["network", "cidr"]}},
            {"anyOf": [{"required": ["external_network"]},
                       {"required": ["network", "floating_ip"], "properties": {"floating_ip": {"const": "false"}}}]},
        ],
        "description": "Provider openstack: the stack's images, flavors, network, key and timeouts.",
    }


OPTIONS_SCHEMA = _options_schema()


@dataclass(frozen=True)
class StackChoices:
    """The options, checked and with their defaults."""

    master_image: str
    worker_image: str
    master_flavor: str
    worker_flavor: str
    network: str
    cidr: str
    external_network: str
    floating_ip: bool
    key_name: str
    user: str
    timeout_s: int


def option_problems(options: dict[str, str]) -> list[str]:
    """Everything wrong with the options (OPTIONS_SCHEMA says the same), none when they are good."""
    problems = unknown_options("openstack", options, OPTIONS)
    for key, value in options.items():
        if key in PATTERNS and not matches(PATTERNS[key], value):
            problems.append(f"{key} {value!r} is not {_WHAT[key]}")
    for role_key, common in ROLE_CHOICES:
        if role_key not in options and common not in options:
            problems.append(f"{role_key} (or {common}) is required")
    if "network" in options and "cidr" in options:
        problems.append("give network (an existing one) or cidr (for the one DISCO makes), not both")
    if "external_network" not in options and _needs_external_network(options):
        problems.append("external_network is required (the router of the network DISCO makes and the "
                        "floating IP need it; only with network and floating_ip false may it be left out)")
    return problems


_WHAT = {
    **{key: "a name (1 to 255 characters, no control character, no space at either end)" for key in PATTERNS},
    "cidr": "an IPv4 network with a prefix length of at most 25 (10.20.0.0/24)",
    "floating_ip": "true or false",
    "key_name": "a key pair name (letters, digits, _ - . @ and inner spaces; at most 255 characters)",
    "user": "a login name (a letter or _, then letters, digits, _ or -; at most 32 characters)",
    "timeout": f"a whole number of seconds in 1..{MAX_WAIT_TIMEOUT} (digits, no leading zero)",
}


def read_options(options: dict[str, str]) -> StackChoices:
    """The checked options, or InvalidSpec (422 invalid_provider_option, details {"problems"})
    saying everything wrong."""
    problems = option_problems(options)
    if problems:
        raise InvalidSpec("provider openstack: " + "; ".join(problems), code="invalid_provider_option",
                          details={"problems": problems})
    images = options.get("master_image") or options["image"], options.get("worker_image") or options["image"]
    flavors = options.get("master_flavor") or options["flavor"], options.get("worker_flavor") or options["flavor"]
    return StackChoices(master_image=images[0], worker_image=images[1], master_flavor=flavors[0],
                        worker_flavor=flavors[1], network=options.get("network", ""),
                        cidr=str(ipaddress.ip_network(options.get("cidr", DEFAULT_CIDR), strict=False)),
                        external_network=options.get("external_network", ""),
                        floating_ip=options.get("floating_ip", "true") == "true",
                        key_name=options.get("key_name", ""), user=options.get("user", DEFAULT_USER),
                        timeout_s=int(options.get("timeout", DEFAULT_TIMEOUT_S)))


def stack_design(cluster_id: str, cluster_name: str, choices: StackChoices, public_key: str, workers: int,
                 max_workers: int, allowed_cidrs: list[str], ports: list[PortRule],
                 user_data: UserData) -> StackDesign:
    """The stack of a cluster; StackDesignError (422) says everything that cannot be made.
    The nodes always accept the cluster's own key (DISCO's way in); a user's key pair named in
    key_name replaces it as the servers' Nova key pair, and the boot script adds the cluster's
    key beside it."""
    key = ExistingKey(choices.key_name) if choices.key_name else GeneratedKey(public_key)
    network = ExistingNetwork(choices.network) if choices.network else NewNetwork(cidr=choices.cidr)
    return StackDesign(cluster_id=cluster_id, cluster_name=cluster_name, master_image=choices.master_image,
                       master_flavor=choices.master_flavor, worker_image=choices.worker_image,
                       worker_flavor=choices.worker_flavor, key=key, workers=workers, max_workers=max_workers,
                       network=network, external_network=choices.external_network,
                       floating_ip=choices.floating_ip, allowed_cidrs=tuple(allowed_cidrs), ports=tuple(ports),
                       user_data=user_data, wait_timeout=choices.timeout_s)
