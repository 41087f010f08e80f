"""Where frameworks keep their caches (Spark's class-data archives, ~110 MB): configurable."""

from __future__ import annotations

from pathlib import Path

import pytest

from disco.frameworks.render import render


def test_disco_cache_dir_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCO_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    # As a framework.yaml sees it: through the template helper.
    assert render("{{ cache_dir() }}/spark-master.jsa", {}) == f"{tmp_path}/mine/spark-master.jsa"
    assert (tmp_path / "mine").is_dir()  # made on first use


def test_xdg_then_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISCO_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert render("{{ cache_dir() }}", {}) == f"{tmp_path}/xdg/disco"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert render("{{ cache_dir() }}", {}) == f"{tmp_path}/home/.cache/disco"
