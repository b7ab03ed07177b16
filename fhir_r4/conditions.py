"""Conditions: the CLE subtype being treated, systemic lupus, comorbidities and new
symptoms (only active, confirmed ones count); Procedures: retinal exams."""
from __future__ import annotations

from typing import Any

from .codemap import CodeMap
from .reading import Entry, Fail, Report, answer, codings, meaning, shown, when

CONDITION_ACTIVE = ("active", "recurrence", "relapse")
CLINICAL_STATUS = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


class Conditions:
    """The Conditions of one patient, gathered, then written onto the record."""

    def __init__(self, report: Report, codemap: CodeMap) -> None:
        self.report, self.map = report, codemap
        self.unmapped: list[str] = []
        self.conditions: set[str] = set()
        self.symptoms: set[str] = set()
        self.subtypes: dict[str, str] = {}
        self.sle: Any = None

    def condition(self, e: Entry) -> None:
        r = e.resource
        m = meaning(self.map, r.code, ("subtype", "sle", "comorbidity", "symptom"))
        clinical = next((c.code for c in codings(r.clinicalStatus)
                         if c.system == CLINICAL_STATUS), None)
        if m is None:
            self.report.ignore(e.label, f"code not in the code map ({shown(r.code)})")
            if clinical in CONDITION_ACTIVE or clinical is None:
                self.unmapped.append(shown(r.code))
            return
        verified = next((c.code for c in codings(r.verificationStatus)
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

    def diagnosis(self, rec: dict[str, Any]) -> None:
        """The warning on unmapped conditions and the record's diagnosis (one subtype)."""
        if self.unmapped:  # one line for all: the list can be long
            listed = "; ".join(self.unmapped[:5])
            more = len(self.unmapped) - 5
            self.report.warnings.append((
                "warning", f"{len(self.unmapped)} active condition(s) are not "
                f"in the code map and were not considered: {listed}"
                + (f"; and {more} more" if more > 0 else "")
                + ". Check them by hand for contraindications."))
        if len(self.subtypes) != 1:
            if not self.subtypes:
                raise Fail((), "no active, confirmed cutaneous lupus Condition with a "
                               "subtype in the code map")
            raise Fail((), "several active CLE subtypes (" + ", ".join(sorted(
                self.subtypes)) + "): the record needs the one being treated")
        subtype = next(iter(self.subtypes))
        rec["diagnosis"] = {"subtype": subtype,
                            "systemic_lupus": "unknown" if self.sle is None else self.sle}

    def finish(self, rec: dict[str, Any]) -> None:
        if self.conditions:
            rec["conditions"] = sorted(self.conditions)
        if self.symptoms:
            rec["symptoms"] = sorted(self.symptoms)


class Procedures:
    """Retinal screening exams: completed, dated, with a mapped outcome."""

    def __init__(self, report: Report, codemap: CodeMap) -> None:
        self.report, self.map = report, codemap
        self.exams: list[dict[str, str]] = []

    def procedure(self, e: Entry) -> None:
        r = e.resource
        m = meaning(self.map, r.code, ("eye_exam",))
        if m is None:
            self.report.ignore(e.label, f"code not in the code map ({shown(r.code)})")
            return
        on = when(r)
        ok, result = answer(self.map, r.outcome, self.map.spec.eye_exam.outcomes)
        if r.status != "completed" or on is None or not ok:
            self.report.ignore(e.label, "retinal exam not completed, undated or without a "
                               "mapped outcome (normal or toxicity)", "eye_exams")
            return
        self.exams.append({"date": on.isoformat(), "result": result})
        self.report.used.append(f"{e.label}: retinal exam {result} on {on}")

    def finish(self, rec: dict[str, Any]) -> None:
        if self.exams:
            rec["eye_exams"] = sorted(self.exams, key=lambda x: (x["date"], x["result"]))
