"""What the taskfarm-cluster tests (local, SSH hosts, OpenStack) check the same way: the user's
CLI, a 40-unit project of squares done with the right results, and the clients that did it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from sm_fixtures import wait_until

# Code only the tests have (clients get it pickled by value); each unit takes a moment so that
# both workers' clients get a share of the units.
SQUARES = textwrap.dedent('''
    import time

    def square(data: bytes) -> bytes:
        """Each line's number squared, one a line."""
        time.sleep(0.4)
        return b"".join(b"%d\\n" % (int(line) ** 2) for line in data.splitlines())
''')
UNITS = 40


def run_disco(env: dict[str, str], *args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "disco.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env, stdin=subprocess.DEVNULL)


def squares_done(user: dict[str, str], cwd: Path, timeout: float = 180) -> str:
    """Submit UNITS one-line units of SQUARES with `disco farm submit`, wait until the project is
    done and check its results; the project's id."""
    (cwd / "squares.py").write_text(SQUARES)
    numbers = list(range(UNITS))
    (cwd / "numbers.txt").write_text("".join(f"{n}\n" for n in numbers))
    submitted = run_disco(user, "farm", "submit", "--function", "squares.py:square", "--input", "numbers.txt",
                          "--split", "lines:1", "--name", "squares", cwd=cwd)
    assert submitted.returncode == 0, submitted.stderr
    project = submitted.stdout.strip().splitlines()[-1]
    assert f"{UNITS} units" in submitted.stderr

    def done() -> bool:
        status = run_disco(user, "farm", "status", project, "--output", "json", cwd=cwd)
        assert status.returncode == 0, (status.returncode, status.stdout[-2000:], status.stderr[-2000:])
        return json.loads(status.stdout)["state"] == "done"

    wait_until(done, timeout=timeout, interval=1, what="the project done")
    results = run_disco(user, "farm", "results", project, cwd=cwd)
    assert results.returncode == 0, results.stderr
    assert results.stdout == "".join(f"{n * n}\n" for n in numbers)
    return project


def clients_that_did_it(user: dict[str, str], cwd: Path, names: list[str]) -> list[dict[str, Any]]:
    """`disco farm clients`: exactly the clients named, each of which computed units, together
    at least UNITS of them."""
    listed = run_disco(user, "farm", "clients", "--output", "json", cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    clients = json.loads(listed.stdout)["clients"]
    assert sorted(c["name"] for c in clients) == sorted(names)
    assert all(c["instances"].get("success", 0) > 0 for c in clients), clients
    assert sum(c["instances"].get("success", 0) for c in clients) >= UNITS
    return clients
