"""Renders the templated strings of a framework.yaml in a sandbox.

Templates see only plain data (cluster, node, master, ports, props) and a few helpers
to locate installed software, so a framework folder can describe how to start its
processes without any Python of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from disco.errors import DiscoError


def module_dir(name: str) -> str:
    """Directory of an installed Python package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DiscoError(f"Python package {name!r} is not installed", code="missing_software")
    return str(Path(list(spec.submodule_search_locations)[0]))


def cache_dir() -> str:
    """A directory of this machine's user that outlives clusters, for caches frameworks keep
    (e.g. the JVM class-data archives of Spark's daemons, ~110 MB): DISCO_CACHE_DIR, else
    $XDG_CACHE_HOME/disco, else ~/.cache/disco."""
    base = Path(cache_path())
    base.mkdir(parents=True, exist_ok=True)
    return str(base)


def cache_path() -> str:
    """cache_dir() without making it."""
    configured = os.environ.get("DISCO_CACHE_DIR")
    if configured:
        return str(Path(configured).expanduser())
    return str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "disco")


def software_dir() -> str:
    """Where downloaded software lives: on a remote node its prefix (the node's facts say);
    on the local provider, which downloads nothing, DISCO_SOFTWARE_DIR (default /opt/disco,
    a remote node's default prefix), where an admin puts what frameworks download elsewhere."""
    return os.environ.get("DISCO_SOFTWARE_DIR", "/opt/disco").rstrip("/") or "/"


def path_exists(path: str) -> bool:
    return os.path.exists(path)


def java_support(classpath: str) -> str:
    """The classpath entry of DISCO's own Java classes for JVM frameworks (Spark's web UI
    filter), compiled against `classpath` on first use."""
    from disco.framework_support.java_build import JavaBuildError, built_classes

    try:
        return built_classes(classpath)
    except JavaBuildError as exc:
        raise DiscoError(str(exc), code="missing_software") from None


def spark_class_archive(role: str, java_opts: str) -> str:
    """The JVM option that maps a trusted class-data archive into a Spark daemon of `role`,
    or "" while the service manager is still recording it (spark_archives.py)."""
    from disco.framework_support.spark_archives import archive_option

    spark_home = module_dir("pyspark")
    return archive_option(role, spark_home, java_support(spark_home + "/jars/*"), java_opts)


def port_block(host: str, size: int) -> int:
    """The first of `size` port numbers that belong to the node at `host` alone on this machine,
    the same at every render (for frameworks that bind ports to every address; port_blocks.py)."""
    from disco.framework_support.port_blocks import port_block as assign

    try:
        return assign(cache_dir(), host, int(size))
    except (OSError, RuntimeError, ValueError) as exc:
        raise DiscoError(f"no ports for {host}: {exc}", code="no_ports") from None


def derive_secret(secret: str, purpose: str) -> str:
    """A secret of its own for one purpose, derived from a cluster credential (HMAC-SHA256), so
    that a framework's password is not a credential another framework keeps in a file."""
    digest = hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def jupyter_password_hash(secret: str) -> str:
    """jupyter_server's salted argon2 hash of a password: what a Jupyter server is configured
    with, so that the clear password never lands in a file."""
    from jupyter_server.auth.security import passwd

    return passwd(secret)


@lru_cache(maxsize=64)  # half a second of hashing, the same for every render of a cluster
def shiro_password_hash(secret: str, iterations: int = 500_000) -> str:
    """Apache Shiro's hash of a password in its own text form (Shiro1CryptFormat, what its
    PasswordMatcher reads: `$shiro1$SHA-256$<iterations>$<salt>$<hash>`, base64), so that a
    shiro.ini (Zeppelin's) holds no clear password. Shiro hashes salt + password once, then the
    digest `iterations - 1` more times. The salt is derived from the secret itself, so every
    render of the file is the same; the secret is a random per-cluster credential, which is
    what a salt guards in the first place (no table of common passwords applies to it)."""
    salt = hmac.new(secret.encode(), b"shiro-salt", hashlib.sha256).digest()[:16]
    digest = hashlib.sha256(salt + secret.encode()).digest()
    for _ in range(iterations - 1):
        digest = hashlib.sha256(digest).digest()
    b64 = base64.b64encode
    return f"$shiro1$SHA-256${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def which(command: str) -> str:
    found = shutil.which(command)
    if not found:
        raise DiscoError(f"command {command!r} not found on PATH", code="missing_software")
    return found


_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)
_env.globals.update(python=sys.executable, module_dir=module_dir, which=which, cache_dir=cache_dir,
                    path_exists=path_exists, java_support=java_support,
                    spark_class_archive=spark_class_archive, port_block=port_block,
                    derive_secret=derive_secret, jupyter_password_hash=jupyter_password_hash,
                    shiro_password_hash=shiro_password_hash, software_dir=software_dir(),
                    bin_dir=str(Path(sys.executable).parent))


@lru_cache(maxsize=4096)
def _template(source: str) -> Template:
    # Compiling costs about half a millisecond; the same few hundred strings recur for every
    # node and every readiness poll.
    return _env.from_string(source)


@lru_cache(maxsize=1024)
def _expression(source: str) -> Any:
    return _env.compile_expression(source, undefined_to_none=False)


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every string inside a str / list / dict structure."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        try:
            return _template(value).render(context)
        except TemplateError as exc:
            raise DiscoError(f"cannot render {value!r}: {exc}", code="template_error") from exc
    if isinstance(value, list):
        return [render(item, context) for item in value]
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    return value


def evaluate(expression: str, context: dict[str, Any]) -> Any:
    """Value of an expression; a name that does not exist is an error, not a silent None
    (a typo in `ready_when` must fail the check, not time it out)."""
    try:
        result = _expression(expression)(**context)
        if isinstance(result, Undefined):
            result._fail_with_undefined_error()
        return result
    except TemplateError as exc:
        raise DiscoError(f"cannot evaluate {expression!r}: {exc}", code="template_error") from exc
