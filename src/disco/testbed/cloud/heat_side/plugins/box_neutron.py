"""The Neutron types a cluster template uses, for the cloud in a box (a Heat resource plugin).

There is no Neutron: every server address is on this machine's loopback, so nothing here
routes or filters. What is real is what a template can observe: networks, subnets, routers
and security groups have ids and are found by name (a server or port on an unknown network
fails), a port owns an address of the cloud's range, and a floating IP's
`floating_ip_address` is the address of the port it is associated with (on loopback a server
is reached at its own address)."""

from __future__ import annotations

import uuid

from heat.common import exception
from heat.engine import attributes, properties, resource, support

from box_registry import RegistryError, allocate_address, find_network, registry, release_addresses

S = properties.Schema


def _found(name_or_id: str) -> dict:
    try:
        return find_network(name_or_id)
    except RegistryError as exc:
        raise exception.Error(str(exc))


class _Recorded(resource.Resource):
    """A record in one section of the registry, keyed by the resource's id."""

    support_status = support.SupportStatus(version="2014.1")
    SECTION = ""
    attributes_schema = {"show": attributes.Schema("The record.", type=attributes.Schema.MAP)}

    def _record(self, **fields) -> str:
        record_id = str(uuid.uuid4())
        with registry() as data:
            data[self.SECTION][record_id] = {"id": record_id, **fields}
        self.resource_id_set(record_id)
        return record_id

    def handle_delete(self):
        if self.resource_id:
            with registry() as data:
                data[self.SECTION].pop(self.resource_id, None)
            release_addresses(self.resource_id)

    def _fields(self) -> dict:
        with registry() as data:
            return dict(data[self.SECTION].get(self.resource_id or "", {}))

    def _resolve_attribute(self, name):
        fields = self._fields()
        return fields if name == "show" else fields.get(name)

    def _show_resource(self):
        return self._fields()


class BoxNet(_Recorded):
    SECTION = "networks"
    properties_schema = {
        "name": S(S.STRING, "Network name."),
        "admin_state_up": S(S.BOOLEAN, "Accepted.", default=True),
        "shared": S(S.BOOLEAN, "Accepted.", default=False),
        "port_security_enabled": S(S.BOOLEAN, "Accepted (nothing filters on loopback)."),
        "value_specs": S(S.MAP, "Accepted.", default={}),
    }
    attributes_schema = {**_Recorded.attributes_schema,
                         "name": attributes.Schema("Name.", type=attributes.Schema.STRING),
                         "subnets": attributes.Schema("Subnet ids.", type=attributes.Schema.LIST)}

    def handle_create(self):
        self._record(name=self.properties["name"] or self.physical_resource_name(), external=False)

    def _resolve_attribute(self, name):
        if name == "subnets":
            with registry() as data:
                return [s["id"] for s in data["subnets"].values() if s["network_id"] == self.resource_id]
        return super()._resolve_attribute(name)


class BoxSubnet(_Recorded):
    SECTION = "subnets"
    properties_schema = {
        "network": S(S.STRING, "Network name or id.", required=True),
        "cidr": S(S.STRING, "Recorded; addresses come from the cloud's loopback range."),
        "ip_version": S(S.INTEGER, "4.", default=4),
        "name": S(S.STRING, "Name."),
        "dns_nameservers": S(S.LIST, "Accepted.", default=[]),
        "gateway_ip": S(S.STRING, "Accepted."),
        "enable_dhcp": S(S.BOOLEAN, "Accepted.", default=True),
        "allocation_pools": S(S.LIST, "Accepted.", default=[]),
        "host_routes": S(S.LIST, "Accepted.", default=[]),
        "value_specs": S(S.MAP, "Accepted.", default={}),
    }
    attributes_schema = {**_Recorded.attributes_schema,
                         "cidr": attributes.Schema("CIDR.", type=attributes.Schema.STRING),
                         "network_id": attributes.Schema("Network id.", type=attributes.Schema.STRING),
                         "name": attributes.Schema("Name.", type=attributes.Schema.STRING)}

    def handle_create(self):
        network = _found(self.properties["network"])
        self._record(name=self.properties["name"] or self.physical_resource_name(),
                     network_id=network["id"], cidr=self.properties["cidr"])


class BoxRouter(_Recorded):
    SECTION = "routers"
    properties_schema = {
        "name": S(S.STRING, "Name."),
        "external_gateway_info": S(S.MAP, "The external network.", schema={
            "network": S(S.STRING, "External network name or id.", required=True),
            "enable_snat": S(S.BOOLEAN, "Accepted."),
            "external_fixed_ips": S(S.LIST, "Accepted."),
        }),
        "admin_state_up": S(S.BOOLEAN, "Accepted.", default=True),
        "value_specs": S(S.MAP, "Accepted.", default={}),
    }
    attributes_schema = {**_Recorded.attributes_schema,
                         "name": attributes.Schema("Name.", type=attributes.Schema.STRING)}

    def handle_create(self):
        gateway = self.properties["external_gateway_info"]
        if gateway:
            network = _found(gateway["network"])
            if not network.get("external"):
                raise exception.Error(f"network {network['name']} is not external: a router's "
                                      "gateway must be on an external network")
        self._record(name=self.properties["name"] or self.physical_resource_name())


class BoxRouterInterface(resource.Resource):
    support_status = support.SupportStatus(version="2014.1")
    properties_schema = {
        "router": S(S.STRING, "Router id.", required=True),
        "subnet": S(S.STRING, "Subnet id or name."),
        "port": S(S.STRING, "Port id."),
    }

    def handle_create(self):
        with registry() as data:
            if self.properties["router"] not in data["routers"]:
                raise exception.Error(f"router {self.properties['router']!r} not found")
        self.resource_id_set(f"{self.properties['router']}:{self.properties['subnet'] or self.properties['port']}")


class BoxSecurityGroup(_Recorded):
    SECTION = "security_groups"
    properties_schema = {
        "name": S(S.STRING, "Name."),
        "description": S(S.STRING, "Description."),
        "rules": S(S.LIST, "Recorded, not enforced (loopback).", default=[], schema=S(S.MAP, schema={
            "direction": S(S.STRING, "ingress or egress.", default="ingress"),
            "ethertype": S(S.STRING, "IPv4 or IPv6.", default="IPv4"),
            "protocol": S(S.STRING, "tcp, udp, icmp, …"),
            "port_range_min": S(S.INTEGER, "First port."),
            "port_range_max": S(S.INTEGER, "Last port."),
            "remote_ip_prefix": S(S.STRING, "CIDR."),
            "remote_mode": S(S.STRING, "remote_ip_prefix or remote_group_id."),
            "remote_group_id": S(S.STRING, "A group."),
        })),
    }

    def handle_create(self):
        self._record(name=self.properties["name"] or self.physical_resource_name(),
                     rules=list(self.properties["rules"] or []))


class BoxPort(_Recorded):
    SECTION = "ports"
    properties_schema = {
        "network": S(S.STRING, "Network name or id.", required=True),
        "name": S(S.STRING, "Name."),
        "fixed_ips": S(S.LIST, "The address wanted (ip_address).", default=[], schema=S(S.MAP, schema={
            "ip_address": S(S.STRING, "Address."),
            "subnet": S(S.STRING, "Subnet (not checked)."),
        })),
        "security_groups": S(S.LIST, "Recorded, not enforced.", default=[]),
        "admin_state_up": S(S.BOOLEAN, "Accepted.", default=True),
        "port_security_enabled": S(S.BOOLEAN, "Accepted."),
        "value_specs": S(S.MAP, "Accepted.", default={}),
    }
    attributes_schema = {**_Recorded.attributes_schema,
                         "fixed_ips": attributes.Schema("[{ip_address, subnet_id}].", type=attributes.Schema.LIST),
                         "network_id": attributes.Schema("Network id.", type=attributes.Schema.STRING),
                         "name": attributes.Schema("Name.", type=attributes.Schema.STRING),
                         "device_id": attributes.Schema("Server id.", type=attributes.Schema.STRING)}

    def handle_create(self):
        network = _found(self.properties["network"])
        wanted = next((f["ip_address"] for f in self.properties["fixed_ips"] if f.get("ip_address")), None)
        port_id = str(uuid.uuid4())
        self.resource_id_set(port_id)
        try:
            address = allocate_address(port_id, wanted)
        except RegistryError as exc:
            raise exception.Error(str(exc))
        with registry() as data:
            data["ports"][port_id] = {"id": port_id, "network_id": network["id"],
                                      "network_name": network["name"], "address": address,
                                      "name": self.properties["name"] or self.physical_resource_name(),
                                      "device_id": None, "implicit": False}

    def _resolve_attribute(self, name):
        if name == "fixed_ips":
            fields = self._fields()
            return [{"ip_address": fields["address"], "subnet_id": None}] if fields else []
        return super()._resolve_attribute(name)


class BoxFloatingIP(_Recorded):
    SECTION = "floating_ips"
    properties_schema = {
        "floating_network": S(S.STRING, "External network name or id.", required=True),
        "port_id": S(S.STRING, "Port to associate."),
        "fixed_ip_address": S(S.STRING, "Accepted."),
        "floating_ip_address": S(S.STRING, "Accepted (the port's own address is used)."),
        "value_specs": S(S.MAP, "Accepted.", default={}),
    }
    attributes_schema = {**_Recorded.attributes_schema,
                         "floating_ip_address": attributes.Schema(
                             "The associated port's (the server's) address: on loopback a server "
                             "is reached at its own address.", type=attributes.Schema.STRING),
                         "port_id": attributes.Schema("Port id.", type=attributes.Schema.STRING),
                         "floating_network_id": attributes.Schema("Network id.", type=attributes.Schema.STRING)}

    def handle_create(self):
        network = _found(self.properties["floating_network"])
        if not network.get("external"):
            raise exception.Error(f"network {network['name']} is not external: floating IPs come "
                                  "from an external network")
        self._record(floating_network_id=network["id"], port_id=self.properties["port_id"])

    def _resolve_attribute(self, name):
        with registry() as data:
            record = data["floating_ips"].get(self.resource_id or "", {})
            port = data["ports"].get(record.get("port_id") or "", {})
        if name == "floating_ip_address":
            return port.get("address")
        return record if name == "show" else record.get(name)


class BoxFloatingIPAssociation(resource.Resource):
    support_status = support.SupportStatus(version="2014.1")
    properties_schema = {
        "floatingip_id": S(S.STRING, "Floating IP id.", required=True),
        "port_id": S(S.STRING, "Port id.", required=True),
        "fixed_ip_address": S(S.STRING, "Accepted."),
    }

    def handle_create(self):
        with registry() as data:
            record = data["floating_ips"].get(self.properties["floatingip_id"])
            if record is None:
                raise exception.Error(f"floating IP {self.properties['floatingip_id']!r} not found")
            if self.properties["port_id"] not in data["ports"]:
                raise exception.Error(f"port {self.properties['port_id']!r} not found")
            record["port_id"] = self.properties["port_id"]
        self.resource_id_set(f"{self.properties['floatingip_id']}:{self.properties['port_id']}")

    def handle_delete(self):
        with registry() as data:
            record = data["floating_ips"].get(self.properties["floatingip_id"])
            if record and record.get("port_id") == self.properties["port_id"]:
                record["port_id"] = None


def resource_mapping():
    return {"OS::Neutron::Net": BoxNet, "OS::Neutron::Subnet": BoxSubnet,
            "OS::Neutron::Router": BoxRouter, "OS::Neutron::RouterInterface": BoxRouterInterface,
            "OS::Neutron::SecurityGroup": BoxSecurityGroup, "OS::Neutron::Port": BoxPort,
            "OS::Neutron::FloatingIP": BoxFloatingIP,
            "OS::Neutron::FloatingIPAssociation": BoxFloatingIPAssociation}
