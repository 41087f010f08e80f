"""The shapes of `/api/v1/hosts`: what an admin sends to add a host, and what the API shows of
one. A host's private key goes in and never comes out (it has no field in any answer)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictInt, StrictStr

from disco.cluster.api.schemas import Shape, Timestamp

# A DNS name, an IPv4 or an IPv6 address (checked further when the host is first contacted).
ADDRESS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.:-]{0,254}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
USER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
PREFIX_PATTERN = r"^/[A-Za-z0-9._/-]{0,254}$"
HOST_KEY_PATTERN = r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521) [A-Za-z0-9+/]+={0,2}( [^\n]*)?$"
Label = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]
HostState = Literal["free", "in_use", "unreachable"]


class HostCreate(Shape):
    """`POST /api/v1/hosts`: one host. The service manager checks it at once (see `last_check`)."""

    address: StrictStr = Field(pattern=ADDRESS_PATTERN, description="DNS name or IP address.")
    port: StrictInt = Field(default=22, ge=1, le=65535)
    user: StrictStr = Field(pattern=USER_PATTERN, description="root, or a user with password-less sudo.")
    private_key: StrictStr = Field(
        min_length=1, max_length=16384, json_schema_extra={"writeOnly": True},
        description="The private key (OpenSSH or PEM text, no passphrase). Stored encrypted, never shown again.")
    name: StrictStr | None = Field(default=None, pattern=NAME_PATTERN,
                                   description="Unique in the pool; default the address (`address:port` "
                                               "for a port other than 22).")
    host_key: StrictStr | None = Field(
        default=None, pattern=HOST_KEY_PATTERN, max_length=8192,
        description="The key the host must present (`ssh-ed25519 AAAA…`). Without it, the key the host "
                    "presents on first contact is recorded (trust on first use); either way it is enforced after.")
    prefix: StrictStr = Field(default="/opt/disco", pattern=PREFIX_PATTERN,
                              description="Where DISCO keeps its files on the host.")
    labels: list[Label] = Field(default_factory=list, max_length=32,
                                description="Clusters may ask for hosts carrying given labels.")


class HostFacts(Shape):
    os: str
    arch: str
    python3: str | None = Field(description="Version of the host's python3; null when it has none.")
    root: bool = Field(description="Whether the user is root.")
    sudo: bool = Field(description="Whether password-less sudo works.")
    apt: bool
    disk_path: str = Field(description="The prefix, or its nearest existing parent.")
    disk_free_mb: int | None
    memory_bytes: int | None = Field(default=None, description=(
        "The host's memory (MemTotal, lowered to a cgroup's limit); a plan sizes derived settings from it. "
        "Absent from checks made before DISCO reported it."))
    cpus: int | None = Field(default=None, description="The CPUs the host offers.")


class HostCheck(Shape):
    at: Timestamp
    ok: bool
    error: str | None = Field(description="Why the host cannot be used, in words an admin can act on.")
    facts: HostFacts | None = Field(description="Null when the host could not be reached.")
    problems: list[str] = Field(description="Everything worth fixing, the error included.")


class HostView(Shape):
    id: int
    name: str
    address: str
    port: int
    user: str
    host_key: str | None = Field(description="The key enforced on every connection; null until the first contact.")
    host_key_source: Literal["given", "first_use"] | None = Field(
        description="`given` with the host, or recorded on first contact (`first_use`).")
    host_key_just_recorded: bool = Field(description="Whether this request recorded the host key (trust on first use).")
    prefix: str
    labels: list[str]
    state: HostState
    cluster_id: str | None = Field(description="The cluster holding the host (state `in_use`).")
    node: str | None
    last_check: HostCheck | None
    created_at: Timestamp
