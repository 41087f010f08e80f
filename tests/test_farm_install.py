"""The volunteer installer (src/disco/taskfarm/install/install.sh), run as a volunteer would with
a real `disco farm server`: it installs the client into its own venv under a prefix, starts it
(nohup: this machine has no user systemd), the client enrolls and does a unit; `--uninstall`
leaves the home directory exactly as it was. The checksum published in docs/taskfarm.md is
the script's."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

from farm_clients import audit, enrollment_key, rows, submit, wait_done
from farm_fixtures import FarmServer

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "src/disco/taskfarm/install/install.sh"


def scan(top: Path) -> dict[str, tuple[int, int]]:
    """Every path under `top` with its mode and size (directories too)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            found[str(path.relative_to(top))] = (st.st_mode, 0 if path.is_dir() else st.st_size)
    return found


def installer(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME", "VIRTUAL_ENV")}
    python = str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}")
    return subprocess.run(["sh", str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                          env={**env, "HOME": str(home), "NO_PROXY": "*", "PYTHON": python}, stdin=subprocess.DEVNULL)


def test_published_checksum_is_the_scripts() -> None:
    published = re.search(r"install\.sh` SHA-256: `([0-9a-f]{64})`", (ROOT / "docs/taskfarm.md").read_text())
    assert published, "docs/taskfarm.md publishes the installer's SHA-256"
    assert published.group(1) == hashlib.sha256(SCRIPT.read_bytes()).hexdigest()


def test_install_runs_a_client_and_uninstall_leaves_no_trace(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "something.conf").write_text("the volunteer's own file\n")
    before = scan(home)
    farm = FarmServer(tmp_path / "farm", f"sqlite:///{tmp_path / 'farm.sqlite'}").start()
    try:
        key = enrollment_key(farm, tmp_path / "key")
        project, lines = submit(farm, tmp_path, 3)
        done = installer(home, "--server", farm.url, "--key-file", str(key), "--slots", "2", "--mode", "nohup",
                         "--source", str(ROOT))
        assert done.returncode == 0, done.stderr[-3000:]
        prefix = home / ".local/share/disco-farm"
        assert f"made {prefix}" in done.stdout and "started the client with nohup" in done.stdout
        assert oct((prefix / "key").stat().st_mode & 0o777) == "0o600"
        wait_done(farm, project, 120)
        assert audit(farm, project, lines)["lost"] == 0
        assert rows(farm, "select count(*) from farm_clients")[0][0] == 1
        pid = int((prefix / "client.pid").read_text())
        assert key.read_text() not in Path(f"/proc/{pid}/cmdline").read_text()
        refused = installer(home, "--server", farm.url, "--key-file", str(key), "--mode", "nohup")
        assert refused.returncode == 2 and "exists already" in refused.stderr
        gone = installer(home, "--uninstall")
        assert gone.returncode == 0, gone.stderr
        assert f"removed {prefix}" in gone.stdout
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    finally:
        farm.stop()
    assert scan(home) == before  # the prefix, and .local/share and .local it made, are gone


def test_uninstall_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    other = tmp_path / "precious"
    other.mkdir()
    (other / "data").write_text("keep me")
    done = installer(tmp_path, "--uninstall", "--prefix", str(other))
    assert done.returncode == 2 and "not made by this installer" in done.stderr
    assert (other / "data").read_text() == "keep me"
