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
# OCCI terms (GFD.185: a letter, then letters, digits, '_' or '-').
_TERM = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# Control characters other than the horizontal tab, which HTTP allows inside a header value.
_RAW_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
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


def parse_categories(headers: list[str]) -> list[Category]:
    """Every category in the Category headers, whether comma-separated in one header or repeated."""
    categories = []
    for header in headers:
        _check_raw(header, "Category")
        for piece in _split_outside_quotes(header, ","):
            if not piece.strip():
                raise MalformedOcci("empty Category (two commas in a row, or a leading or trailing comma)",
                                    code="empty_category")
            categories.append(parse_category(piece))
    return categories


def parse_category(header: str) -> Category:
    _check_raw(header, "Category")
    pieces = [p.strip() for p in _split_outside_quotes(header, ";") if p.strip()]
    if not pieces or "=" in pieces[0]:
        raise MalformedOcci(f"Category header has no term: {header[:80]!r}")
    if not _TERM.fullmatch(pieces[0]):
        raise MalformedOcci(f"bad Category term {pieces[0][:60]!r} (letters, digits, '_' and '-')")
    category = Category(term=pieces[0])
    seen: set[str] = set()
    for piece in pieces[1:]:
        key, sep, value = piece.partition("=")
        if not sep:
            raise MalformedOcci(f"Category parameter without value: {piece[:60]!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        key = key.strip()
        if key in seen:
            raise MalformedOcci(f"Category parameter {key[:60]!r} given twice", details={"parameter": key[:60]})
        seen.add(key)
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
        _check_raw(header, "X-OCCI-Attribute")
        for name, value in _attribute_pairs(header):
            if name in result:
                raise MalformedOcci(f"attribute {name} given twice", details={"attribute": name})
            result[name] = value
    return result


def _attribute_pairs(text: str) -> list[tuple[str, str]]:
    """`name=value` pairs separated by single commas; an empty element is an error, not a no-op."""
    pairs = []
    i, n = 0, len(text)
    while True:
        i = _skip_blanks(text, i)
        if i >= n or text[i] == ",":
            raise MalformedOcci("empty attribute in X-OCCI-Attribute (an empty header, two commas in a row, "
                                "or a leading or trailing comma)", code="empty_attribute")
        eq = text.find("=", i)
        if eq < 0:
            raise MalformedOcci(f"attribute without '=': {text[i:i + 60]!r}")
        name = text[i:eq].strip()
        if not _NAME.fullmatch(name):
            raise MalformedOcci(f"bad attribute name {name[:60]!r}")
        i = _skip_blanks(text, eq + 1)
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
        i = _skip_blanks(text, i)
        if i >= n:
            return pairs
        if text[i] != ",":
            raise MalformedOcci(f"expected ',' after attribute {name}", details={"attribute": name})
        i += 1


def _skip_blanks(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _check_raw(header: str, name: str) -> None:
    """Header text is one line of visible characters: a control character there is no OCCI
    (render_attribute escapes them), and would otherwise reach the spec unnoticed."""
    found = _RAW_CONTROL.search(header)
    if found:
        raise MalformedOcci(f"control character U+{ord(found.group()):04X} in the {name} header",
                            code="control_character", details={"header": name})


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
