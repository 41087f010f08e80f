"""Designs the OpenStack template tests share: a typical one (the golden file's), and the
matrix every rendered template of which Heat's validator must accept."""

from __future__ import annotations

import itertools
from dataclasses import replace

from disco.providers.openstack.design import (ExistingKey, ExistingNetwork, GeneratedKey, NewNetwork, PortRule,
                                              StackDesign, UserData)

# A fixed key, so the golden file stays the same (keys.py makes a new one each time).
FIXED_PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEZANr/P5XcbQA+aar0Kng+Z86E4BbHku05lHUA/QIR8 "
                    "disco-typical")

MASTER_SCRIPT = """#!/bin/sh
set -eu
# the master starts its frameworks, then waits for $worker_count$ workers to register
echo "master at $master_ip$"
$wait_signal$ --data-binary '{"status": "SUCCESS", "reason": "master ready"}'
"""
WORKER_SCRIPT = """#!/bin/sh
set -eu
echo "worker %index% joins $master_ip$"
$wait_signal$ --data-binary '{"status": "SUCCESS", "reason": "worker %index% ready"}'
"""

# Ports as the frameworks declare them (src/disco/frameworks/*/framework.yaml).
FRAMEWORK_PORTS: dict[str, tuple[PortRule, ...]] = {
    "bare": (),
    "dask": (PortRule(8786, why="dask scheduler"), PortRule(8787, why="dask dashboard"),
             PortRule(8788, why="dask worker"), PortRule(8789, why="dask worker dashboard")),
    "spark+jupyter": (PortRule(7077, why="spark master"), PortRule(8080, why="spark master UI"),
                      PortRule(7078, why="spark worker"), PortRule(8081, why="spark worker UI"),
                      PortRule(8890, why="jupyterlab")),
    "ray+mapreduce": (PortRule(8265, why="ray dashboard"), PortRule(10001, 10100, why="ray port block"),
                      PortRule(8989, why="mapreduce master"), PortRule(8989, why="mapreduce node data")),
}


def typical_design() -> StackDesign:
    return StackDesign(
        cluster_id="3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162", cluster_name="Word count",
        master_image="debian-12-disco", master_flavor="m1.large",
        worker_image="debian-12-disco", worker_flavor="m1.medium",
        key=GeneratedKey(FIXED_PUBLIC_KEY), workers=2, external_network="public",
        network=NewNetwork(dns_nameservers=("192.0.2.53",)),
        allowed_cidrs=("198.51.100.7/32", "203.0.113.0/24"),
        ports=FRAMEWORK_PORTS["dask"],
        user_data=UserData(master=MASTER_SCRIPT, worker=WORKER_SCRIPT), wait_timeout=900)


def matrix() -> list[tuple[str, StackDesign]]:
    """Port sets × 0/1/4 workers × floating IP or not × new or existing network × generated
    or user's key: 96 designs."""
    designs = []
    for ports, workers, floating, network, key in itertools.product(
            FRAMEWORK_PORTS, (0, 1, 4), (True, False), ("new", "existing"), ("generated", "user")):
        name = f"{ports}-w{workers}-{'fip' if floating else 'nofip'}-{network}-{key}"
        designs.append((name, replace(
            typical_design(), cluster_name=name, workers=workers, floating_ip=floating,
            ports=FRAMEWORK_PORTS[ports],
            network=NewNetwork("10.40.0.0/22") if network == "new" else ExistingNetwork("tenant-net"),
            key=GeneratedKey(FIXED_PUBLIC_KEY) if key == "generated" else ExistingKey("alice-laptop"))))
    return designs
