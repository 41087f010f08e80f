"""Templates as YAML text: keys in the order they were built (stable, so the same design
gives the same text) and multi-line strings, such as boot scripts, as literal blocks."""

from __future__ import annotations

from typing import Any

import yaml


class _TemplateDumper(yaml.SafeDumper):
    """A dumper of our own: registering the block style on SafeDumper would change every
    other YAML the process writes."""

    def ignore_aliases(self, data: Any) -> bool:
        # A value used twice (the master's IP) is written out twice: no anchors in templates.
        return True


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Block style cannot carry trailing spaces or tabs faithfully; those stay quoted.
    if "\n" in value and not any(line != line.rstrip() for line in value.split("\n")):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_TemplateDumper.add_representer(str, _string)


def dump_yaml(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_TemplateDumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=100)
