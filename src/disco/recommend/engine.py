"""Answers -> a recommended cluster: frameworks per kind of work, workers from the data size,
a provider the user has; every choice with its reasons and the alternatives it beat.

Pure: everything it knows of the service manager comes in a `Context` (the catalogue, the worker
limit, what stops a provider now), so the rules can be tested without one and the API answers
what a create would accept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from disco.cluster.spec import ClusterSpec, FrameworkRequest
from disco.frameworks.catalog import Catalog
from disco.recommend.models import Recommendation
from disco.recommend.questions import size_gb
from disco.recommend.rules import ANY_LANGUAGE, PROVIDERS, Candidate, FrameworkTraits, Rules

FORM_PATH = "/ui/clusters/new"
SSH_MIN_HOSTS = 2  # a master and one worker


@dataclass(frozen=True)
class Blocker:
    """Why a provider cannot take this cluster now, with the code a create would answer."""

    code: str
    message: str


@dataclass
class Context:
    catalog: Catalog
    max_workers: int
    blocked: dict[str, Blocker] = field(default_factory=dict)
    free_hosts: int | None = None  # the SSH pool's free hosts; None: not known


@dataclass
class _Chosen:
    for_work: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


class _Run:
    """One recommendation being made: the answers, what is chosen so far, what is said."""

    def __init__(self, answers: Any, rules: Rules, ctx: Context) -> None:
        self.answers, self.rules, self.ctx = answers, rules, ctx
        self.providers = list(dict.fromkeys(answers.providers))
        self.allowed = set(self.providers)  # providers every chosen framework runs on
        self.chosen: dict[str, _Chosen] = {}
        self.alternatives: list[dict[str, Any]] = []
        self.warnings: list[str] = []

    # -- labels ------------------------------------------------------------------------------

    def traits(self, name: str) -> FrameworkTraits:
        return self.rules.frameworks.get(name) or FrameworkTraits(label=name, languages=["python"])

    def label(self, qid: str, value: str) -> str:
        return next((c.label for c in self.rules.questions[qid].choices if c.value == value), value)

    def provider_labels(self, names: Any) -> str:
        return ", ".join(self.rules.providers.rule(p).label for p in PROVIDERS if p in names)

    # -- frameworks --------------------------------------------------------------------------

    def obstacle(self, name: str, *, language: bool = True) -> str | None:
        """Why a framework cannot be recommended here, or None."""
        traits = self.traits(name)
        if name not in self.ctx.catalog:
            return f"{traits.label} is not in this service manager's catalogue"
        lang = self.answers.language
        if language and lang != ANY_LANGUAGE and lang not in traits.languages:
            return (f"{traits.label} does not run {self.label('language', lang)} code "
                    f"(it runs {', '.join(self.label('language', x) for x in traits.languages)})")
        if not set(traits.providers) & self.allowed:
            return (f"{traits.label} does not run on {self.provider_labels(self.allowed)}: "
                    f"{traits.providers_why or 'not supported there'}")
        return None

    def pick(self, names: list[str], kind: str) -> tuple[str | None, dict[str, str]]:
        """The first framework with no obstacle; else the first whose only obstacle is the
        language (said as a warning); the obstacles of those passed over."""
        obstacles = {name: reason for name in names if (reason := self.obstacle(name))}
        winner = next((n for n in names if n not in obstacles), None)
        if winner is None:
            winner = next((n for n in names if self.obstacle(n, language=False) is None), None)
            if winner is not None:
                self.warnings.append(
                    f"{self.label('work', kind)}: no framework here runs {self.label('language', self.answers.language)} "
                    f"code for it; {self.traits(winner).label} does it in "
                    f"{', '.join(self.label('language', x) for x in self.traits(winner).languages)}")
                obstacles.pop(winner)
            else:
                self.warnings.append(f"{self.label('work', kind)}: no framework of this catalogue does it "
                                     f"on {self.provider_labels(self.allowed)}")
        return winner, obstacles

    def choose(self, name: str, kind: str, reason: str) -> None:
        chosen = self.chosen.setdefault(name, _Chosen())
        if kind not in chosen.for_work:
            chosen.for_work.append(kind)
        chosen.reasons.append(f"{self.label('work', kind)}: {reason}")
        self.allowed &= set(self.traits(name).providers)

    def frameworks_for_work(self) -> None:
        wanted = set(self.answers.work)
        kinds = [kind for kind in self.rules.work if kind in wanted]  # the file's order: same answers, same result
        for kind in kinds:
            rule = self.rules.work[kind]
            by_name: dict[str, Candidate] = {c.framework: c for c in rule.candidates}
            winner, obstacles = self.pick(list(by_name), kind)
            if winner is not None:
                self.choose(winner, kind, by_name[winner].why)
            for name, candidate in by_name.items():
                if name != winner and winner is not None:
                    self.alternatives.append({
                        "name": name, "kind": "framework", "instead_of": winner, "for_work": kind,
                        "why_not": obstacles.get(name, candidate.why_not)})
            if rule.warning:
                self.warnings.append(f"{self.label('work', kind)}: {rule.warning}")
        for kind in kinds:  # a notebook needs an engine: added when no kind of work chose one
            rule = self.rules.work[kind]
            # (a dependency counts: Zeppelin brings Spark)
            if rule.engines and not set(rule.engines) & set(self.ctx.catalog.resolve(list(self.chosen))):
                engine, _ = self.pick(rule.engines, kind)
                if engine is not None:
                    self.choose(engine, kind, f"{rule.engines_why}; {self.traits(engine).label} runs "
                                              f"{self.label('language', self.answers.language)} code")

    def latency_notes(self) -> None:
        notes = self.rules.latency.get(self.answers.latency, {})
        for name in self.chosen:
            if name in notes:
                self.warnings.append(f"{self.traits(name).label}: {notes[name]}")

    # -- size and provider ---------------------------------------------------------------------

    def wanted_workers(self, data_gb: float) -> tuple[int, list[str]]:
        sizing = getattr(self.rules.sizing, self.answers.latency)
        wanted = max(self.rules.sizing.min_workers, math.ceil(data_gb / sizing.gb_per_worker))
        reasons = [f"{self.answers.data_size} of data, {self.label('latency', self.answers.latency).lower()}: "
                   f"{sizing.why}, so {_workers(wanted)}"]
        affordable = self.answers.max_nodes - 1
        if wanted > affordable:
            reasons.append(f"capped at {affordable} by the {self.answers.max_nodes} nodes you can afford "
                           "(one is the master)")
            self.warnings.append(f"{wanted} workers would fit the data; with {affordable} expect "
                                 + ("spilling to disk and slower answers" if self.answers.latency == "interactive"
                                    else "longer jobs"))
            wanted = affordable
        return wanted, reasons

    def provider_cap(self, name: str) -> tuple[int | None, str | None]:
        rule = self.rules.providers.rule(name)
        if name == "ssh" and self.ctx.free_hosts is not None:
            return self.ctx.free_hosts - 1, f"the SSH host pool has {self.ctx.free_hosts} free host(s) now"
        return rule.max_workers, rule.max_workers_why

    def provider_obstacle(self, name: str) -> tuple[str, str] | None:
        """(code, why) when the provider cannot take the cluster now."""
        if name in self.ctx.blocked:
            return self.ctx.blocked[name].code, self.ctx.blocked[name].message
        if name == "ssh" and self.ctx.free_hosts is not None and self.ctx.free_hosts < SSH_MIN_HOSTS:
            return "no_free_hosts", (f"the SSH host pool has {self.ctx.free_hosts} free host(s); a cluster needs "
                                     f"at least {SSH_MIN_HOSTS} (an admin adds them: disco hosts add)")
        if name not in self.allowed:
            held = [self.traits(n) for n in self.chosen if name not in self.traits(n).providers]
            return "provider_unsuitable", "; ".join(f"{t.label}: {t.providers_why}" for t in held)
        return None

    def choose_provider(self, data_gb: float, workers: int,
                        workers_reasons: list[str]) -> tuple[str, int, list[str], list[dict[str, str]]]:
        rules = self.rules.providers
        small = data_gb <= rules.small_up_to_gb
        order = [p for p in (rules.small_order if small else rules.large_order) if p in self.providers]
        order += [p for p in self.providers if p not in order]
        obstacles = {p: o for p in order if (o := self.provider_obstacle(p))}
        usable = [p for p in order if p not in obstacles]

        def fits(p: str) -> bool:
            cap = self.provider_cap(p)[0]
            return cap is None or workers <= cap

        # Never a provider a chosen framework cannot run on (the frameworks' choice kept one).
        suited = [p for p in order if obstacles.get(p, ("",))[0] != "provider_unsuitable"] or order
        def room(p: str) -> int:
            cap = self.provider_cap(p)[0]
            return workers if cap is None else cap

        # The first that fits; else the one with the most room (the first of those); else, when
        # none can take the cluster now, the first suited one, with `needs` saying why.
        winner = next((p for p in usable if fits(p)), None) or (
            max(usable, key=lambda p: (room(p), -usable.index(p))) if usable else suited[0])
        rule = rules.rule(winner)
        size_word = f"data up to {rules.small_up_to_gb:g} GB" if small else f"data over {rules.small_up_to_gb:g} GB"
        reasons = [f"{rule.label}: {rule.why}"]
        if len(order) > 1:
            reasons.append(f"first of your providers that fits, in the order for {size_word}")
        if winner == "local" and not small and rule.large_why:
            self.warnings.append(rule.large_why)
        wanted = workers
        cap, cap_why = self.provider_cap(winner)
        # A provider that cannot take the cluster now is not a cap: `needs` says what to add.
        if cap is not None and workers > cap and winner not in obstacles:
            workers_reasons.append(f"capped at {max(cap, 0)} on {rule.label}: {cap_why}")
            workers = max(cap, 0)
        needs = [{"code": n.code, "message": n.message} for n in rule.needs]
        if winner in obstacles:
            code, why = obstacles[winner]
            needs.append({"code": code, "message": why})
        for other in order:
            if other == winner:
                continue
            if other in obstacles:
                why_not = obstacles[other][1]
            elif not fits(other):
                why_not = f"too small for {_workers(wanted)}: {self.provider_cap(other)[1]}"
            else:
                why_not = f"{rules.rule(winner).label} comes first for {size_word}"
            self.alternatives.append({"name": other, "kind": "provider", "instead_of": winner, "for_work": None,
                                      "why_not": why_not})
        return winner, workers, reasons, needs


def _workers(n: int) -> str:
    return f"{n} worker{'' if n == 1 else 's'}"


def recommend(answers: Any, rules: Rules, ctx: Context) -> Recommendation:
    """The recommendation for these answers (a `RecommendationAnswers`)."""
    run = _Run(answers, rules, ctx)
    run.frameworks_for_work()
    run.latency_notes()
    data_gb = size_gb(answers.data_size)
    workers, workers_reasons = run.wanted_workers(data_gb)
    provider, workers, provider_reasons, needs = run.choose_provider(data_gb, workers, workers_reasons)
    if workers > ctx.max_workers:
        workers_reasons.append(f"capped at {ctx.max_workers}, this service manager's largest cluster "
                               "(DISCO_MAX_WORKERS)")
        workers = ctx.max_workers
    chosen = list(run.chosen)
    frameworks = [{"name": n, "label": run.traits(n).label, "role": "chosen", "for_work": c.for_work,
                   "required_by": [], "reasons": c.reasons} for n, c in run.chosen.items()]
    for dep in (n for n in ctx.catalog.resolve(chosen) if n not in run.chosen):
        needers = [n for n in chosen if dep in ctx.catalog.resolve([n])]
        frameworks.append({"name": dep, "label": run.traits(dep).label, "role": "dependency", "for_work": [],
                           "required_by": needers,
                           "reasons": [f"{', '.join(run.traits(n).label for n in needers)} "
                                       f"depend{'s' if len(needers) == 1 else ''} on it; a create adds it"]})
    # Made as the create's own model first: a recommendation that one would refuse is a bug here.
    spec = ClusterSpec(provider=provider, workers=workers, frameworks=[FrameworkRequest(name=n) for n in chosen])
    query = [("provider", provider), ("workers", str(workers)), *(("frameworks", n) for n in chosen)]
    return Recommendation.model_validate({
        "answers": answers.model_dump(), "frameworks": frameworks, "workers": workers, "workers_reasons": workers_reasons,
        "provider": provider, "provider_reasons": provider_reasons, "alternatives": run.alternatives,
        "warnings": run.warnings, "needs": needs, "form_url": f"{FORM_PATH}?{urlencode(query)}",
        "spec": spec.model_dump(include={"provider": True, "workers": True, "frameworks": {"__all__": {"name"}}})})
