"""A cloud named as OpenStack users name it: one entry of their `clouds.yaml`, with `secure.yaml`
(where they keep passwords) merged over it, found as openstacksdk finds them.

Where: `--clouds-file PATH`, else `OS_CLIENT_CONFIG_FILE`, else the first of `./clouds.yaml`,
`$XDG_CONFIG_HOME/openstack/clouds.yaml` (`~/.config/openstack/…`) and
`/etc/openstack/clouds.yaml` (`.yml` and `.json` too). `secure.yaml`: `OS_CLIENT_SECURE_FILE`,
else the one beside the clouds file, else the first on the same search path; its entry is merged
key by key over the clouds file's. Which cloud: `--cloud NAME`, else `OS_CLOUD`.

The entry is a secret (it holds a password or a token): it goes into the request body and
nowhere else; errors name files and clouds, never anything an entry holds."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

EXTENSIONS = ("yaml", "yml", "json")
MAX_FILE_BYTES = 1024 * 1024   # a clouds.yaml is a few kilobytes


class CloudsFileError(Exception):
    """The cloud cannot be read: no file, no such cloud, a file that is not a clouds.yaml.
    `code` is the error code the CLI shows (a usage error, exit code 2)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class FoundCloud:
    name: str
    entry: dict[str, Any]
    clouds_file: Path
    secure_file: Path | None


def search_dirs() -> list[Path]:
    """openstacksdk's directories, in its order: here, the user's, the site's."""
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [Path.cwd(), config_home / "openstack", Path("/etc/openstack")]


def _candidates(stem: str, dirs: list[Path]) -> list[Path]:
    return [d / f"{stem}.{ext}" for d in dirs for ext in EXTENSIONS]


def load_cloud(name: str, clouds_file: Path | None = None) -> FoundCloud:
    """The entry of cloud `name`, secure.yaml merged in; CloudsFileError when it cannot be."""
    searched: list[Path] = []
    if clouds_file is not None:
        if not clouds_file.is_file():
            raise CloudsFileError("clouds_file_missing", f"--clouds-file {clouds_file}: no such file")
        candidates = [clouds_file]
    else:
        override = os.environ.get("OS_CLIENT_CONFIG_FILE")
        # As openstacksdk: the named file first, then the usual places.
        candidates = ([Path(override)] if override else []) + _candidates("clouds", search_dirs())
    found = None
    for path in candidates:
        searched.append(path)
        if path.is_file():
            found = path
            break
    if found is None:
        raise CloudsFileError("no_clouds_file", f"cloud {name!r}: no clouds.yaml found (searched: "
                              f"{', '.join(str(p) for p in searched)}); give --clouds-file PATH or set "
                              "OS_CLIENT_CONFIG_FILE")
    clouds = _clouds_of(found)
    secure_file = _secure_file(found)
    secure = _clouds_of(secure_file) if secure_file is not None else {}
    if name not in clouds and name not in secure:
        names = sorted(set(clouds) | set(secure))
        files = str(found) + (f" and {secure_file}" if secure_file is not None else "")
        raise CloudsFileError("unknown_cloud", f"no cloud {name!r} in {files} (clouds there: "
                              f"{', '.join(names) or 'none'}; searched: {', '.join(str(p) for p in searched)})")
    entry = deep_merge(clouds.get(name) or {}, secure.get(name) or {})
    return FoundCloud(name, entry, found, secure_file)


def _secure_file(clouds_file: Path) -> Path | None:
    override = os.environ.get("OS_CLIENT_SECURE_FILE")
    candidates = ([Path(override)] if override else []) + _candidates("secure", [clouds_file.parent]) + \
        _candidates("secure", search_dirs())
    return next((p for p in candidates if p.is_file()), None)


def _clouds_of(path: Path) -> dict[str, Any]:
    """The `clouds:` mapping of a clouds.yaml or secure.yaml (entries that are not mappings are
    left for the service manager to refuse, by key, without their value)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CloudsFileError("invalid_clouds_file", f"{path}: larger than {MAX_FILE_BYTES} bytes")
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CloudsFileError("invalid_clouds_file", f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CloudsFileError("invalid_clouds_file", f"{path} is not valid YAML{yaml_error_position(exc)}") from None
    clouds = data.get("clouds") if isinstance(data, dict) else None
    if not isinstance(clouds, dict):
        raise CloudsFileError("invalid_clouds_file", f"{path} has no `clouds:` mapping")
    return {str(k): v for k, v in clouds.items()}


def yaml_error_position(exc: yaml.YAMLError) -> str:
    """Where PyYAML stopped, e.g. " (line 3, column 7)". Its own message quotes the line, which
    may hold a password: only the position is ever shown."""
    mark = getattr(exc, "problem_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def deep_merge(base: Any, over: Any) -> Any:
    """`over` merged into `base`: mappings key by key, anything else replaced (openstacksdk's way)."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = deep_merge(base.get(key), value) if key in base else value
        return merged
    return over
