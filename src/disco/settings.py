"""Disco's settings: defaults, overridden by a settings file, overridden by the environment.

Lookup order for ``settings[NAME]``:

1. a value given to the constructor (``DiscoSettings(DISCO_MASTER=...)``) or set with ``[]=``;
2. the environment variable ``NAME``;
3. the settings file: ``DISCO_SETTINGS_FILE`` (constructor argument or environment), else
   ``~/.disco``, else ``/etc/disco/settings.py``. Disco's files are Python; we read only the
   ``NAME = <literal>`` assignments in them (with :func:`ast.literal_eval`) and never run them;
4. the built-in default, which may be derived from other settings (``DISCO_DATA`` from
   ``DISCO_ROOT``, ``DISCO_MASTER`` from ``DISCO_MASTER_HOST`` and ``DISCO_PORT``).

Port, replica and other numeric settings are returned as ``int`` whatever their source;
everything else is returned as given (environment values are strings).
"""

from __future__ import annotations

import ast
import getpass
import os
import socket
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

Default = Callable[["DiscoSettings"], Any]


def _home(settings: "DiscoSettings") -> str:
    return os.path.join(os.path.expanduser("~"), ".local", "share", "disco-mr")


def _job_owner(settings: "DiscoSettings") -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no login name (containers): still give the master something
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


DEFAULTS: dict[str, Default] = {
    "DISCO_HOME": _home,
    "DISCO_ROOT": lambda s: os.path.join(s["DISCO_HOME"], "root"),
    "DISCO_DATA": lambda s: os.path.join(s["DISCO_ROOT"], "data"),
    "DISCO_LOG_DIR": lambda s: os.path.join(s["DISCO_ROOT"], "log"),
    "DISCO_PID_DIR": lambda s: os.path.join(s["DISCO_ROOT"], "run"),
    "DISCO_NAME": lambda s: f"disco_{s['DISCO_PORT']}",
    "DISCO_MASTER_HOME": lambda s: os.path.join(s["DISCO_HOME"], "master"),
    "DISCO_MASTER_ROOT": lambda s: os.path.join(s["DISCO_DATA"], f"_{s['DISCO_NAME']}"),
    "DISCO_MASTER_CONFIG": lambda s: os.path.join(s["DISCO_ROOT"], f"{s['DISCO_NAME']}.config"),
    "DISCO_MASTER_HOST": lambda s: socket.gethostname(),
    "DISCO_MASTER": lambda s: f"http://{s['DISCO_MASTER_HOST']}:{s['DISCO_PORT']}",
    "DISCO_PORT": lambda s: 8989,
    "DISCO_PROXY": lambda s: "",
    "DISCO_PROXY_ENABLED": lambda s: "",
    "DISCO_PROXY_PORT": lambda s: 8999,
    "DISCO_EVENTS": lambda s: "",
    # How long Disco.wait() keeps trying a master that does not answer (restarting, say).
    "DISCO_MASTER_DOWN_TIMEOUT": lambda s: 120.0,
    "DISCO_DEBUG": lambda s: "off",
    "DISCO_FLAGS": lambda s: "",
    "DISCO_WORKER_MAX_MEM": lambda s: "80%",
    "DISCO_GC_AFTER": lambda s: 100 * 365 * 24 * 60 * 60,
    "DATA_GC_INTERVAL": lambda s: 12,
    "DISCO_SCHEDULER": lambda s: "fair",
    "DISCO_SCHEDULER_ALPHA": lambda s: 0.001,
    "DISCO_JOB_OWNER": _job_owner,
    "DISCO_USER": lambda s: os.getenv("LOGNAME") or os.getenv("USER") or "",
    "DISCO_SETTINGS_FILE": lambda s: _guess_settings_file(),
    # The cluster token: sent (as `Authorization: Bearer`) to the master and nodes only;
    # None for an open cluster. See disco.comm_auth.
    "DISCO_CLUSTER_TOKEN": lambda s: None,
    # Tests
    "DISCO_TEST_HOST": lambda s: s["DISCO_MASTER_HOST"],
    "DISCO_TEST_PORT": lambda s: 9444,
    "DISCO_TEST_PURGE": lambda s: "purge",
    "DISCO_TEST_DISCODB": lambda s: "",
    "DISCO_TEST_PROFILE": lambda s: "",
    # DDFS
    "DDFS_ROOT": lambda s: os.path.join(s["DISCO_ROOT"], "ddfs"),
    "DDFS_DATA": lambda s: s["DDFS_ROOT"],
    "DDFS_PUT_PORT": lambda s: 8990,
    "DDFS_PUT_MAX": lambda s: 3,
    "DDFS_GET_MAX": lambda s: 3,
    "DDFS_READ_TOKEN": lambda s: None,
    "DDFS_WRITE_TOKEN": lambda s: None,
    "DDFS_TAG_MIN_REPLICAS": lambda s: 1,
    "DDFS_TAG_REPLICAS": lambda s: 1,
    "DDFS_BLOB_REPLICAS": lambda s: 1,
    "DDFS_SPACE_AWARE": lambda s: "",
    "DDFS_PARANOID_DELETE": lambda s: "",
    "DDFS_GC_INITIAL_WAIT": lambda s: "",
}

INT_SETTINGS = frozenset({
    "DISCO_PORT", "DISCO_PROXY_PORT", "DISCO_TEST_PORT", "DDFS_PUT_PORT", "DDFS_PUT_MAX",
    "DDFS_GET_MAX", "DDFS_TAG_MIN_REPLICAS", "DDFS_TAG_REPLICAS", "DDFS_BLOB_REPLICAS",
    "DISCO_GC_AFTER", "DATA_GC_INTERVAL",
})
FLOAT_SETTINGS = frozenset({"DISCO_SCHEDULER_ALPHA", "DISCO_MASTER_DOWN_TIMEOUT"})
# Never shown in a repr (and so never in a log line or a traceback's locals).
SECRET_SETTINGS = frozenset({"DISCO_CLUSTER_TOKEN", "DDFS_READ_TOKEN", "DDFS_WRITE_TOKEN"})


def _guess_settings_file() -> str:
    for path in (os.path.expanduser("~/.disco"), "/etc/disco/settings.py"):
        if os.path.isfile(path):
            return path
    return ""


def read_settings_file(path: str) -> dict[str, Any]:
    """The ``NAME = literal`` assignments of a Disco settings file; anything else is skipped.

    Disco settings files are Python modules. Running them would run arbitrary code, so only
    assignments whose value is a plain literal (string, number, list, dict, ...) are read.
    """
    try:
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return {}
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue  # a computed value: we do not evaluate code
    return found


class DiscoSettings(MutableMapping[str, Any]):
    """A dict-like view of Disco's settings; see the module docstring for the lookup order."""

    defaults = DEFAULTS

    def __init__(self, filename: str | None = None, **overrides: Any) -> None:
        self._overrides: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        self._filename = filename
        self._file: dict[str, Any] | None = None
        self._resolving: set[str] = set()

    # -- the mapping ---------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key in self._overrides:
            return self._convert(key, self._overrides[key])
        if key in os.environ:
            return self._convert(key, os.environ[key])
        file_values = self._file_values(key)
        if key in file_values:
            return self._convert(key, file_values[key])
        if key not in self.defaults:
            raise KeyError(key)
        if key in self._resolving:
            raise KeyError(f"setting {key} depends on itself")
        self._resolving.add(key)
        try:
            return self._convert(key, self.defaults[key](self))
        finally:
            self._resolving.discard(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._overrides[key] = value

    def __delitem__(self, key: str) -> None:
        del self._overrides[key]

    def __iter__(self) -> Iterator[str]:
        keys = dict.fromkeys(self.defaults)
        keys.update(dict.fromkeys(self._overrides))
        return iter(keys)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self.defaults or key in self._overrides
                                         or key in os.environ)

    def __repr__(self) -> str:
        shown = {k: ("***" if k in SECRET_SETTINGS else v) for k, v in self._overrides.items()}
        return f"DiscoSettings({shown!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"overrides": self._overrides, "filename": self._filename}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["filename"], **state["overrides"])  # type: ignore[misc]

    # -- helpers -------------------------------------------------------------------------
    def _file_values(self, key: str) -> dict[str, Any]:
        if key == "DISCO_SETTINGS_FILE":
            return {}
        if self._file is None:
            path = self._filename or self["DISCO_SETTINGS_FILE"]
            self._file = read_settings_file(path) if path else {}
        return self._file

    @staticmethod
    def _convert(key: str, value: Any) -> Any:
        if value is None or value == "":
            return value
        try:
            if key in INT_SETTINGS:
                return int(value)
            if key in FLOAT_SETTINGS:
                return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"setting {key} must be a number, not {value!r}") from None
        return value

    def env(self) -> dict[str, str]:
        """Every setting as a string, for the environment of a child process."""
        values = {}
        for key in self:
            value = self[key]
            if value is not None:
                values[key] = str(value)
        return values
