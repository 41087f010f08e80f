"""The typical design's templates, text for text. A change here is a change of every stack
DISCO creates: look at the diff, then regenerate deliberately with
`DISCO_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/openstack/test_golden.py`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from disco.providers.openstack.template import render_files, render_yaml
from disco.providers.openstack.worker_template import WORKER_TEMPLATE_NAME
from openstack_designs import typical_design

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize(("golden_name", "rendered"), [
    ("typical.yaml", lambda: render_yaml(typical_design())),
    (WORKER_TEMPLATE_NAME, lambda: render_files(typical_design())[WORKER_TEMPLATE_NAME]),
])
def test_rendered_text_matches_the_golden_file(golden_name, rendered):
    path = GOLDEN / golden_name
    text = rendered()
    if os.environ.get("DISCO_REGENERATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.is_file(), f"{path} is missing: regenerate it (see this module's docstring)"
    assert text == path.read_text(), f"the rendering differs from {path} (see this module's docstring)"
