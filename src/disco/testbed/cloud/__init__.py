"""The cloud in a box: a real OpenStack Heat (engine and API from the `openstack-heat` package,
in a virtual environment of its own) on loopback, whose servers are test-host containers."""
