"""The reconciler: moves every cluster's actual state toward the state its user asked for.

Each cluster row holds `state` (what is) and `target` (running, suspended or deleted).
One asyncio task per cluster drives it step by step, recording an event with its
duration at each step; a periodic sweep checks the health of ready clusters and applies
idle and age limits. Nothing is kept only in memory: after a restart (even a `kill -9`
half-way through provisioning) the same loop adopts what runs and finishes the job.

    pending -> provisioning -> installing -> ready        (target running)
    any     -> failed                                     (a step failed or timed out)
    ready   -> suspended                                  (target suspended)
    any     -> deleting -> deleted                        (target deleted)
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from disco.cluster import plan
from disco.cluster.checks import check_http, check_http_json, http_json
from disco.cluster.models import Cluster, Node, utcnow
from disco.cluster.secrets import SecretBox
from disco.cluster.store import Store, age_seconds
from disco.errors import DiscoError
from disco.frameworks.catalog import Catalog
from disco.frameworks.model import CommandCall, FrameworkDef
from disco.frameworks.render import evaluate, render
from disco.cluster.provider_request import provider_request
from disco.providers.base import (ClusterRef, NodeAddress, NodeFacts, NodeNeeds, NodeRef, PlanRequest, ProcessState,
                                  Provider)
from disco.cluster.settings import Settings

log = logging.getLogger("disco.lifecycle")

STATES = ("pending", "provisioning", "installing", "ready", "failed", "suspended", "deleting", "deleted")
MAX_RESTARTS = 3
NODE_LOG_PORT = 8084  # the node supervisor's log server on hosts of their own (disco.node)


class StepFailed(Exception):
    pass


class Lifecycle:
    def __init__(self, store: Store, catalog: Catalog, settings: Settings,
                 provider_factory: Callable[[str], Provider], box: SecretBox) -> None:
        self.store = store
        self.box = box
        self.catalog = catalog
        self.settings = settings
        self._provider_factory = provider_factory
        self._providers: dict[str, Provider] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._restarts: dict[tuple[str, str, str], int] = {}
        # Where software is on each node of a cluster (providers with hosts of their own);
        # asked again after a restart: preparing a prepared node changes nothing.
        self._facts: dict[str, dict[str, NodeFacts]] = {}
        self._periodic: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()
        self._http = httpx.AsyncClient(trust_env=False)

    def provider(self, name: str) -> Provider:
        if name not in self._providers:
            self._providers[name] = self._provider_factory(name)
        return self._providers[name]

    # -- control --------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.sweep_orphans()
        preloads = {tuple(proc.preload) for fw in self.catalog.frameworks.values()
                    for role in fw.roles.values() for proc in role.processes if proc.preload}
        await self.provider(self.settings.default_provider).warm(preloads)
        for cluster in self.store.list_clusters():
            self.kick(cluster.id)
        self._periodic = asyncio.create_task(self._periodic_loop(), name="disco-periodic")

    async def close(self) -> None:
        """Stop driving; clusters keep running and are adopted by the next start."""
        tasks = [t for t in [self._periodic, *self._tasks.values()] if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._http.aclose()
        for provider in self._providers.values():
            provider.close()

    def kick(self, cluster_id: str, *, interrupt: bool = False) -> None:
        """Make sure a driver works on this cluster now; `interrupt` abandons the step under
        way (a delete need not wait for a start-up to finish or time out). Thread-safe: the
        API's synchronous handlers run in worker threads."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self._loop and self._loop is not None:
            self._loop.call_soon_threadsafe(lambda: self.kick(cluster_id, interrupt=interrupt))
            return
        self._wake.setdefault(cluster_id, asyncio.Event()).set()
        task = self._tasks.get(cluster_id)
        if interrupt and task is not None and not task.done():
            task.cancel()
            task = None
        if task is None or task.done():
            self._tasks[cluster_id] = asyncio.create_task(self._drive(cluster_id), name=f"drive-{cluster_id}")

    async def sweep_orphans(self) -> None:
        """Remove what providers hold for clusters the store does not know as live."""
        live = {c.id for c in self.store.list_clusters()}
        for name in {c.provider for c in self.store.list_clusters()} | {self.settings.default_provider}:
            provider = self.provider(name)
            for cluster_id in provider.cluster_ids() - live:
                log.warning("removing orphaned cluster %s from provider %s", cluster_id, name)
                await provider.destroy_cluster(cluster_id)

    # -- driver ---------------------------------------------------------------------

    async def _drive(self, cluster_id: str) -> None:
        wake = self._wake.setdefault(cluster_id, asyncio.Event())
        while True:
            wake.clear()
            cluster = self.store.get_cluster(cluster_id)
            try:
                if cluster.target == "deleted":
                    await self._teardown(cluster)
                    return
                if cluster.target == "suspended":
                    await self._suspend(cluster)
                elif cluster.state != "failed" and self._needs_work(cluster):
                    await self._converge(cluster)
            except StepFailed as exc:
                await self._fail(cluster_id, str(exc))
            except DiscoError as exc:
                await self._fail(cluster_id, exc.message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not leave the cluster half-made and silent
                log.exception("driving cluster %s", cluster_id)
                await self._fail(cluster_id, f"internal error: {type(exc).__name__}: {exc}")
            await wake.wait()

    def _needs_work(self, cluster: Cluster) -> bool:
        if cluster.state != "ready":
            return True
        return any(n.target != "running" or not n.host for n in cluster.nodes)

    def _event(self, cluster_id: str, step: str, message: str, *, duration_s: float | None = None,
               level: str = "info") -> None:
        self.store.add_event(cluster_id, step, message, duration_s=duration_s, level=level)
        log.info("cluster %s: %s: %s", cluster_id, step, message)
        self.notify()

    def notify(self) -> None:
        """Wake everyone following events (server-sent streams) at once instead of at their
        next poll."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for_change(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass

    def _set_state(self, cluster_id: str, state: str, reason: str = "") -> Cluster:
        return self.store.update_cluster(cluster_id, state=state, status_reason=reason)

    async def _fail(self, cluster_id: str, reason: str) -> None:
        cluster = self.store.get_cluster(cluster_id)
        self._event(cluster_id, "failed", reason, level="error")
        self._set_state(cluster_id, "failed", reason)
        # A retry prepares every node again (a cloud's failed nodes are made anew).
        self._facts.pop(cluster_id, None)
        # A failed cluster keeps its files (logs) for diagnosis but no running process.
        try:
            await self._stop_processes(cluster)
        except DiscoError as exc:  # e.g. the host that failed cannot be reached to stop either
            self._event(cluster_id, "failed", f"stopping processes: {exc.message}", level="warning")

    # -- converge toward running --------------------------------------------------------

    async def _converge(self, cluster: Cluster) -> None:
        provider = self.provider(cluster.provider)
        ref = ClusterRef(cluster.id, cluster.slot or 0)
        leaving = [n for n in cluster.nodes if n.target != "running"]
        if leaving:
            await self._remove_nodes(cluster, leaving)
            cluster = self.store.get_cluster(cluster.id)

        # What the nodes are (options, ports, what they install): the same for both steps below.
        request = await self._request(cluster, provider)
        missing = [n for n in cluster.nodes if not n.host]
        if missing or cluster.state in ("pending", "provisioning"):
            cluster = self._set_state(cluster.id, "provisioning")
            started = time.monotonic()
            try:
                addresses = await asyncio.wait_for(provider.create_nodes(ref, request.nodes, request),
                                                   provider.provision_timeout_s)
            except asyncio.TimeoutError:
                raise StepFailed(f"provisioning nodes took longer than {provider.provision_timeout_s:g} s") from None
            for address in addresses:
                self.store.update_node(cluster.id, address.name, host=address.host)
            self._event(cluster.id, "provisioning",
                        f"{len(addresses)} node(s) on provider {provider.name}: "
                        + ", ".join(f"{a.name}={a.host}" for a in addresses),
                        duration_s=time.monotonic() - started)
            cluster = self.store.get_cluster(cluster.id)

        cluster = self._set_state(cluster.id, "installing")
        addresses = await provider.create_nodes(ref, request.nodes, request)
        by_name = {a.name: a for a in addresses}
        await self._prepare_nodes(cluster, provider, ref, addresses, request.needs)
        for name in cluster.spec.get("resolved_frameworks", []):
            await self._install_framework(cluster, provider, ref, self.catalog.get(name), by_name)
        await provider.nodes_ready(ref, addresses, lambda text: self._event(cluster.id, "ready", text))

        outputs = plan.outputs(cluster, self.catalog)
        outputs.update(provider.outputs(cluster.id))
        if provider.remote:  # each host serves its deployment and process logs (behind the token)
            outputs["node_logs"] = {n.name: f"http://{n.host}:{NODE_LOG_PORT}/" for n in plan.live_nodes(cluster)}
        total = age_seconds(cluster.created_at)
        fields = {"state": "ready", "status_reason": "", "outputs": outputs, "last_active_at": utcnow()}
        if cluster.ready_at is None:
            fields["ready_at"] = utcnow()
        self.store.update_cluster(cluster.id, **fields)
        workers = sum(1 for n in plan.live_nodes(cluster) if n.role == "worker")
        self._event(cluster.id, "ready", f"cluster ready: 1 master, {workers} worker(s)"
                    + (f" ({total:.1f} s since the request)" if cluster.ready_at is None else ""))

    async def _request(self, cluster: Cluster, provider: Provider) -> PlanRequest:
        """What the provider is told when it may make nodes: the cluster's options, ports and
        what every node must install (a cloud puts that into its nodes' boot scripts)."""
        token = self._credentials(cluster).get("token", "")
        if provider.remote:
            await asyncio.to_thread(plan.build_shipped_software, cluster, self.catalog)
        needs = dataclasses.replace(plan.node_needs(cluster, self.catalog, require_checksums=provider.remote),
                                    log_token_sha256=hashlib.sha256(token.encode()).hexdigest() if token else "")
        return provider_request(cluster, self.catalog, needs)

    async def _prepare_nodes(self, cluster: Cluster, provider: Provider, ref: ClusterRef,
                             addresses: list[NodeAddress], needs: NodeNeeds) -> None:
        """Install what the nodes need. Nodes prepared since this service manager started are
        skipped (scaling prepares only the new ones); after a restart every node is prepared
        again, which changes nothing on a node that has it all and restarts its supervisor if
        the host rebooted."""
        known = self._facts.setdefault(cluster.id, {})
        todo = [a for a in addresses if a.name not in known]
        if not todo:
            return
        started = time.monotonic()
        facts = await provider.prepare_nodes(ref, todo, needs,
                                             lambda text: self._event(cluster.id, "install", text))
        known.update(facts)
        if facts:  # nothing to say where the nodes are this machine
            self._event(cluster.id, "install", f"software ready on {len(facts)} node(s)",
                        duration_s=time.monotonic() - started)

    def _node_facts(self, cluster_id: str, node: str) -> NodeFacts | None:
        return self._facts.get(cluster_id, {}).get(node)

    async def _asked_facts(self, cluster: Cluster, provider: Provider, ref: ClusterRef,
                           node: str) -> NodeFacts | None:
        """A node's facts also when this service manager has not prepared it (a restart)."""
        if self._node_facts(cluster.id, node) is None and provider.remote:
            facts = await provider.node_facts(ref, node)
            if facts is not None:
                self._facts.setdefault(cluster.id, {})[node] = facts
        return self._node_facts(cluster.id, node)

    async def _install_framework(self, cluster: Cluster, provider: Provider, ref: ClusterRef,
                                 fw: FrameworkDef, addresses: dict[str, NodeAddress]) -> None:
        started = time.monotonic()
        nodes = plan.live_nodes(cluster)
        # Master first, then all workers at once.
        for group in ([n for n in nodes if n.role == "master"], [n for n in nodes if n.role == "worker"]):
            await asyncio.gather(*(self._start_node_processes(cluster, provider, ref, fw, n, addresses[n.name])
                                   for n in group))
        master = plan.master_node(cluster)
        await self._wait_ready(cluster, provider, ref, fw, nodes, addresses[master.name])
        self._event(cluster.id, fw.name, f"{fw.name} {self.catalog.version(fw.name)} ready",
                    duration_s=time.monotonic() - started)

    async def _start_node_processes(self, cluster: Cluster, provider: Provider, ref: ClusterRef,
                                    fw: FrameworkDef, node: Node, address: NodeAddress) -> None:
        sealed = self.box.open(cluster.secrets_enc) or {}
        facts = self._node_facts(cluster.id, node.name)
        # The node's size, for frameworks that derive settings from it: from its facts (a host,
        # a flavor), else what the provider says (the local provider: a share of this machine).
        capacity = (facts.capacity if facts else None) or provider.node_capacity(
            ref, node.name, len(plan.live_nodes(cluster)))
        for launch, wait_for in plan.launches(cluster, self.catalog, fw, node, address.workdir,
                                              sealed.get("properties", {}), sealed.get("credentials", {}),
                                              facts, capacity):
            status = await provider.process_status(ref, node.name, launch.name)
            if status.state is ProcessState.RUNNING:
                continue
            if wait_for:
                # A worker waits for the master's processes, which are all started by now: if
                # one of them died, waiting longer cannot help.
                master_alive = None if node.role == "master" else (
                    lambda: self._raise_if_exited(cluster, provider, ref, fw, [plan.master_node(cluster)]))
                await self._wait_tcp(wait_for, fw.readiness.timeout_s, master_alive)
            await provider.start_process(ref, address, launch)

    async def _wait_tcp(self, address: str, timeout_s: float,
                        still_worth_it: Callable[[], Awaitable[None]] | None = None) -> None:
        """Until `address` accepts connections; `still_worth_it` raises when it never will."""
        host, _, port = address.rpartition(":")
        deadline = time.monotonic() + timeout_s
        next_check = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2.0)
                writer.close()
                return
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.05)
            if still_worth_it is not None and time.monotonic() > next_check:
                await still_worth_it()
                next_check = time.monotonic() + 1.0
        raise StepFailed(f"{address} did not accept connections within {timeout_s:g} s")

    def _credentials(self, cluster: Cluster) -> dict[str, str]:
        """The cluster's credentials, decrypted for one use (checks send its token)."""
        return (self.box.open(cluster.secrets_enc) or {}).get("credentials", {})

    async def _wait_ready(self, cluster: Cluster, provider: Provider, ref: ClusterRef,
                          fw: FrameworkDef, nodes: list[Node], master: NodeAddress) -> None:
        check = fw.readiness
        # Only a check command runs on a node (the master), so only it names the node's paths.
        ctx = plan.context(cluster, self.catalog, fw, None, credentials=self._credentials(cluster),
                           facts=self._node_facts(cluster.id, master.name))
        deadline = time.monotonic() + check.timeout_s
        detail = "no answer yet"
        last_reported = ""
        while True:
            await self._raise_if_exited(cluster, provider, ref, fw, nodes)
            if check.kind == "none":
                return
            if check.kind == "command":
                code, output = await provider.run_command(ref, master, render(check.command, ctx),
                                                          {}, check.timeout_s)
                if code == 0:
                    return
                raise StepFailed(f"{fw.name}: check {' '.join(check.command or [])} failed "
                                 f"(exit {code}): {output.strip()[-300:]}")
            checker = check_http if check.kind == "http" else check_http_json
            result = await checker(self._http, check, ctx)
            detail = result.detail
            if result.ok:
                for url in ([check.url] if check.url else list(check.urls.values())):
                    self._check_answered_by_cluster(cluster, provider, render(url, ctx))
                return
            if detail != last_reported:
                self._event(cluster.id, fw.name, f"waiting: {detail}")
                last_reported = detail
            if time.monotonic() > deadline:
                raise StepFailed(f"{fw.name} not ready after {check.timeout_s:g} s ({detail})")
            await asyncio.sleep(check.interval_s)

    @staticmethod
    def _check_answered_by_cluster(cluster: Cluster, provider: Provider, url: str) -> None:
        """A readiness answer counts only if this cluster's own process gave it: a leftover of
        another cluster on the same address must never make this one ready."""
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if parts.hostname and provider.owns_listener(cluster.id, parts.hostname, port) is False:
            raise StepFailed(f"{parts.hostname}:{port} is held by a process that is not this "
                             "cluster's; the readiness answer is not trusted")

    async def _raise_if_exited(self, cluster: Cluster, provider: Provider, ref: ClusterRef,
                               fw: FrameworkDef, nodes: list[Node]) -> None:
        for node in nodes:
            for name in plan.process_names(fw, node.role, plan.masters_of(cluster)):
                status = await provider.process_status(ref, node.name, name)
                if status.state is not ProcessState.RUNNING:
                    from disco.cluster.log_tail import describe_exit
                    log = provider.read_log(cluster.id, node.name, name, 0, 1 << 22)
                    raise StepFailed(
                        f"{name} on {node.name} ({node.host}) exited with code {status.exit_code} "
                        f"while starting; {describe_exit(log)}")

    # -- scaling, suspend, teardown -------------------------------------------------------

    async def _remove_nodes(self, cluster: Cluster, nodes: list[Node]) -> None:
        started = time.monotonic()
        provider = self.provider(cluster.provider)
        ref = ClusterRef(cluster.id, cluster.slot or 0)
        if cluster.state == "ready":
            for name in cluster.spec.get("resolved_frameworks", []):
                fw = self.catalog.get(name)
                if fw.scale_down:
                    for node in nodes:
                        await self._retire(cluster, fw, node)
        await asyncio.gather(*(provider.stop_node(ref, n.name, self.settings.stop_grace_s) for n in nodes))
        for note in await provider.destroy_nodes(ref, [n.name for n in nodes]) or []:
            self._event(cluster.id, "scale", note, level="warning")
        for node in nodes:
            self.store.remove_node(cluster.id, node.name)
            self._facts.get(cluster.id, {}).pop(node.name, None)
        self._event(cluster.id, "scale", f"removed {len(nodes)} worker(s): "
                    + ", ".join(n.name for n in nodes), duration_s=time.monotonic() - started)

    async def _retire(self, cluster: Cluster, fw: FrameworkDef, node: Node) -> None:
        call = fw.scale_down
        assert call is not None
        if isinstance(call, CommandCall):
            return await self._retire_by_command(cluster, fw, node, call)
        ctx = plan.context(cluster, self.catalog, fw, node, credentials=self._credentials(cluster))
        url = render(call.url, ctx)
        try:
            response = await self._http.request(call.method, url, json=render(call.json_body, ctx),
                                                headers=render(call.headers, ctx),
                                                timeout=call.timeout_s)
            response.raise_for_status()
            self._event(cluster.id, "scale", f"{fw.name}: retired {node.name} gracefully")
        except httpx.HTTPError as exc:
            self._event(cluster.id, "scale", f"{fw.name}: graceful retirement of {node.name} failed "
                        f"({type(exc).__name__}); stopping it anyway", level="warning")

    async def _retire_by_command(self, cluster: Cluster, fw: FrameworkDef, node: Node,
                                 call: CommandCall) -> None:
        """The command runs on the master's node with the framework's environment there; the
        leaving worker is `node` in its template."""
        provider = self.provider(cluster.provider)
        ref = ClusterRef(cluster.id, cluster.slot or 0)
        master = plan.master_node(cluster)
        (address,) = await provider.create_nodes(ref, [NodeRef(master.name, master.role, master.index)])
        credentials = self._credentials(cluster)
        facts = await self._asked_facts(cluster, provider, ref, master.name)
        env = render(fw.env, plan.context(cluster, self.catalog, fw, master, address.workdir,
                                          credentials=credentials, facts=facts))
        argv = render(call.command, plan.context(cluster, self.catalog, fw, node, credentials=credentials,
                                                 facts=facts))
        code, output = await provider.run_command(ref, address, argv, env, call.timeout_s)
        if code == 0:
            self._event(cluster.id, "scale", f"{fw.name}: retired {node.name} gracefully")
        else:
            self._event(cluster.id, "scale", f"{fw.name}: graceful retirement of {node.name} failed "
                        f"(exit {code}: {output.strip()[-300:]}); stopping it anyway", level="warning")

    async def _stop_processes(self, cluster: Cluster) -> None:
        """Workers first, then the master: frameworks shut down cleanly that way."""
        provider = self.provider(cluster.provider)
        ref = ClusterRef(cluster.id, cluster.slot or 0)
        workers = [n for n in cluster.nodes if n.role == "worker"]
        await asyncio.gather(*(provider.stop_node(ref, n.name, self.settings.stop_grace_s) for n in workers))
        for node in cluster.nodes:
            if node.role == "master":
                await provider.stop_node(ref, node.name, self.settings.stop_grace_s)

    async def _suspend(self, cluster: Cluster) -> None:
        if cluster.state == "suspended":
            return
        started = time.monotonic()
        await self._stop_processes(cluster)
        await self.provider(cluster.provider).suspend_nodes(ClusterRef(cluster.id, cluster.slot or 0))
        self._set_state(cluster.id, "suspended")
        self._event(cluster.id, "suspend", "all processes stopped; nodes kept",
                    duration_s=time.monotonic() - started)

    async def _teardown(self, cluster: Cluster) -> None:
        started = time.monotonic()
        if cluster.state != "deleting":
            self._set_state(cluster.id, "deleting", cluster.status_reason)
            self._event(cluster.id, "deleting", "stopping workers, then the master")
        try:
            await self._stop_processes(cluster)
        except DiscoError as exc:  # destroy below still removes what it can reach, and says what not
            self._event(cluster.id, "deleting", f"stopping processes: {exc.message}", level="warning")
        notes = await self.provider(cluster.provider).destroy_cluster(cluster.id) or []
        for note in notes:
            self._event(cluster.id, "deleting", note, level="warning")
        self._facts.pop(cluster.id, None)
        self.store.update_cluster(cluster.id, state="deleted", slot=None, deleted_at=utcnow(), outputs={})
        self._event(cluster.id, "deleted", "all processes stopped and files removed" if not notes else
                    f"deleted; {len(notes)} host(s) could not be reached and wait, quarantined, for an admin's check",
                    duration_s=time.monotonic() - started, level="info" if not notes else "warning")

    # -- periodic health, idle and age ------------------------------------------------------

    async def _periodic_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reconcile_interval_s)
            for cluster in self.store.list_clusters():
                try:
                    await self._periodic_check(cluster)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("periodic check of cluster %s", cluster.id)

    async def _periodic_check(self, cluster: Cluster) -> None:
        task = self._tasks.get(cluster.id)
        if cluster.target == "deleted" and cluster.state != "deleting":
            self.kick(cluster.id, interrupt=True)  # asked for by another process sharing the store
        elif task is None or task.done() or cluster.target != "running":
            self.kick(cluster.id)
        if cluster.state != "ready" or cluster.target != "running":
            return
        spec = cluster.spec
        if spec.get("max_age_s") and age_seconds(cluster.created_at) > spec["max_age_s"]:
            return self._expire(cluster, f"max age of {spec['max_age_s']} s reached")
        if await self._is_busy(cluster):
            self.store.update_cluster(cluster.id, last_active_at=utcnow())
        elif spec.get("idle_timeout_s") and age_seconds(cluster.last_active_at) > spec["idle_timeout_s"]:
            return self._expire(cluster, f"idle for more than {spec['idle_timeout_s']} s")
        await self._check_processes(cluster)

    def _expire(self, cluster: Cluster, reason: str) -> None:
        self._event(cluster.id, "expire", f"deleting: {reason}")
        self.store.update_cluster(cluster.id, target="deleted", status_reason=reason)
        self.kick(cluster.id)

    async def _is_busy(self, cluster: Cluster) -> bool:
        for name in cluster.spec.get("resolved_frameworks", []):
            fw = self.catalog.get(name)
            if fw.activity is None:
                continue
            base = plan.context(cluster, self.catalog, fw, None, credentials=self._credentials(cluster))
            count = plan.masters_of(cluster) if fw.activity.per_master else 1
            for index in range(count):
                ctx = {**base, "instance": {"index": index, "count": count}}
                try:
                    data = await http_json(self._http, render(fw.activity.url, ctx),
                                           render(fw.activity.headers, ctx))
                except (httpx.HTTPError, ValueError):
                    continue
                if evaluate(fw.activity.busy_when, {**ctx, "data": data}):
                    return True
        return False

    async def _check_processes(self, cluster: Cluster) -> None:
        """Supervision: a process that died on a ready cluster is restarted a few times."""
        provider = self.provider(cluster.provider)
        ref = ClusterRef(cluster.id, cluster.slot or 0)
        for node in plan.live_nodes(cluster):
            for name in cluster.spec.get("resolved_frameworks", []):
                for process in plan.process_names(self.catalog.get(name), node.role,
                                                  plan.masters_of(cluster)):
                    status = await provider.process_status(ref, node.name, process)
                    if status.state is ProcessState.RUNNING:
                        continue
                    key = (cluster.id, node.name, process)
                    self._restarts[key] = self._restarts.get(key, 0) + 1
                    if self._restarts[key] > MAX_RESTARTS:
                        return await self._fail(cluster.id, f"{process} on {node.name} exited "
                                                f"{MAX_RESTARTS} times after start-up; giving up")
                    self._event(cluster.id, "health", f"{process} on {node.name} exited "
                                f"(code {status.exit_code}); restarting", level="warning")
                    self._set_state(cluster.id, "installing", f"restarting {process} on {node.name}")
                    self.kick(cluster.id)
                    return
