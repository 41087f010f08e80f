"""Request and answer shapes of the farm's HTTP API (pydantic, strict, unknown keys refused).
FastAPI checks requests against these, so a bad body is a 422 in the error envelope before a
route runs, and /openapi.json says exactly what each route takes and gives."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

MAX_INLINE_INPUT_BYTES = 16 * 1024 * 1024
MAX_OUTPUT_B64 = 1_400_000  # ~1 MiB of output inline in a report; larger goes by upload
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._:-]*$")]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
# A DDFS tag name, as DDFS itself allows them (disco.mapreduce.ddfs.names).
TagName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_@:-]+$")]
Seconds = Annotated[float, Field(gt=0, le=10 * 365 * 86400)]


def _integral(value: Any) -> Any:
    # JSON has one kind of number and JSON Schema reads 9.0 as the integer 9: so do we (strict
    # mode still refuses "9", true and 9.5).
    return int(value) if type(value) is float and value.is_integer() else value


Int = Annotated[int, BeforeValidator(_integral)]
BigId = Annotated[int, Field(ge=1, le=2 ** 31 - 1), BeforeValidator(_integral)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# -- owners: projects -------------------------------------------------------------------------------

class PythonCode(Strict):
    kind: Literal["python"]
    pickle: str = Field(max_length=8 * 1024 * 1024, pattern=BASE64, description="The function, cloudpickled, base64.")
    python: str = Field(default="", max_length=20, description="The Python version it was pickled with (x.y).")


class ContainerCode(Strict):
    kind: Literal["container"]
    image: str = Field(min_length=1, max_length=300, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")
    command: list[Annotated[str, Field(max_length=4096)]] = Field(min_length=1, max_length=100)


class InlineInput(Strict):
    kind: Literal["inline"]
    text: str = Field(max_length=MAX_INLINE_INPUT_BYTES, description="The input itself, as text (UTF-8).")


class InlineBytesInput(Strict):
    kind: Literal["inline_base64"]
    data: str = Field(max_length=MAX_INLINE_INPUT_BYTES * 4 // 3 + 4, pattern=BASE64, description="The input, base64.")


class FilesInput(Strict):
    kind: Literal["files"]
    paths: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(min_length=1, max_length=1000)


class UrlInput(Strict):
    kind: Literal["url"]
    url: str = Field(max_length=4096, pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$")


class DdfsInput(Strict):
    kind: Literal["ddfs"]
    tag: TagName = Field(description="A DDFS tag on the server's DDFS master: its blobs (and those of the tags it "
                                     "holds), in the tag's order, joined and split like a file.")


class FilesOutput(Strict):
    # Required, as ExactComparator's name: the union is told apart by `kind`, so an `output` of {}
    # that the schema allowed would still be refused (schemathesis found it).
    kind: Literal["files"]


class DdfsOutput(Strict):
    kind: Literal["ddfs"]
    tag: TagName = Field(description="A DDFS tag on the server's DDFS master: one blob per unit, tagged once.")


class SplitSpec(Strict):
    by: Literal["lines", "bytes", "records"] = "lines"
    size: Int = Field(default=1000, ge=1, le=1 << 30)
    delimiter: str = Field(default="\n", min_length=1, max_length=16,
                           description="`records` only: what ends a record (newline: NDJSON).")


class ExactComparator(Strict):
    # Required, as in the other comparators: the union is told apart by `name`, so a body of {}
    # that the schema allowed would still be refused.
    name: Literal["exact"]


class JsonComparator(Strict):
    name: Literal["json"]


class FloatArgs(Strict):
    rel: float = Field(default=1e-9, ge=0, le=1e6)
    abs: float = Field(default=0.0, ge=0, le=1e300)


class FloatComparator(Strict):
    name: Literal["float"]
    args: FloatArgs = Field(default_factory=FloatArgs)


Comparator = ExactComparator | JsonComparator | FloatComparator


class ProjectSpec(Strict):
    """`POST /api/v1/farm/projects`."""

    name: Name = "project"
    code: PythonCode | ContainerCode = Field(discriminator="kind")
    input: InlineInput | InlineBytesInput | FilesInput | UrlInput | DdfsInput = Field(discriminator="kind")
    output: FilesOutput | DdfsOutput = Field(default_factory=lambda: FilesOutput(kind="files"), discriminator="kind",
                                             description="files: under the server's output directory (GET …/results); "
                                                         "ddfs: blobs in a DDFS tag (and GET …/results).")
    split: SplitSpec = Field(default_factory=SplitSpec)
    quorum: Int = Field(default=1, ge=1, le=9, description="Agreeing results a unit needs (2 for untrusted volunteers).")
    max_errors: Int = Field(default=3, ge=1, le=100)
    max_instances: Annotated[int, Field(ge=1, le=100), BeforeValidator(_integral)] | None = Field(default=None,
                                                                      description="Default: quorum + 4; never fewer than quorum.")
    unit_seconds: Seconds = Field(default=1.0, description="The estimated time of one unit.")
    lease_s: Seconds | None = Field(default=None, description="Default: 3 × unit_seconds, at least the server's minimum.")
    deadline_s: Seconds | None = Field(default=None, description="Seconds from now after which open units fail.")
    comparator: Comparator = Field(default_factory=lambda: ExactComparator(name="exact"), discriminator="name",
                                   description="How two results are compared (the server's comparators).")
    max_output_bytes: Int = Field(default=1 << 20, ge=1, le=1 << 30)


class ProjectCreated(Strict):
    project_id: str
    units: int


class ProjectView(Strict):
    project_id: str
    name: str
    state: Literal["open", "done", "cancelled"]
    quorum: int
    units: dict[str, int] = Field(description="Units by state.")
    instances_in_flight: int
    throughput_units_per_s: float = Field(description="Units assimilated a second, over the last minute.")
    eta_s: float | None
    created_at: float
    finished_at: float | None


class ProjectList(Strict):
    projects: list[ProjectView]


class UnitResult(Strict):
    seq: int
    unit_id: int
    output: str = Field(description="base64")


class ProjectResults(Strict):
    project_id: str
    complete: bool = Field(description="Every unit assimilated or failed.")
    results: list[UnitResult]


class DeadError(Strict):
    instance_id: int
    attempt: int
    client_id: str | None
    state: str
    error: str


class DeadUnit(Strict):
    seq: int
    unit_id: int
    reason: str
    errors: list[DeadError]


class DeadLetters(Strict):
    project_id: str
    dead: list[DeadUnit]


class KeyCreate(Strict):
    description: str = Field(default="", max_length=200)


class KeyCreated(Strict):
    key_id: str
    key: str = Field(description="Shown once; stored only as a hash.")


class ClientView(Strict):
    client_id: str
    name: str
    slots: int
    platform: str
    cpus: int
    enrolled_at: float
    instances: dict[str, int] = Field(description="Its instances by state (success, error, no_reply, invalid, …).")


class ClientList(Strict):
    clients: list[ClientView]


# -- clients ----------------------------------------------------------------------------------------

class ClientEnroll(Strict):
    name: Name
    slots: Int = Field(default=1, ge=1, le=1024)
    platform: str = Field(default="", max_length=64)
    cpus: Int = Field(default=1, ge=1, le=100000)
    memory_mb: Int = Field(default=0, ge=0, le=2 ** 31 - 1)


class ClientEnrolled(Strict):
    client_id: str
    client_token: str = Field(description="Shown once; stored only as a hash.")


class LeaseInput(Strict):
    sha256: str
    bytes: int
    inline: str | None = None
    url: str | None = None


class FarmLease(Strict):
    instance_id: int
    unit_id: int
    project_id: str
    attempt: int
    lease_expires: float = Field(description="Epoch seconds.")
    input: LeaseInput
    code: dict[str, Any] = Field(description="{kind: python, url, sha256} or {kind: container, image, command}.")


class SlotStats(Strict):
    """One slot as the client measured it just before the heartbeat: its worker process (and
    children), or its container's processes. No process in the slot: cpu and memory null."""

    slot: Int = Field(ge=0, le=1023, description="The slot's index on the client, from 0.")
    kind: Literal["process", "container"]
    busy: bool = Field(description="Running a unit now.")
    instance_id: BigId | None = Field(default=None, description="The instance it runs, if busy.")
    cpu_percent: float | None = Field(default=None, ge=0, le=1e6,
                                      description="CPU since the last heartbeat, % of one core.")
    memory_mb: float | None = Field(default=None, ge=0, le=1e9, description="Resident memory, MiB.")


class HeartbeatRequest(Strict):
    instances: list[BigId] = Field(max_length=10000)
    slots: list[SlotStats] | None = Field(default=None, max_length=1024,
                                          description="The client's slots, measured; the server keeps the latest.")


class HeartbeatEntry(Strict):
    instance_id: int
    lease_expires: float | None = None
    gone: bool = False


class HeartbeatAnswer(Strict):
    instances: list[HeartbeatEntry]


class ResultItem(Strict):
    instance_id: BigId
    attempt: Int = Field(ge=1, le=1000)
    status: Literal["ok", "error"]
    output: str | None = Field(default=None, max_length=MAX_OUTPUT_B64, pattern=BASE64, description="base64")
    output_sha256: Sha256 | None = None
    error: str | None = Field(default=None, max_length=10000)
    cpu_s: float | None = Field(default=None, ge=0, le=1e9)


class ResultBatch(Strict):
    results: list[ResultItem] = Field(min_length=1, max_length=1000)


class ResultAnswer(Strict):
    instance_id: int
    status: Literal["accepted", "duplicate", "late_accepted", "not_needed", "refused"]
    first: str | None = Field(default=None, description="duplicate: the answer the first report got.")
    reason: str | None = None


class ResultsAnswer(Strict):
    results: list[ResultAnswer]


class WorkRequest(Strict):
    seconds: float = Field(ge=0, le=86400 * 7, description="Seconds of work wanted.")
    slots: Int = Field(default=1, ge=1, le=1024, description="Idle slots: at least one unit each.")
    results: list[ResultItem] | None = Field(
        default=None, max_length=1000,
        description="Results of finished instances, as POST …/results takes them: recorded first, then the new "
                    "leases picked, in one transaction (BOINC's scheduler RPC). Their answers come back in "
                    "`results`, the same as POST …/results gives.")


class WorkAnswer(Strict):
    leases: list[FarmLease]
    retry_after_s: float
    results: list[ResultAnswer] | None = Field(default=None, description="Present when the request carried results: "
                                                                          "their answers, in the request's order.")


# -- owners: the overview (the dashboard's numbers) --------------------------------------------------

class OverviewProject(Strict):
    project_id: str
    name: str
    state: Literal["open", "done", "cancelled"]
    units_total: int
    units_done: int = Field(description="Units assimilated (their output written).")
    units_in_flight: int = Field(description="Units with at least one instance leased to a client now.")
    units_failed: int
    units_waiting: int = Field(description="Units neither done, failed nor cancelled.")
    instances_in_flight: int
    units_per_minute: float = Field(description="Units assimilated a minute, over the last rate_window_s seconds.")
    per_minute: list[int] = Field(description="Units assimilated in each of the last `minutes` minutes, oldest "
                                              "first; the last entry is the minute now running.")


class OverviewSlot(Strict):
    slot: int
    kind: Literal["process", "container"]
    busy: bool
    instance_id: int | None
    cpu_percent: float | None
    memory_mb: float | None


class OverviewClient(Strict):
    client_id: str
    name: str
    platform: str
    cpus: int
    memory_mb: int
    slots: int = Field(description="Slots it enrolled with.")
    online: bool = Field(description="Heard from within online_window_s seconds.")
    last_seen: float = Field(description="Epoch seconds of its last heartbeat or work request.")
    stats_at: float | None = Field(description="When `containers` was measured (null: never sent).")
    containers: list[OverviewSlot] = Field(description="Its slots, as its last heartbeat measured them.")
    units_done: int = Field(description="Its results on this tenant's projects that are (so far) valid.")
    in_flight: int = Field(description="Instances leased to it now.")
    invalid: int = Field(description="Its results outvoted by other clients' (instances `invalid`).")
    errors: int = Field(description="Its instances that ended in an error.")


class FarmOverview(Strict):
    generated_at: float
    online_window_s: float
    rate_window_s: float
    minutes: int
    clients_online: int
    projects: list[OverviewProject]
    clients: list[OverviewClient] = Field(description="The tenant's enrolled clients (only they get its work).")


class FarmHealth(Strict):
    status: Literal["ok"]


class ErrorEnvelope(BaseModel):
    """The error answer, the same shape as the service manager's (disco.errors): the standalone
    server publishes this one; mounted on the service manager, the manager's own is published."""

    error: dict[str, Any]
