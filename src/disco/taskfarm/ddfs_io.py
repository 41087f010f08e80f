"""The farm's side of DDFS (Disco's distributed file system): the one master the deployment
names (`--ddfs-master`, DISCO_FARM_DDFS_MASTER; its nodes' upload port `--ddfs-put-port`,
DISCO_FARM_DDFS_PUT_PORT), reached with Disco's own client (disco.ddfs).
A project names only a tag: a server that talks to any master a tenant names would be a way
into the server's network, as input URLs on any host would be (split.fetch_url).

The cluster token comes from the deployment's token file (`--ddfs-token-file`) or, as for
Disco's client, DISCO_CLUSTER_TOKEN; tags' own read and write tokens from DDFS_READ_TOKEN and
DDFS_WRITE_TOKEN. None of them is stored with a project or shown in an error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from disco.errors import DiscoError, Forbidden, NotFound
from disco.taskfarm.split import InputTooLarge

READ_CHUNK = 1 << 20


class DdfsUnavailable(DiscoError):
    """DDFS did not answer, or no replica of a blob could be read: the farm's dependency failed."""

    status = 502
    code = "ddfs_unreachable"


class DdfsNotConfigured(DiscoError):
    # 409 as openstack_not_configured: the request is valid; this server's setup cannot serve it.
    status = 409
    code = "ddfs_not_configured"


@dataclass(frozen=True)
class DdfsAccess:
    master: str  # http://host:port of the Disco master; its nodes serve blobs on the same port
    token_file: Path | None = None
    put_port: int | None = None  # where nodes take uploads (default: DDFS_PUT_PORT, 8990)

    def settings(self) -> Any:
        from disco.settings import DiscoSettings
        from disco.util import urlsplit

        token = self.token_file.read_text().strip() if self.token_file else None
        # The cluster token goes only to the master and to its nodes on these two ports.
        return DiscoSettings(DISCO_MASTER=self.master, DISCO_CLUSTER_TOKEN=token,
                             DISCO_PORT=urlsplit(self.master)[1].port or None, DDFS_PUT_PORT=self.put_port)

    def client(self) -> Any:
        from disco.ddfs import DDFS

        return DDFS(self.master, settings=self.settings())


def require(access: DdfsAccess | None) -> DdfsAccess:
    if access is None:
        raise DdfsNotConfigured("this farm server has no DDFS master: its operator starts it with --ddfs-master "
                                "(DISCO_FARM_DDFS_MASTER)")
    return access


def comm_failure(exc: Exception, tag: str, doing: str) -> DiscoError:
    """A DDFS client error as the farm's error: the tag named, never a token."""
    code = getattr(exc, "code", None)
    if code == 404:
        return NotFound(f"DDFS has no tag {tag!r}", code="ddfs_tag_not_found")
    if code in (401, 403):
        return Forbidden(f"DDFS refused to let this server {doing} tag {tag!r} (HTTP {code}): the tag's token "
                         "is not the server's DDFS_READ_TOKEN / DDFS_WRITE_TOKEN", code="ddfs_forbidden")
    status = f"HTTP {code}" if code is not None else type(exc).__name__
    return DdfsUnavailable(f"DDFS did not {doing} tag {tag!r}: {status}")


def read_tag(access: DdfsAccess, tag: str, max_bytes: int) -> bytes:
    """Every blob reachable from `tag`, in the order `ddfs blobs` lists them, joined. Each blob
    is read from the first of its replicas, on a node of the cluster, that answers."""
    from disco.error import DataError

    ddfs = access.client()
    try:
        blobs = list(ddfs.blobs(tag, ignore_missing=False))
    except (DataError, OSError) as exc:
        raise comm_failure(exc, tag, "read") from None
    nodes = cluster_hosts(access, ddfs, tag) if blobs else set()
    parts: list[bytes] = []
    size = 0
    for replicas in blobs:
        data = _read_blob(ddfs, replicas, nodes, max_bytes - size)
        size += len(data)
        parts.append(data)
    return b"".join(parts)


def cluster_hosts(access: DdfsAccess, ddfs: Any, tag: str) -> set[str]:
    """The master's host and its nodes' (/disco/ctrl/nodeinfo): the only hosts a replica is read
    from. Anyone who may write a tag may put any URL in it; the server fetching those would be
    a way into its network."""
    from disco.error import DataError
    from disco.util import urlsplit

    try:
        info = ddfs._download(f"{access.master}/disco/ctrl/nodeinfo")
    except (DataError, OSError) as exc:
        raise comm_failure(exc, tag, "read") from None
    return {str(host) for host in (info or {})} | {urlsplit(access.master)[1].host}


def _read_blob(ddfs: Any, replicas: list[str], nodes: set[str], budget: int) -> bytes:
    from disco import comm
    from disco.comm_auth import scope_for
    from disco.error import DataError
    from disco.util import urlsplit

    port = str(ddfs.settings["DISCO_PORT"])
    failures: list[str] = []
    refused = 0
    for url in replicas:
        # disco://node/ddfs/… is served on the master's port (Disco's DISCO_PORT convention).
        scheme, loc, path = urlsplit(url, disco_port=port)
        if scheme != "http" or loc.host not in nodes or str(loc.port) != port:
            refused += 1
            failures.append(f"{loc.host or '?'}: not a node of the DDFS cluster")
            continue
        try:
            stream = comm.open_url(f"{scheme}://{loc}/{path}", scope=scope_for(ddfs.settings, ddfs.master))
            try:
                return _read_limited(stream, budget)
            finally:
                stream.close()
        except (DataError, OSError) as exc:
            code = getattr(exc, "code", None)
            failures.append(f"{loc}: {f'HTTP {code}' if code else type(exc).__name__}")
    name = replicas[0].rsplit("/", 1)[-1].split("$", 1)[0] if replicas else "?"
    if replicas and refused == len(replicas):
        raise Forbidden(f"DDFS blob {name!r} has no replica on a node of the DDFS cluster ({'; '.join(failures)})",
                        code="ddfs_replica_not_allowed")
    raise DdfsUnavailable(f"no replica of DDFS blob {name!r} could be read ({'; '.join(failures) or 'none listed'})")


def _read_limited(stream: Any, budget: int) -> bytes:
    if stream.size is not None and stream.size > budget:
        raise InputTooLarge("the DDFS input is over the limit of the input a project may have")
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(READ_CHUNK)
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > budget:
            raise InputTooLarge("the DDFS input is over the limit of the input a project may have")
        parts.append(chunk)
