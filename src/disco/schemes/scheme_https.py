"""``https://``: as ``http://``, over TLS."""

from __future__ import annotations

from disco.schemes.scheme_http import input_stream  # noqa: F401
