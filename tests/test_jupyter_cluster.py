"""JupyterLab wired to the cluster's Dask: log in with the cluster's Jupyter password, run code
in a kernel over its websocket that computes on the cluster with `distributed.Client()`; a
wrong password is refused, and the clear password is in none of the cluster's files or events."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from sm_fixtures import ServiceManager, wait_state

pytestmark = pytest.mark.slow

ON_THE_CLUSTER = """
import os, distributed
with distributed.Client(timeout=30) as client:
    total = client.submit(sum, range(100)).result()
    workers = len(client.scheduler_info()["workers"])
    where = client.submit(lambda: os.environ.get("DISCO_NODE"), pure=False).result()
print("RESULT", total, workers, where)
"""


def login(base: str, password: str) -> httpx.Client:
    """A browser's login: the form with Jupyter's XSRF cookie, then the session cookie."""
    session = httpx.Client(base_url=base, trust_env=False, timeout=30)
    session.get("/login")
    xsrf = session.cookies.get("_xsrf")
    assert xsrf, "the login page sets an XSRF cookie"
    session.post("/login", data={"password": password, "_xsrf": xsrf})
    session.headers["X-XSRFToken"] = xsrf
    return session


async def execute(ws_url: str, cookies: str, xsrf: str, code: str, timeout: float = 90) -> str:
    """Run code in a kernel over its websocket (Jupyter's messaging protocol); its stdout."""
    request = HTTPRequest(ws_url, headers={"Cookie": cookies, "X-XSRFToken": xsrf})
    conn = await websocket_connect(request)
    msg_id = uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    output = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        raw = await asyncio.wait_for(conn.read_message(), deadline - loop.time())
        assert raw is not None, "the kernel websocket closed"
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            output.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            output.append("\n".join(msg["content"]["traceback"]))
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    conn.close()
    return "".join(output)


def run_in_a_kernel(base: str, password: str, code: str) -> str:
    """Logged in like a browser: start a kernel, run code in it, stop it; the code's output."""
    session = login(base, password)
    try:
        assert session.get("/api/status").status_code == 200
        kernel = session.post("/api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        cookies = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
        ws_url = f"{base.replace('http://', 'ws://')}/api/kernels/{kernel.json()['id']}/channels"
        output = asyncio.run(execute(ws_url, cookies, session.headers["X-XSRFToken"], code))
        session.delete(f"/api/kernels/{kernel.json()['id']}")
        return output
    finally:
        session.close()


def test_jupyter_with_dask(sm: ServiceManager, api: httpx.Client) -> None:
    response = api.post("/api/v1/clusters", json={"frameworks": [{"name": "dask"}, {"name": "jupyter"}],
                                                  "workers": 1})
    assert response.status_code == 201, response.text
    cluster = wait_state(api, response.json()["id"], {"ready", "failed"}, timeout=90)
    assert cluster["state"] == "ready", cluster["status_reason"]
    cid = cluster["id"]
    master = cluster["nodes"][0]["host"]
    access = api.get(f"/api/v1/clusters/{cid}/credentials").json()["frameworks"]["jupyter"]["env"]
    password = access["JUPYTER_TOKEN"]
    assert access["JUPYTER_URL"] == cluster["outputs"]["frameworks"]["jupyter"]["web_uis"]["lab"]
    base = f"http://{master}:8890"

    # Refused: no credential, a wrong password, a wrong token.
    assert httpx.get(f"{base}/api/status", trust_env=False).status_code == 403
    assert httpx.get(f"{base}/api/status", headers={"Authorization": f"token {password[:-1]}x"},
                     trust_env=False).status_code == 403
    wrong = login(base, password[:-1])
    assert wrong.get("/api/status").status_code == 403
    wrong.close()
    assert httpx.get(f"{base}/api/status", headers={"Authorization": f"token {password}"},
                     trust_env=False).status_code == 200

    # Logged in like a browser: start a kernel and compute on the cluster's Dask from it.
    output = run_in_a_kernel(base, password, ON_THE_CLUSTER)
    assert "RESULT 4950 1 worker-1" in output, output

    # The clear password is nowhere on disk in the cluster's directories, nor in its events or
    # the service manager's log; its hash is in the server's configuration.
    cluster_dir = sm.data_dir / "clusters" / cid
    found = [p for p in cluster_dir.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
    assert found == []
    config = next(cluster_dir.rglob("jupyter_server_config.json")).read_text()
    assert '"hashed_password": "argon2:' in config
    assert password not in json.dumps(api.get(f"/api/v1/clusters/{cid}/events").json())
    assert password not in api.get(f"/api/v1/clusters/{cid}/deployment.log").text
    assert password.encode() not in sm.log_path.read_bytes()

    assert api.delete(f"/api/v1/clusters/{cid}").status_code == 202
    wait_state(api, cid, {"deleted"}, timeout=60)
    assert not cluster_dir.exists()
