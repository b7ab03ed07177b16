"""cledecide: explainable decision support for cutaneous lupus erythematosus treatment.

The library front door. Each folder is one job (README, "Map of the code"); the
pipeline, one module per arrow in cledecide.engine:
load -> validate -> compile -> evaluate -> decide -> explain -> render.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

# Absolute imports, here only: pytest imports a checkout's root __init__.py as a plain
# module named after the folder (a clone in "repo-1" has no parent package), and these
# then still find the installed package.
from cledecide.engine.errors import (CledecideError, EvaluationError, InputError,
                                     ManyPatients, RuleError)
from cledecide.engine.explain import DISCLAIMER, Explanation
from cledecide.engine.load import load_input
from cledecide.engine.models import Patient, Result
from cledecide.engine.pipeline import evaluate_patient
from cledecide.engine.render import to_json, to_text
from cledecide.engine.rulecache import load_ruleset
from cledecide.engine.ruleset import RuleSet, default_rules_dir
from cledecide.fhir_r4.files import load_patient, patients_of
from cledecide.fhir_r4.noadvice import NoAdvice, NoAdviceResult, no_advice_result

__all__ = [
    "CledecideError", "EvaluationError", "InputError", "ManyPatients", "RuleError",
    "DISCLAIMER", "Explanation", "NoAdvice", "NoAdviceResult", "Patient", "Result",
    "RuleSet", "default_rules_dir",
    "evaluate_patient", "evaluate_file", "load_patient", "patients_of", "load_ruleset",
    "to_json", "to_text",
]
__version__ = "0.1.0"


def evaluate_file(path: Path | str, rules_dir: Path | str | None = None,
                  as_of: dt.date | None = None) -> Explanation | NoAdviceResult:
    """The whole pipeline for one patient file; rules load (and are checked) first, so
    nothing is evaluated on a broken rule set. A FHIR patient who is dead on as_of, or
    has no cutaneous lupus on record, gets a NoAdviceResult (not advice, not an error).
    `as_of`: the FHIR record as it stood on that date."""
    ruleset = load_ruleset(rules_dir or default_rules_dir())
    doc = load_input(path)
    (patient, report), = patients_of(doc, ruleset.folder, as_of, single=True,
                                     drugs=ruleset.drugs)
    if isinstance(patient, NoAdvice):
        return no_advice_result(patient, ruleset, doc.sha256, report)
    return evaluate_patient(patient, ruleset, doc.sha256, report)
