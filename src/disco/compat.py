"""Names that Disco's Python 2/3 code (and job scripts written for both) import from here.

Disco 0.5 let the same job script run under Python 2 and Python 3 by importing text/bytes
helpers and moved standard modules from ``disco.compat``. Only Python 3 is supported here,
so each name is simply its Python 3 meaning.
"""

from __future__ import annotations

import http.client as httplib
import http.server as http_server
import io
import pickle
import socketserver as socket_server
from io import BytesIO, StringIO
from itertools import zip_longest
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "basestring", "integer_types", "bytes_of_int", "int_of_byte", "str_to_bytes", "bytes_to_str",
    "force_utf8", "force_ascii", "StringIO", "BytesIO", "file", "pickle_loads", "pickle_dumps",
    "pickle_load", "pickle_dump", "UnpicklingError", "socket_server", "urlencode", "httplib",
    "http_server", "zip_longest",
]

basestring = str
integer_types = (int,)

pickle_loads, pickle_dumps = pickle.loads, pickle.dumps
pickle_load, pickle_dump = pickle.load, pickle.dump
UnpicklingError = pickle.UnpicklingError


class _LocalFileType(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        # Python 2's ``file`` was a buffered file; open(path, "rb") in Python 3 gives a
        # buffered reader around an io.FileIO. Both count as an open local file.
        for _layer in range(4):  # text wrapper -> buffered reader -> raw file
            if obj is None:
                break
            if isinstance(obj, io.FileIO):
                return True
            obj = getattr(obj, "raw", None) or getattr(obj, "buffer", None)
        return False


class file(io.FileIO, metaclass=_LocalFileType):  # noqa: N801 - the name scripts import
    """``file(path, mode)`` opens a local file (an :class:`io.FileIO`); ``isinstance(fd,
    file)`` is true of any file object reading or writing a local file, buffered or not."""


def bytes_of_int(value: int) -> bytes:
    """The one byte whose value is ``value`` (0..255)."""
    return bytes((value,))


def int_of_byte(value: int) -> int:
    """Indexing bytes gives ints already under Python 3."""
    return value


def str_to_bytes(value: Any) -> bytes:
    """UTF-8 bytes of a str; bytes (and bytes-like values) are passed through as bytes."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


def bytes_to_str(value: Any) -> str:
    """The str a UTF-8 bytes value spells; a str is passed through."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8")
    return value


def force_utf8(text: str) -> str:
    """Python 3 strings are text already (Python 2 made them valid UTF-8 bytes)."""
    return text


def force_ascii(text: str) -> str:
    return text

