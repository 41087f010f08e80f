"""Hunks: how Disco's internal record format frames its data.

A file is a sequence of hunks, each a 14-byte header ``struct '<BBIQ'`` = (128 + format
version, compressed flag, crc32 of the uncompressed data, length of the stored data)
followed by the data, zlib-compressed when the flag is 1. Files of hunks can be concatenated
(Disco's shuffle does that), so there is no end marker. What the data holds depends on the
version: :mod:`disco.worker.task_io` (version 1, Disco's) and
:mod:`disco.worker.record_runs` (version 2, ours).
"""

from __future__ import annotations

import struct
import zlib

HUNK_HEADER = struct.Struct("<BBIQ")
HUNK_SIZE = 1 << 20  # uncompressed bytes a writer puts in a hunk, about
MAX_HUNK_SIZE = 1 << 31  # a header claiming more than this is corrupt, not big


def pack_hunk(version: int, data: bytes, compression_level: int) -> bytes:
    """One hunk holding ``data``, compressed at ``compression_level`` (0: stored)."""
    checksum = zlib.crc32(data) & 0xFFFFFFFF
    compressed = 1 if compression_level > 0 else 0
    if compressed:
        data = zlib.compress(data, compression_level)
    return HUNK_HEADER.pack(128 + version, compressed, checksum, len(data)) + data
