"""How the OCCI routes appear in the OpenAPI schema (the arguments of their decorators).

OCCI carries its data in headers (`Category`, `X-OCCI-Attribute`) and answers in the format
`Accept` asks for, so each operation lists the media types it really answers with: the text
renderings (`text/plain`, `text/occi` with the data in response headers, `text/uri-list`) and
the JSON rendering, which is sent as `application/json` whether `Accept` named
`application/occi+json` or `application/json`. Errors are the JSON error envelope.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from disco.cluster.api.occi_format import SM_SCHEME
from disco.cluster.api.schemas import (OcciCollection, OcciQueryInterface, OcciResource, error_responses,
                                       ref)

SECURITY = [{"token": [], "tenant": []}]
# The disco kind's Category as clients write it: with or without `class` and a trailing `;`.
KIND_CATEGORIES = [f'disco; scheme="{SM_SCHEME}"; class="kind";', f'disco; scheme="{SM_SCHEME}"; class="kind"',
                   f'disco; scheme="{SM_SCHEME}"']
_TEXT = {"schema": {"type": "string"}}
_OK = {"text/plain": {"schema": {"type": "string", "const": "OK"}}}
_FORMATS_NOTE = ("The format follows `Accept`: `application/occi+json` or `application/json` gives JSON "
                 "(sent as `application/json`), `text/occi` puts the data in response headers "
                 "(`Category`, `X-OCCI-Attribute`, `X-OCCI-Location`) with the body `OK`, `text/uri-list` "
                 "one location a line; anything else gives the same `Name: value` lines in a text/plain body.")
_ATTRIBUTES_NOTE = ("Attributes come in `X-OCCI-Attribute: name=\"value\", other=42` headers "
                    "(see docs/api.md for each attribute).")


def _renderings(model: type[BaseModel], description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": f"{description} {_FORMATS_NOTE}", "content": {
        "text/plain": _TEXT, "text/occi": _TEXT, "text/uri-list": _TEXT,
        "application/json": {"schema": ref(model)}}}}


def _operation(operation_id: str, summary: str, responses: dict[int | str, dict[str, Any]],
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"operation_id": operation_id, "summary": summary, "response_class": PlainTextResponse,
            "responses": responses, "openapi_extra": {"security": SECURITY, **(extra or {})}}


QUERY = _operation("occiQueryInterface", "The disco kind and its actions", {
    **error_responses(401, 429), **_renderings(OcciQueryInterface, "The kind and its actions.")})

# The seed README's OpenStack credentials (docs/openstack.md#the-seeds-occi-interface). Sent, they make the cluster an
# OpenStack one; the password is sealed with the cluster, never stored in clear nor shown.
_CREDENTIAL_HEADERS = [
    ("X-User-Name", "Your OpenStack user name (or the attribute `icclab.disco.deployer.username`)."),
    ("X-Password", "Your OpenStack password (or `icclab.disco.deployer.password`). Sealed with the cluster; "
                   "never shown, logged or stored in clear."),
    ("X-Region-Name", "Your OpenStack region (or `icclab.disco.deployer.region`); without it, the configured "
                      "cloud's."),
]
_OPENSTACK_NOTE = (
    "The seed's heat attributes (`icclab.disco.components.heat.masterimage`, `slaveimage`, `masterflavor`, "
    "`slaveflavor`, `externalnetworkname`, …) or OpenStack credentials (the `X-User-Name`, `X-Password`, "
    "`X-Region-Name` headers or the `icclab.disco.deployer.username/password/region` attributes) make an "
    "OpenStack cluster, in the service manager's configured cloud (`DISCO_OPENSTACK_CLOUD`) with the "
    "user's name, password and region; a user name and a password are then required "
    "(`422 missing_credentials`). With `icclab.disco.provider` naming another provider they are refused "
    "(`422 openstack_attribute`; the headers are ignored).")

CREATE = _operation("occiCreate", "Create a cluster", {
    **error_responses(400, 401, 403, 409, 422, 429, s400="A missing, malformed or unknown `Category`, or malformed attributes.",
                      s409="An OpenStack cluster was asked for and the service manager has no usable OpenStack "
                           "cloud configured (`openstack_not_configured`)."),
    201: {"description": "Created.", "content": _OK, "headers": {
        "Location": {"description": "The new cluster's URL.", "schema": {"type": "string"}},
        "X-OCCI-Location": {"description": "The same URL.", "schema": {"type": "string"}}}},
}, {"description": f"Needs the disco kind's `Category`. {_ATTRIBUTES_NOTE} {_OPENSTACK_NOTE} The body is not read.",
    "parameters": [{"name": "Category", "in": "header", "required": True, "schema": {"enum": KIND_CATEGORIES},
                    "description": "The disco kind."},
                   *({"name": name, "in": "header", "required": False, "schema": {"type": "string"},
                      "description": text} for name, text in _CREDENTIAL_HEADERS)]})

COLLECTION = _operation("occiListClusters", "The tenant's clusters, as locations", {
    **error_responses(401, 429), **_renderings(OcciCollection, "One location per live cluster.")})

RETRIEVE = _operation("occiGetCluster", "One cluster's attributes", {
    **error_responses(401, 404, 429, s404="No such live cluster for this tenant (a deleted one is gone)."),
    **_renderings(OcciResource, "The cluster's kind and attributes.")})

UPDATE = _operation("occiUpdateCluster", "An action (suspend, resume) or a new slave count", {
    **error_responses(400, 401, 404, 409, 422, 429, s400="An unknown or conflicting action, or nothing to do."),
    200: {"description": "Done.", "content": _OK},
}, {"description": "Name the action as `?action=`, as an `action` attribute or as an action `Category`; "
                   "or send `X-OCCI-Attribute: icclab.disco.components.heat.slavecount=\"N\"` instead "
                   "to scale. Any other attribute is refused.",
    "parameters": [{"name": "action", "in": "query", "required": True,
                    "schema": {"type": "string", "enum": ["suspend", "resume"]},
                    "description": "The action (or give it, or a new slave count, in headers instead)."}]})

DELETE = _operation("occiDeleteCluster", "Delete a cluster", {
    **error_responses(401, 404, 429), 200: {"description": "Deletion under way.", "content": _OK}})
