"""The pipeline for one validated patient: compile (cached per process) -> evaluate ->
decide -> explain. Every caller (the CLI, cohorts, the service) goes through here, so
one patient is always judged the same way."""
from __future__ import annotations

from typing import Any

from .compile import compile_rules
from .decide import decide
from .evaluate import evaluate
from .explain import Explanation, add_import_notes, explain
from .models import Patient
from .ruleset import RuleSet


def evaluate_patient(patient: Patient, ruleset: RuleSet, input_sha256: str = "",
                     report: Any = None) -> Explanation:
    """One patient through the pipeline. A FHIR import report adds what it could not use
    to missing data and warnings."""
    compiled = compile_rules(ruleset)
    evaluation = evaluate(patient, compiled)
    explanation = explain(ruleset, evaluation, decide(ruleset, evaluation), input_sha256)
    if report is not None:
        add_import_notes(explanation, report)
    return explanation
