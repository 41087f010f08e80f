"""Disco's binary job pack: what a client POSTs to /disco/job/new.

Layout (all integers big-endian):

    0    magic << 16 | version   (magic 0xd5c0; version 1 classic, 2 pipeline)
    4    offset of jobdict       (always 128: the header is padded to 128 bytes)
    8    offset of jobenvs
    12   offset of jobhome
    16   offset of jobdata
    128  jobdict (JSON) | jobenvs (JSON) | jobhome (ZIP) | jobdata (opaque, to the end)
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from dataclasses import dataclass, field
from typing import Any, ClassVar

MAGIC = 0xD5C0
VERSION_CLASSIC = 1
VERSION_PIPELINE = 2
HEADER = struct.Struct("!IIIII")
HEADER_SIZE = 128
MAX_PACK_BYTES = 1 << 30


class JobPackError(ValueError):
    """A job pack that cannot be read; the master answers ["error", str(exc)]."""


_FIELDS = ("jobdict", "jobenvs", "jobhome", "jobdata", "version")


@dataclass(init=False)
class JobPack:
    """A job pack in memory.

    Both argument orders work: Disco's ``JobPack(version, jobdict, jobenvs, jobhome,
    jobdata)`` (told apart by the int first; a jobdict is never an int) and ours,
    ``JobPack(jobdict, jobenvs, jobhome, jobdata, version)``, where everything after the
    jobdict may be left out.
    """

    jobdict: dict[str, Any]
    jobenvs: dict[str, str] = field(default_factory=dict)
    jobhome: bytes = b""
    jobdata: bytes = b""
    version: int = VERSION_CLASSIC

    # Disco's names on the class (`from disco.job import JobPack; JobPack.HEADER_SIZE`).
    HEADER_SIZE: ClassVar[int] = HEADER_SIZE
    MAGIC: ClassVar[int] = MAGIC

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args and isinstance(args[0], int) and not isinstance(args[0], bool):
            if "version" in kwargs:
                raise TypeError("JobPack() got the version twice")
            kwargs["version"], args = args[0], args[1:]
        if len(args) > len(_FIELDS):
            raise TypeError(f"JobPack() takes at most {len(_FIELDS)} arguments "
                            f"({len(args)} given)")
        values = dict(zip(_FIELDS, args))
        unknown = set(kwargs) - set(_FIELDS)
        if unknown:
            raise TypeError(f"JobPack() got unexpected arguments {sorted(unknown)}")
        twice = set(values) & set(kwargs)
        if twice:
            raise TypeError(f"JobPack() got {sorted(twice)} twice")
        values.update(kwargs)
        if "jobdict" not in values:
            raise TypeError("JobPack() needs a jobdict")
        self.jobdict = values["jobdict"]
        self.jobenvs = values.get("jobenvs") or {}
        self.jobhome = values.get("jobhome") or b""
        self.jobdata = values.get("jobdata") or b""
        self.version = values.get("version", VERSION_CLASSIC)

    @staticmethod
    def header(offsets: list[int], magic: int = MAGIC, version: int = VERSION_CLASSIC) -> bytes:
        """The padded header of a pack whose four sections start at ``offsets``."""
        return HEADER.pack(magic << 16 | version, *offsets).ljust(HEADER_SIZE, b"\0")

    def dumps(self) -> bytes:
        sections = [json.dumps(self.jobdict).encode(), json.dumps(self.jobenvs).encode(),
                    self.jobhome or empty_zip()]
        offsets = [HEADER_SIZE]
        for section in sections:
            offsets.append(offsets[-1] + len(section))
        return self.header(offsets, version=self.version) + b"".join(sections) + self.jobdata

    @classmethod
    def loads(cls, data: bytes) -> "JobPack":
        # Refusals begin with Disco's phrases ("invalid header", "missing key", "invalid
        # prefix"): its clients and tests look for them in the master's answer.
        if len(data) < HEADER_SIZE:
            raise JobPackError(f"invalid header: the pack has {len(data)} bytes, "
                               f"the header alone is {HEADER_SIZE}")
        if len(data) > MAX_PACK_BYTES:
            raise JobPackError("job pack larger than 1 GiB")
        magic_version, *offsets = HEADER.unpack_from(data)
        if magic_version >> 16 != MAGIC:
            raise JobPackError(f"bad magic {magic_version >> 16:#x} (expected {MAGIC:#x})")
        version = magic_version & 0xFFFF
        if version not in (VERSION_CLASSIC, VERSION_PIPELINE):
            raise JobPackError(f"unsupported job pack version {version}")
        if offsets[0] != HEADER_SIZE or offsets != sorted(offsets) or offsets[-1] > len(data):
            raise JobPackError(f"invalid header: section offsets {offsets} for a pack of "
                               f"{len(data)} bytes")
        dict_at, envs_at, home_at, data_at = offsets
        jobdict = _json_object(data[dict_at:envs_at], "jobdict")
        jobenvs = _json_object(data[envs_at:home_at], "jobenvs")
        jobhome = data[home_at:data_at]
        if jobhome and not zipfile.is_zipfile(io.BytesIO(jobhome)):
            raise JobPackError("jobhome is not a ZIP archive")
        pack = cls(jobdict, jobenvs, jobhome, data[data_at:], version)
        pack.validate()
        return pack

    def validate(self) -> None:
        d = self.jobdict
        for key in ("prefix", "worker"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise JobPackError(f"missing key {key!r}: the jobdict needs a non-empty "
                                   f"string there")
        if any(c in d["prefix"] for c in "/.") or len(d["prefix"]) > 128:
            raise JobPackError(f"invalid prefix {d['prefix']!r}: at most 128 characters, "
                               f"no '/' or '.'")
        if not all(isinstance(v, str) for v in self.jobenvs.values()):
            raise JobPackError("jobenvs values must be strings")
        if self.version == VERSION_CLASSIC:
            if not isinstance(d.get("input"), list):
                raise JobPackError("classic jobdict needs an 'input' list")
            # Disco's own clients write "map?"/"reduce?"; accept the plain names too.
            if not any(d.get(key) for key in ("map?", "reduce?", "map", "reduce")):
                raise JobPackError("classic jobdict needs map or reduce")
        else:
            pipeline = d.get("pipeline")
            if not isinstance(pipeline, list) or not pipeline:
                raise JobPackError("pipeline jobdict needs a non-empty 'pipeline' list")
            if not isinstance(d.get("inputs"), list):
                raise JobPackError("pipeline jobdict needs an 'inputs' list")


def read_jobdata(path: str) -> bytes:
    """Only the jobdata section of the job pack at ``path``: a worker needs nothing else, and
    the jobdict of a job with many inputs can be megabytes of JSON."""
    with open(path, "rb") as file:
        header = file.read(HEADER_SIZE)
        if len(header) < HEADER_SIZE:
            raise JobPackError(f"job pack {path} is too short")
        magic_version, *offsets = HEADER.unpack_from(header)
        if magic_version >> 16 != MAGIC or offsets != sorted(offsets):
            raise JobPackError(f"{path} is not a job pack")
        file.seek(offsets[-1])
        return file.read()


def empty_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w"):
        pass
    return buffer.getvalue()


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JobPackError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise JobPackError(f"{what} must be a JSON object")
    return value
