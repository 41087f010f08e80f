"""What the recommendation API answers, as pydantic models (the routes' response models, so
/openapi.json says exactly what a client gets)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from disco.recommend.questions import Answers


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChoiceView(Shape):
    value: str
    label: str
    help: str | None = None


class QuestionView(Shape):
    id: Literal["data_size", "work", "language", "latency", "max_nodes", "providers"]
    text: str
    help: str
    type: Literal["size", "multi", "choice", "int"] = Field(
        description="size: a string such as 50GB (`pattern`; the choices are presets); multi: a list of choices; "
                    "choice: one of them; int: a whole number from `min` to `max`.")
    choices: list[ChoiceView]
    default: str | int | list[str] | None = None
    min: int | None = None
    max: int | None = None
    pattern: str | None = None
    required: bool


class Questionnaire(Shape):
    """`GET /api/v1/recommendations/questions`: the questions, from the rules file."""

    questions: list[QuestionView]


class RecommendedFramework(Shape):
    name: str
    label: str
    role: Literal["chosen", "dependency"] = Field(
        description="chosen: recommended for a kind of work (and in `spec`); dependency: added by the catalogue "
                    "for a chosen framework (the create adds it too).")
    for_work: list[str] = Field(description="The kinds of work it was chosen for (empty for a dependency).")
    required_by: list[str] = Field(description="A dependency: the chosen frameworks that need it.")
    reasons: list[str]


class Alternative(Shape):
    name: str
    kind: Literal["framework", "provider"]
    instead_of: str = Field(description="What was recommended in its place.")
    for_work: str | None = Field(description="The kind of work (frameworks); null for a provider.")
    why_not: str


class Need(Shape):
    code: str = Field(description="The error code a create would answer without it.")
    message: str


class SpecFramework(Shape):
    name: str


class RecommendedSpec(Shape):
    """A body for `POST /api/v1/clusters` (a ClusterSpec's fields): as it is when `needs` is empty,
    else once what `needs` lists is added (an OpenStack cluster's `cloud` and `provider_options`).
    Only the chosen frameworks: the create adds their dependencies."""

    provider: Literal["local", "ssh", "openstack"]
    workers: int = Field(ge=0)
    frameworks: list[SpecFramework]


class Recommendation(Shape):
    """`POST /api/v1/recommendations`: frameworks, size and provider, each with its reasons and the
    alternatives it beat; `spec` is a body for `POST /api/v1/clusters`, ready to send when
    `needs` is empty."""

    answers: Answers = Field(description="The answers, defaults filled in.")  # type: ignore[valid-type]
    frameworks: list[RecommendedFramework]
    workers: int
    workers_reasons: list[str]
    provider: str
    provider_reasons: list[str]
    alternatives: list[Alternative]
    warnings: list[str]
    needs: list[Need] = Field(description="What a create still needs that no answer gives (an OpenStack cloud and "
                                          "its options, free SSH hosts); empty: `spec` can be created as it is.")
    spec: RecommendedSpec
    form_url: str = Field(description="`/ui/clusters/new?` with `provider`, `workers` and one `frameworks` "
                                      "per chosen framework, URL-encoded: the create form, pre-filled.")
