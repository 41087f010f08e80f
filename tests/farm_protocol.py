"""A minimal client of the farm's protocol, written from docs/taskfarm.md with plain httpx (the
real client is `disco farm client`): enroll, ask for work, heartbeat, report."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import httpx


class ProtoClient:
    def __init__(self, url: str, key: str, name: str, slots: int = 1) -> None:
        self.http = httpx.Client(base_url=url + "/api/v1/farm", timeout=30, trust_env=False)
        answer = self.http.post("/clients", headers={"X-Farm-Key": key}, json={"name": name, "slots": slots})
        assert answer.status_code == 201, answer.text
        self.client_id = answer.json()["client_id"]
        self.http.headers["Authorization"] = f"Bearer {answer.json()['client_token']}"

    def work(self, seconds: float = 10, slots: int = 1) -> list[dict[str, Any]]:
        answer = self.http.post("/work", json={"seconds": seconds, "slots": slots})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if not body["leases"]:
            assert answer.headers["Retry-After"] and body["retry_after_s"] > 0
        return body["leases"]

    def heartbeat(self, ids: list[int]) -> list[dict[str, Any]]:
        answer = self.http.post("/heartbeat", json={"instances": ids})
        assert answer.status_code == 200, answer.text
        return answer.json()["instances"]

    def report(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        answer = self.http.post("/results", json={"results": items})
        assert answer.status_code == 200, answer.text
        return answer.json()["results"]

    def exchange(self, items: list[dict[str, Any]], seconds: float = 10,
                 slots: int = 1) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Results and a new ask in one POST /work: (the results' answers, the new leases)."""
        answer = self.http.post("/work", json={"seconds": seconds, "slots": slots, "results": items})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["results"]) == len(items)
        return body["results"], body["leases"]

    def close(self) -> None:
        self.http.close()


def unit_input(lease: dict[str, Any]) -> bytes:
    data = base64.b64decode(lease["input"]["inline"])
    assert hashlib.sha256(data).hexdigest() == lease["input"]["sha256"]  # the client checks what it got
    return data


def ok(lease: dict[str, Any], output: bytes) -> dict[str, Any]:
    return {"instance_id": lease["instance_id"], "attempt": lease["attempt"], "status": "ok",
            "output": base64.b64encode(output).decode(), "cpu_s": 0.001}


def failed(lease: dict[str, Any], error: str) -> dict[str, Any]:
    return {"instance_id": lease["instance_id"], "attempt": lease["attempt"], "status": "error", "error": error}


def run_round(client: ProtoClient, compute: Callable[[bytes], bytes], seconds: float = 10) -> int:
    """One lease + report round trip: what it leased, computed and reported (batched)."""
    leases = client.work(seconds)
    if leases:
        answers = client.report([ok(lease, compute(unit_input(lease))) for lease in leases])
        assert all(a["status"] in ("accepted", "late_accepted", "not_needed") for a in answers), answers
    return len(leases)
