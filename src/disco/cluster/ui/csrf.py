"""Forms: reading a URL-encoded body, and the CSRF check every state-changing POST makes.

Each session has its own random CSRF value, rendered into every form as a hidden field; a POST
whose field is missing or differs is refused (403) before anything else happens. With the
cookie's SameSite=Strict this is belt and braces: either alone stops a cross-site form.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from disco.errors import Forbidden

FIELD = "csrf_token"


class Form:
    """A posted form's fields; names may repeat (checkboxes)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def get(self, name: str, default: str = "") -> str:
        for key, value in self.pairs:
            if key == name:
                return value
        return default

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]

    def startswith(self, prefix: str) -> dict[str, str]:
        return {key[len(prefix):]: value for key, value in self.pairs if key.startswith(prefix)}


def as_int(text: str) -> Any:
    """Form text as the integer it spells, or the text itself: the service then refuses it with
    the API's own message (a JSON body would carry a number, or be refused likewise)."""
    stripped = text.strip()
    if stripped.lstrip("+-").isdigit() and stripped.isascii() and len(stripped) < 19:
        return int(stripped)
    return stripped


async def read_form(request: Request) -> Form:
    """The body as application/x-www-form-urlencoded (what every dashboard form sends); its size
    is bounded by the RequestLimits middleware before this runs."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return Form(parse_qsl(body, keep_blank_values=True, max_num_fields=5000))


def check(expected: str, form: Form) -> None:
    """Forbidden (403 csrf_failed) unless the form carries the expected value."""
    given = form.get(FIELD)
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden("the form's CSRF token is missing or wrong: reload the page and try again",
                        code="csrf_failed")
