"""OCCI 1.1 text renderings (GFD.185) as the ICCLab service manager used them.

Parsing is strict and never evaluates anything: a malformed header is a 400 with a
machine-readable body, not a stack trace.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from disco.errors import DiscoError

SM_SCHEME = "http://schemas.cloudcomplab.ch/occi/sm#"
ACTION_SCHEME = "http://schemas.cloudcomplab.ch/occi/sm/action#"
CORE_SCHEME = "http://schemas.ogf.org/occi/core#"
MAX_HEADER_CHARS = 65536
# Attribute names as OCCI writes them (dotted, e.g. icclab.disco.components.heat.slavecount).
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.@-]*")
# Unquoted values may only be numbers or booleans; strings must be quoted.
_BARE_VALUE = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?|true|false")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


class MalformedOcci(DiscoError):
    status = 400
    code = "malformed_occi"


@dataclass
class Category:
    term: str
    scheme: str = ""
    cls: str = ""
    params: dict[str, str] = field(default_factory=dict)

    def render(self) -> str:
        parts = [self.term, f'scheme="{self.scheme}"', f'class="{self.cls}"']
        parts += [f'{key}="{value}"' for key, value in self.params.items()]
        return "; ".join(parts)


def parse_category(header: str) -> Category:
    pieces = [p.strip() for p in _split_outside_quotes(header, ";") if p.strip()]
    if not pieces or "=" in pieces[0]:
        raise MalformedOcci(f"Category header has no term: {header!r}")
    category = Category(term=pieces[0])
    for piece in pieces[1:]:
        key, sep, value = piece.partition("=")
        if not sep:
            raise MalformedOcci(f"Category parameter without value: {piece!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        key = key.strip()
        if key == "scheme":
            category.scheme = value
        elif key == "class":
            category.cls = value
        else:
            category.params[key] = value
    return category


def parse_attributes(headers: list[str]) -> dict[str, str]:
    """All X-OCCI-Attribute values, whether comma-separated in one header or repeated."""
    result: dict[str, str] = {}
    for header in headers:
        if len(header) > MAX_HEADER_CHARS:
            raise MalformedOcci("X-OCCI-Attribute header too long")
        for name, value in _attribute_pairs(header):
            if name in result:
                raise MalformedOcci(f"attribute {name} given twice", details={"attribute": name})
            result[name] = value
    return result


def _attribute_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        eq = text.find("=", i)
        if eq < 0:
            raise MalformedOcci(f"attribute without '=': {text[i:i + 60]!r}")
        name = text[i:eq].strip()
        if not _NAME.fullmatch(name):
            raise MalformedOcci(f"bad attribute name {name[:60]!r}")
        i = eq + 1
        while i < n and text[i] == " ":
            i += 1
        if i < n and text[i] == '"':
            value, i = _quoted(text, i + 1)
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            value = text[i:end].strip()
            if not _BARE_VALUE.fullmatch(value):
                raise MalformedOcci(f"bad value for attribute {name}: strings must be quoted",
                                    details={"attribute": name})
            i = end
        pairs.append((name, value))
        while i < n and text[i] == " ":
            i += 1
        if i < n and text[i] != ",":
            raise MalformedOcci(f"expected ',' after attribute {name}", details={"attribute": name})
    return pairs


def _quoted(text: str, i: int) -> tuple[str, int]:
    out = []
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in ("u", "U"):
                # \u + 4 hex digits or \U + 8: how render_attribute keeps headers ASCII-only.
                width = 4 if nxt == "u" else 8
                digits = text[i + 2:i + 2 + width]
                if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits) \
                        or int(digits, 16) > 0x10FFFF or 0xD800 <= int(digits, 16) <= 0xDFFF:
                    raise MalformedOcci(f"bad \\{nxt} escape in quoted attribute value")
                out.append(chr(int(digits, 16)))
                i += 2 + width
                continue
            # Unknown escapes stay as written (a Windows path such as C:\data keeps its backslash).
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
        elif char == '"':
            return "".join(out), i + 1
        else:
            out.append(char)
            i += 1
    raise MalformedOcci("unterminated quoted attribute value")


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts, current, quoted, escaped = [], [], False, False
    for char in text:
        if escaped:  # the character after a backslash inside quotes never ends them
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        if char == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise MalformedOcci(f"unbalanced quotes in {text!r}")
    parts.append("".join(current))
    return parts


def render_attribute(name: str, value: object) -> str:
    """`name="value"` (or `name=number`), always one line of printable ASCII.

    HTTP header values cannot hold newlines or other control characters, and the server
    sends headers as Latin-1, so those and every non-ASCII character are escaped
    (`\\n`, `\\r`, `\\t`, `\\u` + 4 hex digits); parse_attributes reads them back.
    """
    if isinstance(value, bool):
        return f'{name}="{str(value).lower()}"'
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return f"{name}={value}"
    return f'{name}="{_escape(str(value))}"'


def _escape(text: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)
