"""The cloud in a box's Keystone: the real Keystone WSGI application (keystone.server.wsgi)
served by the standard library's threaded WSGI server on one loopback address. Runs with the
Keystone venv's Python; imports Keystone and the standard library only, never disco.

Why wsgiref: Keystone is a plain WSGI app and a box serves a handful of requests; no uWSGI or
Apache to install, one pid to record and stop.

Usage: python serve.py CONFIG_FILE BIND_ADDRESS PORT
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from socketserver import ThreadingMixIn
from wsgiref import simple_server

LOG = logging.getLogger("disco-keystone")


class _ThreadingWSGIServer(ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        # The request line only: no header, no body (passwords travel in bodies).
        LOG.info("api %s %s", self.address_string(), format % args)


def main(argv: list[str]) -> None:
    config_file, address, port = argv[0], argv[1], int(argv[2])
    sys.argv[1:] = []  # Keystone parses the command line as its own options
    from keystone.server.flask import core

    app = core.initialize_application(name="public", config_files=[config_file])
    server = simple_server.make_server(address, port, app, server_class=_ThreadingWSGIServer,
                                       handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="keystone-api", daemon=True).start()
    LOG.info("disco cloud: Keystone on http://%s:%d/v3", address, port)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()
    server.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
