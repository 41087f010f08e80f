"""Regular expressions for providers' `provider_options`, written once and used twice: by the
provider's own check (`re.fullmatch`) and in the JSON schema it publishes (`pattern`), so that
what the schema allows the provider takes and what it refuses the provider refuses.

Only plain character classes with \\x and \\u escapes, which Python, ECMA-262 and Rust's regex
read alike (no \\s, \\d or \\w, whose meaning differs between them)."""

from __future__ import annotations

import re
from typing import Any

# What str.strip() removes (str.isspace, Unicode 15) and the C0/C1 control characters.
_SPACE_OR_CONTROL = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_CONTROL = r"\x00-\x1f\x7f-\x9f"


def name_pattern(max_length: int) -> str:
    """A name as people type it (a cloud's image, flavor or network): 1..max_length characters,
    no control character, no white space at either end (the value is used as given)."""
    edge = f"[^{_SPACE_OR_CONTROL}]"
    return f"^{edge}(?:[^{_CONTROL}]{{0,{max_length - 2}}}{edge})?$"


def list_pattern(item: str) -> str:
    """A comma-separated list of one or more items (no spaces, no empty item)."""
    return f"^{item}(?:,{item})*$"


def decimal_range_pattern(low: int, high: int) -> str:
    """Decimal digits, without sign or leading zeros, of a whole number in low..high (0 <= low <= high)."""
    alternatives = []
    for length in range(len(str(low)), len(str(high)) + 1):
        start = max(low, 10 ** (length - 1) if length > 1 else 0)
        end = min(high, 10 ** length - 1)
        if start <= end:
            alternatives += same_length(str(start), str(end))
    return "^(?:" + "|".join(alternatives) + ")$"


def same_length(low: str, high: str) -> list[str]:
    """Alternatives matching every number from `low` to `high`, both of the same length."""
    if low == high:
        return [low]
    if len(low) == 1:
        return [f"[{low}-{high}]"]
    rest = len(low) - 1
    if low[0] == high[0]:
        return [low[0] + tail for tail in same_length(low[1:], high[1:])]
    if low[1:] == "0" * rest and high[1:] == "9" * rest:
        return [f"[{low[0]}-{high[0]}][0-9]{{{rest}}}"]
    parts = [low[0] + tail for tail in same_length(low[1:], "9" * rest)]
    if int(low[0]) + 1 <= int(high[0]) - 1:
        parts.append(f"[{int(low[0]) + 1}-{int(high[0]) - 1}][0-9]{{{rest}}}")
    parts += [high[0] + tail for tail in same_length("0" * rest, high[1:])]
    return parts


def matches(pattern: str, value: object) -> bool:
    """Whether a value is a string the pattern matches as ECMA-262 reads it (JSON Schema's
    regular expressions): whole, `$` at the very end (Python's `$` would also take a final
    newline, hence fullmatch)."""
    return isinstance(value, str) and re.fullmatch(pattern, value) is not None


def text_option(pattern: str, description: str) -> dict[str, Any]:
    return {"type": "string", "pattern": pattern, "description": description}


def unknown_options(provider: str, options: dict[str, str], known: dict[str, str]) -> list[str]:
    """The problem of option names a provider does not take, listing what it takes (none: [])."""
    unknown = sorted(set(options) - set(known))
    if not unknown:
        return []
    return [f"unknown option(s) {', '.join(unknown)}; provider {provider} takes "
            + "; ".join(f"{k} ({v})" for k, v in known.items())]
