"""/ui/recommend: the framework questionnaire as a form and its recommendation (docs/recommend.md).

The questions are the engine's own (`questionnaire()`, as GET /api/v1/recommendations/questions
serves them), the answers are checked by the engine's answers model (`parse_answers`, as POST
/api/v1/recommendations does) and the recommendation comes from the same `recommend()` with the
same Context. Recommending changes nothing, so the form is a GET: the answers are in the query
string, and a recommendation can be bookmarked or shared (no secret is ever in it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from disco.cluster.api.recommendations import context_for
from disco.cluster.ui import csrf, pages
from disco.cluster.ui.create_form import GENERAL
from disco.cluster.ui.session import require
from disco.errors import DiscoError
from disco.recommend.engine import recommend
from disco.recommend.questions import parse_answers, questionnaire
from disco.recommend.rules import PROVIDERS, Rules, builtin_rules

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/recommend")
def recommend_page(request: Request) -> Response:
    """The questions; with answers in the query string, also their recommendation (or the
    errors next to their questions, with the answers' 422)."""
    session = require(request)
    rules = builtin_rules()
    questions = questionnaire(rules)["questions"]
    query = csrf.Form(list(request.query_params.multi_items()))
    if not query.pairs:  # a first visit: the questions with their defaults
        return _page(request, session, questions, _defaults(questions))
    values = _entered(query, questions)
    try:
        answers = parse_answers(_answers_body(query, questions))
        providers = list(dict.fromkeys(answers.providers))
        result = recommend(answers, rules, context_for(request, session.tenant, providers))
    except DiscoError as exc:
        errors = _errors(exc, {q["id"] for q in questions})
        return _page(request, session, questions, values, errors=errors, status=exc.status)
    return _page(request, session, questions, values, result=result.model_dump(),
                 command=_command(result.answers.model_dump()), labels=_labels(rules))


def _page(request: Request, session: Any, questions: list[dict[str, Any]], values: dict[str, Any], *,
          errors: dict[str, str] | None = None, result: dict[str, Any] | None = None,
          command: str = "", labels: dict[str, dict[str, str]] | None = None, status: int = 200) -> Response:
    errors = errors or {}
    return pages.render(request, "recommend.html", session, status=status, questions=questions, values=values,
                        errors=errors, general=errors.get(GENERAL), result=result, command=command,
                        labels=labels or {})


def _labels(rules: Rules) -> dict[str, dict[str, str]]:
    """Names as people read them: frameworks, providers and kinds of work (for alternatives)."""
    return {"framework": {name: traits.label for name, traits in rules.frameworks.items()},
            "provider": {name: rules.providers.rule(name).label for name in PROVIDERS},
            "work": {c.value: c.label for c in rules.questions["work"].choices}}


def _defaults(questions: list[dict[str, Any]]) -> dict[str, Any]:
    """What the form shows before any answer: each question's default ([] or "" when none)."""
    return {q["id"]: (list(q.get("default") or []) if q["type"] == "multi" else str(q.get("default", "")))
            for q in questions}


def _entered(query: csrf.Form, questions: list[dict[str, Any]]) -> dict[str, Any]:
    """The answers as entered, to show the form again as it was."""
    return {q["id"]: query.getall(q["id"]) if q["type"] == "multi" else query.get(q["id"]) for q in questions}


def _answers_body(query: csrf.Form, questions: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON body POST /api/v1/recommendations would get: an empty text field is left out
    (its default applies, as in the API); a list is always sent once the form was submitted, so
    unticking every box is refused by the model ("at least 1 item") rather than silently taken
    as the default; a number that is a whole number goes as one, other text as it is (the model
    refuses it in its own words). Keys that are no question go too, and are refused as unknown."""
    known = {q["id"]: q for q in questions}
    body: dict[str, Any] = {}
    for key, value in query.pairs:
        question = known.get(key)
        if question is None:
            body[key] = value
        elif question["type"] == "multi":
            body.setdefault(key, []).append(value)
    for qid, question in known.items():
        if question["type"] == "multi":
            body.setdefault(qid, [])
            continue
        text = query.get(qid).strip()
        if text:
            body[qid] = csrf.as_int(text) if question["type"] == "int" else text
    return body


def _errors(exc: DiscoError, ids: set[str]) -> dict[str, str]:
    """Each issue next to its question (pydantic's location: `work.0` belongs to `work`)."""
    found: dict[str, list[str]] = {}
    details = exc.details if isinstance(exc.details, list) else []
    for item in details:
        loc = list(item.get("loc") or []) if isinstance(item, dict) else []
        key = str(loc[0]) if loc else GENERAL
        if key not in ids:
            message = f"{key}: {item.get('msg', '')}" if key != GENERAL else str(item.get("msg", ""))
            found.setdefault(GENERAL, []).append(message)
        else:
            found.setdefault(key, []).append(str(item.get("msg", "")))
    if not found:
        found[GENERAL] = [exc.message]
    return {key: "; ".join(dict.fromkeys(messages)) for key, messages in found.items()}


def _command(answers: dict[str, Any]) -> str:
    """`disco recommend` with the same answers, for the command line."""
    parts = ["disco recommend"]
    parts += [f"--work {w}" for w in dict.fromkeys(answers["work"])]
    parts += [f"--data-size {answers['data_size'].replace(' ', '')}", f"--language {answers['language']}",
              f"--latency {answers['latency']}", f"--max-nodes {answers['max_nodes']}"]
    parts += [f"--provider {p}" for p in dict.fromkeys(answers["providers"])]
    return " ".join(parts)
