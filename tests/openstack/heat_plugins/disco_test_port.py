"""A Heat resource plugin for the scaling test: a Neutron port stand-in whose `fixed_ips`
attribute answers an address (OS::Heat::None answers None, which the workers' group refuses
for their `master_ip`). Loaded by Heat from `plugin_dirs`; runs inside Heat's environment."""

import itertools

from heat.engine import attributes
from heat.engine.resources.openstack.heat.none_resource import NoneResource

_next_host = itertools.count(10)


class TestPort(NoneResource):
    def handle_create(self):
        super().handle_create()
        self.data_set("ip", f"10.20.0.{next(_next_host)}")

    def get_attribute(self, key, *path):
        if key == "fixed_ips":
            return attributes.select_from_attribute([{"ip_address": self.data().get("ip")}], path)
        return None


def resource_mapping():
    return {"DISCO::Test::Port": TestPort}
