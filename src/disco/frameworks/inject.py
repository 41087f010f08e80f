"""Safe reading of the seed's `icclab.disco.dependencies.inject` attribute.

The original service manager ran `exec("dependencies = %s" % value)`: remote code
execution. Here the value is parsed as a Python expression tree and only a literal
dict of string keys to string values is accepted; nothing is ever evaluated.
"""

from __future__ import annotations

import ast

from disco.errors import InvalidSpec

MAX_LENGTH = 4096


def parse_inject(value: str) -> dict[str, str]:
    if len(value) > MAX_LENGTH:
        raise InvalidSpec(f"inject value longer than {MAX_LENGTH} characters", code="invalid_inject")
    try:
        tree = ast.parse(value.strip(), mode="eval")
    except SyntaxError:
        raise InvalidSpec(f"inject value is not a dict literal: {value!r}", code="invalid_inject") from None
    node = tree.body
    if not isinstance(node, ast.Dict):
        raise InvalidSpec(
            "inject value must be a dict of strings such as \"{'spark': ''}\"",
            code="invalid_inject",
            details={"got": type(node).__name__},
        )
    result: dict[str, str] = {}
    for key, val in zip(node.keys, node.values):
        if not (_is_str(key) and _is_str(val)):
            raise InvalidSpec("inject dict keys and values must be plain strings", code="invalid_inject")
        result[key.value] = val.value  # type: ignore[union-attr]
    return result


def _is_str(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)
