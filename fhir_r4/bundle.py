"""FHIR R4 in: a Bundle (collection, searchset) or a CDS Hooks prefetch object becomes
the same patient record a clinician writes in YAML, plus a report of what was used,
what was ignored and why.

Part of the load stage: what comes out is a Document that the validate stage checks
like any other record, so the two inputs cannot drift. Codes mean what the code map
(rules/fhir-map.yaml) says, nothing else; a value never gets a meaning by guessing.
Unknown stays unknown and the fail-safe rules ask for it. The FHIR models are
fhir.resources' R4B classes (FHIR 4.3, wire-compatible with R4 for every resource read
here), imported only when a FHIR record arrives.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

from .codemap import CodeMap, Meaning
from ..engine.errors import InputError
from ..engine.load import Document, Path_, format_path, is_fhir  # noqa: F401 (re-exported)

# Statuses that make a value count, or say it was never real.
OBS_FINAL = ("final", "amended", "corrected")
CURRENT_MED = ("active", "on-hold")
ENDED_MED = ("completed", "stopped")
NOT_TAKEN = ("entered-in-error", "not-taken", "cancelled", "intended", "draft")
CONDITION_ACTIVE = ("active", "recurrence", "relapse")
CLINICAL_STATUS = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
READ_TYPES = ("Patient", "Observation", "Condition", "MedicationStatement",
              "MedicationRequest", "Medication", "Procedure", "AdverseEvent")
MAX_ENTRIES = 5000


@dataclass
class Report:
    """What an import used and ignored, for `cledecide import fhir` and the result."""

    used: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    # (field, why) for missing_data, (severity, message) for warnings in the result
    missing: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    def ignore(self, where: str, why: str, missing_field: str | None = None,
               warning: str | None = None) -> None:
        self.ignored.append(f"{where}: {why}")
        if missing_field is not None:
            self.missing.append((missing_field, f"{where}: {why}"))
        if warning is not None:
            self.warnings.append(("warning", warning))


@dataclass
class Imported:
    """One patient of a FHIR input: the record (a Document for the validate stage), or
    the error that patient alone met (in a bundle of several, the others still go on)."""

    document: Document | None
    report: Report | None
    label: str = ""
    error: InputError | None = None


class _Fail(Exception):
    def __init__(self, path: Path_, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


# ------------------------------------------------------------------ parsing

@dataclass
class _Entry:
    resource: Any            # a fhir.resources model
    path: Path_              # where it is in the input (for errors and the report)
    full_url: str | None

    @property
    def kind(self) -> str:
        return self.resource.get_resource_type()

    @property
    def label(self) -> str:
        rid = getattr(self.resource, "id", None)
        return f"{format_path(self.path)} ({self.kind}{'/' + rid if rid else ''})"


def _validate(cls: Any, data: Any, path: Path_) -> Any:
    from pydantic import ValidationError
    try:
        return cls.model_validate(data)
    except (KeyError, LookupError, TypeError):  # the models meet a resourceType they lack
        raise _Fail(path, "not valid FHIR R4: an entry names an unknown resourceType") \
            from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if p != "root"
                    and (p != "resource_type" or len(err["loc"]) > 1))
        msg = str(err.get("msg", "invalid")).split("\n")[0].strip()
        if err["type"] == "fhir-validation-wrong-resource-type":
            msg = f"wrong resourceType (expected {cls.__name__})"
        raise _Fail(path + loc, f"not valid FHIR R4: {msg}") from None


def _entries(data: dict[str, Any]) -> tuple[list[_Entry], dt.date | None]:
    """Every resource of the input (nested Bundles flattened) and the Bundle's date."""
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.bundle import Bundle
    if "resourceType" not in data:  # a CDS Hooks prefetch object
        out: list[_Entry] = []
        for key, value in data.items():
            if value is None:
                raise _Fail((key,), "prefetch is null: the EHR did not fetch this data, "
                                    "so the record is incomplete")
            if not isinstance(value, dict) or "resourceType" not in value:
                raise _Fail((key,), "not FHIR: a prefetch value must be a FHIR resource")
            if value["resourceType"] == "Bundle":
                _known_types(value, (key,), get_fhir_model_class)
                out.extend(_bundle_entries(_validate(Bundle, value, (key,)), (key,)))
            else:
                out.append(_Entry(_resource(value, (key,), get_fhir_model_class), (key,),
                                  None))
        return out, None
    kind = data.get("resourceType")
    if kind != "Bundle":
        raise _Fail(("resourceType",), f"wrong resourceType '{kind}': a FHIR Bundle "
                                       "(collection or searchset) is needed")
    _known_types(data, (), get_fhir_model_class)
    bundle = _validate(Bundle, data, ())
    if bundle.type not in ("collection", "searchset", "transaction", "batch", "document"):
        raise _Fail(("type",), f"a Bundle of type '{bundle.type}' holds no patient record")
    stamp = bundle.timestamp.date() if bundle.timestamp is not None else None
    return _bundle_entries(bundle, ()), stamp


def _known_types(bundle: dict[str, Any], base: Path_, lookup: Any) -> None:
    """Name the entry whose resourceType the models do not know (before validating)."""
    entries = bundle.get("entry")
    for i, e in enumerate(entries if isinstance(entries, list) else []):
        resource = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(resource, dict) or "resourceType" not in resource:
            continue
        kind = resource["resourceType"]
        path = base + ("entry", i, "resource", "resourceType")
        try:
            lookup(kind) if isinstance(kind, str) else None
        except (KeyError, LookupError, ValueError):
            raise _Fail(path, f"unknown resourceType '{kind}'") from None
        if not isinstance(kind, str):
            raise _Fail(path, "resourceType must be text")
        if kind == "Bundle":
            _known_types(resource, base + ("entry", i, "resource"), lookup)


def _resource(value: dict[str, Any], path: Path_, lookup: Any) -> Any:
    kind = value.get("resourceType")
    try:
        cls = lookup(kind)
    except (KeyError, ValueError):
        raise _Fail(path + ("resourceType",), f"unknown resourceType '{kind}'") from None
    return _validate(cls, value, path)


def _bundle_entries(bundle: Any, base: Path_) -> list[_Entry]:
    out: list[_Entry] = []
    for i, link in enumerate(bundle.link or []):
        if link.relation == "next":  # a search result of several pages: not all here
            raise _Fail(base + ("link", i), "the Bundle is one page of a search (it has a "
                        "'next' link): the rest of the record is missing")
    entries = bundle.entry or []
    if len(entries) > MAX_ENTRIES:
        raise _Fail(base + ("entry",), f"more than {MAX_ENTRIES} entries")
    for i, e in enumerate(entries):
        path = base + ("entry", i)
        if e.resource is None:
            raise _Fail(path, "Bundle.entry without resource")
        if e.resource.get_resource_type() == "Bundle":
            out.extend(_bundle_entries(e.resource, path + ("resource",)))
            continue
        out.append(_Entry(e.resource, path + ("resource",), e.fullUrl))
    return out


class _Index:
    """References by urn:uuid (fullUrl) and by Type/id, as EHRs write both."""

    def __init__(self, entries: list[_Entry]) -> None:
        self.by_key: dict[str, _Entry] = {}
        for e in entries:
            if e.full_url:
                self.by_key[e.full_url] = e
            rid = getattr(e.resource, "id", None)
            if rid:
                self.by_key[f"{e.kind}/{rid}"] = e
                if e.full_url and not e.full_url.startswith("urn:"):
                    self.by_key[e.full_url.rstrip("/")] = e

    def resolve(self, ref: Any, path: Path_) -> _Entry:
        text = getattr(ref, "reference", None) if ref is not None else None
        if not text:
            raise _Fail(path, "a reference without a 'reference' value")
        found = self.by_key.get(text)
        if found is None and "/" in text and not text.startswith("urn:"):
            parts = text.rstrip("/").split("/")
            if "_history" in parts:
                parts = parts[:parts.index("_history")]
            found = self.by_key.get("/".join(parts[-2:]))
        if found is None:
            raise _Fail(path, f"reference to a missing resource: {text}")
        return found


# ------------------------------------------------------------------ helpers

def _codings(concept: Any) -> list[Any]:
    return list(getattr(concept, "coding", None) or []) if concept is not None else []


def _meaning(codemap: CodeMap, concept: Any, sections: Iterable[str]) -> Meaning | None:
    """The first coding the map knows in one of the sections (several codings per
    concept are normal: a standard code and a local one)."""
    wanted = tuple(sections)
    for c in _codings(concept):
        m = codemap.meaning(c.system, c.code)
        if m is not None and m.section in wanted:
            return m
    return None


def _shown(concept: Any) -> str:
    codes = [f"{c.system or '?'}|{c.code or '?'}" + (f" '{c.display}'" if c.display else "")
             for c in _codings(concept)]
    text = getattr(concept, "text", None) if concept is not None else None
    return ", ".join(codes) or (f"text '{text}'" if text else "no code")


def _answer(codemap: CodeMap, concept: Any, answers: dict[str, Any]) -> tuple[bool, Any]:
    for c in _codings(concept):
        for key, value in answers.items():
            name, code = key.split("#", 1)
            if codemap.uri(name) == c.system and code == c.code:
                return True, value
    return False, None


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _when(resource: Any) -> dt.date | None:
    for name in ("effectiveDateTime", "occurrenceDateTime", "performedDateTime", "date"):
        got = _date(getattr(resource, name, None))
        if got is not None:
            return got
    for name in ("effectivePeriod", "performedPeriod"):
        period = getattr(resource, name, None)
        if period is not None and period.start is not None:
            return _date(period.start)
    return _date(getattr(resource, "issued", None))


def _number(value: Any) -> float | None:
    if isinstance(value, (Decimal, int, float)) and not isinstance(value, bool):
        f = float(value)
        return f if math.isfinite(f) else None
    return None


def _clean(value: float) -> float | int:
    rounded = round(value, 6)
    return int(rounded) if rounded == int(rounded) and abs(rounded) < 1e15 else rounded


def _age(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _set(record: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = record
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


# ------------------------------------------------------------------ the import

def import_fhir(doc: Document, codemap: CodeMap, as_of: dt.date | None = None
                ) -> list[Imported]:
    """Every Patient of a FHIR input as a record Document with its report. A malformed
    input raises InputError naming the file, the JSON path (and line) and the problem."""
    try:
        entries, stamp = _entries(doc.data)
        patients = [e for e in entries if e.kind == "Patient"]
        if not patients:
            raise _Fail((), "no Patient resource in the FHIR input")
        index = _Index(entries)
        when = as_of or stamp or dt.date.today()
        out = []
        for p in patients:
            label = str(getattr(p.resource, "id", None) or format_path(p.path))
            try:
                record, report = _one_patient(p, entries, index, codemap, when,
                                              as_of is None and stamp is None,
                                              len(patients))
            except _Fail as exc:
                if len(patients) == 1:
                    raise
                out.append(Imported(None, None, label, InputError(
                    exc.message, doc.file, doc.line_of(exc.path),
                    format_path(exc.path) or None)))
                continue
            out.append(Imported(Document(doc.file, record, {(): doc.line_of(p.path) or 1},
                                         doc.sha256), report, label))
        return out
    except _Fail as exc:
        raise InputError(exc.message, doc.file, doc.line_of(exc.path),
                         format_path(exc.path) or None) from None


def _subject(e: _Entry) -> Any:
    for name in ("subject", "patient"):
        ref = getattr(e.resource, name, None)
        if ref is not None:
            return ref, name
    return None, None


def _belongs(e: _Entry, patient: _Entry, index: _Index, only: bool, report: Report) -> bool:
    ref, name = _subject(e)
    if ref is None:
        if only:
            return True
        report.ignore(e.label, "no subject, and the bundle holds several patients")
        return False
    return index.resolve(ref, e.path + (name,)) is patient


def _one_patient(p: _Entry, entries: list[_Entry], index: _Index, codemap: CodeMap,
                 as_of: dt.date, today: bool, count: int) -> tuple[dict[str, Any], Report]:
    report = Report()
    res = p.resource
    if not res.id:
        raise _Fail(p.path + ("id",), "Patient.id is missing: the result names the patient")
    if res.birthDate is None or _date(res.birthDate) is None:
        raise _Fail(p.path + ("birthDate",), "Patient.birthDate (a full date) is needed "
                                             "for the age")
    if res.gender not in ("female", "male"):
        raise _Fail(p.path + ("gender",), f"Patient.gender is '{res.gender}': the safety "
                                          "rules need female or male (pregnancy prevention)")
    birth = _date(res.birthDate)
    assert birth is not None
    if birth > as_of:
        raise _Fail(p.path + ("birthDate",), f"birthDate {birth} is after as_of {as_of}")
    record: dict[str, Any] = {"id": res.id, "as_of": as_of.isoformat(),
                              "demographics": {"age": _age(birth, as_of), "sex": res.gender}}
    report.used.append(f"{p.label}: id, age {record['demographics']['age']} from birthDate "
                       f"on {as_of}, sex {res.gender}")
    report.used.append(f"as_of {as_of}: " + ("today's date (the input gives no "
                       "Bundle.timestamp)" if today else "from the input"))
    mine = [e for e in entries if e is not p and e.kind != "Medication"
            and _belongs(e, p, index, count == 1, report)]
    for e in entries:
        if e.kind not in READ_TYPES:
            report.ignore(e.label, f"{e.kind} is not read by cledecide")
    meds = {id(e): e for e in mine if e.kind in ("MedicationStatement", "MedicationRequest")}
    courses: dict[int, dict[str, Any]] = {}
    for e in mine:
        if id(e) in meds:
            course = _course(e, index, codemap, as_of, report)
            if course is not None:
                courses[id(e)] = course
    _overlaps(courses, meds, report)
    facts = _Facts(record, report, codemap, as_of)
    for e in mine:
        if e.kind == "Observation":
            facts.observation(e, index, courses, meds)
        elif e.kind == "Condition":
            facts.condition(e)
        elif e.kind == "Procedure":
            facts.procedure(e)
        elif e.kind == "AdverseEvent":
            facts.adverse_event(e, index, courses)
        elif e.kind == "Patient":
            report.ignore(e.label, "another Patient")
    facts.finish()
    if courses:
        record["treatments"] = sorted(courses.values(), key=lambda c: (c["start"], c["drug"]))
    return record, report


def _overlaps(courses: dict[int, dict[str, Any]], meds: dict[int, _Entry],
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


def _course(e: _Entry, index: _Index, codemap: CodeMap, as_of: dt.date,
            report: Report) -> dict[str, Any] | None:
    r = e.resource
    status = r.status
    concept = r.medicationCodeableConcept
    if concept is None and r.medicationReference is not None:
        med = index.resolve(r.medicationReference, e.path + ("medicationReference",))
        concept = getattr(med.resource, "code", None)
    if status in NOT_TAKEN:
        report.ignore(e.label, f"status {status}: not taken")
        return None
    meaning = _meaning(codemap, concept, ("medication",))
    if meaning is None:
        report.ignore(e.label, f"medication not in the code map ({_shown(concept)})",
                      "treatments", f"A medication could not be mapped ({_shown(concept)}, "
                      "status " + str(status) + "): the suggestion does not take it into "
                      "account; check it by hand.")
        return None
    drug = meaning.value
    if status not in CURRENT_MED + ENDED_MED:
        report.ignore(e.label, f"{drug}: status '{status}' says neither current nor ended",
                      "treatments", f"{drug}: the EHR's status '{status}' does not say "
                      "whether the course is current; it was not counted.")
        return None
    if e.kind == "MedicationStatement":
        start = _date(r.effectiveDateTime) or _date(getattr(r.effectivePeriod, "start", None))
        end = _date(getattr(r.effectivePeriod, "end", None))
        dosages = r.dosage or []
        dose_path = "dosage"
        reasons = r.statusReason or []
    else:
        validity = getattr(r.dispenseRequest, "validityPeriod", None) if r.dispenseRequest else None
        start = _date(getattr(validity, "start", None)) or _date(r.authoredOn)
        end = _date(getattr(validity, "end", None))
        dosages = r.dosageInstruction or []
        dose_path = "dosageInstruction"
        reasons = [r.statusReason] if r.statusReason is not None else []
    if start is None:
        raise _Fail(e.path + ("effectivePeriod",), f"{drug}: the course has no start date "
                    "(a full date); trials, washouts and doses depend on it")
    course: dict[str, Any] = {"drug": drug, "start": start.isoformat()}
    if status in ENDED_MED:
        if end is None:
            raise _Fail(e.path + ("status",), f"{drug}: status is {status} but the course "
                        "has no end date; washout windows depend on it")
        course["stop"] = end.isoformat()
    elif end is not None and end <= as_of:
        course["stop"] = end.isoformat()
    for reason in reasons:
        ok, word = _answer(codemap, reason, {k: w for w, entries in
                                             codemap.spec.stop_reasons.items()
                                             for k in (x.code for x in entries)})
        if ok and "stop" in course:
            course["stop_reason"] = word
        elif not ok:
            report.ignore(f"{e.label}.statusReason", f"not in the code map ({_shown(reason)})")
    dose = _dose(dosages, codemap, e, dose_path, drug, report)
    if dose is not None:
        course[dose[0]] = dose[1]
    report.used.append(f"{e.label}: {drug} from {course['start']}"
                       + (f" to {course['stop']}" if "stop" in course else " (current)")
                       + (f", {dose[1]} {'mg/week' if dose[0].endswith('week') else 'mg/day'}"
                          if dose else ""))
    return course


def _dose(dosages: list[Any], codemap: CodeMap, e: _Entry, path: str, drug: str,
          report: Report) -> tuple[str, float | int] | None:
    """mg per day or per week from doseAndRate and timing; several dosage lines (e.g.
    alternate days) add up. Anything unreadable leaves the dose unknown, reported."""
    if not dosages:
        return None
    per_day = 0.0
    weekly = daily = False
    for i, d in enumerate(dosages):
        where = f"{format_path(e.path)}.{path}[{i}]"
        quantity = None
        for dr in d.doseAndRate or []:
            if dr.doseQuantity is not None:
                quantity = dr.doseQuantity
        repeat = d.timing.repeat if d.timing is not None else None
        value = _number(getattr(quantity, "value", None))
        unit = getattr(quantity, "code", None) if quantity is not None else None
        factor = codemap.spec.dose_units.get(unit or "") \
            if getattr(quantity, "system", None) == codemap.spec.ucum else None
        period_unit = getattr(repeat, "periodUnit", None)
        hours = codemap.spec.period_hours.get(period_unit or "")
        freq = getattr(repeat, "frequency", None) or 1
        period = _number(getattr(repeat, "period", None))
        problem = None
        if value is None:
            problem = "no doseQuantity"
        elif factor is None:
            problem = f"dose unit '{unit}' is not a UCUM unit in the code map"
        elif hours is None or period is None or period <= 0:
            problem = "timing has no period in h, d or wk"
        if problem:
            report.ignore(where, f"{drug}: {problem}; the dose stays unknown",
                          "treatments", None)
            return None
        assert value is not None and factor is not None and hours is not None and period
        if period_unit == "wk":
            weekly = True
        else:
            daily = True
        per_day += value * factor * freq * 24 / (period * hours)
    if weekly and daily:
        report.ignore(f"{format_path(e.path)}.{path}", f"{drug}: daily and weekly lines "
                      "mixed; the dose stays unknown", "treatments")
        return None
    if per_day <= 0:
        return None
    if weekly:
        return "dose_mg_per_week", _clean(per_day * 7)
    return "dose_mg_per_day", _clean(per_day)


class _Facts:
    """Observations, Conditions, Procedures and AdverseEvents onto one record."""

    def __init__(self, record: dict[str, Any], report: Report, codemap: CodeMap,
                 as_of: dt.date) -> None:
        self.record, self.report, self.map, self.as_of = record, report, codemap, as_of
        self.latest: dict[str, tuple[dt.date, Any, str]] = {}
        self.tests: set[dt.date] = set()
        self.positive: dt.date | None = None
        self.unmapped_conditions: list[str] = []
        self.clasi: dict[dt.date, dict[str, float]] = {}
        self.conditions: set[str] = set()
        self.symptoms: set[str] = set()
        self.subtypes: dict[str, str] = {}
        self.sle: Any = None
        self.exams: list[dict[str, str]] = []

    # Observations
    def observation(self, e: _Entry, index: _Index, courses: dict[int, dict[str, Any]],
                    meds: dict[int, _Entry]) -> None:
        r = e.resource
        m = _meaning(self.map, r.code, ("observation", "clasi", "response"))
        if m is None:
            self.report.ignore(e.label, f"code not in the code map ({_shown(r.code)})")
            return
        if r.status not in OBS_FINAL:
            self.report.ignore(e.label, f"{m.display}: status {r.status} (only final, "
                               "amended or corrected results count)",
                               m.value if m.section == "observation" else None)
            return
        when = _when(r)
        if when is None:
            self.report.ignore(e.label, f"{m.display}: no full effective date",
                               m.value if m.section == "observation" else None)
            return
        if when > self.as_of:
            self.report.ignore(e.label, f"{m.display}: dated {when}, after as_of {self.as_of}")
            return
        if m.section == "clasi":
            value = _number(r.valueQuantity.value) if r.valueQuantity is not None else \
                _number(getattr(r, "valueInteger", None))
            if value is None:
                self.report.ignore(e.label, "CLASI without a number", "activity")
                return
            self.clasi.setdefault(when, {})[m.value] = value
            self.report.used.append(f"{e.label}: CLASI {m.value} {_clean(value)} on {when}")
            return
        if m.section == "response":
            self._response(e, index, courses, meds)
            return
        spec = self.map.spec.observations[m.value]
        value = self._value(e, m, spec)
        if value is _NOTHING:
            return
        if spec.many:
            if value == "negative":
                self.tests.add(when)
                self.report.used.append(f"{e.label}: negative pregnancy test on {when}")
            else:
                self.positive = max(self.positive or when, when)
                self.report.used.append(f"{e.label}: pregnancy test {value} on {when}")
            return
        old = self.latest.get(m.value)
        if old is None or when >= old[0]:
            if old is not None:
                self.report.ignore(old[2], f"{m.display}: a later value exists")
            self.latest[m.value] = (when, value, e.label)
        else:
            self.report.ignore(e.label, f"{m.display}: a later value exists")

    def _value(self, e: _Entry, m: Meaning, spec: Any) -> Any:
        r = e.resource
        if spec.kind == "quantity":
            q = r.valueQuantity
            value = _number(getattr(q, "value", None))
            if q is None or value is None:
                self.report.ignore(e.label, f"{m.display}: no valueQuantity", m.value)
                return _NOTHING
            if q.comparator is not None:  # "<0.5": the value is a bound, not a result
                self.report.ignore(e.label, f"{m.display}: the value is '{q.comparator}"
                                   f"{_clean(value)}', a bound, not a result; not used",
                                   m.value)
                return _NOTHING
            factor = spec.units.get(q.code or "") if q.system == self.map.spec.ucum else None
            if factor is None:
                self.report.ignore(e.label, f"{m.display}: unit '{q.code or q.unit}' "
                                   f"(system {q.system}) is not a UCUM unit the code map "
                                   "converts; the value is not used", m.value)
                return _NOTHING
            return _clean(value * factor)
        if spec.kind == "boolean":
            if not isinstance(r.valueBoolean, bool):
                self.report.ignore(e.label, f"{m.display}: no valueBoolean", m.value)
                return _NOTHING
            return r.valueBoolean
        if spec.kind == "date":
            got = _date(r.valueDateTime)
            if got is None:
                self.report.ignore(e.label, f"{m.display}: no full valueDateTime", m.value)
                return _NOTHING
            return got.isoformat()
        if spec.kind == "text":
            if not r.valueString:
                self.report.ignore(e.label, f"{m.display}: no valueString", m.value)
                return _NOTHING
            return r.valueString
        ok, value = _answer(self.map, r.valueCodeableConcept, spec.answers)
        if not ok:
            self.report.ignore(e.label, f"{m.display}: answer not in the code map "
                               f"({_shown(r.valueCodeableConcept)}); stays unknown", m.value)
            return _NOTHING
        return value

    def _response(self, e: _Entry, index: _Index, courses: dict[int, dict[str, Any]],
                  meds: dict[int, _Entry]) -> None:
        r = e.resource
        ok, word = _answer(self.map, r.valueCodeableConcept,
                           self.map.spec.course_response.answers)
        targets = [index.resolve(f, e.path + ("focus", i)) for i, f in enumerate(r.focus or [])]
        course = next((courses.get(id(t)) for t in targets if id(t) in courses), None)
        if not ok or course is None:
            self.report.ignore(e.label, "course response without a mapped answer or a "
                               "focus on a mapped course")
            return
        course["response"] = word
        self.report.used.append(f"{e.label}: {course['drug']} response {word}")

    # Conditions
    def condition(self, e: _Entry) -> None:
        r = e.resource
        m = _meaning(self.map, r.code, ("subtype", "sle", "comorbidity", "symptom"))
        clinical = next((c.code for c in _codings(r.clinicalStatus)
                         if c.system == CLINICAL_STATUS), None)
        if m is None:
            self.report.ignore(e.label, f"code not in the code map ({_shown(r.code)})")
            if clinical in CONDITION_ACTIVE or clinical is None:
                self.unmapped_conditions.append(_shown(r.code))
            return
        verified = next((c.code for c in _codings(r.verificationStatus)
                         if c.system == VERIFICATION), None)
        if m.section == "sle" and verified == "refuted":
            self.sle = False
            self.report.used.append(f"{e.label}: SLE refuted")
            return
        if clinical not in CONDITION_ACTIVE or verified != "confirmed":
            warn = None
            if m.section == "comorbidity" and verified in ("provisional", "differential",
                                                           "unconfirmed", None) \
                    and clinical in CONDITION_ACTIVE:
                warn = (f"{m.display} is recorded as {verified or 'unverified'}, not "
                        "confirmed; it was not counted: confirm or refute it.")
            self.report.ignore(e.label, f"{m.display}: clinical status {clinical}, "
                               f"verification {verified} (only active, confirmed count)",
                               warning=warn)
            return
        if m.section == "subtype":
            self.subtypes[m.value] = e.label
        elif m.section == "sle":
            if self.sle is not False:
                self.sle = True
        elif m.section == "comorbidity":
            self.conditions.add(m.value)
        else:
            self.symptoms.add(m.value)
        self.report.used.append(f"{e.label}: {m.display}")

    def procedure(self, e: _Entry) -> None:
        r = e.resource
        m = _meaning(self.map, r.code, ("eye_exam",))
        if m is None:
            self.report.ignore(e.label, f"code not in the code map ({_shown(r.code)})")
            return
        when = _when(r)
        ok, result = _answer(self.map, r.outcome, self.map.spec.eye_exam.outcomes)
        if r.status != "completed" or when is None or not ok:
            self.report.ignore(e.label, "retinal exam not completed, undated or without a "
                               "mapped outcome (normal or toxicity)", "eye_exams")
            return
        self.exams.append({"date": when.isoformat(), "result": result})
        self.report.used.append(f"{e.label}: retinal exam {result} on {when}")

    def adverse_event(self, e: _Entry, index: _Index, courses: dict[int, dict[str, Any]]
                      ) -> None:
        r = e.resource
        m = _meaning(self.map, r.event, ("symptom",))
        targets = [index.resolve(s.instance, e.path + ("suspectEntity", i, "instance"))
                   for i, s in enumerate(r.suspectEntity or []) if s.instance is not None]
        course = next((courses.get(id(t)) for t in targets if id(t) in courses), None)
        if m is None or course is None:
            self.report.ignore(e.label, "adverse event without a mapped event or a suspect "
                               "course", warning="An adverse event could not be mapped "
                               f"({_shown(r.event)}); check it by hand.")
            return
        events = course.setdefault("adverse_events", [])
        if m.value not in events:
            events.append(m.value)
        self.report.used.append(f"{e.label}: {m.display} on {course['drug']}")

    def _positive_test(self) -> None:
        """A positive pregnancy test on or after the latest recorded status (or with
        none) leaves pregnancy unknown, never 'not pregnant': the teratogen rules block
        and ask. Negative tests up to that day no longer count."""
        if self.positive is None:
            return
        status = self.latest.get("reproductive.pregnant")
        if status is not None and (status[0] > self.positive or status[1] is True):
            return
        _set(self.record, "reproductive.pregnant", "unknown")
        self.tests = {d for d in self.tests if d > self.positive}
        self.report.missing.append(("reproductive.pregnant", f"a pregnancy test on "
                                    f"{self.positive} was positive and no later status "
                                    "says pregnant or not"))
        self.report.warnings.append(("critical", f"A pregnancy test on {self.positive} was "
                                     "positive: confirm pregnancy status before any "
                                     "teratogenic drug; pregnancy is treated as unknown."))

    def finish(self) -> None:
        rec = self.record
        if self.unmapped_conditions:  # one line for all: the list can be long
            shown = "; ".join(self.unmapped_conditions[:5])
            more = len(self.unmapped_conditions) - 5
            self.report.warnings.append((
                "warning", f"{len(self.unmapped_conditions)} active condition(s) are not "
                f"in the code map and were not considered: {shown}"
                + (f"; and {more} more" if more > 0 else "")
                + ". Check them by hand for contraindications."))
        if len(self.subtypes) != 1:
            if not self.subtypes:
                raise _Fail((), "no active, confirmed cutaneous lupus Condition with a "
                                "subtype in the code map")
            raise _Fail((), "several active CLE subtypes (" + ", ".join(sorted(
                self.subtypes)) + "): the record needs the one being treated")
        subtype = next(iter(self.subtypes))
        diagnosis: dict[str, Any] = {"subtype": subtype,
                                     "systemic_lupus": "unknown" if self.sle is None else self.sle}
        rec["diagnosis"] = diagnosis
        for name, (when, value, label) in sorted(self.latest.items()):
            self.report.used.append(f"{label}: {name} = {value} ({when})")
            if name.startswith("labs."):
                _set(rec, name, {"value": value, "date": when.isoformat()})
            else:
                _set(rec, name, value)
        self._positive_test()
        if "extent" not in diagnosis:
            diagnosis["extent"] = "unknown"
            self.report.missing.append(("diagnosis.extent", "no Observation records the "
                                        "extent (localized or widespread)"))
        if self.tests:
            _set(rec, "reproductive.negative_pregnancy_tests",
                 [d.isoformat() for d in sorted(self.tests)])
        if self.clasi:
            activity = []
            for when, scores in sorted(self.clasi.items()):
                if "activity" not in scores:
                    self.report.ignore(f"CLASI on {when}", "damage without activity",
                                       "activity")
                    continue
                item: dict[str, Any] = {"date": when.isoformat(),
                                        "clasi_activity": _clean(scores["activity"])}
                if "damage" in scores:
                    item["clasi_damage"] = _clean(scores["damage"])
                activity.append(item)
            rec["activity"] = activity
        if self.conditions:
            rec["conditions"] = sorted(self.conditions)
        if self.symptoms:
            rec["symptoms"] = sorted(self.symptoms)
        if self.exams:
            rec["eye_exams"] = sorted(self.exams, key=lambda x: (x["date"], x["result"]))


_NOTHING = object()
