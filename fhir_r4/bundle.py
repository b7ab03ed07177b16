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
from .conditions import Conditions, Procedures, extent
from .entries import Index, Limits, read_entries
from .medications import Contraceptive, adverse_event, read_courses
from .observations import Observations
from .noadvice import NoAdvice
from .patient import deceased, read_patient
from .reading import Entry, Fail, Imported, NoAdviceFound, Report
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
                record, report, none = _one_patient(p, entries, index, codemap, when,
                                                    as_of is None and stamp is None,
                                                    len(patients))
            except Fail as exc:
                if len(patients) == 1:
                    raise
                out.append(Imported(None, None, label, InputError(
                    exc.message, doc.file, doc.line_of(exc.path),
                    format_path(exc.path) or None)))
                continue
            item = Imported(Document(doc.file, record, _RootLine(doc, p.path), doc.sha256),
                            report, label)
            if none is not None:
                item.no_advice = NoAdvice(none.reason, record["id"],  # type: ignore[arg-type]
                                          record["as_of"], none.message)
            out.append(item)
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
                 as_of: dt.date, today: bool, count: int
                 ) -> tuple[dict[str, Any], Report, NoAdviceFound | None]:
    """One patient's record and report, and why there is no advice (dead on as_of, no
    CLE on record) when that is so: the record is still read, for `import fhir`."""
    report = Report()
    record = read_patient(p, as_of, today, report)
    dead = deceased(p, as_of, report)
    if dead is not None:
        report.used.append(f"{p.label}: {dead}")
        return record, report, NoAdviceFound("deceased", f"The patient is {dead}: no "
                                             "advice is given.")
    mine = [e for e in entries if e is not p and e.kind != "Medication"
            and _belongs(e, p, index, count == 1, report)]
    for e in entries:
        if e.kind not in READ_TYPES:
            report.ignore(e.label, f"{e.kind} is not read by cledecide")
    meds = read_courses(mine, index, codemap, as_of, report)
    observations = Observations(report, codemap, as_of)
    conditions = Conditions(report, codemap, as_of)
    procedures = Procedures(report, codemap, as_of)
    for e in mine:
        if e.kind == "Observation":
            observations.observation(e, index, meds.courses)
        elif e.kind == "Condition":
            conditions.condition(e)
        elif e.kind == "Procedure":
            procedures.procedure(e)
        elif e.kind == "AdverseEvent":
            adverse_event(e, index, meds.courses, codemap, report, as_of)
        elif e.kind == "Patient":
            report.ignore(e.label, "another Patient")
    none = None
    try:
        conditions.diagnosis(record)
    except NoAdviceFound as exc:
        none = exc
    for offer in conditions.offers:
        observations.offer(*offer)
    _contraception(meds.contraception, observations, record, report)
    observations.extent_why = extent(conditions, observations.latest)
    observations.finish(record, codemap.weight_days(record["demographics"]["age"]))
    conditions.finish(record)
    procedures.finish(record)
    if meds.courses:
        record["treatments"] = sorted(meds.courses.values(),
                                      key=lambda c: (c["start"], c["drug"]))
    return record, report, none


def _contraception(found: list[Contraceptive], obs: Observations, record: dict[str, Any],
                   report: Report) -> None:
    """Contraceptives in use are a method in use (at least one_method, since the latest
    start) with or without oestrogen; a recorded contraception Observation is the
    clinician's statement and wins, but never hides oestrogen."""
    current = [c for c in found if c.current]
    if not current:
        return
    if record["demographics"]["sex"] != "female":
        report.ignore(current[0].label, "a contraceptive on a man's record: not read")
        return
    start = max((c.start for c in current if c.start is not None), default=None)
    on = start or obs.as_of
    label = "; ".join(c.label for c in current)
    stated = obs.latest.get("reproductive.contraception")
    if stated is None:
        obs.latest["reproductive.contraception"] = (on, "one_method", label)
        if start is not None and "reproductive.contraception_since" not in obs.latest:
            obs.latest["reproductive.contraception_since"] = (on, start.isoformat(), label)
    elif stated[1] in ("none", "abstinence"):
        report.warnings.append(("warning", f"Contraception is recorded as {stated[1]} "
                                f"({stated[0]}), but {', '.join(c.method for c in current)} "
                                "is on the medication list: check which is true."))
    oestrogen = any(c.oestrogen for c in current)
    if oestrogen or "reproductive.oestrogen_contraception" not in obs.latest:
        obs.latest["reproductive.oestrogen_contraception"] = (on, oestrogen, label)
