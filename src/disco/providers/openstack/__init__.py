"""The OpenStack provider's pure part: a cluster's stack design (design.py), the Heat template
it renders to (template.py, worker_template.py) and the SSH key pair DISCO makes for it
(keys.py). Nothing here talks to a cloud or knows the database (docs/openstack-template.md)."""
