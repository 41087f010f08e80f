"""The validator as a command: templates in files (YAML or JSON), one verdict per line, and an
exit status that says whether all were valid; bad input is refused before Heat starts."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from disco.testbed.cloud.heat_venv import ensure_heat_venv
from disco.testbed.cloud.template_check import VALIDATOR, TemplateCase, without_network, validate_templates

MINIMAL = {"heat_template_version": "2018-08-31",
           "resources": {"handle": {"type": "OS::Heat::WaitConditionHandle"}},
           "outputs": {"signal": {"value": {"get_attr": ["handle", "curl_cli"]}}}}


@pytest.fixture(scope="module")
def python() -> str:
    return str(ensure_heat_venv() / "bin" / "python")


def test_files_in_verdicts_out(python, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(MINIMAL))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**MINIMAL, "resources": {"handle": {"type": "OS::Heat::NoSuchThing"}}}))
    done = subprocess.run([*without_network(), python, "-I", str(VALIDATOR), str(good), str(bad)],
                          capture_output=True, text=True, timeout=120)
    verdicts = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1, done.stderr
    assert verdicts[0] == {"name": str(good), "valid": True, "error": None}
    assert verdicts[1]["name"] == str(bad) and not verdicts[1]["valid"]
    assert "OS::Heat::NoSuchThing" in verdicts[1]["error"]


def test_bad_input_is_refused(python, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("heat_template_version: [unclosed\n")
    done = subprocess.run([python, "-I", str(VALIDATOR), str(broken)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "neither JSON nor YAML" in done.stderr
    done = subprocess.run([python, "-I", str(VALIDATOR)], input='{"not": "a template"}',
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "expected a template or a list" in done.stderr


def test_case_names_must_be_distinct():
    with pytest.raises(ValueError, match="distinct names"):
        validate_templates([TemplateCase("a", MINIMAL), TemplateCase("a", MINIMAL)])
