"""Options every `disco` command that talks to the service manager takes, in one place: where
it is (`--url`) and who asks (`--token`); they win over DISCO_URL / DISCO_TOKEN, the config
file and the local token file (see `disco.cli.client.resolve_endpoint`)."""

from __future__ import annotations

import os
from typing import Optional

import typer

from disco.cli.client import Client, resolve_endpoint

URL = typer.Option(None, "--url", help="Service manager URL (env DISCO_URL; default http://127.0.0.1:8888).")
TOKEN = typer.Option(None, "--token", help="API token (env DISCO_TOKEN, ~/.config/disco/config.yaml).")


def client(url: Optional[str], token: Optional[str], timeout: float = 30.0) -> Client:
    return Client(*resolve_endpoint(url, token), timeout=timeout)


def farm_client(url: Optional[str], token: Optional[str], timeout: float = 30.0) -> Client:
    """The farm verbs' server: as `client`, except that DISCO_FARM_URL (what `disco cluster env`
    exports for a cluster of the `taskfarm` framework) names a cluster's own farm server, whose
    owner token is then --token or DISCO_FARM_TOKEN, never the service manager's."""
    farm_url = os.environ.get("DISCO_FARM_URL")
    if url is None and farm_url:
        return Client(farm_url.rstrip("/"), token or os.environ.get("DISCO_FARM_TOKEN") or None, timeout=timeout)
    return client(url, token, timeout)
