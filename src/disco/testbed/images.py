"""Builds the test-host images with debootstrap and keeps them in the cache.

An image is a root filesystem directory, `<cache>/testbed/images/<name>-<recipe hash>/rootfs`,
that containers run on with `podman run --rootfs DIR:O` (each container writes to an overlay of
its own; the image stays untouched). It is built in a staging directory and renamed when
finished, so a build that is killed leaves nothing that looks usable; builds of one image are
serialised by a lock file, so concurrent test sessions build it once."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from disco.testbed import host_config
from disco.testbed.chroot import run_in_root
from disco.testbed.errors import TestbedError
from disco.testbed.paths import images_root
from disco.testbed.recipe import Recipe, recipe as named_recipe

Progress = Callable[[str], None]

# Root logs in with a key only; the listen address is given on sshd's command line per host.
# PAM is off: it needs audit capabilities a container lacks (pam_loginuid), and key logins
# need nothing of it.
_SSHD_CONFIG = """\
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
"""
# No init system in a test host: packages must not try to start their services at install.
_POLICY_RC_D = "#!/bin/sh\n# Test host without an init system: packages start no services.\nexit 101\n"


@dataclass(frozen=True)
class Image:
    recipe: Recipe
    path: Path              # the image directory; the root filesystem is path / "rootfs"
    built_seconds: float | None = None  # None when an existing build was reused

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    @property
    def name(self) -> str:
        return self.recipe.name


def _quiet(message: str) -> None:
    pass


def ensure_image(which: str | Recipe, cache_dir: Path | None = None, rebuild: bool = False,
                 progress: Progress = _quiet) -> Image:
    """The image for a recipe (by name: "bare", "baked"), built unless a build of the very
    same recipe is cached. `rebuild` builds it again even so (not its base)."""
    recipe = named_recipe(which) if isinstance(which, str) else which
    root = images_root(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    base = ensure_image(recipe.base, cache_dir, progress=progress) if recipe.base else None
    final = root / recipe.dirname
    with _lock(root / f".{recipe.name}.lock"):
        if _complete(final) and not rebuild:
            return Image(recipe, final)
        for stale in root.glob(f".staging-{recipe.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a build that was killed
        staging = root / f".staging-{recipe.dirname}-{os.getpid()}"
        started = time.monotonic()
        progress(f"building image {recipe.dirname} (first time: a minute or more)")
        try:
            if base is None:
                _build_from_scratch(recipe, staging, progress)
            else:
                _build_on(base, recipe, staging, progress)
            seconds = time.monotonic() - started
            (staging / "recipe.json").write_text(json.dumps(
                {"recipe": recipe.dirname, "built_seconds": round(seconds, 1)}, indent=1) + "\n")
            if final.exists():
                _retire(final)
            os.rename(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        _remove_superseded(root, recipe)
        progress(f"image {recipe.dirname} built in {seconds:.0f} s")
        return Image(recipe, final, seconds)


def list_images(cache_dir: Path | None = None) -> list[dict[str, object]]:
    root = images_root(cache_dir)
    found = []
    for path in sorted(root.glob("*/recipe.json")) if root.is_dir() else []:
        info = json.loads(path.read_text())
        found.append({"image": path.parent.name, "path": str(path.parent / "rootfs"),
                      "built_seconds": info.get("built_seconds")})
    return found


def _complete(path: Path) -> bool:
    return (path / "recipe.json").is_file() and (path / "rootfs").is_dir()


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_from_scratch(recipe: Recipe, staging: Path, progress: Progress) -> None:
    if shutil.which("debootstrap") is None:
        raise TestbedError("debootstrap is not installed (Debian/Ubuntu: apt-get install debootstrap)")
    sources = host_config.debian_sources()
    rootfs = staging / "rootfs"
    rootfs.mkdir(parents=True)
    started = time.monotonic()
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(recipe.debootstrap_packages)}",
            recipe.suite, str(rootfs), host_config.mirror(sources)]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        log = rootfs / "debootstrap" / "debootstrap.log"
        detail = log.read_text(errors="replace")[-2000:] if log.is_file() else done.stderr[-2000:]
        raise TestbedError(f"debootstrap failed (exit {done.returncode}):\n{detail}")
    progress(f"  debootstrap {recipe.suite}: {time.monotonic() - started:.0f} s")
    _configure(rootfs, sources)
    run_in_root(rootfs, "update-ca-certificates >/dev/null\n"
                        "rm -f /etc/ssh/ssh_host_*\n"  # every host makes its own at first boot
                        "apt-get clean\nrm -rf /var/lib/apt/lists/*\n", what="configure")


def _configure(rootfs: Path, sources: list[host_config.AptSource]) -> None:
    """Files a test host takes over from this machine (mirrors, apt's network options, locally
    added CAs, pip's system config) and its sshd and service policy."""
    (rootfs / "etc/apt/sources.list").write_text("".join(s.line() + "\n" for s in sources))
    options = host_config.apt_network_options()
    if options:
        (rootfs / "etc/apt/apt.conf.d/90disco-testbed-network").write_text(options)
    for certificate in host_config.local_ca_certificates():
        target = rootfs / "usr/local/share/ca-certificates" / certificate.relative_to(host_config.LOCAL_CA_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(certificate, target)
    if host_config.PIP_SYSTEM_CONFIG.is_file():
        shutil.copyfile(host_config.PIP_SYSTEM_CONFIG, rootfs / "etc/pip.conf")
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text(_POLICY_RC_D)
    policy.chmod(0o755)
    sshd_dir = rootfs / "etc/ssh/sshd_config.d"
    sshd_dir.mkdir(parents=True, exist_ok=True)
    (sshd_dir / "disco-testbed.conf").write_text(_SSHD_CONFIG)
    if Path("/etc/resolv.conf").is_file():  # for the build steps; podman gives hosts their own
        (rootfs / "etc/resolv.conf").unlink(missing_ok=True)
        shutil.copyfile("/etc/resolv.conf", rootfs / "etc/resolv.conf")


def _build_on(base: Image, recipe: Recipe, staging: Path, progress: Progress) -> None:
    staging.mkdir(parents=True)
    rootfs = staging / "rootfs"
    started = time.monotonic()
    _run(["cp", "-a", "--reflink=auto", str(base.rootfs), str(rootfs)], "copy of the base image")
    progress(f"  copy of {base.recipe.dirname}: {time.monotonic() - started:.0f} s")
    binds: dict[Path, str] = {}
    script = ["apt-get update -q >/dev/null"]
    if recipe.apt_packages:
        script.append("apt-get install -y -q --no-install-recommends "
                      + " ".join(map(shlex.quote, recipe.apt_packages)) + " >/dev/null")
    if recipe.venv:
        script.append(f"python3 -m venv {shlex.quote(recipe.venv)}")
    if recipe.venv and recipe.python_pins:
        wheelhouse = staging / "wheelhouse"
        started = time.monotonic()
        _wheels(list(recipe.python_pins), wheelhouse)
        progress(f"  wheels for {', '.join(recipe.python_pins)}: {time.monotonic() - started:.0f} s")
        binds[wheelhouse] = "/mnt/disco-wheelhouse"
        # The wheels made here come first; the index still serves what the image's Python
        # (Debian's, maybe older than this machine's) needs in another version.
        script.append(f"{shlex.quote(recipe.venv)}/bin/pip install -q --no-cache-dir "
                      "--disable-pip-version-check --find-links /mnt/disco-wheelhouse "
                      + " ".join(map(shlex.quote, recipe.python_pins)))
    script += ["apt-get clean", "rm -rf /var/lib/apt/lists/*"]
    started = time.monotonic()
    run_in_root(rootfs, "\n".join(script) + "\n", binds, what=f"bake {recipe.name}")
    progress(f"  packages and venv: {time.monotonic() - started:.0f} s")
    for target in binds.values():
        (rootfs / target.lstrip("/")).rmdir()
    for path, content in recipe.files:
        target = rootfs / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    shutil.rmtree(staging / "wheelhouse", ignore_errors=True)


def _wheels(pins: list[str], wheelhouse: Path) -> None:
    """Wheels of the pinned packages and their dependencies, made here with this machine's pip
    (its cache and configured indexes make this fast: pyspark is a ~300 MB sdist otherwise
    built from scratch); the image installs them without touching the network."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
          "--wheel-dir", str(wheelhouse), *pins], "pip wheel " + " ".join(pins))


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        raise TestbedError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")


def _in_use(image_dir: Path) -> bool:
    done = subprocess.run(["podman", "ps", "-a", "-q", "--filter", f"label=disco.testbed.image={image_dir.name}"],
                          capture_output=True, text=True)
    return bool(done.stdout.strip()) if done.returncode == 0 else shutil.which("podman") is not None


def _retire(image_dir: Path) -> None:
    if _in_use(image_dir):
        raise TestbedError(f"image {image_dir.name} is in use by test hosts; `disco testbed down` them "
                           "before rebuilding it")
    shutil.rmtree(image_dir)


def _remove_superseded(root: Path, recipe: Recipe) -> None:
    """Builds of older recipes of the same image that no test host runs on."""
    for other in root.glob(f"{recipe.name}-*"):
        if other.name != recipe.dirname and other.is_dir() and not _in_use(other):
            shutil.rmtree(other, ignore_errors=True)
