"""Heat's own verdict on templates, offline: runs validate_template.py with the Heat virtual
environment's python, without a network, all templates in one process (Heat takes about 2 s
to start, then milliseconds per template)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from disco.testbed.cloud.heat_venv import ensure_heat_venv
from disco.testbed.errors import TestbedError

VALIDATOR = Path(__file__).with_name("validate_template.py")


@dataclass(frozen=True)
class TemplateCase:
    name: str
    template: dict[str, Any] | str
    files: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    name: str
    valid: bool
    error: str | None


def without_network() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        raise TestbedError("`unshare` (util-linux) is needed to validate templates without a network")
    # As root a new network namespace is enough; otherwise a user namespace makes one possible.
    return [unshare, "--net"] if os.geteuid() == 0 else [unshare, "--user", "--map-root-user", "--net"]


def validate_templates(cases: Sequence[TemplateCase], venv: Path | None = None,
                       timeout: float = 300) -> list[Verdict]:
    """One verdict per case, in order. Raises TestbedError if the validator itself fails."""
    names = [case.name for case in cases]
    if len(set(names)) != len(names):
        raise ValueError("template cases need distinct names")
    python = (venv or ensure_heat_venv()) / "bin" / "python"
    document = json.dumps([{"name": case.name, "template": case.template, "files": case.files,
                            "parameters": case.parameters} for case in cases])
    # -I: Heat's python sees neither DISCO's environment variables nor the script's folder.
    done = subprocess.run([*without_network(), str(python), "-I", str(VALIDATOR)], input=document,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode not in (0, 1):
        raise TestbedError(f"the Heat template validator failed ({done.returncode}): {done.stderr.strip()[-3000:]}")
    verdicts = [Verdict(**json.loads(line)) for line in done.stdout.splitlines() if line.strip()]
    if [verdict.name for verdict in verdicts] != names:
        raise TestbedError(f"the Heat template validator answered {len(verdicts)} of {len(names)} "
                           f"templates: {done.stderr.strip()[-3000:]}")
    return verdicts
