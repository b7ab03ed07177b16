"""cledecide: explainable decision support for cutaneous lupus erythematosus treatment.

The library front door. The pipeline, one module per arrow in cledecide.engine:
load -> validate -> compile -> evaluate -> decide -> explain -> render.
"""
from __future__ import annotations

from pathlib import Path

from .engine.compile import compile_rules
from .engine.decide import decide
from .engine.errors import CledecideError, EvaluationError, InputError, RuleError
from .engine.evaluate import evaluate
from .engine.explain import DISCLAIMER, Explanation, explain
from .engine.load import load_file
from .engine.models import Patient, Result
from .engine.render import to_json, to_text
from .engine.ruleset import RuleSet, default_rules_dir, load_ruleset
from .engine.validate import validate_patient

__all__ = [
    "CledecideError", "EvaluationError", "InputError", "RuleError", "DISCLAIMER",
    "Explanation", "Patient", "Result", "RuleSet", "default_rules_dir", "evaluate_patient",
    "evaluate_file", "load_patient", "load_ruleset", "to_json", "to_text",
]
__version__ = "0.1.0"


def load_patient(path: Path | str) -> tuple[Patient, str]:
    """A validated patient record and the sha256 of the file's bytes."""
    doc = load_file(path)
    return validate_patient(doc), doc.sha256


def evaluate_patient(patient: Patient, ruleset: RuleSet, input_sha256: str = "") -> Explanation:
    """One patient through compile (cached per process) -> evaluate -> decide -> explain."""
    compiled = compile_rules(ruleset)
    evaluation = evaluate(patient, compiled)
    return explain(ruleset, evaluation, decide(ruleset, evaluation), input_sha256)


def evaluate_file(path: Path | str, rules_dir: Path | str | None = None) -> Explanation:
    """The whole pipeline for one patient file; rules load (and are checked) first, so
    nothing is evaluated on a broken rule set."""
    ruleset = load_ruleset(rules_dir or default_rules_dir())
    patient, digest = load_patient(path)
    return evaluate_patient(patient, ruleset, digest)
