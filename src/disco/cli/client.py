"""A small HTTP client of the service manager's REST API, shared by the CLI commands."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from disco.cluster.settings import default_data_dir

DEFAULT_URL = "http://127.0.0.1:8888"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "disco" / "config.yaml"


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
        local = default_data_dir() / "token"
        if local.exists():
            token = local.read_text().strip()
    return url.rstrip("/"), token


class Client:
    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        headers = {"X-Auth-Token": token} if token else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=timeout, trust_env=False)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable", f"cannot reach the service manager at "
                           f"{self.http.base_url}: {exc}") from None
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise ApiError(response.status_code, error.get("code", ""), error.get("message", ""))
            except (ValueError, KeyError, TypeError):
                raise ApiError(response.status_code, "http_error", response.text[:500]) from None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def stream_lines(self, path: str, params: dict[str, Any]) -> Iterator[str]:
        """The `data:` lines of a server-sent event stream."""
        with self.http.stream("GET", path, params=params, timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                try:
                    error = response.json()["error"]
                    raise ApiError(response.status_code, error.get("code", ""), error.get("message", ""))
                except (ValueError, KeyError):
                    raise ApiError(response.status_code, "http_error", response.text[:500]) from None
            for line in response.iter_lines():
                if line.startswith("data: "):
                    yield line[6:]
