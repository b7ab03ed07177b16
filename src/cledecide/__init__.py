"""cledecide: explainable decision support for cutaneous lupus erythematosus treatment.

The library front door. The pipeline, one module per arrow in cledecide.engine:
load -> validate -> compile -> evaluate -> decide -> explain -> render.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .engine.compile import compile_rules
from .engine.decide import decide
from .engine.errors import CledecideError, EvaluationError, InputError, ManyPatients, RuleError
from .engine.evaluate import evaluate
from .engine.explain import DISCLAIMER, Explanation, add_import_notes, explain
from .engine.load import Document, is_fhir, load_file
from .engine.models import Patient, Result
from .engine.render import to_json, to_text
from .engine.ruleset import RuleSet, default_rules_dir, load_ruleset
from .engine.validate import validate_patient

__all__ = [
    "CledecideError", "EvaluationError", "InputError", "RuleError", "DISCLAIMER",
    "Explanation", "Patient", "Result", "RuleSet", "default_rules_dir", "evaluate_patient",
    "evaluate_file", "load_patient", "patients_of", "load_ruleset", "to_json", "to_text",
]
__version__ = "0.1.0"


def load_patient(path: Path | str) -> tuple[Patient, str]:
    """A validated patient record and the sha256 of the file's bytes."""
    doc = load_file(path)
    return validate_patient(doc), doc.sha256


def patients_of(doc: Document, rules_dir: Path | str | None = None,
                as_of: object = None, single: bool = False) -> list[tuple[Patient, Any]]:
    """The validated patients of a parsed input, each with its FHIR import report (None
    for our own record). The kind of input is read from the content, not the name.
    `single`: a FHIR input of several patients raises ManyPatients (it is a cohort)."""
    if not is_fhir(doc.data):
        return [(validate_patient(doc), None)]
    from .engine.codemap import load_codemap
    from .engine.fhir import import_fhir
    codemap = load_codemap(rules_dir or default_rules_dir())
    items = import_fhir(doc, codemap, as_of)  # type: ignore[arg-type]
    if single and len(items) > 1:
        raise ManyPatients(f"the FHIR input holds {len(items)} patients; evaluate them as "
                           "a cohort (--format jsonl or csv)", doc.file)
    out = []
    for item in items:
        if item.error is not None:
            raise item.error
        assert item.document is not None
        out.append((validate_patient(item.document), item.report))
    return out


def evaluate_patient(patient: Patient, ruleset: RuleSet, input_sha256: str = "",
                     report: Any = None) -> Explanation:
    """One patient through compile (cached per process) -> evaluate -> decide -> explain.
    A FHIR import report adds what it could not use to missing data and warnings."""
    compiled = compile_rules(ruleset)
    evaluation = evaluate(patient, compiled)
    explanation = explain(ruleset, evaluation, decide(ruleset, evaluation), input_sha256)
    if report is not None:
        add_import_notes(explanation, report)
    return explanation


def evaluate_file(path: Path | str, rules_dir: Path | str | None = None) -> Explanation:
    """The whole pipeline for one patient file; rules load (and are checked) first, so
    nothing is evaluated on a broken rule set."""
    ruleset = load_ruleset(rules_dir or default_rules_dir())
    doc = load_file(path)
    (patient, report), = patients_of(doc, ruleset.folder, single=True)
    return evaluate_patient(patient, ruleset, doc.sha256, report)
