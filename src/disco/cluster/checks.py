"""Framework-level checks: readiness ("N workers registered") and activity (for idle timeouts).

Check headers may carry the cluster's credentials (a bearer token): they are rendered per
request and never appear in a check's detail, which goes into events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from disco.frameworks.model import Readiness
from disco.frameworks.render import evaluate, render


@dataclass
class CheckResult:
    ok: bool
    detail: str


async def http_json(client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None) -> Any:
    response = await client.get(url, headers=headers, timeout=5.0)
    response.raise_for_status()
    return response.json()


async def check_http(client: httpx.AsyncClient, readiness: Readiness, ctx: dict[str, Any]) -> CheckResult:
    """Ready when the URL answers 2xx (for frameworks with no status API of their own)."""
    url = render(readiness.url, ctx)
    try:
        response = await client.get(url, headers=render(readiness.headers, ctx), timeout=5.0)
    except httpx.HTTPError as exc:
        return CheckResult(False, f"{url}: {type(exc).__name__}")
    return CheckResult(response.is_success, f"{url}: HTTP {response.status_code}")


async def check_http_json(client: httpx.AsyncClient, readiness: Readiness,
                          ctx: dict[str, Any]) -> CheckResult:
    headers = render(readiness.headers, ctx)
    if readiness.urls:  # several answers, each under its name
        data: Any = {}
        for name, template in readiness.urls.items():
            url = render(template, ctx)
            try:
                data[name] = await http_json(client, url, headers)
            except (httpx.HTTPError, ValueError) as exc:
                return CheckResult(False, f"{url}: {type(exc).__name__}")
    else:
        url = render(readiness.url, ctx)
        try:
            data = await http_json(client, url, headers)
        except (httpx.HTTPError, ValueError) as exc:
            return CheckResult(False, f"{url}: {type(exc).__name__}")
    scope = {**ctx, "data": data}
    ok = bool(evaluate(readiness.ready_when or "false", scope))
    detail = render(readiness.status_text, scope) if readiness.status_text else ("ready" if ok else "waiting")
    return CheckResult(ok, detail)
