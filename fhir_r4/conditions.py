"""Conditions: the CLE subtype being treated, systemic lupus, comorbidities (the problem
list read for contraindications), new symptoms, pregnancy and breastfeeding on the
problem list; Procedures: retinal exams.

A Condition counts as it stood on `as_of`: not yet recorded then, it does not count;
abated by then, it does not count; abated after it, it did. Clinical status: active,
recurrence, relapse and remission count (a disease in remission is still the patient's:
CLE in remission is the CLE being treated, a comorbidity in remission still weighs on a
drug), except for new symptoms, which count only when active.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from .codemap import CodeMap, Meaning
from .reading import Entry, Fail, NoAdviceFound, Report, answer, codings, date_of, meaning, \
    shown, when

SNOMED = "http://snomed.info/sct"
CONDITION_ACTIVE = ("active", "recurrence", "relapse")
CONDITION_HELD = CONDITION_ACTIVE + ("remission",)
CLINICAL_STATUS = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
PREGNANCY_DAYS = 300   # longer than a pregnancy lasts (42 weeks = 294 days)
SECTIONS = ("subtype", "subtype_unspecified", "sle", "comorbidity", "symptom", "pregnancy",
            "breastfeeding")


def _status(r: Any) -> tuple[str | None, str | None]:
    clinical = next((c.code for c in codings(r.clinicalStatus)
                     if c.system == CLINICAL_STATUS), None)
    verified = next((c.code for c in codings(r.verificationStatus)
                     if c.system == VERIFICATION), None)
    return clinical, verified


def _dates(r: Any) -> tuple[dt.date | None, dt.date | None]:
    onset = date_of(r.onsetDateTime) or date_of(getattr(r.onsetPeriod, "start", None)) \
        or date_of(r.recordedDate)
    abated = date_of(r.abatementDateTime) or date_of(getattr(r.abatementPeriod, "end", None))
    return onset, abated


class Conditions:
    """The Conditions of one patient, gathered, then written onto the record."""

    def __init__(self, report: Report, codemap: CodeMap, as_of: dt.date) -> None:
        self.report, self.map, self.as_of = report, codemap, as_of
        self.unmapped: list[str] = []
        self.unconfirmed_cle: list[str] = []  # CLE Conditions that did not count
        self.conditions: set[str] = set()
        self.symptoms: set[str] = set()
        self.subtypes: dict[str, str] = {}
        self.sle: Any = None
        # the CLE Condition's body sites (distinct key -> as shown) and its label and date
        self.sites: dict[str, str] = {}
        self.site_labels: list[str] = []
        self.site_date: dt.date | None = None
        # (field, date, value, label): offered to the Observations' latest values
        self.offers: list[tuple[str, dt.date, Any, str]] = []

    def condition(self, e: Entry) -> None:
        r = e.resource
        m = meaning(self.map, r.code, SECTIONS)
        clinical, verified = _on_as_of(self, e)
        if clinical is None:
            return
        if m is None:
            self.report.ignore(e.label, f"code not in the code map ({shown(r.code)})")
            if clinical in CONDITION_HELD or clinical == "unknown":
                self.unmapped.append(shown(r.code))
            return
        if m.section == "subtype_unspecified" and clinical in CONDITION_HELD \
                and verified in ("confirmed", None):
            raise Fail(e.path + ("code",), f"{m.display} without its subtype ({shown(r.code)}): "
                       "the record needs the subtype being treated (DLE, SCLE...)")
        if m.section == "sle" and verified == "refuted":
            self.sle = False
            self.report.used.append(f"{e.label}: SLE refuted")
            return
        if not _counts(self, e, m, clinical, verified):
            return
        self._add(e, m, verified)

    def _add(self, e: Entry, m: Meaning, verified: str | None) -> None:
        if m.section == "subtype":
            self.subtypes[m.value] = e.label
            _sites_and_severity(self, e)
        elif m.section == "sle":
            if verified is None:
                return
            if self.sle is not False:
                self.sle = True
        elif m.section == "comorbidity":
            self.conditions.add(m.value)
        elif m.section == "symptom":
            self.symptoms.add(m.value)
        else:
            _reproductive(self, e, m)
            return
        self.report.used.append(f"{e.label}: {m.display}")

    def diagnosis(self, rec: dict[str, Any]) -> None:
        """The warning on unmapped conditions and the record's diagnosis (one subtype)."""
        if self.unmapped:  # one line for all: the list can be long
            listed = "; ".join(self.unmapped[:8])
            more = len(self.unmapped) - 8
            self.report.warnings.append((
                "warning", f"{len(self.unmapped)} active condition(s) are not "
                f"in the code map and were not considered: {listed}"
                + (f"; and {more} more" if more > 0 else "")
                + ". Check them by hand for contraindications."))
        if len(self.subtypes) > 1:
            raise Fail((), "several active CLE subtypes (" + ", ".join(sorted(
                self.subtypes)) + "): the record needs the one being treated")
        if not self.subtypes:
            raise NoAdviceFound("no_cle", _no_cle(self))
        subtype = next(iter(self.subtypes))
        rec["diagnosis"] = {"subtype": subtype,
                            "systemic_lupus": "unknown" if self.sle is None else self.sle}

    def finish(self, rec: dict[str, Any]) -> None:
        if self.conditions:
            rec["conditions"] = sorted(self.conditions)
        if self.symptoms:
            rec["symptoms"] = sorted(self.symptoms)


def _site_key(concept: Any) -> tuple[str, str] | None:
    """One bodySite element as (key, shown): its SNOMED CT code, else its first code,
    else its text. Several codings of one element are one site in several systems."""
    found = [c for c in codings(concept) if c.code]
    snomed = [c for c in found if c.system == SNOMED]
    c = (snomed or found or [None])[0]
    if c is not None:
        return f"{c.system or '?'}|{c.code}", c.display or getattr(concept, "text", None) \
            or c.code
    text = (getattr(concept, "text", None) or "").strip()
    return (f"text|{' '.join(text.lower().split())}", text) if text else None


def _sites_and_severity(c: Conditions, e: Entry) -> None:
    """The CLE Condition's body sites (gathered; extent() decides) and its severity
    (reported: severity is not extent, and no source maps one onto the other)."""
    r = e.resource
    for concept in r.bodySite or []:
        key = _site_key(concept)
        if key is None:
            c.report.ignore(e.label, "a bodySite without a code or text: not counted")
            continue
        c.sites.setdefault(*key)
    if r.bodySite:
        c.site_labels.append(e.label)
        onset, _ = _dates(r)
        c.site_date = max(c.site_date or onset or c.as_of, onset or c.as_of)
    if r.severity is not None:
        m = meaning(c.map, r.severity, ("severity",))
        word = m.value if m is not None else f"not in the code map ({shown(r.severity)})"
        c.report.ignore(e.label, f"severity {word}: reported, not read as extent "
                        "(severity is not extent)")


def extent(c: Conditions, latest: dict[str, tuple[dt.date, Any, str]]) -> str | None:
    """The extent from the CLE Condition's body sites, by the code map's rule
    (condition_extent), into the Observations' latest values; an extent Observation
    wins. Returns why the extent stays unknown when body sites were read but decide
    nothing (for missing_data), else None."""
    if not c.sites:
        return None
    rule = c.map.spec.condition_extent
    n, label = len(c.sites), "; ".join(c.site_labels)
    listed = ", ".join(sorted(c.sites.values()))
    value = None
    if rule.widespread_from_sites is not None and n >= rule.widespread_from_sites:
        value = "widespread"
    elif rule.localized_up_to_sites is not None and n <= rule.localized_up_to_sites:
        value = "localized"
    stated = latest.get("diagnosis.extent")
    if stated is not None:
        c.report.ignore(label, f"{n} body site(s) ({listed}): the extent Observation "
                        f"({stated[1]}, {stated[0]}) wins over body sites")
        if value is not None and value != stated[1]:
            c.report.warnings.append(("warning", f"The extent is recorded as {stated[1]} "
                                      f"({stated[0]}), but the CLE Condition lists {n} body "
                                      f"site(s) ({listed}): check which is true."))
        return None
    if value is None:
        if rule.widespread_from_sites is None:
            how = "body sites are not read for extent"
        else:
            how = f"{rule.widespread_from_sites} or more distinct sites read as widespread" \
                + (f", {rule.localized_up_to_sites} or fewer as localized"
                   if rule.localized_up_to_sites else "; fewer may be an incomplete "
                   "record, so they are never read as localized")
        why = (f"no Observation records the extent; the CLE Condition lists {n} body "
               f"site(s) ({listed}): {how} (condition_extent in fhir-map.yaml)")
        c.report.ignore(label, why)
        return why
    latest["diagnosis.extent"] = (c.site_date or c.as_of, value, label)
    c.report.used.append(f"{label}: diagnosis.extent = {value} from {n} distinct body "
                         f"site(s) ({listed}) on the CLE Condition (condition_extent in "
                         "fhir-map.yaml)")
    c.report.warnings.append(("info", f"The extent is read as {value} from {n} distinct "
                              f"body sites on the CLE Condition ({listed}); no Observation "
                              "records it. Record the extent if this is not right."))
    return None


def _on_as_of(c: Conditions, e: Entry) -> tuple[str | None, str | None]:
    """The clinical status on as_of (None: the Condition does not count then)."""
    r = e.resource
    clinical, verified = _status(r)
    onset, abated = _dates(r)
    if onset is not None and onset > c.as_of:
        c.report.ignore(e.label, f"recorded {onset}, after as_of {c.as_of}")
        return None, None
    if abated is not None:
        if abated <= c.as_of:
            c.report.ignore(e.label, f"abated {abated}, by as_of {c.as_of}")
            return None, None
        if clinical in ("resolved", "inactive", "remission"):
            c.report.used.append(f"{e.label}: {clinical} now, but abated {abated}, "
                                 f"after as_of {c.as_of}: active on as_of")
            clinical = "active"
    return clinical or "unknown", verified


def _counts(c: Conditions, e: Entry, m: Meaning, clinical: str, verified: str | None) -> bool:
    held = CONDITION_ACTIVE if m.section == "symptom" else CONDITION_HELD
    if clinical == "unknown" and m.section in ("comorbidity", "pregnancy", "breastfeeding"):
        clinical = "active"  # no status on a problem list: counted (only excludes)
        c.report.used.append(f"{e.label}: no clinicalStatus; counted as active")
    if clinical in held and verified in ("confirmed", None):
        if verified is None:
            _unverified(c, e, m)
        return True
    warn = None
    if m.section == "comorbidity" and verified in ("provisional", "differential",
                                                   "unconfirmed") \
            and clinical in CONDITION_HELD:
        warn = (f"{m.display} is recorded as {verified}, not confirmed; it was not "
                "counted: confirm or refute it.")
    if m.section == "subtype" and verified != "entered-in-error":
        c.unconfirmed_cle.append(f"{m.display} (clinical status {clinical}, "
                                 f"verification {verified})")
    c.report.ignore(e.label, f"{m.display}: clinical status {clinical}, verification "
                    f"{verified} (only active or in remission, confirmed or without "
                    "a verification status, count)", warning=warn)
    return False


def _unverified(c: Conditions, e: Entry, m: Meaning) -> None:
    """No verificationStatus (FHIR allows it): the problem list's entry is read as
    written, except SLE, which stays unknown (it changes the ladder both ways)."""
    if m.section == "sle":
        c.report.missing.append(("diagnosis.systemic_lupus", f"{e.label}: SLE on the "
                                 "problem list without a verification status"))
    else:
        c.report.used.append(f"{e.label}: no verificationStatus; {m.display} read as "
                             "recorded on the problem list")


def _reproductive(c: Conditions, e: Entry, m: Meaning) -> None:
    onset, _ = _dates(e.resource)
    on = onset or c.as_of
    if m.section == "breastfeeding":
        c.offers.append(("reproductive.breastfeeding", on, True, e.label))
        return
    if m.value == "not_pregnant":
        c.offers.append(("reproductive.pregnant", on, False, e.label))
    elif onset is not None and (c.as_of - onset).days <= PREGNANCY_DAYS:
        c.offers.append(("reproductive.pregnant", on, True, e.label))
    else:
        c.offers.append(("reproductive.pregnant", on, "unknown", e.label))
        c.report.missing.append(("reproductive.pregnant", f"{e.label}: a pregnancy "
                                 f"on the problem list from {onset or 'an unknown date'}"
                                 " is still active: pregnancy status is unknown"))


def _no_cle(c: Conditions) -> str:
    parts = ["No active cutaneous lupus Condition that the code map knows is on record "
             f"on {c.as_of}; the CLE ladder has no advice for this patient."]
    if c.unconfirmed_cle:
        parts.append("Not counted: " + "; ".join(c.unconfirmed_cle) + ".")
    if c.unmapped:
        parts.append("Active conditions not in the code map (check for a CLE coded "
                     "otherwise): " + "; ".join(c.unmapped[:8]) + ".")
    return " ".join(parts)

class Procedures:
    """Retinal screening exams: completed, dated by as_of, with a mapped outcome."""

    def __init__(self, report: Report, codemap: CodeMap, as_of: dt.date) -> None:
        self.report, self.map, self.as_of = report, codemap, as_of
        self.exams: list[dict[str, str]] = []

    def procedure(self, e: Entry) -> None:
        r = e.resource
        m = meaning(self.map, r.code, ("eye_exam",))
        if m is None:
            self.report.ignore(e.label, f"code not in the code map ({shown(r.code)})")
            return
        on = when(r)
        if on is not None and on > self.as_of:
            self.report.ignore(e.label, f"retinal exam dated {on}, after as_of {self.as_of}")
            return
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
