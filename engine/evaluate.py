"""Evaluate stage: one patient, in isolation, through the compiled rules.

Returns what fired, on which facts, and (for the explanation, on demand) why a silent
rule did not: the unmet parts of its condition, so later stages never re-derive anything.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from . import conditions as C
from .compile import CompiledRules
from .courses import CourseView, course_views
from .facts import patient_facts
from .models import Patient
from .ruleset import Rule
from .validate import check_drugs


class Fired(NamedTuple):
    """A rule that fired and the facts its matching branch looked at (a tuple: ~25 are
    made per patient)."""

    rule: Rule
    matched: dict[str, Any]


@dataclass(frozen=True)
class Evaluation:
    patient: Patient
    facts: dict[str, Any]
    fired: tuple[Fired, ...]
    derived: frozenset[str]
    rules: dict[str, Rule] = field(default_factory=dict)
    courses: dict[str, CourseView] = field(default_factory=dict)

    def fired_ids(self) -> set[str]:
        return set(self._fired_ids)

    @cached_property
    def _fired_ids(self) -> frozenset[str]:
        return frozenset(f.rule.id for f in self.fired)

    def unmet(self, rule_id: str) -> list[str]:
        """Why a rule stayed silent: the parts of its condition that are false or
        unknown for this patient (computed on demand, for the explanation only)."""
        return C.unmet(self.rules[rule_id].condition, self.facts, self.derived)


def evaluate(patient: Patient, compiled: CompiledRules) -> Evaluation:
    """Run the rules for one patient; the durable_rules session is gone afterwards."""
    ruleset = compiled.ruleset
    check_drugs(patient, ruleset.drugs)  # a drug the catalogue lacks is never ignored
    views = course_views(patient, ruleset.drugs, ruleset.thresholds, ruleset.days)
    facts = patient_facts(patient, ruleset, views)
    firings, derived = compiled.run(facts)
    by_id = ruleset.by_id
    names = compiled.matched_names
    get = facts.get
    fired = tuple(Fired(by_id[f.rule], {name: True if derived else get(name, "not recorded")
                                        for name, derived in names[f.rule][f.branch]})
                  for f in firings)  # the facts each branch looked at, in name order;
    # derived ones are true (inline: ~27 firings a patient)
    return Evaluation(patient, facts, fired, frozenset(derived), by_id, views)
