"""A download mirror on this machine's loopback whose file can go bad, be slow, go missing, and
be mended — for the faults of a node's install (checksums, timeouts, a failing bootstrap)."""

from __future__ import annotations

import http.server
import threading
import time


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
