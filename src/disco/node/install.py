"""`install --bundle FILE`: make a node ready for its cluster, idempotently.

Steps, in order, each skipped when its work is already done: the node's directories, the
bundle, the cluster's user (as root), OS packages, the venv, disco's own wheel, the
frameworks' Python packages, downloads, the configuration files. Every write is staged and
renamed, so a run killed at any point is finished by the next one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from disco.node import apt, pyenv, users
from disco.node.bundle import NodeBundle, relative_path
from disco.node.downloads import ensure_download
from disco.node.layout import NodeDir, write_atomic
from disco.node.steps import DeployLog


def install(bundle_file: Path) -> dict[str, object]:
    bundle = NodeBundle.from_json(bundle_file.read_text())
    node = NodeDir(Path(bundle.node_dir))
    prefix = Path(bundle.prefix)
    started = time.monotonic()
    prepare_dirs(node)
    deploy = DeployLog(node.deploy_log)
    deploy.note(f"install of cluster {bundle.cluster_id} node {bundle.node} ({bundle.role}) begins")
    user = None

    with deploy.step("bundle") as step:
        if _stored_bundle(node) != bundle:
            write_atomic(node.bundle_file, bundle.to_json().encode() + b"\n", 0o644)
            step.changed = True

    if users.isolating():
        with deploy.step("user") as step:
            user, step.changed = users.ensure_user(bundle.cluster_id)
            step.detail = user.name
            own_private_dirs(node, user.uid, user.gid)

    with deploy.step("os_packages") as step:
        missing = apt.missing_packages(bundle.os_packages)
        if missing:
            apt.install_packages(missing)
            step.changed, step.detail = True, " ".join(missing)

    venv = prefix / "venv"
    pip_env = pyenv.pip_environment(node.secrets)
    with deploy.step("venv") as step:
        step.changed = pyenv.ensure_venv(venv)

    if bundle.disco_wheel is not None:
        with deploy.step("disco") as step:
            search = [bundle_file.parent, prefix / "cache" / "wheels"]
            step.changed = pyenv.ensure_disco(venv, bundle.disco_wheel, search, pip_env)
            step.detail = bundle.disco_wheel.version

    with deploy.step("python_packages") as step:
        step.changed = pyenv.ensure_requirements(venv, bundle.python, pip_env)

    with deploy.step("downloads") as step:
        fetched = [d.dest for d in bundle.downloads if ensure_download(d, prefix)]
        step.changed, step.detail = bool(fetched), " ".join(fetched)

    with deploy.step("files") as step:
        written = write_config_files(node.work, bundle.files, user.uid if user else None,
                                     user.gid if user else None)
        step.changed, step.detail = bool(written), " ".join(written)
        if user is not None:
            own_private_dirs(node, user.uid, user.gid)

    total = time.monotonic() - started
    deploy.note(f"install done in {total:.2f}s")
    return {"node_dir": str(node.path), "changed": any(s.changed for s in deploy.steps),
            "seconds": round(total, 3), "steps": [s.as_dict() for s in deploy.steps]}


def _stored_bundle(node: NodeDir) -> NodeBundle | None:
    try:
        return NodeBundle.from_json(node.bundle_file.read_text())
    except (OSError, ValueError):
        return None


def prepare_dirs(node: NodeDir) -> None:
    """The node's directory: passable (not listable) by the cluster's user, who needs work/ and
    secrets/ inside; the supervisor's own files stay private to it."""
    node.path.mkdir(parents=True, exist_ok=True)
    os.chmod(node.path, 0o711)
    for private in (node.secrets, node.launches, node.logs):
        private.mkdir(mode=0o700, exist_ok=True)
        os.chmod(private, 0o700)
    node.work.mkdir(mode=0o700, exist_ok=True)


def own_private_dirs(node: NodeDir, uid: int, gid: int) -> None:
    """work/ and secrets/ (and what the transport put there) belong to the cluster's user."""
    for top in (node.work, node.secrets):
        for directory, _dirs, files in os.walk(top):
            os.chown(directory, uid, gid, follow_symlinks=False)
            for name in files:
                os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)
    for directory, _dirs, files in os.walk(node.secrets):
        os.chmod(directory, 0o700)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o600, follow_symlinks=False)


def write_config_files(work: Path, files: dict[str, str], uid: int | None, gid: int | None) -> list[str]:
    """The bundle's configuration files under work/, rewritten only when they differ."""
    written = []
    for name, content in sorted(files.items()):
        target = work / relative_path(name, "file")
        data = content.encode()
        if target.is_file() and not target.is_symlink() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.parent.resolve().is_relative_to(work.resolve()):
            raise ValueError(f"file {name!r} leads out of {work} through a link")
        write_atomic(target, data, 0o644)
        if uid is not None and gid is not None:
            os.chown(target, uid, gid, follow_symlinks=False)
        written.append(name)
    return written
