"""Stand-ins for the render functions that act when a template calls them (build DISCO's Java
support with javac, start recording Spark's class-data archives, reserve a block of ports,
make a cache directory) and for those that turn a secret into something a file holds (a
derived password, its hash): a dry run renders every template with these, so it changes
nothing and shows no secret, and what it shows is the same at every run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from disco.cluster.plan import HIDDEN
from disco.framework_support.java_build import JAR, build_dir
from disco.framework_support.spark_archives import recorded_option
from disco.frameworks import render
from disco.providers.base import NodeFacts


class PortBlockStart(int):
    """The first port of a node's block (port_blocks.py), handed out only at create: renders as
    a placeholder, and `+ n` keeps the offset visible."""

    host: str
    offset: int

    def __new__(cls, host: str, offset: int = 0) -> "PortBlockStart":
        value = super().__new__(cls, offset)
        value.host, value.offset = host, offset
        return value

    def __add__(self, other: Any) -> "PortBlockStart":
        return PortBlockStart(self.host, self.offset + int(other))

    __radd__ = __add__

    def __str__(self) -> str:
        return f"<port block of {self.host}" + (f" + {self.offset}>" if self.offset else ">")

    __repr__ = __str__


def stand_ins(facts: NodeFacts | None) -> dict[str, Any]:
    """Render names for one node: `facts` for a node elsewhere (its paths), None for this machine."""
    def java_support(classpath: str) -> str:
        jar = build_dir() / JAR
        if facts is None:
            return str(jar)
        inside = jar.relative_to(Path(render.module_dir("disco")))
        return f"{facts.site_packages}/disco/{inside.as_posix()}"

    def spark_class_archive(role: str, java_opts: str) -> str:
        if facts is not None:
            return ""
        spark_home = render.module_dir("pyspark")
        return recorded_option(role, spark_home, java_support(spark_home + "/jars/*"), java_opts)

    return {
        "java_support": java_support,
        "spark_class_archive": spark_class_archive,
        "port_block": lambda host, size: PortBlockStart(str(host)),
        "cache_dir": render.cache_path,
        "derive_secret": lambda secret, purpose: HIDDEN,
        "jupyter_password_hash": lambda secret: HIDDEN,
        "shiro_password_hash": lambda secret, iterations=500_000: HIDDEN,
    }
