"""The pipeline for one validated patient: compile (cached per process) -> evaluate ->
decide -> explain. Every caller (the CLI, cohorts, the service) goes through here, so
one patient is always judged the same way."""
from __future__ import annotations

from typing import Any

from .branches import Branching, branching, open_fact
from .compile import CompiledRules, compile_rules
from .decide import Decision, decide
from .evaluate import Evaluation, evaluate
from .explain import Explanation, add_import_notes, explain
from .models import Patient, with_value
from .ruleset import RuleSet


def evaluate_patient(patient: Patient, ruleset: RuleSet, input_sha256: str = "",
                     report: Any = None) -> Explanation:
    """One patient through the pipeline. A FHIR import report adds what it could not use
    to missing data and warnings."""
    compiled = compile_rules(ruleset)
    evaluation = evaluate(patient, compiled)
    decision = decide(ruleset, evaluation)
    branches = _branches(compiled, evaluation, decision)
    explanation = explain(ruleset, evaluation, decision, input_sha256, branches)
    if report is not None:
        add_import_notes(explanation, report)
    return explanation


def _branches(compiled: CompiledRules, evaluation: Evaluation,
              decision: Decision) -> Branching | None:
    """When the step is to record one fact that would change it, the same patient once
    per value of that fact, each through evaluate and decide (branches.py)."""
    fact = open_fact(evaluation, decision)
    if fact is None:
        return None
    ruleset = compiled.ruleset
    decided = [(value, decide(ruleset, evaluate(with_value(evaluation.patient, fact.field,
                                                           value), compiled)))
               for value in fact.values]
    return branching(fact, decided)
