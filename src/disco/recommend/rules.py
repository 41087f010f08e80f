"""The recommendation rules file (`frameworks/recommendations.yaml`) as typed data.

Loaded once and checked with pydantic: a mistake in the file stops the service manager at start
with a message naming the bad key, as a broken framework.yaml does, never a request later.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from disco.frameworks.catalog import BUILTIN_DIR

RULES_FILE = BUILTIN_DIR / "recommendations.yaml"
# The questions the engine reads, by id: their texts, choices and bounds are data, their meaning code.
QUESTION_IDS = ("data_size", "work", "language", "latency", "max_nodes", "providers")
PROVIDERS = ("local", "ssh", "openstack")
LATENCIES = ("interactive", "batch")
ANY_LANGUAGE = "any"


class RulesError(Exception):
    """recommendations.yaml is broken: a packaging bug, reported at start-up."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Choice(Strict):
    value: str = Field(min_length=1)
    label: str = Field(min_length=1)
    help: str | None = None


class Question(Strict):
    text: str
    help: str
    type: Literal["size", "multi", "choice", "int"]
    choices: list[Choice] = []
    default: str | int | list[str] | None = None
    min: int | None = None
    max: int | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "Question":
        values = [c.value for c in self.choices]
        if len(values) != len(set(values)):
            raise ValueError("a choice's value is listed twice")
        if self.type in ("multi", "choice") and not values:
            raise ValueError(f"a {self.type} question needs choices")
        if self.type == "choice" and self.default not in values:
            raise ValueError(f"default {self.default!r} is not one of the choices")
        if self.type == "multi" and self.default is not None and (
                not isinstance(self.default, list) or not set(self.default) <= set(values)):
            raise ValueError(f"default {self.default!r} must be a list of the choices")
        if self.type == "int" and not (isinstance(self.default, int) and self.min is not None
                                       and self.max is not None and self.min <= self.default <= self.max):
            raise ValueError("an int question needs min <= default <= max")
        return self

    @property
    def values(self) -> list[str]:
        return [c.value for c in self.choices]


class FrameworkTraits(Strict):
    label: str
    languages: list[str] = Field(min_length=1)
    providers: list[Literal["local", "ssh", "openstack"]] = list(PROVIDERS)
    providers_why: str | None = None


class Candidate(Strict):
    framework: str
    why: str
    why_not: str


class WorkRule(Strict):
    candidates: list[Candidate] = Field(min_length=1)
    warning: str | None = None
    engines: list[str] = []
    engines_why: str | None = None


class Sizing(Strict):
    gb_per_worker: float = Field(gt=0)
    why: str


class SizingRules(Strict):
    min_workers: int = Field(ge=0)
    interactive: Sizing
    batch: Sizing


class Need(Strict):
    code: str
    message: str


class ProviderRule(Strict):
    label: str
    why: str
    max_workers: int | None = Field(default=None, ge=0)
    max_workers_why: str | None = None
    large_why: str | None = None
    needs: list[Need] = []


class ProviderRules(Strict):
    small_up_to_gb: float = Field(ge=0)
    small_order: list[Literal["local", "ssh", "openstack"]]
    large_order: list[Literal["local", "ssh", "openstack"]]
    local: ProviderRule
    ssh: ProviderRule
    openstack: ProviderRule

    def rule(self, name: str) -> ProviderRule:
        rule: ProviderRule = getattr(self, name)
        return rule


class Rules(Strict):
    questions: dict[str, Question]
    frameworks: dict[str, FrameworkTraits]
    work: dict[str, WorkRule]
    latency: dict[Literal["interactive", "batch"], dict[str, str]]
    sizing: SizingRules
    providers: ProviderRules

    @model_validator(mode="after")
    def _cross_checked(self) -> "Rules":
        """What one section says about another's names; each error names the key."""
        if set(self.questions) != set(QUESTION_IDS):
            raise ValueError(f"questions must be exactly {', '.join(QUESTION_IDS)}")
        q = self.questions
        expected = {"data_size": "size", "work": "multi", "language": "choice", "latency": "choice",
                    "max_nodes": "int", "providers": "multi"}
        for qid, kind in expected.items():
            if q[qid].type != kind:
                raise ValueError(f"questions.{qid}.type must be {kind}")
        if set(q["work"].values) != set(self.work):
            raise ValueError("work: one rule per choice of questions.work, and no other")
        if set(q["latency"].values) != set(LATENCIES):
            raise ValueError(f"questions.latency.choices must be {', '.join(LATENCIES)}")
        if not set(q["providers"].values) <= set(PROVIDERS):
            raise ValueError(f"questions.providers.choices must be among {', '.join(PROVIDERS)}")
        languages = set(q["language"].values) - {ANY_LANGUAGE}
        for name, traits in self.frameworks.items():
            unknown = set(traits.languages) - languages
            if unknown:
                raise ValueError(f"frameworks.{name}.languages: {', '.join(sorted(unknown))} is not a "
                                 "choice of questions.language")
        for kind, rule in self.work.items():
            for i, candidate in enumerate(rule.candidates):
                if candidate.framework not in self.frameworks:
                    raise ValueError(f"work.{kind}.candidates.{i}.framework: {candidate.framework!r} "
                                     "is not described under frameworks")
            for engine in rule.engines:
                if engine not in self.frameworks:
                    raise ValueError(f"work.{kind}.engines: {engine!r} is not described under frameworks")
            # Some candidate must run on every provider, so that every answer has one (the
            # language may be relaxed, with a warning; the provider never is).
            if not any(set(self.frameworks[c.framework].providers) == set(PROVIDERS) for c in rule.candidates):
                raise ValueError(f"work.{kind}.candidates: none runs on every provider")
        for latency, notes in self.latency.items():
            for name in notes:
                if name not in self.frameworks:
                    raise ValueError(f"latency.{latency}.{name} is not described under frameworks")
        return self


def parse_rules(text: str, where: str = "recommendations.yaml") -> Rules:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"{where}: not valid YAML: {exc}") from None
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'top level'}: {e['msg']}"
                             for e in exc.errors())
        raise RulesError(f"{where}: {problems}") from None


def load_rules(path: Path = RULES_FILE) -> Rules:
    return parse_rules(path.read_text(), str(path))


@lru_cache(maxsize=1)
def builtin_rules() -> Rules:
    return load_rules()
