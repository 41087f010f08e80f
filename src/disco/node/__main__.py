"""`python3 -m disco.node <command>`: the node CLI (see cli.py)."""

from disco.node.cli import main

raise SystemExit(main())
