"""The Celery side of benchmarks/farm_vs_celery.py: one tiny task (the sum of a line of numbers),
Redis on this machine as broker and result backend, acks_late (a task is acknowledged after it
ran, as a farm instance is settled only by its report). The Redis database comes from
FARM_BENCH_REDIS (a URL), so the worker and the producer agree on it."""

from __future__ import annotations

import os

from celery import Celery

REDIS_URL = os.environ.get("FARM_BENCH_REDIS", "redis://127.0.0.1:6379/11")

app = Celery("farm_bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_acks_late=True,
    # A worker thread holds this many tasks at a time (1 by default, as a farm client asking for
    # one unit; farm_vs_celery.py --celery-prefetch gives it the farm client's ask instead).
    worker_prefetch_multiplier=int(os.environ.get("FARM_BENCH_PREFETCH", "1")),
    task_serializer="json", result_serializer="json", accept_content=["json"],
    broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
)


@app.task(name="farm_bench.line_sum")
def line_sum(line: str) -> str:
    return str(sum(int(x) for x in line.split()))
