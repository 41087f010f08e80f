"""What a cluster's spec may choose for its stack (`provider_options`, stored and shown in clear:
no secrets here — the cloud's credentials are the spec's sealed `cloud`), checked before the
cluster is recorded, and turned into a StackDesign."""

from __future__ import annotations

from dataclasses import dataclass

from disco.errors import InvalidSpec
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
    "cidr": f"the subnet DISCO makes (default {DEFAULT_CIDR})",
    "external_network": "the external network: the new network's router gateway and the floating IP's pool",
    "floating_ip": "true (default) or false: a floating IP for the master",
    "key_name": "a Nova key pair of yours the nodes also accept (DISCO keeps its own key for itself)",
    "user": "the image's login user with password-less sudo (default debian)",
    "timeout": "seconds each node may take to boot, install and get its frameworks ready (default 1800)",
}
DEFAULT_USER = "debian"
DEFAULT_TIMEOUT_S = 1800
TRUE, FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


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


def read_options(options: dict[str, str]) -> StackChoices:
    """The checked options, or InvalidSpec (422 invalid_provider_option) saying everything wrong."""
    problems = []
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        problems.append(f"unknown option(s) {', '.join(unknown)}; it takes "
                        + "; ".join(f"{k} ({v})" for k, v in OPTIONS.items()))

    def pick(role_key: str, common: str) -> str:
        value = (options.get(role_key) or options.get(common) or "").strip()
        if not value:
            problems.append(f"{role_key} (or {common}) is required")
        return value

    images = pick("master_image", "image"), pick("worker_image", "image")
    flavors = pick("master_flavor", "flavor"), pick("worker_flavor", "flavor")
    floating = options.get("floating_ip", "true").strip().lower()
    if floating not in TRUE + FALSE:
        problems.append(f"floating_ip must be true or false, not {options['floating_ip']!r}")
    timeout_text = options.get("timeout", str(DEFAULT_TIMEOUT_S)).strip()
    timeout = int(timeout_text) if timeout_text.isdigit() else 0
    if not 1 <= timeout <= MAX_WAIT_TIMEOUT:
        problems.append(f"timeout must be a whole number of seconds in 1..{MAX_WAIT_TIMEOUT}, not {timeout_text!r}")
    user = options.get("user", DEFAULT_USER).strip()
    if not user.replace("-", "").replace("_", "").isalnum():
        problems.append(f"user {user!r} is not a login name")
    if options.get("network") and options.get("cidr"):
        problems.append("give network (an existing one) or cidr (for the one DISCO makes), not both")
    if problems:
        raise InvalidSpec("provider openstack: " + "; ".join(problems), code="invalid_provider_option",
                          details=problems)
    return StackChoices(master_image=images[0], worker_image=images[1], master_flavor=flavors[0],
                        worker_flavor=flavors[1], network=options.get("network", "").strip(),
                        cidr=options.get("cidr", "").strip() or DEFAULT_CIDR,
                        external_network=options.get("external_network", "").strip(),
                        floating_ip=floating in TRUE, key_name=options.get("key_name", "").strip(),
                        user=user, timeout_s=timeout)


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
