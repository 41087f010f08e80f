"""The questionnaire's answers: a strict pydantic model made from the rules file's questions
(choices, defaults and bounds are data), parsed with the API's error envelope."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, create_model

from disco.errors import InvalidSpec
from disco.recommend.rules import Rules, builtin_rules

# A data size: a number (at most 6 digits, 3 decimals: nothing that overflows) and MB, GB or TB.
SIZE_PATTERN = r"^[0-9]{1,6}(\.[0-9]{1,3})? ?[MGTmgt][Bb]$"
_UNIT_GB = {"m": 1 / 1024, "g": 1.0, "t": 1024.0}


def size_gb(text: str) -> float:
    """`50GB` -> 50.0, `500MB` -> 0.49, `2TB` -> 2048.0 (binary units, as memory is counted)."""
    match = re.fullmatch(r"([0-9.]+) ?([MGTmgt])[Bb]", text)
    if not match:
        raise ValueError(f"not a data size: {text!r}")
    return float(match.group(1)) * _UNIT_GB[match.group(2).lower()]


def _choices(values: list[str]) -> Any:
    return Literal[tuple(values)]  # type: ignore[valid-type]


def answers_model(rules: Rules) -> type[BaseModel]:
    """`RecommendationAnswers`: one field per question, unknown keys refused. Lists may repeat a
    choice (counted once), so the published schema and the server agree without uniqueItems."""
    q = rules.questions

    def described(qid: str) -> dict[str, Any]:
        return {"description": f"{q[qid].text} {q[qid].help}".strip()}

    work = q["work"]
    providers = q["providers"]
    fields: dict[str, Any] = {
        "data_size": (StrictStr, Field(default=q["data_size"].default, pattern=SIZE_PATTERN,
                                       examples=[c.value for c in q["data_size"].choices], **described("data_size"))),
        "work": (list[_choices(work.values)], Field(min_length=1, max_length=4 * len(work.values),  # type: ignore[misc]
                                                    **described("work"))),
        "language": (_choices(q["language"].values), Field(default=q["language"].default, **described("language"))),
        "latency": (_choices(q["latency"].values), Field(default=q["latency"].default, **described("latency"))),
        "max_nodes": (StrictInt, Field(default=q["max_nodes"].default, ge=q["max_nodes"].min, le=q["max_nodes"].max,
                                       **described("max_nodes"))),
        "providers": (list[_choices(providers.values)], Field(  # type: ignore[misc]
            default=list(providers.default or []), min_length=1, max_length=4 * len(providers.values),
            **described("providers"))),
    }
    return create_model("RecommendationAnswers", __config__=ConfigDict(extra="forbid", frozen=True), **fields)


Answers = answers_model(builtin_rules())


def parse_answers(data: Any, model: type[BaseModel] = Answers) -> Any:
    """The answers, or 422 `invalid_answers` listing each issue as the API's other errors do."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        where = "; ".join(f"{'.'.join(str(p) for p in i['loc']) or 'answers'}: {i['msg']}" for i in issues)
        raise InvalidSpec(f"invalid answers: {where}", code="invalid_answers", details=issues) from None


def questionnaire(rules: Rules) -> dict[str, Any]:
    """The questions as the API publishes them (and a form would ask them), in the file's order."""
    questions = []
    for qid, question in rules.questions.items():
        view: dict[str, Any] = {"id": qid, "text": question.text, "help": question.help, "type": question.type,
                                "choices": [c.model_dump(exclude_none=True) for c in question.choices]}
        if question.default is not None:
            view["default"] = question.default
        if question.min is not None:
            view["min"] = question.min
        if question.max is not None:
            view["max"] = question.max
        if question.type == "size":
            view["pattern"] = SIZE_PATTERN
        view["required"] = question.default is None
        questions.append(view)
    return {"questions": questions}
