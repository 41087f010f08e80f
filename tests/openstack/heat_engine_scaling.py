"""Runs Heat's engine (openstack-heat, legacy engine, fake RPC, a MariaDB database of its own)
in this process, creates a stack and scales it, playing the nodes: each server that appears
signals once, and only once Heat is seen waiting for it. Run by the Heat environment's python.

stdin: {"database": url, "plugins": dir, "stacks": [{"name", "template", "files"}],
        "steps": [worker_count, ...]}
stdout: one JSON line per stack: {"name", "steps": [{"workers", "waiting", "signals", "final",
        "reason", "seconds"}]}; `waiting` is the stack's state once Heat waits on a wait
        condition (or has finished) with no new node signalled yet.
"""

import json
import logging
import sys
import time

from oslo_service import backend

backend.init_backend(backend.BackendType.THREADING)

from oslo_config import cfg  # noqa: E402

STAND_INS = {kind: "OS::Heat::None" for kind in (
    "OS::Nova::Server", "OS::Nova::KeyPair", "OS::Neutron::Net", "OS::Neutron::Subnet", "OS::Neutron::Router",
    "OS::Neutron::RouterInterface", "OS::Neutron::SecurityGroup", "OS::Neutron::FloatingIP")}
STAND_INS["OS::Neutron::Port"] = "DISCO::Test::Port"


def start_engine(spec):
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    from heat.common import config  # noqa: F401
    from heat.common import messaging
    from heat.engine.clients.os.keystone import heat_keystoneclient  # noqa: F401
    cfg.CONF([], project="heat", default_config_files=[])
    cfg.CONF.set_override("connection", spec["database"], group="database")
    cfg.CONF.set_override("convergence_engine", False)
    cfg.CONF.set_override("keystone_backend",
                          "heat.engine.clients.os.keystone.fake_keystoneclient.FakeKeystoneClient")
    cfg.CONF.set_override("deferred_auth_method", "password")
    cfg.CONF.set_override("url", "http://127.0.0.1:8004/v1/%(tenant_id)s", group="clients_heat")
    cfg.CONF.set_override("plugin_dirs", [spec["plugins"]])
    messaging.setup(url="fake://")
    from heat.db import migration
    migration.db_sync()
    from heat.engine import resources, service
    from heat.rpc import api as rpc_api
    resources.initialise()
    quicken_steps()
    engine = service.EngineService("disco-scaling-check", rpc_api.ENGINE_TOPIC)
    engine.start()
    return engine


def quicken_steps():
    """The legacy engine sleeps a second between a task's steps (Heat's own unit tests switch
    the sleep off); a tenth of that keeps the order of events, which is all this checks, and
    takes the run from about two minutes to a fraction."""
    from heat.engine import scheduler

    def short_sleep(runner, wait_time):
        if wait_time:
            time.sleep(min(wait_time, 0.1))

    scheduler.TaskRunner._sleep = short_sleep


def context():
    from heat.common import context as heat_context
    return heat_context.RequestContext(user_id="disco", project_id="disco", is_admin=True, overwrite=False,
                                       user_domain_id="default", project_domain_id="default",
                                       username="disco", password="unused", auth_url="http://127.0.0.1:5000/v3")


class Nodes:
    """The servers of a stack, each of which signals once: its own handles (booted, ready), else
    the one handle of the nearest stack above it that has exactly one (the flat shape's)."""

    def __init__(self, ctx, identity):
        self.ctx, self.identity, self.signalled = ctx, identity, set()

    def _resources(self):
        from heat.engine import stack as heat_stack
        root = heat_stack.Stack.load(self.ctx, stack_id=self.identity["stack_id"])
        return root, list(root.iter_resources(nested_depth=5))

    def heat_is_waiting(self):
        _, resources = self._resources()
        return any(r.type() == "OS::Heat::WaitCondition" and r.status == r.IN_PROGRESS for r in resources)

    def signal_new(self):
        root, resources = self._resources()
        handles = {}
        for r in resources:
            if r.type() == "OS::Heat::WaitConditionHandle" and r.resource_id:
                handles.setdefault(r.stack.id, []).append(r)
        stacks = {r.stack.id: r.stack for r in resources}
        stacks[root.id] = root
        sent = 0
        for server in resources:
            if server.type() != "OS::Nova::Server" or not server.resource_id or server.resource_id in self.signalled:
                continue
            # Its own handles (booted and ready): a worker's stack holds only its own, the
            # root stack the master's (named after it).
            own = [h for h in handles.get(server.stack.id, [])
                   if server.stack.id != root.id or h.name.startswith(server.name + "_")]
            owner = server.stack
            # Else up through the stacks' owners (a nested stack's owner_id is its parent's id)
            # to the one shared handle of the flat shape.
            while not own and owner is not None and len(handles.get(owner.id, [])) != 1:
                owner = stacks.get(owner.owner_id) if owner.owner_id else None
            if not own and owner is None:
                continue
            for handle in own or handles[owner.id]:
                handle.signal({"status": "SUCCESS", "id": server.resource_id})
            self.signalled.add(server.resource_id)
            sent += 1
        return sent


def state(engine, ctx, identity):
    shown = engine.show_stack(ctx, identity, resolve_outputs=False)[0]
    return f'{shown["stack_action"]}_{shown["stack_status"]}', shown["stack_status_reason"]


def step(engine, ctx, identity, nodes, action, workers, limit=120.0):
    started = time.monotonic()
    # Until Heat waits on a wait condition, or is done: no node has signalled yet.
    while time.monotonic() - started < limit:
        current, _ = state(engine, ctx, identity)
        if current in (f"{action}_COMPLETE", f"{action}_FAILED"):
            break
        if nodes.heat_is_waiting():
            time.sleep(2.0)  # and it keeps waiting
            break
        time.sleep(0.2)
    waiting, _ = state(engine, ctx, identity)
    signals = 0
    while time.monotonic() - started < limit:
        signals += nodes.signal_new()
        current, reason = state(engine, ctx, identity)
        if not current.endswith("_IN_PROGRESS"):
            break
        time.sleep(0.3)
    current, reason = state(engine, ctx, identity)
    return {"workers": workers, "waiting": waiting, "signals": signals, "final": current, "reason": reason,
            "seconds": round(time.monotonic() - started, 1)}


def run_stack(engine, ctx, stack, steps):
    def environment(workers):
        return {"parameters": {"worker_count": workers}, "resource_registry": STAND_INS}
    args = {"timeout_mins": 10, "disable_rollback": True}
    identity = engine.create_stack(ctx, stack["name"], stack["template"], environment(steps[0]),
                                   stack["files"], args)
    nodes = Nodes(ctx, identity)
    results = [step(engine, ctx, identity, nodes, "CREATE", steps[0])]
    for workers in steps[1:]:
        engine.update_stack(ctx, identity, stack["template"], environment(workers), stack["files"], args)
        results.append(step(engine, ctx, identity, nodes, "UPDATE", workers))
    engine.delete_stack(ctx, identity)
    # The engine's stop waits for a stack's running threads (a minute, for a delete under way).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if state(engine, ctx, identity)[0] in ("DELETE_COMPLETE", "DELETE_FAILED"):
                break
        except Exception:  # heat.common.exception.EntityNotFound: gone
            break
        time.sleep(0.2)
    return results


def main():
    spec = json.load(sys.stdin)
    engine = start_engine(spec)
    ctx = context()
    try:
        for stack in spec["stacks"]:
            print(json.dumps({"name": stack["name"], "steps": run_stack(engine, ctx, stack, spec["steps"])}),
                  flush=True)
    finally:
        engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
