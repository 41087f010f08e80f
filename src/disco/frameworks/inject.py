"""Safe reading of the seed's `icclab.disco.dependencies.inject` attribute.

The original service manager ran `exec("dependencies = %s" % value)`: remote code
execution. Here the value is read token by token against the one shape it may have —
a flat dict literal of plain string keys and values — and nothing is ever evaluated.
Reading tokens with a small state machine, rather than building a Python syntax tree,
keeps the cost flat whatever the input: deeply nested operators or brackets are just
unexpected tokens, never a recursion.
"""

from __future__ import annotations

import ast
import io
import tokenize
import warnings
from collections.abc import Iterator

from disco.errors import InvalidSpec

MAX_LENGTH = 4096
# Tokens that only lay out the text (line breaks inside the braces, the end of input).
_LAYOUT = {tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER}
# String prefixes that still give a plain str: raw and the Python 2 `u`. Not bytes, not f-strings.
_PLAIN_PREFIXES = {"", "r", "u"}
_EXAMPLE = "\"{'spark': ''}\""


def parse_inject(value: str) -> dict[str, str]:
    if len(value) > MAX_LENGTH:
        raise InvalidSpec(f"inject value longer than {MAX_LENGTH} characters", code="invalid_inject")
    tokens = _significant_tokens(value.strip())
    result: dict[str, str] = {}
    _expect(next(tokens, None), "{")
    token = next(tokens, None)
    while not _is_op(token, "}"):
        key = _string(token, "a string key")
        _expect(next(tokens, None), ":")
        val = _string(next(tokens, None), f"a string value for key {key!r}")
        if key in result:
            raise InvalidSpec(f"inject dict names {key!r} twice", code="invalid_inject",
                              details={"key": key})
        result[key] = val
        token = next(tokens, None)
        if _is_op(token, ","):
            token = next(tokens, None)
        elif not _is_op(token, "}"):
            raise _unexpected(token, "',' or '}'")
    trailing = next(tokens, None)
    if trailing is not None:
        raise _unexpected(trailing, "the end of the value after '}'")
    return result


def _significant_tokens(text: str) -> Iterator[tokenize.TokenInfo]:
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type not in _LAYOUT:
                yield token
    except (tokenize.TokenError, SyntaxError):
        raise InvalidSpec(f"inject value is not a dict literal such as {_EXAMPLE} "
                          "(unterminated string or bracket)", code="invalid_inject") from None


def _is_op(token: tokenize.TokenInfo | None, text: str) -> bool:
    return token is not None and token.type == tokenize.OP and token.string == text


def _expect(token: tokenize.TokenInfo | None, text: str) -> None:
    if not _is_op(token, text):
        raise _unexpected(token, repr(text))


def _string(token: tokenize.TokenInfo | None, what: str) -> str:
    if token is None or token.type != tokenize.STRING:
        raise _unexpected(token, what)
    prefix = token.string[:len(token.string) - len(token.string.lstrip("rRuUbBfF"))]
    if prefix.lower() not in _PLAIN_PREFIXES:
        raise InvalidSpec(f"inject dict keys and values must be plain strings, got {token.string[:40]!r}",
                          code="invalid_inject")
    # One string token alone: literal_eval only decodes its quotes and escapes.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unknown escape such as \d stays as written
            text = ast.literal_eval(token.string)
    except (SyntaxError, ValueError):
        raise InvalidSpec(f"bad string in inject value: {token.string[:40]!r}", code="invalid_inject") from None
    assert isinstance(text, str)
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        raise InvalidSpec(f"control character in inject string {token.string[:40]!r}", code="invalid_inject")
    return text


def _unexpected(token: tokenize.TokenInfo | None, wanted: str) -> InvalidSpec:
    found = "the end of the value" if token is None else repr(token.string[:40])
    column = None if token is None else token.start[1]
    return InvalidSpec(f"inject value must be a dict of strings such as {_EXAMPLE}: expected {wanted}, "
                       f"found {found}", code="invalid_inject",
                       details={"expected": wanted, "found": found, "column": column})
