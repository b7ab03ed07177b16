"""MedicationStatement and MedicationRequest become courses (drug, start, stop, dose,
stop reason); AdverseEvents attach to the course they suspect; a CDS Hooks draft order
is read as a catalogue drug and a dose (`read_draft_order`, the service's entry point).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .codemap import CodeMap
from .entries import Index
from .reading import Entry, Fail, Report, answer, clean, date_of, meaning, number, shown
from ..engine.errors import InputError
from ..engine.load import Path_, format_path

CURRENT_MED = ("active", "on-hold")
ENDED_MED = ("completed", "stopped")
NOT_TAKEN = ("entered-in-error", "not-taken", "cancelled", "intended", "draft")
MED_TYPES = ("MedicationStatement", "MedicationRequest")

Dose = tuple[str, "float | int"]   # ("dose_mg_per_day" or "dose_mg_per_week", value)


def read_courses(mine: list[Entry], index: Index, codemap: CodeMap, as_of: dt.date,
                 report: Report) -> tuple[dict[int, dict[str, Any]], dict[int, Entry]]:
    """The courses of a patient's medication records, keyed by the entry's id(), and
    those records (other resources point at a course by reference)."""
    meds = {id(e): e for e in mine if e.kind in MED_TYPES}
    courses: dict[int, dict[str, Any]] = {}
    for e in mine:
        if id(e) in meds:
            course = _course(e, index, codemap, as_of, report)
            if course is not None:
                courses[id(e)] = course
    _overlaps(courses, meds, report)
    return courses, meds


def _overlaps(courses: dict[int, dict[str, Any]], meds: dict[int, Entry],
              report: Report) -> None:
    """Records of one drug whose periods overlap are often one course twice (the order,
    MedicationRequest, and what is taken, MedicationStatement). They stay separate
    courses, as the record says: the latest start is then the course's start and its
    dose and response are read (conservative: a trial restarts, a response not on that
    record is asked for). The clinician is told, since trials, doses and responses are
    read from them."""
    by_drug: dict[str, list[tuple[str, str, str]]] = {}
    for key, course in courses.items():
        by_drug.setdefault(course["drug"], []).append(
            (course["start"], course.get("stop", "9999-12-31"), meds[key].label))
    for drug, spans in sorted(by_drug.items()):
        spans.sort()
        overlapping = {i for i, a in enumerate(spans) for j, b in enumerate(spans)
                       if i != j and a[0] <= b[1] and b[0] <= a[1]}
        if overlapping:
            listed = "; ".join(f"{spans[i][2]} from {spans[i][0]}"
                               + ("" if spans[i][1] == "9999-12-31" else f" to {spans[i][1]}")
                               for i in sorted(overlapping))
            report.warnings.append((
                "warning", f"{drug}: {len(overlapping)} records overlap ({listed}); read as "
                "separate courses, the latest start as the course's start with its dose "
                "and response. If they are one course (an order and what is taken), check "
                "the start date, dose and response of the course."))
            report.used.append(f"{drug}: overlapping records kept as separate courses")


def _course(e: Entry, index: Index, codemap: CodeMap, as_of: dt.date,
            report: Report) -> dict[str, Any] | None:
    r = e.resource
    status = r.status
    concept = r.medicationCodeableConcept
    if concept is None and r.medicationReference is not None:
        med = index.resolve(r.medicationReference, e.path + ("medicationReference",), e)
        concept = getattr(med.resource, "code", None)
    if status in NOT_TAKEN:
        report.ignore(e.label, f"status {status}: not taken")
        return None
    found = meaning(codemap, concept, ("medication",))
    if found is None:
        report.ignore(e.label, f"medication not in the code map ({shown(concept)})",
                      "treatments", f"A medication could not be mapped ({shown(concept)}, "
                      "status " + str(status) + "): the suggestion does not take it into "
                      "account; check it by hand.")
        return None
    drug = found.value
    if status not in CURRENT_MED + ENDED_MED:
        report.ignore(e.label, f"{drug}: status '{status}' says neither current nor ended",
                      "treatments", f"{drug}: the EHR's status '{status}' does not say "
                      "whether the course is current; it was not counted.")
        return None
    start, end, dosages, dose_path, reasons = _period_and_dosage(e)
    if start is None:
        raise Fail(e.path + ("effectivePeriod",), f"{drug}: the course has no start date "
                   "(a full date); trials, washouts and doses depend on it")
    course: dict[str, Any] = {"drug": drug, "start": start.isoformat()}
    if status in ENDED_MED:
        if end is None:
            raise Fail(e.path + ("status",), f"{drug}: status is {status} but the course "
                       "has no end date; washout windows depend on it")
        course["stop"] = end.isoformat()
    elif end is not None and end <= as_of:
        course["stop"] = end.isoformat()
    _stop_reason(e, reasons, codemap, course, report)
    dose = read_dose(dosages, codemap, e, dose_path, drug, report)
    if dose is not None:
        course[dose[0]] = dose[1]
    report.used.append(f"{e.label}: {drug} from {course['start']}"
                       + (f" to {course['stop']}" if "stop" in course else " (current)")
                       + (f", {dose[1]} {'mg/week' if dose[0].endswith('week') else 'mg/day'}"
                          if dose else ""))
    return course


def _period_and_dosage(e: Entry) -> tuple[dt.date | None, dt.date | None, list[Any], str,
                                          list[Any]]:
    """Start, end, dosage lines (and their element's name) and stop reasons: a statement
    and an order keep them in different elements."""
    r = e.resource
    if e.kind == "MedicationStatement":
        start = date_of(r.effectiveDateTime) or date_of(getattr(r.effectivePeriod, "start", None))
        end = date_of(getattr(r.effectivePeriod, "end", None))
        return start, end, r.dosage or [], "dosage", r.statusReason or []
    validity = getattr(r.dispenseRequest, "validityPeriod", None) if r.dispenseRequest else None
    start = date_of(getattr(validity, "start", None)) or date_of(r.authoredOn)
    end = date_of(getattr(validity, "end", None))
    return (start, end, r.dosageInstruction or [], "dosageInstruction",
            [r.statusReason] if r.statusReason is not None else [])


def _stop_reason(e: Entry, reasons: list[Any], codemap: CodeMap, course: dict[str, Any],
                 report: Report) -> None:
    for reason in reasons:
        ok, word = answer(codemap, reason, {k: w for w, entries in
                                            codemap.spec.stop_reasons.items()
                                            for k in (x.code for x in entries)})
        if ok and "stop" in course:
            course["stop_reason"] = word
        elif not ok:
            report.ignore(f"{e.label}.statusReason", f"not in the code map ({shown(reason)})")


def read_dose(dosages: list[Any], codemap: CodeMap, e: Entry, path: str, drug: str,
              report: Report) -> Dose | None:
    """mg per day or per week from doseAndRate and timing; several dosage lines (e.g.
    alternate days) add up. Anything unreadable leaves the dose unknown, reported."""
    if not dosages:
        return None
    per_day = 0.0
    weekly = daily = False
    for i, d in enumerate(dosages):
        where = f"{format_path(e.path)}.{path}[{i}]"
        line = _dose_line(d, codemap)
        if isinstance(line, str):
            report.ignore(where, f"{drug}: {line}; the dose stays unknown",
                          "treatments", None)
            return None
        mg_per_day, period_unit = line
        if period_unit == "wk":
            weekly = True
        else:
            daily = True
        per_day += mg_per_day
    if weekly and daily:
        report.ignore(f"{format_path(e.path)}.{path}", f"{drug}: daily and weekly lines "
                      "mixed; the dose stays unknown", "treatments")
        return None
    if per_day <= 0:
        return None
    if weekly:
        return "dose_mg_per_week", clean(per_day * 7)
    return "dose_mg_per_day", clean(per_day)


def _dose_line(d: Any, codemap: CodeMap) -> tuple[float, str] | str:
    """One dosage line as (mg per day, the timing's period unit), or the problem."""
    quantity = None
    for dr in d.doseAndRate or []:
        if dr.doseQuantity is not None:
            quantity = dr.doseQuantity
    repeat = d.timing.repeat if d.timing is not None else None
    value = number(getattr(quantity, "value", None))
    unit = getattr(quantity, "code", None) if quantity is not None else None
    factor = codemap.spec.dose_units.get(unit or "") \
        if getattr(quantity, "system", None) == codemap.spec.ucum else None
    period_unit = getattr(repeat, "periodUnit", None)
    hours = codemap.spec.period_hours.get(period_unit or "")
    freq = getattr(repeat, "frequency", None) or 1
    period = number(getattr(repeat, "period", None))
    if value is None:
        return "no doseQuantity"
    if factor is None:
        return f"dose unit '{unit}' is not a UCUM unit in the code map"
    if hours is None or period is None or period <= 0:
        return "timing has no period in h, d or wk"
    return value * factor * freq * 24 / (period * hours), period_unit or ""


def adverse_event(e: Entry, index: Index, courses: dict[int, dict[str, Any]],
                  codemap: CodeMap, report: Report) -> None:
    """An AdverseEvent whose event is a mapped symptom and whose suspect is a course."""
    r = e.resource
    m = meaning(codemap, r.event, ("symptom",))
    targets = [index.resolve(s.instance, e.path + ("suspectEntity", i, "instance"))
               for i, s in enumerate(r.suspectEntity or []) if s.instance is not None]
    course = next((courses.get(id(t)) for t in targets if id(t) in courses), None)
    if m is None or course is None:
        report.ignore(e.label, "adverse event without a mapped event or a suspect "
                      "course", warning="An adverse event could not be mapped "
                      f"({shown(r.event)}); check it by hand.")
        return
    events = course.setdefault("adverse_events", [])
    if m.value not in events:
        events.append(m.value)
    report.used.append(f"{e.label}: {m.display} on {course['drug']}")


@dataclass(frozen=True)
class DraftOrder:
    """A CDS Hooks draft MedicationRequest as the order-sign check reads it."""

    drug: str | None          # the catalogue drug (None: not in the code map)
    label: str                # what the card calls the order (its text, or a default)
    dose: Dose | None         # the ordered dose, when it can be read


def read_draft_order(data: dict[str, Any], codemap: CodeMap, path: Path_,
                     report: Report) -> DraftOrder:
    """A draft order (a MedicationRequest as JSON, at `path` in the request) as a
    catalogue drug, the order's label and its dose. What cannot be read is reported."""
    from .entries import validate
    from .models import MedicationRequest
    from .reading import Fail
    try:
        res = validate(MedicationRequest, data, path)
    except Fail as exc:
        raise InputError(exc.message, field=format_path(exc.path)) from None
    e = Entry(res, path, None)
    concept = res.medicationCodeableConcept
    m = meaning(codemap, concept, ("medication",))
    label = concept.text if concept and concept.text else "a draft order"
    dose = read_dose(res.dosageInstruction or [], codemap, e, "dosageInstruction",
                     m.value, report) if m else None
    return DraftOrder(m.value if m else None, label, dose)
