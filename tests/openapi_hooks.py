"""Schemathesis hooks for tests/test_openapi.py (loaded by the schemathesis run through
SCHEMATHESIS_HOOKS): the fuzzer may create clusters, but only of the cheap test frameworks
(tests/frameworks), so that a run stays small on two cores. Everything the schema allows is
still generated for every other field; bodies that name a real framework (Spark's JVMs, Dask,
Map/Reduce) are left out of the run, not changed."""

from __future__ import annotations

from typing import Any

import schemathesis

CHEAP_FRAMEWORKS = {"webecho", "crashy", "neverready", "warmcrashy"}


def _names_only_cheap_frameworks(body: Any) -> bool:
    if not isinstance(body, dict) or not isinstance(body.get("frameworks"), list):
        return True
    for item in body["frameworks"]:
        name = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str) and name not in CHEAP_FRAMEWORKS:
            return False
    return True


@schemathesis.hook("filter_case")
def cheap_clusters_only(context: Any, case: Any) -> bool:
    if case.operation.method.upper() == "POST" and case.operation.path == "/api/v1/clusters":
        return _names_only_cheap_frameworks(case.body)
    return True


@schemathesis.hook("filter_case")
def no_endless_streams(context: Any, case: Any) -> bool:
    """`follow=true` streams last as long as the cluster; test_openapi.py reads one that ends."""
    return not (case.operation.path.endswith(("/events", "/{node}/{process}"))
                and str((case.query or {}).get("follow", "")).lower() in ("true", "1", "yes", "on"))
