"""GET /api/v1/node-payload/<wheel>: disco's own wheel, for nodes that bootstrap themselves
from user_data (cloud servers) and cannot be handed the wheel over SSH (Nova caps user_data at
64 KiB). No token: it is disco's own code, public, and the bootstrap checks its SHA-256 (named
in the script) before installing it. Only the wheel of this service manager's disco is served."""

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


def node_wheel() -> FilePath:
    """The wheel nodes install: disco as this service manager runs it, built once per content
    into the same cache the SSH provider uploads from."""
    return self_wheel(FilePath(cache_dir()) / "wheels")


@router.get("/{filename}", response_class=FileResponse, operation_id="getNodePayload",
            summary="disco's wheel, for nodes that bootstrap from user_data (no token)",
            openapi_extra={"security": []},  # public: see the module's text
            responses={200: {"description": "The wheel.", "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                       **error_responses(404, 422, s404="Not the wheel of this service manager's disco.")})
def node_payload(filename: str = Path(..., max_length=200, pattern=WHEEL_NAME)) -> FileResponse:
    wheel = node_wheel()
    if filename != wheel.name:
        raise NotFound(f"{filename} is not the wheel of this service manager's disco ({wheel.name})")
    return FileResponse(wheel, media_type="application/octet-stream", filename=wheel.name)
