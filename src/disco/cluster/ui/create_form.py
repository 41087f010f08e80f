"""The create form as data: the spec body it posts (the REST API's JSON body, field for field:
`parse_spec` and `ClusterService.validate` are the only checks, the API's), and the errors of
those checks put back next to the field they are about. (What the form shows: form_fields.py.)

Field names: name, provider, workers, frameworks (repeated), prop.FRAMEWORK.PROPERTY,
opt.PROVIDER.OPTION, and in the advanced area overrides (YAML), allowed_cidrs (one a line),
idle_timeout_s, max_age_s, cloud (YAML; OpenStack only, never shown back)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from disco.cluster.ui.csrf import as_int
from disco.errors import DiscoError
from disco.frameworks.catalog import Catalog

GENERAL = "_form"  # errors about no one field (e.g. no free hosts)
FIELD_CODES = {
    "invalid_workers": "workers", "too_many_workers": "workers",
    "unknown_provider": "provider", "isolation_unavailable": "provider",
    "cloud_not_used": "cloud", "cloud_missing": "cloud", "invalid_cloud": "cloud",
    "invalid_override": "overrides",
    "unknown_framework": "frameworks", "duplicate_framework": "frameworks", "dependency_cycle": "frameworks",
    "unknown_property": "frameworks",
}
TOP_FIELDS = {"name", "workers", "provider", "idle_timeout_s", "max_age_s", "masters", "cloud"}


@dataclass
class FormValues:
    """What the user entered, to show the form again as it was (secrets and the cloud left out)."""

    name: str = ""
    provider: str = ""
    workers: str = "1"
    frameworks: list[str] = field(default_factory=list)
    props: dict[str, str] = field(default_factory=dict)  # "fw.prop" -> text
    opts: dict[str, str] = field(default_factory=dict)  # "provider.option" -> text
    overrides: str = ""
    allowed_cidrs: str = ""
    idle_timeout_s: str = ""
    max_age_s: str = ""


class FormProblem(DiscoError):
    """Text the form could not turn into the spec's JSON at all (YAML that does not parse):
    the API's equivalent is a body that is not JSON (invalid_json)."""

    status = 422
    code = "invalid_form"

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name


def values_from(pairs: Any) -> FormValues:
    """The form's values from a posted form or the query string (`csrf.Form` either way)."""
    return FormValues(
        name=pairs.get("name").strip(), provider=pairs.get("provider").strip(),
        workers=pairs.get("workers", "1").strip(),
        frameworks=[n for n in dict.fromkeys(pairs.getall("frameworks")) if n],
        props=pairs.startswith("prop."), opts=pairs.startswith("opt."),
        overrides=pairs.get("overrides"), allowed_cidrs=pairs.get("allowed_cidrs"),
        idle_timeout_s=pairs.get("idle_timeout_s").strip(), max_age_s=pairs.get("max_age_s").strip())


def spec_body(values: FormValues, cloud_text: str, catalog: Catalog) -> dict[str, Any]:
    """The JSON body the REST API would get for this form (empty fields left out: defaults)."""
    body: dict[str, Any] = {}
    if values.name:
        body["name"] = values.name
    if values.provider:
        body["provider"] = values.provider
    if values.workers:
        body["workers"] = as_int(values.workers)
    for key in ("idle_timeout_s", "max_age_s"):
        if getattr(values, key):
            body[key] = as_int(getattr(values, key))
    overrides = _yaml_map("overrides", values.overrides, "framework: {file: {key: value}}")
    chosen = _with_settings(values, overrides, catalog)
    frameworks = []
    for name in chosen:
        entry: dict[str, Any] = {"name": name}
        given = {key.split(".", 1)[1]: text for key, text in values.props.items()
                 if key.startswith(f"{name}.") and text != ""}
        if given:
            entry["properties"] = given
        if name in overrides:
            entry["overrides"] = overrides[name]
        frameworks.append(entry)
    if frameworks:
        body["frameworks"] = frameworks
    provider = values.provider
    options = {key.split(".", 1)[1]: text for key, text in values.opts.items()
               if key.startswith(f"{provider}.") and text.strip() != ""}
    if options:
        body["provider_options"] = options
    cidrs = [line.strip() for line in values.allowed_cidrs.splitlines() if line.strip()]
    if cidrs:
        body["access"] = {"allowed_cidrs": cidrs}
    if cloud_text.strip():
        body["cloud"] = _yaml_map("cloud", cloud_text, "auth_type, auth: {...}, region_name")
    return body


def _with_settings(values: FormValues, overrides: dict[str, Any], catalog: Catalog) -> list[str]:
    """The chosen frameworks, and the dependencies of theirs the user gave properties or
    overrides to (listing a dependency is what the API takes for that). Settings of a framework
    that will not be installed would be dropped unseen: they are refused here instead."""
    try:
        installed = set(catalog.resolve(values.frameworks))
    except DiscoError:  # an unknown framework: the API's own check says so, next to the list
        installed = set(values.frameworks)
    chosen = list(values.frameworks)
    for key, text in sorted(values.props.items()):
        name = key.split(".", 1)[0]
        if text == "" or name in chosen:
            continue
        if name not in installed:
            raise FormProblem(f"prop.{key}", f"{name} is not chosen: choose it above, or clear this field")
        chosen.append(name)
    for name in overrides:
        if name not in installed:
            raise FormProblem("overrides", f"overrides name {name!r}, which is not chosen above "
                                           "(nor a dependency of a chosen framework)")
        if name not in chosen:
            chosen.append(name)
    return chosen


def _yaml_map(field_name: str, text: str, shape: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:  # its message quotes the text, which may hold a password: not shown
        raise FormProblem(field_name, f"not valid YAML (expected a mapping: {shape})") from None
    if not isinstance(value, dict):
        raise FormProblem(field_name, f"expected a YAML mapping: {shape}")
    return value


def field_errors(exc: DiscoError, body: dict[str, Any]) -> dict[str, str]:
    """The error (as the API would answer it) by form field; GENERAL for the rest."""
    if isinstance(exc, FormProblem):
        return {exc.field_name: exc.message}
    found: dict[str, list[str]] = {}
    details = exc.details
    if isinstance(details, list):  # pydantic's errors, each with its location in the body
        for item in details:
            if isinstance(item, dict) and "loc" in item:
                found.setdefault(_field_of(list(item["loc"]), body), []).append(str(item.get("msg", "")))
    elif isinstance(details, dict) and isinstance(details.get("property"), str) and "." in details["property"]:
        found["prop." + details["property"]] = [exc.message]
    elif exc.code == "invalid_provider_option":
        found[f"opt.{body.get('provider', '')}"] = [exc.message]
    elif exc.code in FIELD_CODES:
        found[FIELD_CODES[exc.code]] = [exc.message]
    if not found:
        found[GENERAL] = [exc.message]
    return {key: "; ".join(messages) for key, messages in found.items()}


def _field_of(loc: list[Any], body: dict[str, Any]) -> str:
    head = str(loc[0]) if loc else ""
    if head in TOP_FIELDS:
        return head
    if head == "access":
        return "allowed_cidrs"
    if head == "provider_options":
        return f"opt.{body.get('provider', '')}" + (f".{loc[1]}" if len(loc) > 1 else "")
    if head == "frameworks" and len(loc) > 2 and isinstance(loc[1], int):
        entries = body.get("frameworks") or []
        name = entries[loc[1]]["name"] if loc[1] < len(entries) else ""
        if loc[2] == "properties" and len(loc) > 3:
            return f"prop.{name}.{loc[3]}"
        if loc[2] == "overrides":
            return "overrides"
    if head == "frameworks":
        return "frameworks"
    return GENERAL
