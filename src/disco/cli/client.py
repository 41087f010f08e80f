"""A small HTTP client of the service manager's REST API, shared by the CLI commands."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from disco.cluster.settings import default_data_dir

DEFAULT_URL = "http://127.0.0.1:8888"


class ApiError(Exception):
    """An error answer of the service manager (status 0: it could not be reached), or a look-up
    the CLI itself could not settle; `details` as in the error envelope."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details if details is not None else {}

    def envelope(self) -> dict[str, Any]:
        return {"error": {"code": self.code or "http_error", "message": self.message, "details": self.details}}


def config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "disco" / "config.yaml"


def token_file() -> Path:
    """The local service manager's token for tenant 'default' (made by its first start)."""
    return default_data_dir() / "token"


def resolve_endpoint(url: str | None, token: str | None) -> tuple[str, str | None]:
    """Flags, then DISCO_URL / DISCO_TOKEN, then ~/.config/disco/config.yaml, then the local
    service manager's own token file."""
    config: dict[str, Any] = {}
    path = config_file()
    if path.exists():
        config = yaml.safe_load(path.read_text()) or {}
    url = url or os.environ.get("DISCO_URL") or config.get("url") or DEFAULT_URL
    token = token or os.environ.get("DISCO_TOKEN") or config.get("token")
    if not token:
        local = token_file()
        if local.exists():
            token = local.read_text().strip()
    return url.rstrip("/"), token


def _no_token_hint() -> str:
    return (f" (no token found: give --token, set DISCO_TOKEN, write {config_file()}, or let the CLI read "
            f"{token_file()}; a service manager started with DISCO_DATA_DIR keeps its token there, so "
            "export the same DISCO_DATA_DIR in this terminal)")


class Client:
    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        headers = {"X-Auth-Token": token} if token else {}
        self.has_token = bool(token)
        self.http = httpx.Client(base_url=url, headers=headers, timeout=timeout, trust_env=False)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable", f"cannot reach the service manager at "
                           f"{self.http.base_url}: {exc}") from None
        if response.status_code >= 400:
            raise self._error(response)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def stream_lines(self, path: str, params: dict[str, Any]) -> Iterator[str]:
        """The `data:` lines of a server-sent event stream."""
        with self.http.stream("GET", path, params=params, timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                raise self._error(response)
            for line in response.iter_lines():
                if line.startswith("data: "):
                    yield line[6:]

    def _error(self, response: httpx.Response) -> ApiError:
        try:
            error = response.json()["error"]
            exc = ApiError(response.status_code, str(error.get("code", "")), str(error.get("message", "")),
                           error.get("details"))
        except (ValueError, KeyError, TypeError, AttributeError):
            exc = ApiError(response.status_code, "http_error", response.text[:500])
        if response.status_code == 401 and not self.has_token:
            exc.message += _no_token_hint()
        return exc


_FULL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def resolve_cluster_id(client: Client, ref: str) -> str:
    """The full id of the cluster that `ref` names: a full id, a unique prefix of one, or a
    cluster's name. Live clusters are looked at first, deleted ones only when no live one
    matches. Raises ApiError 404 `no_such_cluster` when nothing matches and 409
    `ambiguous_cluster` (the candidates in `details`) when more than one cluster does."""
    ref = ref.strip()
    if not ref:
        raise ApiError(400, "invalid_cluster_ref", "a cluster id, id prefix or name is needed")
    if _FULL_ID.fullmatch(ref.lower()):
        return ref.lower()  # the service manager answers for it (404 when it is not the tenant's)
    clusters = client.request("GET", "/api/v1/clusters", params={"include_deleted": True})
    for live in (True, False):
        pool = [c for c in clusters if (c["state"] != "deleted") is live]
        found = [c for c in pool if c["id"].startswith(ref.lower()) or c["name"] == ref]
        if len(found) == 1:
            return str(found[0]["id"])
        if found:
            candidates = [{"id": c["id"], "name": c["name"], "state": c["state"]} for c in found]
            listing = "; ".join(f"{c['id']} ({c['name']}, {c['state']})" for c in candidates)
            raise ApiError(409, "ambiguous_cluster",
                           f"{ref!r} matches {len(found)} clusters: {listing}; give more of the id",
                           {"ref": ref, "candidates": candidates})
    raise ApiError(404, "no_such_cluster", f"no cluster has the id, id prefix or name {ref!r}", {"ref": ref})


def short_ids(clusters: list[dict[str, Any]], minimum: int = 8) -> dict[str, str]:
    """For each cluster id, its shortest prefix (at least `minimum` characters) that
    `resolve_cluster_id` takes for that cluster among these clusters."""
    result: dict[str, str] = {}
    for cluster in clusters:
        cid = cluster["id"]
        length = minimum
        while length < len(cid) and any(
                other["id"] != cid and (other["id"].startswith(cid[:length]) or other["name"] == cid[:length])
                for other in clusters):
            length += 1
        result[cid] = cid[:length]
    return result
