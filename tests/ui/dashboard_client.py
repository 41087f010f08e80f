"""A browser without JavaScript, for the dashboard's tests: httpx with a cookie jar, the CSRF
value read from the last page, and every answer kept (to look for leaked tokens)."""

from __future__ import annotations

import html as html_lib
import json
import re
import time
from html.parser import HTMLParser
from collections.abc import Callable, Iterator
from typing import Any

import httpx

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]*)"')
LINK_RE = re.compile(r'(?:href|src)="(/ui/[^"#]*)"')


class Dashboard:
    def __init__(self, url: str) -> None:
        self.seen: list[httpx.Response] = []
        self.http = httpx.Client(base_url=url, timeout=60, trust_env=False,
                                 event_hooks={"response": [self._keep]})
        self.csrf = ""

    def _keep(self, response: httpx.Response) -> None:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
            self.seen.append(response)

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.get(path, **kwargs)
        found = CSRF_RE.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def post(self, path: str, data: dict[str, Any] | list[tuple[str, str]] | None = None, *,
             csrf: bool = True) -> httpx.Response:
        """A form post as a browser sends it (the CSRF field from the last page read)."""
        fields = list(data.items()) if isinstance(data, dict) else list(data or [])
        expanded = [(k, item) for k, v in fields for item in (v if isinstance(v, list) else [v])]
        if csrf:
            expanded.append(("csrf_token", self.csrf))
        return self.http.post(path, content=httpx.QueryParams(expanded).__str__().encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})

    def crawl(self, start: str = "/ui/clusters", limit: int = 300) -> set[str]:
        """Every dashboard page reachable by links (GET only: forms are not sent), from start;
        the URLs visited."""
        queue, visited = [start], set()
        while queue and len(visited) < limit:
            url = queue.pop(0)
            if url in visited:
                continue
            visited.add(url)
            response = self.get(url)
            if response.headers.get("content-type", "").startswith("text/html"):
                queue.extend(html_lib.unescape(link) for link in LINK_RE.findall(response.text))
        return visited

    def sign_in(self, token: str) -> httpx.Response:
        self.get("/ui/signin")
        response = self.post("/ui/signin", {"token": token})
        self.get("/ui/clusters")  # the session's CSRF value
        return response

    def events(self, path: str, until: Callable[[str, Any], bool], *, timeout: float,
               between: Callable[[], None] | None = None,
               headers: dict[str, str] | None = None) -> list[tuple[str, Any]]:
        """Server-sent events from `path` until `until(event, data)` holds; `between` runs once,
        after the first event (to change something while the stream is open)."""
        seen: list[tuple[str, Any]] = []
        deadline = time.monotonic() + timeout
        with self.http.stream("GET", path, timeout=httpx.Timeout(timeout, read=timeout),
                              headers=headers) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            for name, data in _parse(response.iter_lines()):
                seen.append((name, data))
                if between is not None and len(seen) == 1:
                    between()
                if until(name, data):
                    return seen
                if time.monotonic() > deadline:
                    break
        raise AssertionError(f"the stream {path} ended or timed out without the event; got {seen[-5:]}")


def _parse(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    name, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def field_error(html: str, field_id: str) -> str | None:
    """The error shown next to a field (or a fieldset of choices): the text of #FIELD-error, which its
    aria-describedby must name (None when there is none)."""
    found = re.search(rf'<p class="error" id="{re.escape(field_id)}-error">(.*?)</p>', html, re.S)
    if not found:
        return None
    control = re.search(rf'<(?:input|select|textarea|fieldset)[^>]*\bid="{re.escape(field_id)}"[^>]*>', html, re.S)
    assert control is not None, f"no control #{field_id}"
    assert f"{field_id}-error" in control.group(0) and 'aria-invalid="true"' in control.group(0), control.group(0)
    return html_lib.unescape(re.sub(r"<[^>]+>", "", found.group(1)).replace("Error: ", "").strip())


class _Controls(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.append(str(found["id"]))
        if tag == "label" and found.get("for"):
            self.label_for.add(str(found["for"]))
        if tag in ("input", "select", "textarea") and found.get("type") not in ("hidden", "submit"):
            self.controls.append(found)


def unlabelled(html: str) -> list[str]:
    """Form controls without a <label for> (or an aria-label), and ids used twice."""
    parsed = _Controls()
    parsed.feed(html)
    problems = [f"no label: {c}" for c in parsed.controls
                if not (c.get("id") and c["id"] in parsed.label_for) and not c.get("aria-label")]
    problems += [f"id used twice: {i}" for i in set(parsed.ids) if parsed.ids.count(i) > 1]
    return problems
