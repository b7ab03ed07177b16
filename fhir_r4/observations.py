"""Observations: the latest final value of each mapped field (labs with their dates),
every negative pregnancy test, CLASI scores by date, and the clinician's judgement of a
course (an Observation whose focus is the course)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from .codemap import CodeMap, Meaning
from .entries import Index
from .reading import Entry, Report, answer, clean, date_of, meaning, number, set_field, \
    shown, when

OBS_FINAL = ("final", "amended", "corrected")
_NOTHING = object()


class Observations:
    """The Observations of one patient, gathered, then written onto the record."""

    def __init__(self, report: Report, codemap: CodeMap, as_of: dt.date) -> None:
        self.report, self.map, self.as_of = report, codemap, as_of
        self.latest: dict[str, tuple[dt.date, Any, str]] = {}
        self.tests: set[dt.date] = set()
        self.positive: dt.date | None = None
        self.clasi: dict[dt.date, dict[str, float]] = {}
        self.extent_why: str | None = None  # why body sites left the extent unknown

    def observation(self, e: Entry, index: Index, courses: dict[int, dict[str, Any]]) -> None:
        r = e.resource
        m = meaning(self.map, r.code, ("observation", "clasi", "response", "not_used"))
        if m is None:
            self.report.ignore(e.label, f"code not in the code map ({shown(r.code)})")
            return
        if m.section == "not_used":
            self.report.ignore(e.label, f"{m.display}: read, not used by the rules")
            return
        on = _dated(e, m, self.as_of, self.report)
        if on is None:
            return
        if m.section == "clasi":
            _clasi(self, e, m, on)
        elif m.section == "response":
            _response(e, index, courses, self.map, self.report)
        else:
            self._field(e, m, on)

    def _field(self, e: Entry, m: Meaning, on: dt.date) -> None:
        spec = self.map.spec.observations[m.value]
        value = _value(e, m, spec, self.map, self.report)
        if value is _NOTHING:
            return
        if spec.many:
            if value == "negative":
                self.tests.add(on)
                self.report.used.append(f"{e.label}: negative pregnancy test on {on}")
            else:
                self.positive = max(self.positive or on, on)
                self.report.used.append(f"{e.label}: pregnancy test {value} on {on}")
            return
        self.offer(m.value, on, value, e.label, m.display)

    def offer(self, name: str, on: dt.date, value: Any, label: str, display: str = "") -> None:
        """A dated value of a field: the latest one is kept; on the same date the more
        cautious one (pregnant over unknown over not pregnant; else the later record)."""
        old = self.latest.get(name)
        display = display or name
        if old is None or on > old[0] or (on == old[0] and _rank(value) >= _rank(old[1])):
            if old is not None:
                self.report.ignore(old[2], f"{display}: a later value exists")
            self.latest[name] = (on, value, label)
        else:
            self.report.ignore(label, f"{display}: a later value exists")

    # ------------------------------------------------------------ onto the record

    def finish(self, rec: dict[str, Any], weight_days: int) -> None:
        """The gathered values onto the record (its diagnosis is already there). Every
        value used is listed with its date (an info note in the result)."""
        _weight(self, rec, weight_days)
        dated = _write_latest(self, rec)
        _positive_test(self, rec)
        diagnosis = rec.get("diagnosis")
        if diagnosis is not None and "extent" not in diagnosis:
            diagnosis["extent"] = "unknown"
            self.report.missing.append(("diagnosis.extent", self.extent_why or (
                "no Observation records the extent (localized or widespread) and the CLE "
                "Condition no body site")))
        if self.tests:
            set_field(rec, "reproductive.negative_pregnancy_tests",
                      [d.isoformat() for d in sorted(self.tests)])
            dated.append("negative pregnancy tests " + ", ".join(
                d.isoformat() for d in sorted(self.tests)))
        if self.clasi:
            rec["activity"] = _activity(self.clasi, self.report)
        if dated:
            self.report.warnings.append(("info", "Read from the FHIR record, each with its "
                                         "date: " + "; ".join(dated) + "."))


def _clasi(obs: Observations, e: Entry, m: Meaning, on: dt.date) -> None:
    """A CLASI score of one date (activity or damage)."""
    r = e.resource
    value = number(r.valueQuantity.value) if r.valueQuantity is not None else \
        number(getattr(r, "valueInteger", None))
    if value is None:
        obs.report.ignore(e.label, "CLASI without a number", "activity")
        return
    obs.clasi.setdefault(on, {})[m.value] = value
    obs.report.used.append(f"{e.label}: CLASI {m.value} {clean(value)} on {on}")


def _write_latest(obs: Observations, rec: dict[str, Any]) -> list[str]:
    """The latest value of each field onto the record (labs with their dates); each as
    the clinician reads it, with its date."""
    dated = []
    for name, (on, value, label) in sorted(obs.latest.items()):
        obs.report.used.append(f"{label}: {name} = {value} ({on})")
        dated.append(_dated_text(name, value, on))
        if name.startswith("labs."):
            set_field(rec, name, {"value": value, "date": on.isoformat()})
        else:
            set_field(rec, name, value)
    return dated


def _weight(obs: Observations, rec: dict[str, Any], days: int) -> None:
    """A weight older than the rule set's limit is not used: weight-based doses need a
    recent one (missing data says which weight and how old)."""
    found = obs.latest.get("demographics.weight_kg")
    if found is None:
        return
    on, kg, label = found
    age = (obs.as_of - on).days
    if age > days:
        del obs.latest["demographics.weight_kg"]
        child = rec["demographics"]["age"] < 18
        obs.report.ignore(label, f"weight {kg} kg on {on} is {age} days old on as_of "
                          f"{obs.as_of}; weight-based doses need a weight from the last "
                          f"{days} days ("
                          f"{'weight_recent_days_child' if child else 'weight_recent_days'}"
                          " in rules/ruleset.yaml): not used", "demographics.weight_kg")

def _value(e: Entry, m: Meaning, spec: Any, codemap: CodeMap, report: Report) -> Any:
    """The value of a field's Observation in the record's terms, or _NOTHING (reported)."""
    r = e.resource
    if spec.kind == "quantity":
        return _quantity(e, m, spec, codemap, report)
    if spec.kind == "boolean" and isinstance(r.valueBoolean, bool):
        return r.valueBoolean
    if spec.kind == "date":
        got = date_of(r.valueDateTime)
        if got is None:
            report.ignore(e.label, f"{m.display}: no full valueDateTime", m.value)
            return _NOTHING
        return got.isoformat()
    if spec.kind == "text":
        if not r.valueString:
            report.ignore(e.label, f"{m.display}: no valueString", m.value)
            return _NOTHING
        return r.valueString
    return _answered(e, m, spec, codemap, report)


def _answered(e: Entry, m: Meaning, spec: Any, codemap: CodeMap, report: Report) -> Any:
    """A coded answer (or a boolean one given as a code), or a result sent as text whose
    words the map lists; anything else stays unknown, reported."""
    r = e.resource
    ok, value = answer(codemap, r.valueCodeableConcept, spec.answers)
    if ok:
        return value
    text = r.valueString if r.valueString is not None else (
        r.valueCodeableConcept.text if r.valueCodeableConcept is not None
        and not r.valueCodeableConcept.coding else None)
    if text is not None and text.strip().lower() in spec.text_answers:
        report.used.append(f"{e.label}: {m.display} '{text}' read as "
                           f"{spec.text_answers[text.strip().lower()]}")
        return spec.text_answers[text.strip().lower()]
    given = (f"text '{text}'" if text is not None else shown(r.valueCodeableConcept)
             if r.valueCodeableConcept is not None else "no value[x] the map reads")
    report.ignore(e.label, f"{m.display}: answer not in the code map ({given}); "
                  "stays unknown", m.value)
    return _NOTHING


def _quantity(e: Entry, m: Meaning, spec: Any, codemap: CodeMap, report: Report) -> Any:
    q = e.resource.valueQuantity
    value = number(getattr(q, "value", None))
    if q is None or value is None:
        report.ignore(e.label, f"{m.display}: no valueQuantity", m.value)
        return _NOTHING
    if q.comparator is not None:  # "<0.5": the value is a bound, not a result
        report.ignore(e.label, f"{m.display}: the value is '{q.comparator}"
                      f"{clean(value)}', a bound, not a result; not used",
                      m.value)
        return _NOTHING
    factor = spec.units.get(q.code or "") if q.system == codemap.spec.ucum else None
    if factor is None and q.system in (None, codemap.spec.ucum):
        word = (q.code or q.unit or "").strip().lower()
        ucum = codemap.spec.unit_text.get(word)
        factor = spec.units.get(ucum) if ucum else None
        if factor is not None:
            report.used.append(f"{e.label}: unit '{q.code or q.unit}' read as UCUM {ucum}")
    if factor is None:
        report.ignore(e.label, f"{m.display}: unit '{q.code or q.unit}' "
                      f"(system {q.system}) is not a unit the code map "
                      "converts; the value is not used", m.value)
        return _NOTHING
    return clean(value * factor)


def _response(e: Entry, index: Index, courses: dict[int, dict[str, Any]], codemap: CodeMap,
              report: Report) -> None:
    r = e.resource
    ok, word = answer(codemap, r.valueCodeableConcept,
                      codemap.spec.course_response.answers)
    targets = [index.resolve(f, e.path + ("focus", i)) for i, f in enumerate(r.focus or [])]
    course = next((courses.get(id(t)) for t in targets if id(t) in courses), None)
    if not ok or course is None:
        report.ignore(e.label, "course response without a mapped answer or a "
                      "focus on a mapped course")
        return
    course["response"] = word
    report.used.append(f"{e.label}: {course['drug']} response {word}")


def _activity(clasi: dict[dt.date, dict[str, float]], report: Report) -> list[dict[str, Any]]:
    """CLASI scores of one date make one assessment; damage alone is not one."""
    activity = []
    for on, scores in sorted(clasi.items()):
        if "activity" not in scores:
            report.ignore(f"CLASI on {on}", "damage without activity", "activity")
            continue
        item: dict[str, Any] = {"date": on.isoformat(),
                                "clasi_activity": clean(scores["activity"])}
        if "damage" in scores:
            item["clasi_damage"] = clean(scores["damage"])
        activity.append(item)
    return activity


def _dated_text(name: str, value: Any, on: dt.date) -> str:
    word = name.split(".")[-1]
    value = {True: "yes", False: "no"}.get(value, value) if isinstance(value, bool) else value
    if word.endswith("_kg"):
        return f"{word[:-3].replace('_', ' ')} {value} kg ({on})"
    return f"{word.replace('_', ' ')} {value} ({on})"


def _rank(value: Any) -> int:
    return {True: 2, "unknown": 1}.get(value, 0) if not isinstance(value, (int, float)) \
        or isinstance(value, bool) else 0


def _dated(e: Entry, m: Meaning, as_of: dt.date, report: Report) -> dt.date | None:
    """The date of a final result up to as_of, or None (reported)."""
    r = e.resource
    if r.status not in OBS_FINAL:
        report.ignore(e.label, f"{m.display}: status {r.status} (only final, "
                      "amended or corrected results count)",
                      m.value if m.section == "observation" else None)
        return None
    on = when(r)
    if on is None:
        report.ignore(e.label, f"{m.display}: no full effective date",
                      m.value if m.section == "observation" else None)
        return None
    if on > as_of:
        report.ignore(e.label, f"{m.display}: dated {on}, after as_of {as_of}")
        return None
    return on


def _positive_test(obs: Observations, rec: dict[str, Any]) -> None:
    """A positive pregnancy test on or after the latest recorded status (or with
    none) leaves pregnancy unknown, never 'not pregnant': the teratogen rules block
    and ask. Negative tests up to that day no longer count."""
    if obs.positive is None:
        return
    status = obs.latest.get("reproductive.pregnant")
    if status is not None and (status[0] > obs.positive or status[1] is True):
        return
    set_field(rec, "reproductive.pregnant", "unknown")
    obs.tests = {d for d in obs.tests if d > obs.positive}
    obs.report.missing.append(("reproductive.pregnant", f"a pregnancy test on "
                               f"{obs.positive} was positive and no later status "
                               "says pregnant or not"))
    obs.report.warnings.append(("critical", f"A pregnancy test on {obs.positive} was "
                                "positive: confirm pregnancy status before any "
                                "teratogenic drug; pregnancy is treated as unknown."))
