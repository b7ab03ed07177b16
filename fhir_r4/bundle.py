"""FHIR R4 in: a Bundle (collection, searchset) or a CDS Hooks prefetch object becomes
the same patient record a clinician writes in YAML, plus a report of what was used,
what was ignored and why.

Part of the load stage: what comes out is a Document that the validate stage checks
like any other record, so the two inputs cannot drift. Codes mean what the code map
(rules/fhir-map.yaml) says, nothing else; a value never gets a meaning by guessing.
Unknown stays unknown and the fail-safe rules ask for it. This module ties the readers
of each resource (entries, patient, observations, conditions, medications).
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterator, Mapping

from .codemap import CodeMap
from .conditions import Conditions, Procedures
from .entries import Index, Limits, read_entries
from .medications import adverse_event, read_courses
from .observations import Observations
from .patient import read_patient
from .reading import Entry, Fail, Imported, Report
from ..engine.errors import InputError
from ..engine.load import Document, Path_, format_path, is_fhir  # noqa: F401 (re-exported)

READ_TYPES = ("Patient", "Observation", "Condition", "MedicationStatement",
              "MedicationRequest", "Medication", "Procedure", "AdverseEvent")

__all__ = ["Imported", "Report", "import_fhir"]


def import_fhir(doc: Document, codemap: CodeMap, as_of: dt.date | None = None
                ) -> list[Imported]:
    """Every Patient of a FHIR input as a record Document with its report. A malformed
    input raises InputError naming the file, the JSON path (and line) and the problem."""
    try:
        limits = codemap.spec.limits
        entries, stamp = read_entries(doc.data, Limits(limits.max_entries, limits.max_nesting))
        patients = [e for e in entries if e.kind == "Patient"]
        if not patients:
            raise Fail((), "no Patient resource in the FHIR input")
        index = Index(entries)
        when = as_of or stamp or dt.date.today()
        out = []
        for p in patients:
            label = str(getattr(p.resource, "id", None) or format_path(p.path))
            try:
                record, report = _one_patient(p, entries, index, codemap, when,
                                              as_of is None and stamp is None,
                                              len(patients))
            except Fail as exc:
                if len(patients) == 1:
                    raise
                out.append(Imported(None, None, label, InputError(
                    exc.message, doc.file, doc.line_of(exc.path),
                    format_path(exc.path) or None)))
                continue
            out.append(Imported(Document(doc.file, record, _RootLine(doc, p.path),
                                         doc.sha256), report, label))
        return out
    except Fail as exc:
        raise InputError(exc.message, doc.file, doc.line_of(exc.path),
                         format_path(exc.path) or None) from None


class _RootLine(Mapping):
    """The imported record's one line (its Patient's), found only when an error names
    it: finding lines means reading a large input a second time."""

    def __init__(self, doc: Document, path: Path_) -> None:
        self.doc, self.path = doc, path

    def _lines(self) -> dict[Path_, int]:
        return {(): self.doc.line_of(self.path) or 1}

    def __getitem__(self, key: Path_) -> int:
        return self._lines()[key]

    def __iter__(self) -> Iterator[Path_]:
        return iter(((),))

    def __len__(self) -> int:
        return 1


def _subject(e: Entry) -> Any:
    for name in ("subject", "patient"):
        ref = getattr(e.resource, name, None)
        if ref is not None:
            return ref, name
    return None, None


def _belongs(e: Entry, patient: Entry, index: Index, only: bool, report: Report) -> bool:
    ref, name = _subject(e)
    if ref is None:
        if only:
            return True
        report.ignore(e.label, "no subject, and the bundle holds several patients")
        return False
    return index.resolve(ref, e.path + (name,)) is patient


def _one_patient(p: Entry, entries: list[Entry], index: Index, codemap: CodeMap,
                 as_of: dt.date, today: bool, count: int) -> tuple[dict[str, Any], Report]:
    report = Report()
    record = read_patient(p, as_of, today, report)
    mine = [e for e in entries if e is not p and e.kind != "Medication"
            and _belongs(e, p, index, count == 1, report)]
    for e in entries:
        if e.kind not in READ_TYPES:
            report.ignore(e.label, f"{e.kind} is not read by cledecide")
    courses, _ = read_courses(mine, index, codemap, as_of, report)
    observations = Observations(report, codemap, as_of)
    conditions = Conditions(report, codemap)
    procedures = Procedures(report, codemap)
    for e in mine:
        if e.kind == "Observation":
            observations.observation(e, index, courses)
        elif e.kind == "Condition":
            conditions.condition(e)
        elif e.kind == "Procedure":
            procedures.procedure(e)
        elif e.kind == "AdverseEvent":
            adverse_event(e, index, courses, codemap, report)
        elif e.kind == "Patient":
            report.ignore(e.label, "another Patient")
    conditions.diagnosis(record)
    observations.finish(record)
    conditions.finish(record)
    procedures.finish(record)
    if courses:
        record["treatments"] = sorted(courses.values(), key=lambda c: (c["start"], c["drug"]))
    return record, report
