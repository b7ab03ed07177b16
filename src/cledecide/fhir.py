"""FHIR at the front door: what a bundle maps to (`cledecide import fhir`) and the
FHIR twin of a patient record (`cledecide export fhir`, test data)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import yaml

from .engine.codemap import load_codemap
from .engine.errors import InputError
from .engine.fhir import Imported, import_fhir
from .engine.load import is_fhir, load_file
from .engine.ruleset import default_rules_dir
from .engine.safetext import visible


def import_file(path: Path | str, rules_dir: Path | str | None = None,
                as_of: dt.date | None = None) -> list[Imported]:
    """Every patient of a FHIR file as a record with its report (not yet validated)."""
    doc = load_file(path)
    if not is_fhir(doc.data):
        raise InputError("not FHIR: no resourceType (a Bundle or a CDS Hooks prefetch "
                         "object is expected)", doc.file, doc.line_of(()))
    return import_fhir(doc, load_codemap(rules_dir or default_rules_dir()), as_of)


def import_text(path: Path | str, rules_dir: Path | str | None = None,
                as_of: dt.date | None = None) -> str:
    """The record (YAML) each patient maps to, then what was used and ignored, and why:
    the informaticist's view of a mapping."""
    out: list[str] = []
    for item in import_file(path, rules_dir, as_of):
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
    from . import load_patient
    from .reviewer.fhir_bundle import to_bundle
    patient, _ = load_patient(path)
    try:
        bundle: dict[str, Any] = to_bundle(patient, load_codemap(
            rules_dir or default_rules_dir()), ehr)
    except ValueError as exc:
        raise InputError(str(exc), str(path)) from None
    return json.dumps(bundle, indent=1, ensure_ascii=False) + "\n"
