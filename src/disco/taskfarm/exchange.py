"""The protocol's hot request as one value: a client's results to record, its ask for work, or
both (POST …/results, POST …/work, POST …/work carrying results). The group committer runs
consecutive exchanges together (groupcommit.py: `batch_key`, `run_together`): first every
request's results, by one set of statements (transitions.report_many), then every request's
leases, by another (feeder.lease_many). Each request is answered as if it had run alone, in
order; only the order between one request's leases and a later request's results may differ
from that, as it may between two clients' separate requests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from disco.taskfarm import feeder, transitions
from disco.taskfarm.models import Client, now
from disco.taskfarm.store import defer

_SEEN = update(Client.__table__).where(Client.__table__.c.id == bindparam("cid")).values(
    last_seen=bindparam("b_seen"))


class Exchanger:
    """What a farm's exchanges share: where outputs go, and the queue of unsent instances."""

    def __init__(self, output_root: Path, candidates: feeder.Candidates) -> None:
        self.output_root = output_root
        self.candidates = candidates

    def run(self, session: Session, exchanges: list[Exchange]) -> list[Any]:
        t = now()
        answers = transitions.report_many(session, [(e.client, e.items) for e in exchanges], t, self.output_root)
        for e in exchanges:
            if e.seen:  # a client asking for work is online (the overview)
                defer(session, _SEEN, {"cid": e.client.id, "b_seen": t})
        wants = [e.want for e in exchanges if e.want is not None]
        leases = iter(feeder.lease_many(session, wants, t, self.candidates))
        return [e.reply(a, next(leases) if e.want is not None else []) for e, a in zip(exchanges, answers)]


@dataclass
class Exchange:
    exchanger: Exchanger
    client: Client
    items: list[dict[str, Any]]  # results, as the protocol's items
    want: feeder.Want | None  # the ask for work, if any
    seen: bool = False  # write the client's last_seen (at most every few seconds: Farm)
    both: bool = False  # answer (answers, leases), not the leases alone (a /work that carries results)

    @property
    def batch_key(self) -> Exchanger:
        return self.exchanger

    def reply(self, answers: list[dict[str, Any]], leases: list[dict[str, Any]]) -> Any:
        """What the caller awaits: the leases (/work), the answers (/results), or both."""
        if self.want is None:
            return answers
        return (answers, leases) if self.both else leases

    def __call__(self, session: Session) -> Any:
        return self.exchanger.run(session, [self])[0]

    def run_together(self, session: Session, exchanges: list[Exchange]) -> list[Any]:
        return self.exchanger.run(session, exchanges)
