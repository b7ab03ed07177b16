"""MedicationStatement and MedicationRequest become courses (drug, start, stop, dose,
stop reason) or, for contraceptives, the contraception method in use; AdverseEvents
attach to the course they suspect; a CDS Hooks draft order is read as a catalogue drug
and a dose (`read_draft_order`, the service's entry point).

A product code (RxNorm SCD, SBD, brand) means its ingredient's drug; its strength turns
a dose of '2 TAB' into mg. A medication whose code is not in the map but whose words
name a catalogue drug is that drug for the safety rules, never for advice: the course
counts (no 'start' of a drug already taken), its dose is not read, and a warning says it
was recognised by name. A course counts as it stood on `as_of`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .codemap import CodeMap, Meaning
from .entries import Index
from .reading import Entry, Fail, Report, answer, clean, date_of, meaning, name_match, \
    number, shown, texts
from ..engine.errors import InputError
from ..engine.load import Path_, format_path

CURRENT_MED = ("active", "on-hold")
ENDED_MED = ("completed", "stopped")
NOT_TAKEN = ("entered-in-error", "not-taken", "cancelled", "intended", "draft")
NOT_A_COURSE = ("proposal", "plan", "option")   # MedicationRequest.intent
MED_TYPES = ("MedicationStatement", "MedicationRequest")

Dose = tuple[str, "float | int"]   # ("dose_mg_per_day" or "dose_mg_per_week", value)


@dataclass(frozen=True)
class Unit:
    """What one tablet or capsule of the product is, and how its mg count."""

    mg: float | None = None
    form: str | None = None
    equivalence: tuple[float, float] | None = None   # a mg of it ~ b mg of the drug
    comparable: bool = True
    drug_text: str = ""


@dataclass
class Contraceptive:
    method: str
    oestrogen: bool
    start: dt.date | None
    current: bool
    label: str


@dataclass
class Medications:
    """What a patient's medication records say: courses (by the entry's id()), the
    records themselves (others point at a course), and contraception in use."""

    courses: dict[int, dict[str, Any]]
    records: dict[int, Entry]
    contraception: list[Contraceptive]


def read_courses(mine: list[Entry], index: Index, codemap: CodeMap, as_of: dt.date,
                 report: Report) -> Medications:
    out = Medications({}, {id(e): e for e in mine if e.kind in MED_TYPES}, [])
    for e in mine:
        if id(e) in out.records:
            course = _course(e, index, codemap, as_of, report, out.contraception)
            if course is not None:
                out.courses[id(e)] = course
    _overlaps(out.courses, out.records, report)
    return out


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


def _identify(e: Entry, index: Index | None, codemap: CodeMap
              ) -> tuple[Any, Meaning | None, str | None, Unit]:
    """The medication's concept, its meaning in the map, the drug its words name (when
    the code is not in the map) and the strength of one unit. Without an index (a draft
    order), only a contained Medication is followed."""
    r = e.resource
    concept, med = r.medicationCodeableConcept, None
    ref = r.medicationReference
    if concept is None and ref is not None:
        if index is not None or (ref.reference or "").startswith("#"):
            med = (index or Index([])).resolve(ref, e.path + ("medicationReference",), e)
            concept = getattr(med.resource, "code", None)
    words = texts(concept) + ([ref.display] if ref is not None and ref.display else [])
    found = meaning(codemap, concept, ("medication", "contraceptive"))
    by_name = name_match(codemap, words) if found is None else None
    return concept, found, by_name, _unit(found, med, codemap)


def _course(e: Entry, index: Index, codemap: CodeMap, as_of: dt.date, report: Report,
            contraception: list[Contraceptive]) -> dict[str, Any] | None:
    r = e.resource
    status = r.status
    if status in NOT_TAKEN:
        report.ignore(e.label, f"status {status}: not taken")
        return None
    if e.kind == "MedicationRequest" and r.intent in NOT_A_COURSE:
        report.ignore(e.label, f"intent {r.intent}: a {r.intent} is not a course taken")
        return None
    concept, found, by_name, unit = _identify(e, index, codemap)
    if found is not None and found.section == "contraceptive":
        _contraceptive(e, found, as_of, report, contraception)
        return None
    if found is None and by_name is None:
        report.ignore(e.label, f"medication not in the code map ({shown(concept)})",
                      "treatments", f"A medication could not be mapped ({shown(concept)}, "
                      "status " + str(status) + "): the suggestion does not take it into "
                      "account; check it by hand.")
        return None
    drug = found.value if found is not None else str(by_name)
    if status not in CURRENT_MED + ENDED_MED:
        report.ignore(e.label, f"{drug}: status '{status}' says neither current nor ended",
                      "treatments", f"{drug}: the EHR's status '{status}' does not say "
                      "whether the course is current; it was not counted.")
        return None
    course = _period(e, drug, status, as_of, report)
    if course is None:
        return None
    start, end, dosages, dose_path, reasons = _period_and_dosage(e)
    _stop_reason(e, reasons, codemap, course, report)
    dose = None
    if by_name is not None:
        report.warnings.append(("warning", f"{e.label}: '{'; '.join(texts(concept)) or '?'}' was "
                                f"recognised by name as {drug} (its code is not in the code "
                                "map): it is checked against the safety rules as "
                                f"{drug}; its dose was not read. Check the record."))
    else:
        dose = read_dose(dosages, codemap, e, dose_path, drug, report, unit)
    if dose is not None:
        course[dose[0]] = dose[1]
    report.used.append(f"{e.label}: {drug} from {course['start']}"
                       + (f" to {course['stop']}" if "stop" in course else " (current)")
                       + (f", {dose[1]} {'mg/week' if dose[0].endswith('week') else 'mg/day'}"
                          if dose else "") + (" (by name)" if by_name else ""))
    return course


def _period(e: Entry, drug: str, status: str, as_of: dt.date, report: Report
            ) -> dict[str, Any] | None:
    """The course's start and stop as they stood on as_of (None: not started by then)."""
    start, end, *_ = _period_and_dosage(e)
    if start is None:
        raise Fail(e.path + ("effectivePeriod",), f"{drug}: the course has no start date "
                   "(a full date); trials, washouts and doses depend on it")
    if start > as_of:
        report.ignore(e.label, f"{drug}: starts {start}, after as_of {as_of}")
        return None
    course: dict[str, Any] = {"drug": drug, "start": start.isoformat()}
    if end is not None and end > as_of:
        if status in ENDED_MED:
            report.used.append(f"{e.label}: {drug} {status}, but ends {end}, after as_of "
                               f"{as_of}: current on as_of")
    elif end is not None:
        course["stop"] = end.isoformat()
    elif status in ENDED_MED:
        course["stop"] = as_of.isoformat()
        report.missing.append(("treatments", f"{e.label}: {drug} is {status} with no end "
                               f"date: read as ended by as_of {as_of} (the latest it can "
                               "be, so washout windows are not cut short); record the stop "
                               "date"))
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


def _contraceptive(e: Entry, found: Meaning, as_of: dt.date, report: Report,
                   out: list[Contraceptive]) -> None:
    start, end, *_ = _period_and_dosage(e)
    status = e.resource.status
    current = status in CURRENT_MED and (start is None or start <= as_of) \
        and (end is None or end > as_of)
    entry = found.entry
    out.append(Contraceptive(entry.method, entry.oestrogen, start, current, e.label))
    report.used.append(f"{e.label}: contraceptive {entry.method} ({found.display}), "
                       + ("in use" if current else f"not in use on as_of (status {status})"))


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


def _unit(found: Meaning | None, med: Entry | None, codemap: CodeMap) -> Unit:
    """A product's strength per unit: from the map's product entry, else from the
    Medication's single ingredient strength (mg per tablet or capsule)."""
    entry = found.entry if found is not None else None
    mg = getattr(entry, "unit_mg", None)
    form = getattr(entry, "form", None)
    if mg is None and med is not None:
        ingredients = getattr(med.resource, "ingredient", None) or []
        strength = ingredients[0].strength if len(ingredients) == 1 else None
        num = getattr(strength, "numerator", None)
        den = getattr(strength, "denominator", None)
        den_form = _unit_form(den, codemap) if den is not None else None
        if num is not None and number(num.value) and num.system == codemap.spec.ucum \
                and num.code == "mg" and den_form and number(den.value) == 1:
            mg, form = number(num.value), den_form
    return Unit(mg, form, getattr(entry, "dose_equivalence", None),
                getattr(entry, "dose_comparable", True), getattr(entry, "display", ""))


def _unit_form(q: Any, codemap: CodeMap) -> str | None:
    """'tablet' or 'capsule' when a quantity counts tablets or capsules, else None."""
    keys = {(q.code or "").strip().lower(), (q.unit or "").strip().lower()}
    for form, words in codemap.spec.unit_doses.items():
        for w in words:
            if "#" in w:
                name, code = w.split("#", 1)
                if q.system == codemap.spec.systems.get(name) and q.code == code:
                    return form
            elif w in keys:
                return form
    return None


def read_dose(dosages: list[Any], codemap: CodeMap, e: Entry, path: str, drug: str,
              report: Report, unit: Unit | None = None) -> Dose | None:
    """mg per day or per week from doseAndRate and timing; several dosage lines (e.g.
    alternate days) add up. Anything unreadable leaves the dose unknown, reported."""
    if not dosages:
        return None
    unit = unit or Unit()
    if not unit.comparable:
        report.ignore(f"{format_path(e.path)}.{path}", f"{drug}: {unit.drug_text} is not "
                      f"comparable mg for mg with other {drug}; the dose stays unknown",
                      "treatments")
        return None
    per_day = 0.0
    weekly = daily = False
    for i, d in enumerate(dosages):
        line = _dose_line(d, codemap, unit)
        if isinstance(line, str):
            report.ignore(f"{format_path(e.path)}.{path}[{i}]",
                          f"{drug}: {line}; the dose stays unknown", "treatments", None)
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
    if unit.equivalence is not None:
        a, b = unit.equivalence
        report.used.append(f"{e.label}: {unit.drug_text} {clean(per_day)} mg/day read as "
                           f"{clean(per_day * b / a)} mg/day of {drug} ({a:g} mg ~ {b:g} mg, "
                           "the code map's dose_equivalence)")
        per_day = per_day * b / a
    if weekly:
        return "dose_mg_per_week", clean(per_day * 7)
    return "dose_mg_per_day", clean(per_day)


def _dose_line(d: Any, codemap: CodeMap, unit: Unit) -> tuple[float, str] | str:
    """One dosage line as (mg per day, the timing's period unit), or the problem."""
    quantity = None
    for dr in d.doseAndRate or []:
        if dr.doseQuantity is not None:
            quantity = dr.doseQuantity
    value = number(getattr(quantity, "value", None))
    if quantity is None or value is None:
        return "no doseQuantity"
    mg = _mg_per_dose(quantity, value, codemap, unit)
    if isinstance(mg, str):
        return mg
    timing = _timing(d.timing, codemap)
    if timing is None:
        return "timing has no period in h, d or wk (nor a timing code the map knows)"
    freq, period, period_unit = timing
    hours = codemap.spec.period_hours[period_unit]
    return mg * freq * 24 / (period * hours), period_unit


def _mg_per_dose(q: Any, value: float, codemap: CodeMap, unit: Unit) -> float | str:
    if q.system == codemap.spec.ucum and q.code in codemap.spec.dose_units:
        return value * codemap.spec.dose_units[q.code]
    form = _unit_form(q, codemap)
    if form is not None:
        if unit.mg is None:
            return (f"a dose of {value:g} {q.unit or q.code} without the {form}'s strength "
                    "(neither the product code nor the Medication gives it)")
        if unit.form not in (None, form):
            return f"a dose in {form}s of a {unit.form} product"
        return value * unit.mg
    if q.code is None and q.unit is None:
        return f"a dose of {value:g} without a unit"
    return f"dose unit '{q.code or q.unit}' is not a UCUM unit in the code map"


def _timing(timing: Any, codemap: CodeMap) -> tuple[int, float, str] | None:
    repeat = getattr(timing, "repeat", None)
    period = number(getattr(repeat, "period", None))
    period_unit = getattr(repeat, "periodUnit", None)
    if period is not None and period > 0 and period_unit in codemap.spec.period_hours:
        return getattr(repeat, "frequency", None) or 1, period, period_unit
    code = getattr(timing, "code", None)
    found = meaning(codemap, code, ("timing",)) if code is not None else None
    if found is not None and repeat is None:
        t = found.entry
        return t.frequency, t.period, t.period_unit
    return None


def adverse_event(e: Entry, index: Index, courses: dict[int, dict[str, Any]],
                  codemap: CodeMap, report: Report, as_of: dt.date) -> None:
    """An AdverseEvent whose event is a mapped symptom and whose suspect is a course."""
    r = e.resource
    on = date_of(r.date)
    if on is not None and on > as_of:
        report.ignore(e.label, f"adverse event dated {on}, after as_of {as_of}")
        return
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

    drug: str | None          # the catalogue drug (None: neither its code nor its words)
    label: str                # what the card calls the order (its text, or a default)
    dose: Dose | None         # the ordered dose, when it can be read
    by_name: bool = False     # recognised by its words, not its code: say so on the card


def read_draft_order(data: dict[str, Any], codemap: CodeMap, path: Path_,
                     report: Report) -> DraftOrder:
    """A draft order (a MedicationRequest as JSON, at `path` in the request) as a
    catalogue drug, the order's label and its dose. A code not in the map whose words
    name a catalogue drug is that drug (by_name: checked against every safety rule, its
    dose not read). Malformed: InputError naming the element."""
    from .entries import validate
    from .models import MedicationRequest
    try:
        res = validate(MedicationRequest, data, path)
        e = Entry(res, path, None)
        concept, found, by_name, unit = _identify(e, None, codemap)
    except Fail as exc:
        raise InputError(exc.message, field=format_path(exc.path)) from None
    label = concept.text if concept is not None and concept.text else "a draft order"
    if found is not None and found.section == "medication":
        dose = read_dose(res.dosageInstruction or [], codemap, e, "dosageInstruction",
                         found.value, report, unit)
        return DraftOrder(found.value, label, dose)
    if by_name is not None:
        return DraftOrder(by_name, label, None, True)
    return DraftOrder(None, label, None)

