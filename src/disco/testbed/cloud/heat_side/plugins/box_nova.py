"""OS::Nova::Server and OS::Nova::KeyPair of the cloud in a box (a Heat resource plugin, loaded
from `plugin_dirs`; imports Heat, the standard library and the box_* modules only).

A server is a podman container booting the test-host image its `image` names, through
cloud-init with a NoCloud seed holding the server's user_data verbatim and the key pair's
public key; it has its own loopback address(es) from the cloud's range and serves sshd there.
CREATE_COMPLETE once the container runs (as Nova reports ACTIVE once the VM runs, before its
user_data is done); a WaitCondition is how a template waits for the user_data."""

from __future__ import annotations

import json
import uuid

from heat.common import exception
from heat.engine import attributes, constraints, properties, resource, support
from heat.rpc import api as rpc_api
from oslo_utils import uuidutils

import box_containers as containers
from box_config import catalogue, cloud_config
from box_registry import RegistryError, allocate_address, find_network, registry, release_addresses

_RAW = "RAW"


def _image(name: str) -> dict:
    images = catalogue()["images"]
    if name not in images:
        raise exception.Error(f"image {name!r} not found (images: {', '.join(sorted(images))})")
    return images[name]


def _flavor(name: str) -> dict:
    flavors = catalogue()["flavors"]
    if name not in flavors:
        raise exception.Error(f"flavor {name!r} not found (flavors: {', '.join(sorted(flavors))})")
    return flavors[name]


class BoxServer(resource.Resource):
    """A server: a container booting like a cloud VM."""

    support_status = support.SupportStatus(version="2014.1")

    PROPERTIES = (NAME, IMAGE, FLAVOR, KEY_NAME, NETWORKS, USER_DATA, USER_DATA_FORMAT,
                  SECURITY_GROUPS, METADATA, CONFIG_DRIVE, AVAILABILITY_ZONE) = (
        "name", "image", "flavor", "key_name", "networks", "user_data", "user_data_format",
        "security_groups", "metadata", "config_drive", "availability_zone")
    NETWORK_KEYS = (NETWORK, PORT, FIXED_IP, SUBNET, FLOATING_IP) = (
        "network", "port", "fixed_ip", "subnet", "floating_ip")

    properties_schema = {
        NAME: properties.Schema(properties.Schema.STRING, "Server name."),
        IMAGE: properties.Schema(properties.Schema.STRING, "Image name (the cloud's catalogue).",
                                 required=True),
        FLAVOR: properties.Schema(properties.Schema.STRING, "Flavor name.", required=True),
        KEY_NAME: properties.Schema(properties.Schema.STRING, "Key pair whose public key is "
                                    "installed for the image's default user."),
        NETWORKS: properties.Schema(
            properties.Schema.LIST, "Networks: one address each.",
            schema=properties.Schema(properties.Schema.MAP, schema={
                NETWORK: properties.Schema(properties.Schema.STRING, "Network name or id."),
                PORT: properties.Schema(properties.Schema.STRING, "Port id."),
                FIXED_IP: properties.Schema(properties.Schema.STRING, "Address wanted."),
                SUBNET: properties.Schema(properties.Schema.STRING, "Subnet (not checked)."),
                FLOATING_IP: properties.Schema(properties.Schema.STRING, "Floating IP id."),
            })),
        USER_DATA: properties.Schema(properties.Schema.STRING, "User data, given to cloud-init.",
                                     default=""),
        USER_DATA_FORMAT: properties.Schema(
            properties.Schema.STRING, "Only RAW is served: the images have no heat-cfntools.",
            default="HEAT_CFNTOOLS",
            constraints=[constraints.AllowedValues(["HEAT_CFNTOOLS", "RAW", "SOFTWARE_CONFIG"])]),
        SECURITY_GROUPS: properties.Schema(properties.Schema.LIST, "Security groups (recorded; "
                                           "on loopback nothing filters traffic).", default=[]),
        METADATA: properties.Schema(properties.Schema.MAP, "Metadata (in the seed's meta-data).",
                                    default={}),
        CONFIG_DRIVE: properties.Schema(properties.Schema.BOOLEAN, "Accepted: the seed is always "
                                        "a local (NoCloud) drive.", default=False),
        AVAILABILITY_ZONE: properties.Schema(properties.Schema.STRING, "Accepted; one zone."),
    }

    ATTRIBUTES = (FIRST_ADDRESS, NETWORKS_ATTR, ADDRESSES, NAME_ATTR, ACCESS_IPV4) = (
        "first_address", "networks", "addresses", "name", "accessIPv4")
    attributes_schema = {
        FIRST_ADDRESS: attributes.Schema("The server's first address.", type=attributes.Schema.STRING),
        NETWORKS_ATTR: attributes.Schema("Network name -> list of addresses.", type=attributes.Schema.MAP),
        ADDRESSES: attributes.Schema("Network name -> list of {addr, version, port, …}.",
                                     type=attributes.Schema.MAP),
        NAME_ATTR: attributes.Schema("The server's name.", type=attributes.Schema.STRING),
        ACCESS_IPV4: attributes.Schema("The server's first address.", type=attributes.Schema.STRING),
    }

    # -- validation (at stack create/update, before anything runs) ------------------------

    def validate(self):
        super().validate()
        if self.properties[self.USER_DATA] and self.properties[self.USER_DATA_FORMAT] != _RAW:
            raise exception.StackValidationFailed(message=(
                f"user_data_format {self.properties[self.USER_DATA_FORMAT]} needs heat-cfntools or "
                "os-collect-config in the image; this cloud's images have cloud-init only: use RAW"))
        for entry in self.properties[self.NETWORKS] or []:
            if not entry.get(self.NETWORK) and not entry.get(self.PORT):
                raise exception.StackValidationFailed(message="a networks entry needs network or port")

    # -- create ----------------------------------------------------------------------------

    def _server_name(self) -> str:
        return self.properties[self.NAME] or self.physical_resource_name()

    def handle_create(self):
        image = _image(self.properties[self.IMAGE])       # unknown ones fail here: CREATE_FAILED
        flavor = _flavor(self.properties[self.FLAVOR])
        public_keys = []
        if self.properties[self.KEY_NAME]:
            with registry() as data:
                pair = data["keypairs"].get(self.properties[self.KEY_NAME])
            if pair is None:
                raise exception.Error(f"key pair {self.properties[self.KEY_NAME]!r} not found")
            public_keys.append(pair["public_key"])
        server_id = str(uuid.uuid4())
        self.resource_id_set(server_id)
        try:
            nics = self._plug(server_id)
        except RegistryError as exc:
            release_addresses(server_id)
            raise exception.Error(str(exc))
        name = self._server_name()
        hostname = containers.hostname_for(name)
        containers.write_seed(server_id, hostname, public_keys, self._user_data(),
                              dict(self.properties[self.METADATA] or {}))
        self.data_set("nics", _json(nics))
        self.data_set("flavor", _json({"name": self.properties[self.FLAVOR], **flavor}))
        container = containers.run_server(server_id, self.stack.root_stack_id(), hostname,
                                          [nic["addr"] for nic in nics], image, flavor)
        self.data_set("container", container)
        return container

    def _user_data(self) -> str:
        """The user_data, verbatim; the id of a software config (OS::Heat::CloudConfig,
        MultipartMime, SoftwareConfig) stands for its config text, as Heat's Nova server has it."""
        content = self.properties[self.USER_DATA] or ""
        if uuidutils.is_uuid_like(content):
            with self.rpc_client().ignore_error_by_name("NotFound"):
                return self.rpc_client().show_software_config(
                    self.context, content)[rpc_api.SOFTWARE_CONFIG_CONFIG]
        return content

    def _plug(self, server_id: str) -> list[dict]:
        """One address per networks entry: a port's, or one allocated for an implicit port."""
        entries = self.properties[self.NETWORKS] or [{self.NETWORK: catalogue()["default_network"]}]
        nics = []
        for entry in entries:
            if entry.get(self.PORT):
                with registry() as data:
                    port = data["ports"].get(entry[self.PORT])
                    if port is None:
                        raise RegistryError(f"port {entry[self.PORT]!r} not found")
                    port["device_id"] = server_id
                nics.append({"network": port["network_name"], "addr": port["address"],
                             "port": entry[self.PORT]})
                continue
            network = find_network(entry[self.NETWORK])
            address = allocate_address(server_id, entry.get(self.FIXED_IP))
            port_id = str(uuid.uuid4())
            with registry() as data:
                data["ports"][port_id] = {"id": port_id, "network_id": network["id"],
                                          "network_name": network["name"], "address": address,
                                          "device_id": server_id, "implicit": True}
                if entry.get(self.FLOATING_IP):
                    data["floating_ips"].setdefault(entry[self.FLOATING_IP], {})["port_id"] = port_id
            nics.append({"network": network["name"], "addr": address, "port": port_id})
        return nics

    def check_create_complete(self, container):
        state = containers.status(container)
        if state == "running":
            return True
        if state in ("created", "configured", "initialized"):
            return False
        raise exception.Error(f"server {self._server_name()} did not boot (container {state}): "
                              f"{containers.logs(container)}")

    # -- delete ----------------------------------------------------------------------------

    def handle_delete(self):
        if not self.resource_id:
            return None
        container = self.data().get("container")
        if not container:  # created but not recorded: its name is derived from the server id
            container = f"{self._cloud_name()}-{self.resource_id[:12]}"
        try:
            containers.remove_server(self.resource_id, container)
        except containers.ContainerError as exc:
            raise exception.Error(str(exc))
        with registry() as data:
            for port_id, port in list(data["ports"].items()):
                if port.get("device_id") == self.resource_id:
                    if port.get("implicit"):
                        del data["ports"][port_id]
                    else:
                        port["device_id"] = None
        release_addresses(self.resource_id)
        return None

    @staticmethod
    def _cloud_name() -> str:
        return cloud_config()["name"]

    # -- suspend / resume (Heat stack suspend/resume) --------------------------------------

    def handle_suspend(self):
        container = self.data().get("container")
        if containers.status(container) == "running":
            containers.podman("pause", container)
        return container

    def check_suspend_complete(self, container):
        return containers.status(container) == "paused"

    def handle_resume(self):
        container = self.data().get("container")
        if containers.status(container) == "paused":
            containers.podman("unpause", container)
        return container

    def check_resume_complete(self, container):
        return containers.status(container) == "running"

    # -- attributes ------------------------------------------------------------------------

    def _nics(self) -> list[dict]:
        return json.loads(self.data().get("nics") or "[]")

    def _resolve_attribute(self, name):
        nics = self._nics()
        if not self.resource_id:
            return None
        if name in (self.FIRST_ADDRESS, self.ACCESS_IPV4):
            return nics[0]["addr"] if nics else ""
        if name == self.NETWORKS_ATTR:
            found: dict[str, list[str]] = {}
            for nic in nics:
                found.setdefault(nic["network"], []).append(nic["addr"])
            return found
        if name == self.ADDRESSES:
            return self._addresses(nics)
        if name == self.NAME_ATTR:
            return self._server_name()
        return None

    @staticmethod
    def _addresses(nics: list[dict]) -> dict:
        found: dict[str, list[dict]] = {}
        for nic in nics:
            found.setdefault(nic["network"], []).append(
                {"addr": nic["addr"], "version": 4, "port": nic["port"],
                 "OS-EXT-IPS:type": "fixed"})
        return found

    def _show_resource(self):
        container = self.data().get("container")
        state = containers.status(container) if container else "gone"
        nics = self._nics()
        return {"id": self.resource_id, "name": self._server_name(),
                "status": {"running": "ACTIVE", "paused": "PAUSED", "exited": "SHUTOFF"}.get(state, "ERROR"),
                "addresses": self._addresses(nics), "accessIPv4": nics[0]["addr"] if nics else "",
                "image": {"id": self.properties[self.IMAGE]},
                "flavor": json.loads(self.data().get("flavor") or "{}"),
                "key_name": self.properties[self.KEY_NAME],
                "metadata": dict(self.properties[self.METADATA] or {}),
                "security_groups": [{"name": g} for g in self.properties[self.SECURITY_GROUPS] or []],
                "OS-EXT-SRV-ATTR:hostname": containers.hostname_for(self._server_name())}


class BoxKeyPair(resource.Resource):
    """A key pair: a named public key (modern Nova generates none: public_key is required)."""

    support_status = support.SupportStatus(version="2014.1")
    PROPERTIES = (NAME, PUBLIC_KEY, TYPE, USER) = ("name", "public_key", "type", "user")
    properties_schema = {
        NAME: properties.Schema(properties.Schema.STRING, "Key pair name.", required=True),
        PUBLIC_KEY: properties.Schema(properties.Schema.STRING, "The public key (OpenSSH format); "
                                      "this cloud, like Nova ≥ 2.92, does not generate keys.",
                                      required=True),
        TYPE: properties.Schema(properties.Schema.STRING, "ssh or x509.", default="ssh",
                                constraints=[constraints.AllowedValues(["ssh", "x509"])]),
        USER: properties.Schema(properties.Schema.STRING, "Accepted; one user."),
    }
    ATTRIBUTES = (PUBLIC_KEY_ATTR, PRIVATE_KEY_ATTR) = ("public_key", "private_key")
    attributes_schema = {
        PUBLIC_KEY_ATTR: attributes.Schema("The public key.", type=attributes.Schema.STRING),
        PRIVATE_KEY_ATTR: attributes.Schema("Always empty: no key is generated.",
                                            type=attributes.Schema.STRING),
    }

    def handle_create(self):
        name = self.properties[self.NAME]
        key = self.properties[self.PUBLIC_KEY].strip()
        if not key.startswith(("ssh-", "ecdsa-")):
            raise exception.Error(f"key pair {name}: public_key is not an OpenSSH public key")
        with registry() as data:
            if name in data["keypairs"]:
                raise exception.Error(f"Key pair '{name}' already exists.")
            data["keypairs"][name] = {"public_key": key, "owner": self.uuid}
        self.resource_id_set(name)

    def handle_delete(self):
        if self.resource_id:
            with registry() as data:
                if data["keypairs"].get(self.resource_id, {}).get("owner") == self.uuid:
                    del data["keypairs"][self.resource_id]

    def _resolve_attribute(self, name):
        if name == self.PUBLIC_KEY_ATTR:
            return self.properties[self.PUBLIC_KEY]
        return ""


def _json(value) -> str:
    return json.dumps(value)


def resource_mapping():
    return {"OS::Nova::Server": BoxServer, "OS::Nova::KeyPair": BoxKeyPair}
