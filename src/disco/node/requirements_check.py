"""Which pip requirements a Python environment does not satisfy, dependencies included.

Run as a script by the node venv's own interpreter (`python -I requirements_check.py`,
requirements as a JSON list on stdin; prints {"unsatisfied": [...]}) so that it judges that
environment, not ours. Standard library only, plus the `packaging` that pip carries.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # a fresh venv has pip's copy only
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]


def unsatisfied(requirements: list[str]) -> list[str]:
    """Requirements (or the dependencies they pull in) that are missing or at a wrong version."""
    missing: list[str] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [(Requirement(text), text) for text in requirements]
    while pending:
        requirement, origin = pending.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(origin)
            continue
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            missing.append(origin)
            continue
        for dependency_text in metadata.requires(requirement.name) or []:
            dependency = Requirement(dependency_text)
            extras = requirement.extras or {""}
            if dependency.marker is not None and not any(dependency.marker.evaluate({"extra": e}) for e in extras):
                continue
            pending.append((dependency, origin))
    return sorted(set(missing))


if __name__ == "__main__":
    print(json.dumps({"unsatisfied": unsatisfied(json.load(sys.stdin))}))
