"""What runs on a cluster's node, whatever carried it there (SSH, cloud-init): the node
bundle (`bundle`), the bootstrap script (`bootstrap`), the installer (`install`), the
supervisor that keeps the node's processes (`supervisor`) and the node CLI
(`python3 -m disco.node …`, `cli`).

This package runs on the node from a venv that holds only disco's own wheel and the
frameworks' packages: it imports the standard library and nothing of the service manager.
"""
