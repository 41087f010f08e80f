"""Errors the master answers requests with."""

from __future__ import annotations


class RequestError(Exception):
    """A request the master refuses; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
