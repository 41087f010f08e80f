"""Errors DDFS requests are answered with (the statuses and messages Disco's master used)."""

from __future__ import annotations


class DdfsError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def unauthorized() -> DdfsError:
    return DdfsError(401, "Tag operation requires token.")


def invalid_tag() -> DdfsError:
    return DdfsError(403, "Invalid tag")


def tag_not_found() -> DdfsError:
    return DdfsError(404, "Tag not found.")


def attribute_not_found() -> DdfsError:
    return DdfsError(404, "Tag attribute not found.")


def unavailable(why: str) -> DdfsError:
    """Not enough nodes answered: the client may try again later."""
    return DdfsError(503, f"Temporary server error. Try again. ({why})")
