"""/api/v1/recommendations: the framework questionnaire and the recommendation for its answers
(docs/recommend.md). The engine is pure; this module tells it what the service manager knows:
its catalogue, its worker limit, which providers this tenant cannot use now, the SSH pool's
free hosts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from disco.cluster.api.rest import AUTHENTICATED, SHAPED, integral, json_body, json_request, manager, tenant
from disco.cluster.api.schemas import error_responses
from disco.cluster.hosts import FREE
from disco.recommend.engine import Blocker, Context, recommend
from disco.recommend.models import Questionnaire, Recommendation
from disco.recommend.questions import Answers, parse_answers, questionnaire
from disco.recommend.rules import builtin_rules

router = APIRouter(prefix="/api/v1/recommendations", tags=["recommendations"])


def context_for(request: Request, who: str, providers: list[str]) -> Context:
    mgr = manager(request)
    blocked: dict[str, Blocker] = {}
    for name in providers:
        # As ClusterService.validate: a provider that cannot keep tenants apart serves one.
        if who != mgr.settings.sole_tenant and not mgr.lifecycle.provider(name).isolates_tenants:
            blocked[name] = Blocker("isolation_unavailable", f"provider {name} cannot keep tenants apart here "
                                    f"(the service manager does not run as root), so it serves tenant "
                                    f"{mgr.settings.sole_tenant!r} only")
    free = None
    if "ssh" in providers:
        free = sum(1 for host in mgr.hosts.list() if host.state == FREE and host.host_key)
    return Context(mgr.catalog, mgr.settings.max_workers, blocked, free)


@router.get("/questions", operation_id="getRecommendationQuestions", response_model=Questionnaire, **SHAPED,
            openapi_extra=AUTHENTICATED, responses=error_responses(401, 429))
def questions(_: str = Depends(tenant)) -> dict[str, Any]:
    return questionnaire(builtin_rules())


@router.post("", operation_id="recommend", response_model=Recommendation, **SHAPED,
             openapi_extra={**AUTHENTICATED, **json_request(Answers, "The questionnaire's answers; only `work` "
                                                            "is required, the others have defaults.")},
             responses=error_responses(401, 422, 429, s422="Answers that are not the questionnaire's: an unknown "
                                       "key, a wrong type, a choice or number out of range (`invalid_answers`, "
                                       "`invalid_json`)."))
async def recommendation(request: Request, who: str = Depends(tenant)) -> Recommendation:
    answers = parse_answers(integral(await json_body(request), ("max_nodes",)))
    providers = list(dict.fromkeys(answers.providers))  # type: ignore[attr-defined]
    return recommend(answers, builtin_rules(), context_for(request, who, providers))
