"""Validates Heat (HOT) templates offline with Heat's own validator, as Heat's API would before
creating a stack, and prints one JSON verdict per template.

Run by the Heat virtual environment's python (disco.testbed.cloud.heat_venv), never by DISCO's:
standard library and Heat only. No cloud is asked anything: the messaging transport is Heat's
fake one, and the few look-ups Heat makes of Keystone, Nova, Glance and Neutron while
validating answer from stubs that accept any name (an image or flavor is checked by the cloud
that has it, not here). Run it without a network (as root: `unshare -n`) to be sure.

Input, on stdin or in files named as arguments (JSON or YAML):
  - a template (a mapping with `heat_template_version`), or
  - a list of cases: {"name": str, "template": mapping or text, "files": {name: text},
    "parameters": {name: value}}.
Output, on stdout: one JSON object per case and line: {"name", "valid": bool, "error": str|null}.
Exit status 0 when every case is valid, 1 when one is not, 2 on bad input.
"""

from __future__ import annotations

import json
import logging
import sys
import types

FAKE_FLAVOR = types.SimpleNamespace(id="flavor-id", name="flavor", ram=4096, disk=40, vcpus=2,
                                    is_public=True)
FAKE_IMAGE = types.SimpleNamespace(id="image-id", name="image", min_ram=0, min_disk=0,
                                   status="active", size=1 << 30)


def _stub_cloud_lookups() -> None:
    """Replaces what would ask a cloud: service catalogue, API versions, flavors, images,
    Neutron names and the custom constraints (image, flavor, network, key pair … exist)."""
    from heat.engine import constraints, resource
    from heat.engine.clients.os import glance, nova
    from heat.engine.clients.os import neutron

    resource.Resource.is_service_available = classmethod(lambda cls, context: (True, None))
    nova.NovaClientPlugin.get_max_microversion = lambda self: "2.96"
    nova.NovaClientPlugin.is_version_supported = lambda self, version: True
    nova.NovaClientPlugin.get_flavor = lambda self, flavor: FAKE_FLAVOR
    nova.NovaClientPlugin.find_flavor_by_name_or_id = lambda self, flavor: FAKE_FLAVOR.id
    glance.GlanceClientPlugin.get_image = lambda self, image: FAKE_IMAGE
    glance.GlanceClientPlugin.find_image_by_name_or_id = lambda self, image: FAKE_IMAGE.id
    neutron.NeutronClientPlugin.find_resourceid_by_name_or_id = (
        lambda self, kind, name_or_id, cmd_resource=None: f"{kind}-{name_or_id}")
    constraints.BaseCustomConstraint.validate = lambda self, value, context, template=None: True


def start_heat() -> None:
    """Heat's configuration, plugins and fake messaging: about 2 s, once per process."""
    # Heat warns about every hidden resource type at start: keep stderr for real errors.
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    from oslo_config import cfg

    from heat.common import config  # noqa: F401  (registers Heat's options)
    from heat.common import messaging

    cfg.CONF([], project="heat", default_config_files=[])
    # Counting a stack's resources asks the database; there is none here.
    cfg.CONF.set_override("max_resources_per_stack", -1)
    messaging.setup(url="fake://")
    from heat.engine import resources
    resources.initialise()
    _stub_cloud_lookups()


def _parse_template(text_or_mapping):
    from heat.common import template_format
    if isinstance(text_or_mapping, str):
        return template_format.parse(text_or_mapping)
    return text_or_mapping


def validate(name: str, template, files: dict | None = None,
             parameters: dict | None = None) -> dict:
    from heat.common import context as heat_context
    from heat.engine import environment, stack, template as heat_template

    try:
        parsed = _parse_template(template)
        env = environment.Environment({"parameters": parameters or {}})
        tmpl = heat_template.Template(parsed, files=files or {}, env=env)
        ctx = heat_context.RequestContext(user_id="validator", project_id="validator",
                                          is_admin=False, overwrite=False)
        # The case's name is the caller's label; Heat's stack names have rules of their own.
        candidate = stack.Stack(ctx, "disco-template-check", tmpl)
        candidate.validate()
    except Exception as error:  # Heat's many exception types all mean "invalid" here
        return {"name": name, "valid": False, "error": f"{type(error).__name__}: {error}"}
    return {"name": name, "valid": True, "error": None}


def _cases(document, origin: str) -> list[dict]:
    """A lone template is named after where it came from (its file, or stdin)."""
    if isinstance(document, dict) and "heat_template_version" in document:
        return [{"name": origin, "template": document}]
    if isinstance(document, list) and all(isinstance(case, dict) and "template" in case
                                          for case in document):
        return [{"name": str(case.get("name", index)), **case} for index, case in enumerate(document)]
    raise ValueError("expected a template or a list of {name, template, files, parameters}")


def _read_documents(paths: list[str]) -> list[tuple[str, object]]:
    from heat.common import template_format
    texts = [(path, open(path, encoding="utf-8").read()) for path in paths] if paths \
        else [("stdin", sys.stdin.read())]
    documents = []
    for origin, text in texts:
        try:
            documents.append((origin, json.loads(text)))
        except json.JSONDecodeError:
            try:
                documents.append((origin, template_format.yaml.load(text, Loader=template_format.yaml_loader)))
            except template_format.yaml.YAMLError as error:
                raise ValueError(f"{origin} is neither JSON nor YAML: {error}") from None
    return documents


def main(argv: list[str]) -> int:
    try:
        documents = _read_documents(argv)
        cases = [case for origin, document in documents for case in _cases(document, origin)]
    except (OSError, ValueError) as error:
        print(json.dumps({"error": f"bad input: {error}"}), file=sys.stderr)
        return 2
    start_heat()
    all_valid = True
    for case in cases:
        verdict = validate(case["name"], case["template"], case.get("files"), case.get("parameters"))
        all_valid = all_valid and verdict["valid"]
        print(json.dumps(verdict), flush=True)
    return 0 if all_valid else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
