"""The shapes of what the HTTP APIs answer, as pydantic models.

The REST routes declare these as their response models, so every JSON answer is checked on its
way out and the OpenAPI schema says exactly what a client gets. Request bodies are still parsed
by the routes themselves (into `disco.cluster.spec.ClusterSpec` and `ScaleRequest`), so that bad
input keeps the project's error envelope and codes; the schema only publishes their shape.
Answers leave out keys that are absent (`response_model_exclude_unset`), so optional fields here
describe keys that may be missing, as they are missing today.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from disco.cluster.spec import ClusterSpec

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"}, examples=["2026-11-22T04:20:35.527300+00:00"])]
# A typed framework property value, after conversion (`"4"` was stored as given, 4 once resolved).
PropertyValue = StrictBool | StrictInt | StrictFloat | StrictStr
ClusterState = Literal["pending", "provisioning", "installing", "ready", "failed", "suspended",
                       "deleting", "deleted"]


class Shape(BaseModel):
    # A key the model does not know is a bug in the route, not something to pass on unchecked.
    model_config = ConfigDict(extra="forbid")


# -- errors ---------------------------------------------------------------------------------------

class ValidationIssue(Shape):
    loc: list[str | int] = Field(description="Where: the path into the body, or the parameter.")
    msg: str
    type: str


class ErrorDetail(Shape):
    code: str = Field(description="Stable, for programs (see the table of error codes in docs/api.md).")
    message: str = Field(description="For people.")
    details: dict[str, Any] | list[ValidationIssue] | None = Field(
        default=None, description="Present only when there is something structured to add; its keys "
                                  "depend on the code. Schema and parameter errors list their issues.")


class ErrorEnvelope(Shape):
    """Every error either API answers, whatever its status."""

    error: ErrorDetail


# -- requests -------------------------------------------------------------------------------------

class ScaleRequest(Shape):
    """`PATCH /api/v1/clusters/{id}`: exactly one key."""

    workers: StrictInt = Field(ge=0, description="The new number of workers, 0 to the configured maximum.")


# -- REST answers ---------------------------------------------------------------------------------

class Health(Shape):
    status: Literal["ok"]
    version: str


class FrameworkProperty(Shape):
    type: Literal["int", "float", "bool", "str"]
    default: PropertyValue | None = None
    description: str
    min: float | None = None
    max: float | None = None
    choices: list[str] | None = None
    pattern: str | None = Field(default=None, description="A Python regular expression the whole value must match.")
    secret: bool = Field(description="Checked like any other, then stored only encrypted and never returned.")


class FrameworkPort(Shape):
    port: int
    role: Literal["master", "worker"]
    scheme: str
    web: bool
    path: str
    description: str
    per_master: bool = Field(description="Opened once per master: master i (from 0) on port + i.")


class Framework(Shape):
    name: str
    version: str
    description: str
    depends: list[str]
    max_masters: int = Field(description="The most masters (the spec's `masters`) it runs.")
    properties: dict[str, FrameworkProperty]
    ports: dict[str, FrameworkPort]
    roles: list[Literal["master", "worker"]]


def _without_cloud(schema: dict[str, Any]) -> None:
    schema.get("properties", {}).pop("cloud", None)


class StoredSpec(ClusterSpec):
    """The spec as stored: defaults filled in, secret property values and the cloud left out."""

    # The stored spec never has `cloud` (it is sealed apart): not in the schema of answers, and
    # an answer that held one would fail here (a 500) rather than show it.
    model_config = ConfigDict(json_schema_extra=_without_cloud)

    @model_validator(mode="before")
    @classmethod
    def _no_cloud(cls, data: Any) -> Any:
        if isinstance(data, dict) and "cloud" in data:
            raise ValueError("a stored spec never holds the cloud entry")
        return data

    resolved_frameworks: list[str] = Field(description="Install order, dependencies first.")
    properties: dict[str, dict[str, PropertyValue | None]] = Field(
        description="Every resolved framework's typed properties, defaults included, secrets left out; "
                    "null for a property the user left unset that has no default (e.g. one derived from "
                    "the node's size).")


class ClusterNode(Shape):
    name: str
    role: Literal["master", "worker"]
    host: str | None
    state: Literal["pending", "allocated", "leaving"]


class OutputNode(Shape):
    name: str
    role: Literal["master", "worker"]
    host: str | None


class FrameworkOutputs(BaseModel):
    """A framework's own outputs (`scheduler_address`, `master_url`, …) and its web UIs."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, str] = Field(init=False)

    web_uis: dict[str, str] | None = Field(
        default=None, description="One URL per web port: `<port>` on the master, `<port>@<node>` on workers.")


class ClusterOutputs(Shape):
    """Empty until the cluster is first ready, and again once it is deleted."""

    master_host: str | None = None
    nodes: list[OutputNode] | None = None
    frameworks: dict[str, FrameworkOutputs] | None = None
    ports: list[int] | None = None
    node_logs: dict[str, str] | None = Field(
        default=None, description="Nodes that are hosts of their own (provider ssh): node -> its log server "
                                  "(`status`, `deploy.log`, `logs/<process>.log`), behind the credentials' `web_token`.")
    # Provider openstack: the cluster's Heat stack and the seed's outputs.
    stack_id: str | None = Field(default=None, description="Provider openstack: the cluster's Heat stack.")
    stack_name: str | None = Field(default=None, description="Provider openstack: `disco-<cluster id>`.")
    stack_status: str | None = Field(default=None, description="Provider openstack: the stack's status when "
                                     "last seen (CREATE_COMPLETE, UPDATE_COMPLETE, RESUME_COMPLETE, SUSPEND_COMPLETE).")
    external_ip: str | None = Field(default=None, description="Provider openstack: where users reach the "
                                    "master (its floating IP, else its fixed IP).")
    ssh_key_name: str | None = Field(default=None, description="Provider openstack: the Nova key pair the "
                                     "nodes accept.")
    ssh_public_key: str | None = Field(default=None, description="Provider openstack: its public half (empty "
                                       "for a key pair of the user's).")


class Event(Shape):
    id: int = Field(description="Increasing; pass the last one seen as `after`.")
    at: Timestamp
    step: str
    level: Literal["info", "warning", "error"]
    message: str
    duration_s: float | None


class ClusterSummary(Shape):
    """A cluster as `GET /api/v1/clusters` lists it."""

    id: str
    name: str
    state: ClusterState
    target: Literal["running", "suspended", "deleted"]
    status_reason: str
    provider: str
    workers: int
    frameworks: list[str]
    spec: StoredSpec
    nodes: list[ClusterNode]
    outputs: ClusterOutputs
    ssh_public_key: str
    created_at: Timestamp
    ready_at: Timestamp | None
    deleted_at: Timestamp | None


class Cluster(ClusterSummary):
    """A cluster with its deployment log as data."""

    events: list[Event]


class LogEntry(Shape):
    node: str = Field(description="`-` for the deployment log.")
    process: str
    url: str


# -- OCCI's JSON rendering ------------------------------------------------------------------------

class OcciCategory(Shape):
    term: str
    scheme: str
    title: str


class OcciKind(OcciCategory):
    rel: str
    location: str
    attributes: str = Field(description="Space-separated attribute names; `{immutable}` marks read-only ones.")
    actions: str = Field(description="Space-separated action URIs.")


class OcciQueryInterface(Shape):
    kinds: list[OcciKind]
    actions: list[OcciCategory]
    mixins: list[OcciCategory]


class OcciCollection(Shape):
    locations: list[str]


class OcciResource(Shape):
    id: str
    kind: str
    mixins: list[str]
    actions: list[str]
    links: list[str]
    attributes: dict[str, PropertyValue]


# -- plan (dry run) -------------------------------------------------------------------------------

Origin = Literal["default", "derived", "user", "override"]


class PlannedProperty(Shape):
    value: Any = Field(description="The typed value; `<hidden>` for a secret property.")
    origin: Literal["default", "user"]
    secret: bool | None = None


class PlannedKey(Shape):
    value: Any
    origin: Origin = Field(description="Precedence, lowest first: default < derived (from the node's size "
                                       "or the cluster's shape) < user (a property) < override (raw).")


class PlannedFile(Shape):
    text: str = Field(description="The file as the node's processes would read it; secrets as `<hidden>`.")
    keys: dict[str, PlannedKey] | None = Field(
        default=None, description="Configuration files only (those overrides may change): each key's value "
                                  "and where it comes from.")


class PlannedProcess(Shape):
    framework: str
    name: str
    command: list[str]
    env: dict[str, str]
    wait_for_tcp: str | None = None


class PlannedPort(Shape):
    framework: str
    name: str
    port: int
    scheme: str
    description: str = Field(description="The framework's words for it: what it serves, and what it asks of a "
                                         "client (the cluster's certificate, secret or token).")
    reachable_from: list[str] = Field(description="Networks the provider lets reach the port; empty when the "
                                                  "provider sets no rule (see `access.note`).")


class PlannedNode(Shape):
    name: str
    role: Literal["master", "worker"]
    host: str | None = Field(description="null: the provider assigns it only at create.")
    workdir: str
    size: dict[str, int] | None = Field(description="`memory_mb`, `cpus`; null until the node exists.")
    notes: list[str]
    processes: list[PlannedProcess]
    files: dict[str, dict[str, PlannedFile]] = Field(description="framework -> path (under workdir) -> file.")
    ports: list[PlannedPort]
    provider: dict[str, Any] = Field(description="The provider's own (ssh: `pool_host`, `node_dir`, `log_port`, "
                                                 "`bootstrap` with its `script` and `bundle`).")


class PlannedReadiness(Shape):
    framework: str
    kind: str
    timeout_s: float
    urls: dict[str, str] | None = None
    command: list[str] | None = None
    ready_when: str | None = None


class PlanStep(Shape):
    step: str
    what: str


class PlanAccess(Shape):
    allowed_cidrs: list[str]
    reachable_from: list[str]
    note: str


class PlanProblem(Shape):
    where: str
    code: str
    message: str


class PlanCloud(Shape):
    """What may be shown of the spec's `cloud` (`disco.cluster.cloud_entry.describe_cloud`): how
    it authenticates, where, as whom, for which project and region. Never a password, token or
    secret."""

    auth_type: str
    auth_url: str | None = None
    endpoint: str | None = Field(default=None, description="admin_token: the service's endpoint.")
    username: str | None = None
    user_id: str | None = None
    user_domain_name: str | None = None
    project_name: str | None = None
    project_id: str | None = None
    project_domain_name: str | None = None
    region_name: str | None = None


class ClusterPlan(Shape):
    """`POST /api/v1/clusters?dry_run=true`: what a create would make. Nothing is stored, started,
    reserved or written; the cluster's credentials do not exist yet and show as `<hidden>`."""

    dry_run: Literal[True]
    provider: str
    cloud: PlanCloud | None = Field(description="The OpenStack provider's cloud, as far as it may be shown; null "
                                                "for other providers.")
    name: str | None
    workers: int
    frameworks: list[str] = Field(description="Install order, dependencies first.")
    spec: StoredSpec
    properties: dict[str, dict[str, PlannedProperty]]
    credentials: str
    nodes: list[PlannedNode]
    readiness: list[PlannedReadiness]
    outputs: ClusterOutputs
    access: PlanAccess
    steps: list[PlanStep]
    provider_plan: dict[str, Any]
    template: Any = Field(description="A provider that renders a template (OpenStack: its Heat template) puts "
                                      "it here; null for the local and ssh providers.")
    problems: list[PlanProblem] = Field(description="What a create would fail on later (a missing package, a "
                                                    "download without checksum), or what is known only then.")

# Models the routes name only by reference (request bodies, OCCI answers, errors): the OpenAPI
# builder adds them to the schema's components.
REFERENCED_MODELS: tuple[type[BaseModel], ...] = (
    ErrorEnvelope, ClusterSpec, ScaleRequest, ClusterPlan, OcciQueryInterface, OcciCollection, OcciResource)


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


ERROR_MEANINGS = {
    400: "A malformed OCCI request (see `error.code`).",
    401: "No token, an unknown token, or (OCCI) an `X-Tenant-Name` that is not the token's tenant.",
    403: "The provider cannot keep this tenant apart from others here (`isolation_unavailable`).",
    404: "No such resource for this tenant: another tenant's cluster looks exactly like a missing one.",
    409: "The cluster's state does not allow this (`invalid_state`).",
    413: "The request body is larger than the configured limit (`body_too_large`).",
    414: "The request target (path and query) is longer than the limit (`uri_too_long`).",
    422: "The request is well formed but its content is refused (see `error.code` and `error.details`).",
    429: "Too many failed authentications from this client; try again after `Retry-After` seconds.",
    431: "A header, or all headers together, over the limit (`headers_too_large`).",
}


def error_responses(*statuses: int, **meanings: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error answers a route can give, all with the error envelope.
    `meanings` overrides a status's text for one route (keyword `s404="..."`)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        answer: dict[str, Any] = {
            "description": meanings.get(f"s{status}", ERROR_MEANINGS[status]),
            "content": {"application/json": {"schema": ref(ErrorEnvelope)}},
        }
        if status == 429:
            answer["headers"] = {"Retry-After": {
                "description": "Seconds to wait before authenticating again.", "schema": {"type": "string"}}}
        responses[status] = answer
    return responses
