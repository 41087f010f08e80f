"""A node's ResultSender against a real master process that was killed and started again.

A task that ends just after its master restarted, before the node's next poll learns that its
session is gone, is reported with that old session: the master answers 410. That report is
settled (the master has written the task off), and the sender goes on reporting the tasks that
end later. (It once died there, and every later task on the node waited for its report
forever, listed as running, with no worker.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from runtime_fixtures import Cluster

from disco.mapreduce.node.client import MasterClient
from disco.mapreduce.node.events import EventSender
from disco.mapreduce.node.reports import ResultSender


def _report(taskid: int) -> dict[str, object]:
    return {"job": "NoSuchJob@1:2:3", "taskid": taskid, "attempt": 1, "status": "done",
            "message": "", "outputs": [], "failed_inputs": [], "seconds": 0.1}


def test_report_with_a_session_the_restarted_master_never_knew(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "c", nodes=0)
    host = f"127.{c.net}.0.2"

    async def run() -> tuple[bool, bool]:
        client = MasterClient(c.url, host, c.token)
        events = EventSender(client)
        sender = ResultSender(client, events)
        reporter = asyncio.create_task(sender.run())
        try:
            await client.register(1, c.port)
            # The master dies and comes back on its data folder: the node's session is gone.
            assert c.master is not None
            c.master.kill9()
            await asyncio.to_thread(c.start_master, "master-again.log")
            events.add("NoSuchJob@1:2:3", "MSG: a task's last words")
            await asyncio.wait_for(sender.report(_report(1), lambda: False), 10)
            alive_after_410 = not reporter.done()
            # The node registers again; the next task's end goes through as ever.
            await client.register(1, c.port)
            await asyncio.wait_for(sender.report(_report(2), lambda: False), 10)
            return alive_after_410, not reporter.done()
        finally:
            reporter.cancel()
            await client.close()

    try:
        c.start_master()
        alive_after_410, alive_at_end = asyncio.run(run())
    finally:
        c.stop()
    assert alive_after_410
    assert alive_at_end
