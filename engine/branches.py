"""A step when one fact is unknown (issue 20): when the step is to record one fact and
the step that follows depends on its value, show each value's step.

The chosen step is `gather_data` and its rule asks for exactly one fact, marked
`branch: true` in the rule's `request` (diagnosis.extent in the shipped rules), that the
record may hold as one of a few words. The pipeline (pipeline.py) evaluates the patient
once per word; this stage never calls up the pipeline. The branches are kept when their
steps differ. Each branch is that patient's own decision, so fail-safe holds in every
branch: decide never makes a drug a safety rule excludes the step, and a step that waits
for data shows what it waits for (its gather_data) instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .decide import Decision
from .evaluate import Evaluation
from .models import enumerated_values, value_at


@dataclass(frozen=True)
class OpenFact:
    """The one fact the chosen step asks for, and the values it may take."""

    field: str
    values: tuple[Any, ...]
    why: str
    rule: str


@dataclass(frozen=True)
class Branch:
    value: Any
    decision: Decision


@dataclass(frozen=True)
class Branching:
    fact: OpenFact
    branches: tuple[Branch, ...]


def open_fact(ev: Evaluation, decision: Decision) -> OpenFact | None:
    """The fact to branch on, or None: the step is gather_data, its rule asks for one
    fact only, marked `branch`, with a few fixed values, and this record does not say."""
    rec = decision.recommendation
    if rec.action != "gather_data" or rec.rule is None or rec.engine_rule:
        return None
    asks = rec.rule.spec.then.request or []
    if len(asks) != 1 or not asks[0].branch:
        return None
    ask = asks[0]
    values = enumerated_values(ask.field)
    if values is None or value_at(ev.patient, ask.field) != "unknown":
        return None
    return OpenFact(ask.field, values, " ".join(ask.why.split()), rec.rule.id)


def step_key(decision: Decision) -> tuple[Any, ...]:
    """What makes two steps different for a clinician: action, drug, what it stops, rule."""
    rec = decision.recommendation
    return rec.action, rec.drug, tuple(rec.stops), rec.rule_id


def branching(fact: OpenFact, decided: list[tuple[Any, Decision]]) -> Branching | None:
    """The branches, when the fact's value changes the step; None when every value leads
    to the same step (then the fact does not decide it, and the step stays as it is)."""
    if len({step_key(d) for _, d in decided}) < 2:
        return None
    return Branching(fact, tuple(Branch(value, d) for value, d in decided))
