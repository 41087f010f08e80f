"""The `disco` command: the service manager, its tokens and clusters (and later, jobs)."""
