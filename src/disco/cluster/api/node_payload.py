"""GET /api/v1/node-payload/<wheel>: disco's own wheel, for nodes that bootstrap themselves
from user_data (cloud servers) and cannot be handed the wheel over SSH (Nova caps user_data at
64 KiB). No token: it is disco's own code, public, and the bootstrap checks its SHA-256 (named
in the script) before installing it. Only wheels this service manager built of its own disco
are served: the one of its code as it is now, and any earlier one still in its wheel cache."""

from __future__ import annotations

from pathlib import Path as FilePath

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse

from disco.cluster.api.schemas import error_responses
from disco.errors import NotFound
from disco.frameworks.render import cache_dir
from disco.node.wheel import self_wheel

router = APIRouter(prefix="/api/v1/node-payload", tags=["nodes"])
WHEEL_NAME = r"^disco-[A-Za-z0-9.+_]+-py3-none-any\.whl$"


def wheel_cache() -> FilePath:
    """Where the providers build the wheels they hand to nodes (the SSH provider uploads from
    here; the cloud provider names a file of it in each node's user_data)."""
    return FilePath(cache_dir()) / "wheels"


def node_wheel() -> FilePath:
    """The wheel nodes install: disco as this service manager runs it, built once per content."""
    return self_wheel(wheel_cache())


def cached_wheel(filename: str) -> FilePath | None:
    """A wheel built earlier, by its exact name. A node asks for the wheel named in its script,
    written when its cluster was designed; the package's content may have changed since (a
    framework's Java classes built into it meanwhile), which renames the current wheel, so the
    one named must still be served. The name pattern has no '/', so this stays in the cache."""
    path = wheel_cache() / filename
    return path if path.is_file() and not path.is_symlink() else None


@router.get("/{filename}", response_class=FileResponse, operation_id="getNodePayload",
            summary="disco's wheel, for nodes that bootstrap from user_data (no token)",
            openapi_extra={"security": []},  # public: see the module's text
            responses={200: {"description": "The wheel.", "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                       **error_responses(404, 422, s404="Not a wheel this service manager built of its disco.")})
def node_payload(filename: str = Path(..., max_length=200, pattern=WHEEL_NAME)) -> FileResponse:
    wheel = cached_wheel(filename)
    if wheel is None:
        current = node_wheel()
        if filename != current.name:
            raise NotFound(f"{filename} is not a wheel this service manager built of its disco "
                           f"(its current one is {current.name})")
        wheel = current
    return FileResponse(wheel, media_type="application/octet-stream", filename=wheel.name)
