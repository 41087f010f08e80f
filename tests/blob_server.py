"""A download mirror on this machine's loopback whose file can go bad, be slow, go missing, and
be mended — for the faults of a node's install (checksums, timeouts, a failing bootstrap)."""

from __future__ import annotations

import hashlib
import http.server
import threading
import time
from pathlib import Path

from sm_fixtures import frameworks_path

# A framework whose install downloads the server's file, checked by its SHA-256 (format with
# url= and sha256=), and serves a web page on the master.
BLOB_FRAMEWORK = """\
name: blobby
version: "1.0"
description: A download checked by its SHA-256, and a web server over it.
ports:
  web: {{port: 8000, role: master, scheme: http}}
install:
  downloads:
    - {{url: "{url}", sha256: "{sha256}", dest: "lib/blob.txt"}}
roles:
  master:
    processes:
      - name: web
        command: ["{{{{ python }}}}", "-m", "http.server", "{{{{ ports.web }}}}", "--bind", "{{{{ node.host }}}}"]
readiness:
  kind: http
  url: "http://{{{{ master.host }}}}:{{{{ ports.web }}}}/"
  timeout_s: 30
"""


class BlobServer:
    def __init__(self, content: bytes = b"corrupted on the mirror\n") -> None:
        self.content = content
        self.status = 200
        self.delay_s = 0.0
        served = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                time.sleep(served.delay_s)
                body = served.content if served.status == 200 else b"not here\n"
                self.send_response(served.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/blob.txt"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def blobby_frameworks_path(folder: Path, server: BlobServer, good: bytes) -> str:
    """DISCO_FRAMEWORKS_PATH with `blobby` downloading the server's file, which must be `good`."""
    return frameworks_path(folder, {"blobby": BLOB_FRAMEWORK.format(url=server.url,
                                                                   sha256=hashlib.sha256(good).hexdigest())})
