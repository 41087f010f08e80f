"""What a test host takes over from this machine so that it reaches package mirrors the way
the machine does: the Debian mirror and suites from apt's sources, apt's network options,
locally added CA certificates, and pip's system-wide configuration. All read at run time;
nothing about a particular mirror is written in DISCO's code."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from disco.testbed.errors import TestbedError

SUITE = "bookworm"
_APT_SOURCES = Path("/etc/apt/sources.list")
_APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
PIP_SYSTEM_CONFIG = Path("/etc/pip.conf")
# apt options that decide how (not from where) packages are fetched: proxies, and the
# validity checks a snapshot mirror needs switched off.
_APT_OPTIONS = re.compile(r"^Acquire::(https?::Proxy|Check-Valid-Until|Check-Date|Retries)\b")


@dataclass(frozen=True)
class AptSource:
    uri: str
    suite: str
    components: tuple[str, ...]

    def line(self) -> str:
        return f"deb {self.uri} {self.suite} {' '.join(self.components)}"


def host_apt_sources(sources_file: Path = _APT_SOURCES, sources_dir: Path = _APT_SOURCES_DIR) -> list[AptSource]:
    """Every `deb` source of this machine, one per suite (one-line and deb822 formats)."""
    found: list[AptSource] = []
    files = [sources_file] + sorted(sources_dir.glob("*.list")) + sorted(sources_dir.glob("*.sources"))
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        found += _deb822(text) if path.suffix == ".sources" else _one_line(text)
    return found


def debian_sources(sources: list[AptSource] | None = None) -> list[AptSource]:
    """The machine's sources for Debian bookworm (main suite first, then -updates,
    -security): a test host's apt uses the same mirrors. DISCO_TESTBED_MIRROR overrides."""
    override = os.environ.get("DISCO_TESTBED_MIRROR")
    if override:
        return [AptSource(override.rstrip("/"), SUITE, ("main",))]
    sources = host_apt_sources() if sources is None else sources
    chosen = [s for s in sources if s.suite == SUITE or s.suite.startswith(SUITE + "-")]
    if not any(s.suite == SUITE for s in chosen):
        # Another release on this machine: its Debian mirror still serves bookworm.
        mirror = next((s.uri for s in sources if s.uri.rstrip("/").endswith("/debian")), None)
        if mirror is None:
            raise TestbedError("no Debian mirror in this machine's apt sources (/etc/apt/sources.list*); "
                               "set DISCO_TESTBED_MIRROR to one")
        chosen.insert(0, AptSource(mirror, SUITE, ("main",)))
    chosen.sort(key=lambda s: (s.suite != SUITE, s.suite))
    return chosen


def mirror(sources: list[AptSource]) -> str:
    return next(s.uri for s in sources if s.suite == SUITE)


def apt_network_options() -> str:
    """apt.conf lines for the options in _APT_OPTIONS that this machine sets."""
    done = subprocess.run(["apt-config", "dump"], capture_output=True, text=True)
    if done.returncode != 0:
        return ""
    lines = [line for line in done.stdout.splitlines() if _APT_OPTIONS.match(line)]
    return "".join(line + "\n" for line in lines)


def local_ca_certificates() -> list[Path]:
    """CA certificates added to this machine by hand (update-ca-certificates takes them from
    here): a TLS-inspecting egress proxy's, for example."""
    if not LOCAL_CA_DIR.is_dir():
        return []
    return sorted(p for p in LOCAL_CA_DIR.rglob("*.crt") if p.is_file())


def _one_line(text: str) -> list[AptSource]:
    found = []
    for raw in text.splitlines():
        line = re.sub(r"\[[^\]]*\]", " ", raw.split("#", 1)[0]).split()
        if len(line) >= 3 and line[0] == "deb":
            found.append(AptSource(line[1].rstrip("/"), line[2], tuple(line[3:])))
    return found


def _deb822(text: str) -> list[AptSource]:
    found = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                found.append(AptSource(uri.rstrip("/"), suite, tuple(fields.get("components", "").split())))
    return found
