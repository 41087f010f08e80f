"""The node's Python environment: a venv at <prefix>/venv, disco's own wheel in it, and the
frameworks' packages, each installed only when missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from disco.node.bundle import DiscoWheel, PythonEnv
from disco.node.downloads import file_sha256

_CHECKER = Path(__file__).with_name("requirements_check.py")


class PythonEnvError(RuntimeError):
    pass


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def venv_works(venv: Path) -> bool:
    """A venv whose interpreter and pip run (a pre-baked one, or ours finished)."""
    python = venv_python(venv)
    if not python.exists():
        return False
    done = subprocess.run([str(python), "-I", "-m", "pip", "--version"], capture_output=True)
    return done.returncode == 0


def ensure_venv(venv: Path) -> bool:
    if venv_works(venv):
        return False
    # Half made by a run that was killed (no pip yet): made again from nothing. A venv cannot
    # be staged elsewhere and renamed, its scripts name their own path.
    shutil.rmtree(venv, ignore_errors=True)
    base = shutil.which("python3") or getattr(sys, "_base_executable", sys.executable)
    done = subprocess.run([base, "-m", "venv", str(venv)], capture_output=True, text=True)
    if done.returncode != 0 or not venv_works(venv):
        shutil.rmtree(venv, ignore_errors=True)
        raise PythonEnvError(f"{base} -m venv {venv} failed: {done.stderr.strip()[-1500:]} "
                             "(Debian/Ubuntu: apt-get install python3-venv)")
    return True


def installed_version(venv: Path, distribution: str) -> str | None:
    done = subprocess.run([str(venv_python(venv)), "-I", "-c",
                           "import sys, importlib.metadata as m\n"
                           "try: print(m.version(sys.argv[1]))\n"
                           "except m.PackageNotFoundError: pass", distribution],
                          capture_output=True, text=True)
    return done.stdout.strip() or None


def ensure_disco(venv: Path, wheel: DiscoWheel, search: list[Path], pip_env: dict[str, str]) -> bool:
    """disco's own wheel in the venv (without dependencies: the node needs none of the service
    manager's), unless that very build is there."""
    if installed_version(venv, "disco") == wheel.version:
        return False
    for directory in search:
        candidate = directory / wheel.filename
        if candidate.is_file():
            actual = file_sha256(candidate)
            if actual != wheel.sha256:
                raise PythonEnvError(f"{candidate}: SHA-256 is {actual}, expected {wheel.sha256}")
            _pip(venv, ["install", "--no-deps", "--no-index", "--force-reinstall", str(candidate)], pip_env)
            return True
    raise PythonEnvError(f"disco's wheel {wheel.filename} is in none of {', '.join(map(str, search))}")


def unsatisfied(venv: Path, requirements: list[str]) -> list[str]:
    done = subprocess.run([str(venv_python(venv)), "-I", str(_CHECKER)], input=json.dumps(requirements),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise PythonEnvError(f"checking requirements failed: {done.stderr.strip()[-1500:]}")
    return list(json.loads(done.stdout)["unsatisfied"])


def ensure_requirements(venv: Path, python: PythonEnv, pip_env: dict[str, str]) -> bool:
    if not python.requirements or not unsatisfied(venv, python.requirements):
        return False
    options: list[str] = []
    if python.wheelhouse:
        options += ["--find-links", python.wheelhouse]
        if not python.index_url:
            options.append("--no-index")
    if python.index_url:
        options += ["--index-url", python.index_url]
    _pip(venv, ["install", "--disable-pip-version-check", "-q", *options, *python.requirements], pip_env)
    left = unsatisfied(venv, python.requirements)
    if left:
        raise PythonEnvError(f"after pip install, still unsatisfied: {', '.join(left)}")
    return True


def pip_environment(secrets: Path) -> dict[str, str]:
    """pip's environment: a private index's login comes from secrets/pip.conf, if any."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if (secrets / "pip.conf").is_file():
        env["PIP_CONFIG_FILE"] = str(secrets / "pip.conf")
    env.pop("PYTHONPATH", None)
    return env


def _pip(venv: Path, args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run([str(venv_python(venv)), "-I", "-m", "pip", *args], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        raise PythonEnvError(f"pip {args[0]} failed: {done.stderr.strip()[-2000:]}")
