"""FHIR files at the front door: the validated patients of any input (our record or a
FHIR record), what a bundle maps to (`cledecide import fhir`) and the FHIR twin of a
patient record (`cledecide export fhir`, test data)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection

from ..engine.errors import InputError, ManyPatients
from ..engine.load import Document, is_fhir, load_file, load_input
from ..engine.models import Patient
from ..engine.ruleset import default_rules_dir
from ..engine.safetext import visible
from ..engine.validate import validate_patient

from .noadvice import NoAdvice

if TYPE_CHECKING:
    from .bundle import Imported

# The FHIR modules (the code map's models, the bundle reader) are imported when a FHIR
# record arrives, not on every start: most inputs are our own records.


def load_patient(path: Path | str) -> tuple[Patient, str]:
    """A validated patient record (our format) and the sha256 of the file's bytes."""
    doc = load_file(path)
    return validate_patient(doc), doc.sha256


def patients_of(doc: Document, rules_dir: Path | str | None = None,
                as_of: dt.date | None = None, single: bool = False,
                drugs: Collection[str] | None = None
                ) -> list[tuple[Patient | NoAdvice, Any]]:
    """The validated patients of a parsed input, each with its FHIR import report (None
    for our own record); a patient with no advice (dead on as_of, no CLE on record) is a
    NoAdvice instead. The kind of input is read from the content, not the name.
    `single`: a FHIR input of several patients raises ManyPatients (it is a cohort).
    `as_of` is for FHIR input: our record carries its own (a different one is an error).
    `drugs`: the rule set's catalogue, the drugs a record may name (FILE:LINE otherwise)."""
    if not is_fhir(doc.data):
        patient = validate_patient(doc, drugs)
        if as_of is not None and patient.as_of != as_of:
            raise InputError(f"--as-of {as_of} differs from the record's as_of "
                             f"{patient.as_of}: a patient record carries its own date",
                             doc.file)
        return [(patient, None)]
    from .bundle import import_fhir
    from .codemap import load_codemap
    codemap = load_codemap(rules_dir or default_rules_dir())
    items = import_fhir(doc, codemap, as_of)
    if single and len(items) > 1:
        raise ManyPatients(f"the FHIR input holds {len(items)} patients; evaluate them as "
                           "a cohort (--format jsonl or csv)", doc.file)
    out: list[tuple[Patient | NoAdvice, Any]] = []
    for item in items:
        if item.error is not None:
            raise item.error
        if item.no_advice is not None:
            out.append((item.no_advice, item.report))
            continue
        assert item.document is not None
        out.append((validate_patient(item.document, drugs), item.report))
    return out


def import_file(path: Path | str, rules_dir: Path | str | None = None,
                as_of: dt.date | None = None) -> list[Imported]:
    """Every patient of a FHIR file as a record with its report (not yet validated)."""
    from .bundle import import_fhir
    from .codemap import load_codemap
    doc = load_input(path)
    if not is_fhir(doc.data):
        raise InputError("not FHIR: no resourceType (a Bundle or a CDS Hooks prefetch "
                         "object is expected)", doc.file, doc.line_of(()))
    return import_fhir(doc, load_codemap(rules_dir or default_rules_dir()), as_of)


def import_text(path: Path | str, rules_dir: Path | str | None = None,
                as_of: dt.date | None = None) -> str:
    """The record (YAML) each patient maps to, then what was used and ignored, and why:
    the informaticist's view of a mapping."""
    import yaml
    out: list[str] = []
    for item in import_file(path, rules_dir, as_of):
        if item.error is not None:
            raise item.error
        if item.no_advice is not None:
            out.append(f"# NO ADVICE ({item.no_advice.reason}): {item.no_advice.message}\n")
        assert item.document is not None and item.report is not None
        out.append(yaml.safe_dump(item.document.data, sort_keys=False,
                                  allow_unicode=True, default_flow_style=None))
        report = item.report
        out.append("# --- import report\n")
        for title, lines in (("used", report.used), ("ignored", report.ignored),
                             ("missing data", [f"{f}: {w}" for f, w in report.missing]),
                             ("warnings", [f"{s}: {m}" for s, m in report.warnings])):
            out.append(f"# {title} ({len(lines)}):\n")
            out.extend(f"#   {visible(line, True)}\n" for line in lines)
        out.append("\n")
    return "".join(out)


def export_text(path: Path | str, rules_dir: Path | str | None = None,
                ehr: bool = False) -> str:
    """A patient record as a FHIR R4 Bundle (JSON) through the code map."""
    from .codemap import load_codemap
    from .export import to_bundle
    patient, _ = load_patient(path)
    try:
        bundle: dict[str, Any] = to_bundle(patient, load_codemap(
            rules_dir or default_rules_dir()), ehr)
    except ValueError as exc:
        raise InputError(str(exc), str(path)) from None
    return json.dumps(bundle, indent=1, ensure_ascii=False) + "\n"
