"""The cloud in a box's Heat: engine and API in one process (runs with the Heat venv's Python;
imports Heat and the standard library only, never disco).

Why one process: with oslo.messaging's in-process `fake://` transport the API and the engine
need no message broker, the cloud is one pid to record and stop, and nothing is shared with
other clouds on the machine (a RabbitMQ exchange would be). The price: one engine worker, which
is plenty for a few stacks on loopback.

Two things are changed here, at start-up, in this process only (Heat's files stay untouched):
- Stock Heat sleeps 1 s after triggering each independent resource (`time.sleep(1)` in
  `Stack.converge_stack`, there to spread load over many engines): with one engine it only
  makes stacks slow (~1 s per resource). `heat.engine.stack` gets a `time` whose sleep yields
  instead. (`scheduler.ENABLE_SLEEP = False` would also remove the poll interval of every
  resource's check_*_complete loop: a busy loop.)
- The API is wrapped in `box_api_auth.TokenGate`: noauth Heat takes any caller for an admin;
  the gate lets through only the cloud's admin token, and signal tokens on signal URLs. With a
  Keystone, any other request goes to Heat's stock pipeline (keystonemiddleware auth_token).

Usage: python launcher.py CONFIG_FILE BIND_ADDRESS PORT
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import types
from socketserver import ThreadingMixIn
from wsgiref import simple_server

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # box_* modules, for the plugins too

from oslo_service import backend  # noqa: E402

backend.init_backend(backend.BackendType.THREADING)

from oslo_config import cfg  # noqa: E402
from oslo_log import log as logging  # noqa: E402

from heat.common import config, crypt, messaging  # noqa: E402,F401  (crypt: its options)
from heat.rpc import api as rpc_api  # noqa: E402

CONF = cfg.CONF
LOG = logging.getLogger("disco-cloud")


class _ThreadingWSGIServer(ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        LOG.info("api %s %s", self.address_string(), format % args)


def _remove_converge_pause() -> None:
    from heat.engine import stack

    yielding_time = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time)
                                             if not name.startswith("__")})
    yielding_time.sleep = lambda seconds: time.sleep(0)
    stack.time = yielding_time


def _keystone_app():
    """With a Keystone (`keystone` in cloud.json): Heat's stock pipeline, whose auth_token
    checks callers' tokens with Keystone. Loaded after the noauth one (heat.conf's flavor),
    which still serves the cloud's admin token and signal tokens."""
    from box_config import cloud_config

    if not cloud_config().get("keystone"):
        return None
    CONF.set_override("flavor", None, group="paste_deploy")
    try:
        return config.load_paste_app("heat-api")
    finally:
        CONF.clear_override("flavor", group="paste_deploy")


def main(argv: list[str]) -> None:
    config_file, address, port = argv[0], argv[1], int(argv[2])
    logging.register_options(CONF)
    CONF(["--config-file", config_file], project="heat", prog="disco-cloud-heat")
    logging.setup(CONF, "heat")
    config.set_config_defaults()
    messaging.setup()
    config.startup_sanity_check()
    _remove_converge_pause()

    from heat.engine import service as engine_service
    import box_api_auth

    engine = engine_service.EngineService(CONF.host, rpc_api.ENGINE_TOPIC)
    # Started here, not by an oslo.service launcher: its threading backend (cotyledon) forks
    # workers, and fake:// does not cross processes.
    engine.start()

    app = box_api_auth.TokenGate(config.load_paste_app("heat-api"), _keystone_app())
    server = simple_server.make_server(address, port, app, server_class=_ThreadingWSGIServer,
                                       handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="heat-api", daemon=True).start()
    LOG.info("disco cloud: Heat API on http://%s:%d/v1", address, port)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()
    LOG.info("disco cloud: stopping")
    server.shutdown()
    engine.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
