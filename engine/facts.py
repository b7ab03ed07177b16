"""The fact vocabulary rules are written in, and the step that turns one patient record
into those facts.

Only mechanical facts are computed here (durations, latest values, statuses); every
clinical judgement (what counts as refractory, severe, or a relapse) is a rule in
rules/, derived by forward chaining. Booleans are three-valued: "yes", "no" or
"unknown"; a number that is not known is simply absent.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from . import vocabulary as V
from .courses import (PHASES, CourseView, antimalarial_years, conception_plan, course_key,
                      course_views, creatinine_clearance, dose_weight,
                      first_antimalarial_start)
from .models import Course, Patient

YES, NO, UNKNOWN = "yes", "no", "unknown"
DAYS_PER_MONTH = 30.44
# Retinal screening counts years of 4-aminoquinoline use (marmor-2016).
ANTIMALARIALS = ("hydroxychloroquine", "chloroquine")


@dataclass(frozen=True)
class FactSpec:
    """One word of the rule language: its kind, allowed values and meaning."""

    name: str
    kind: str  # "bool" | "number" | "enum" | "derived"
    description: str
    values: tuple[str, ...] = ()
    unit: str = ""
    # Closed-world facts are never unknown; this is their usual value (e.g. a symptom
    # not listed is "no"). The compiler uses it to keep the engine's fact small.
    default: str | None = None

    @property
    def domain(self) -> tuple[str, ...]:
        """Known values; 'unknown' is never part of it."""
        if self.kind == "bool":
            return (YES, NO)
        return tuple(v for v in self.values if v != UNKNOWN)


def _drug_specs(drug: str) -> list[FactSpec]:
    """The facts of one drug's courses."""
    name = drug.replace("_", " ")
    return [
        FactSpec(f"{drug}_status", "enum", f"{name}: never taken, current or stopped",
                 ("never", "current", "stopped"), default="never"),
        FactSpec(f"{drug}_response", "enum", f"{name}: response of the latest course",
                 V.RESPONSES),
        FactSpec(f"{drug}_months", "number", f"{name}: length of the latest course",
                 unit="months"),
        FactSpec(f"{drug}_stop_reason", "enum", f"{name}: why the latest course stopped",
                 V.STOP_REASONS),
        FactSpec(f"{drug}_conception_stop_weeks", "number",
                 f"{name}: weeks from today until it must be stopped for the earliest "
                 "conception date every window allows (0: now)", unit="weeks"),
        FactSpec(f"{drug}_weeks_since_stop", "number",
                 f"{name}: weeks since the latest course stopped", unit="weeks"),
        FactSpec(f"{drug}_dose_mg_per_day", "number", f"{name}: current daily dose",
                 unit="mg/day"),
        FactSpec(f"{drug}_dose_mg_per_kg", "number",
                 f"{name}: current daily dose per kg of its dose basis (drugs.yaml "
                 "dose_limit.basis; real body weight without one)", unit="mg/kg/day"),
        FactSpec(f"{drug}_dose_reduced", "bool",
                 f"{name}: the current course is a dose reduction", default=NO),
        FactSpec(f"{drug}_weeks_since_dose_reduction", "number",
                 f"{name}: weeks since the dose was reduced", unit="weeks"),
        FactSpec(f"{drug}_ever_responded", "bool",
                 f"{name}: any course had a partial or complete response", default=NO),
        FactSpec(f"{drug}_adverse_event", "bool",
                 f"{name}: a course stopped for an adverse event", default=NO),
        FactSpec(f"{drug}_phase", "enum",
                 f"{name}: phase of the latest course (in_trial, responding, partial, "
                 "failed, stopped_early, unjudged)", PHASES, default="not_taken"),
        FactSpec(f"{drug}_at_max_dose", "bool",
                 f"{name}: the current dose is the catalogue's top step or limit",
                 default=NO),
        FactSpec(f"{drug}_dose_wrong_unit", "bool",
                 f"{name}: a weekly drug recorded as a daily dose", default=NO),
        FactSpec(f"{drug}_dose_above_max", "bool",
                 f"{name}: the current dose is above the catalogue's maximum", default=NO),
    ]


def _specs(drugs: dict[str, Any]) -> dict[str, FactSpec]:
    s: list[FactSpec] = [
        FactSpec("age", "number", "age in years", unit="years"),
        FactSpec("sex", "enum", "sex", ("female", "male")),
        FactSpec("weight_kg", "number", "real body weight", unit="kg"),
        FactSpec("childbearing_potential", "bool", "woman of childbearing potential"),
        FactSpec("pregnant", "bool", "pregnant"),
        FactSpec("breastfeeding", "bool", "breastfeeding"),
        FactSpec("contraception", "enum", "contraception used", V.CONTRACEPTION),
        FactSpec("days_since_negative_pregnancy_test", "number",
                 "days since the last negative pregnancy test", unit="days"),
        FactSpec("negative_pregnancy_test_gap_days", "number",
                 "days between the last two negative pregnancy tests", unit="days"),
        FactSpec("contraception_weeks", "number",
                 "weeks the current contraception has been in place", unit="weeks"),
        FactSpec("oestrogen_contraception", "bool",
                 "combined (oestrogen-containing) hormonal contraception"),
        FactSpec("planning_pregnancy", "bool", "a woman planning a pregnancy"),
        FactSpec("partner_may_conceive", "bool", "a man whose partner may conceive"),
        FactSpec("condom_use", "bool", "a man who uses condoms"),
        FactSpec("planning_to_father", "bool", "a man planning to father a child"),
        FactSpec("creatinine_clearance", "number",
                 "Cockcroft-Gault creatinine clearance", unit="mL/min"),
        FactSpec("antimalarial_years", "number",
                 "cumulative years of hydroxychloroquine or chloroquine", unit="years"),
        FactSpec("antimalarial_months_since_first_start", "number",
                 "months since the first hydroxychloroquine or chloroquine start",
                 unit="months"),
        FactSpec("retinal_baseline_done", "bool",
                 "a retinal exam from the year before the first antimalarial or later"),
        FactSpec("smoker", "bool", "smokes"),
        FactSpec("antithrombotic", "enum", "thromboprophylaxis or anticoagulation taken now",
                 V.ANTITHROMBOTIC),
        FactSpec("vte_risk_factors", "number",
                 "thrombosis risk factors recorded (past VTE, antiphospholipid antibodies, "
                 "oestrogen-containing contraception, smoking, immobility, age at or above "
                 "vte_risk_age_years)", unit="factors"),
        FactSpec("subtype", "enum", "CLE subtype", V.SUBTYPES),
        FactSpec("extent", "enum", "extent of skin disease",
                 ("localized", "widespread", UNKNOWN)),
        FactSpec("systemic_lupus", "bool", "SLE also diagnosed"),
        FactSpec("drug_trigger_suspected", "bool",
                 "a drug taken now may have induced the CLE"),
        FactSpec("clasi_activity", "number", "latest CLASI activity score", unit="points"),
        FactSpec("clasi_damage", "number", "latest CLASI damage score", unit="points"),
        FactSpec("clasi_activity_previous", "number",
                 "CLASI activity at the assessment before the latest", unit="points"),
        FactSpec("clasi_activity_rise", "number",
                 "latest minus previous CLASI activity", unit="points"),
        FactSpec("clasi_activity_rise_percent", "number",
                 "rise of CLASI activity since the previous assessment", unit="%"),
        FactSpec("days_since_clasi", "number", "days since the latest CLASI", unit="days"),
        FactSpec("retinal_toxicity", "bool", "an eye exam found antimalarial toxicity",
                 default=NO),
        FactSpec("days_since_eye_exam", "number", "days since the latest retinal exam",
                 unit="days"),
        FactSpec("g6pd", "enum", "G6PD status", ("normal", "deficient", UNKNOWN)),
        FactSpec("g6pd_age_days", "number", "age of the G6PD result", unit="days"),
        FactSpec("on_systemic_therapy", "bool", "any non-topical drug ongoing", default=NO),
        FactSpec("on_teratogen", "bool", "any drug marked teratogenic in drugs.yaml ongoing",
                 default=NO),
    ]
    for lab, unit in (("egfr", "mL/min/1.73 m2"), ("neutrophils", "10^9/L"),
                      ("platelets", "10^9/L"), ("alt", "U/L"), ("creatinine", "umol/L")):
        s.append(FactSpec(lab, "number", f"latest {lab}", unit=unit))
        s.append(FactSpec(f"{lab}_age_days", "number", f"age of the latest {lab} result",
                          unit="days"))
    for word in V.CONDITIONS:
        s.append(FactSpec(word, "bool", f"comorbidity: {word.replace('_', ' ')}", default=NO))
    for word in V.SYMPTOMS:
        s.append(FactSpec(word, "bool", f"new symptom: {word.replace('_', ' ')}", default=NO))
    for drug in drugs:
        s += _drug_specs(drug)
    for cls in sorted({e.drug_class for e in drugs.values()}):
        s.append(FactSpec(f"on_{cls}", "bool", f"any {cls.replace('_', ' ')} ongoing",
                          default=NO))
    return {f.name: f for f in s}


def fact_specs(drugs: dict[str, Any]) -> dict[str, FactSpec]:
    """Every patient fact a rule may name, given the drug catalogue (drugs.yaml's
    entries by name): each drug's course facts and each class's on_<class>."""
    return _specs(drugs)


def _tri(value: bool | str | None) -> str:
    if value is True:
        return YES
    if value is False:
        return NO
    return UNKNOWN


def _num(x: float) -> float | int:
    """A number durable_rules can parse (no exponent notation)."""
    if float(x).is_integer():
        return int(x)
    x = round(float(x), 3)
    return 0 if abs(x) < 0.001 else x


def _days(a: dt.date, b: dt.date) -> int:
    return (b - a).days


def _daily_dose(course: Course) -> float | None:
    if course.dose_mg_per_day is not None:
        return course.dose_mg_per_day
    if course.dose_mg_per_week is not None:
        return course.dose_mg_per_week / 7
    return None


def _reproductive(p: Patient) -> dict[str, Any]:
    out = _woman(p)
    r = p.reproductive
    if p.demographics.sex == "male":
        # A pregnant partner counts as a partner who may conceive: condoms are still
        # needed (conservative).
        partner = YES if r and r.partner_pregnant is True else (
            _tri(r.partner_may_conceive) if r else UNKNOWN)
        out.update(planning_pregnancy=NO, partner_may_conceive=partner,
                   condom_use=_tri(r.condom_use) if r else UNKNOWN,
                   planning_to_father=_tri(r.planning_to_father) if r else UNKNOWN)
        return out
    out.update(partner_may_conceive=NO, planning_to_father=NO)
    if out["childbearing_potential"] == NO:
        out.setdefault("planning_pregnancy", NO)
    if r is None:
        return out
    out["oestrogen_contraception"] = _tri(r.oestrogen_contraception)
    if out["childbearing_potential"] != NO:
        out["planning_pregnancy"] = _tri(r.planning_pregnancy)
    if r.contraception_since is not None and r.contraception in (
            "one_method", "two_methods", "abstinence"):
        out["contraception_weeks"] = _num(_days(r.contraception_since, p.as_of) / 7)
    tests = r.negative_tests()
    if tests:
        out["days_since_negative_pregnancy_test"] = _days(tests[-1], p.as_of)
    if len(tests) > 1:
        out["negative_pregnancy_test_gap_days"] = _days(tests[-2], tests[-1])
    return out


def _woman(p: Patient) -> dict[str, Any]:
    if p.demographics.sex == "male":
        return {"childbearing_potential": NO, "pregnant": NO, "breastfeeding": NO,
                "contraception": "none"}
    r = p.reproductive
    if r is None:
        # The contract asks for the block only at 12-55; inside that band a missing block
        # means unknown (fail safe), outside it the brief treats pregnancy as not possible.
        if 12 <= p.demographics.age <= 55:
            return {"childbearing_potential": UNKNOWN, "pregnant": UNKNOWN,
                    "breastfeeding": UNKNOWN, "contraception": UNKNOWN}
        return {"childbearing_potential": NO, "pregnant": NO, "breastfeeding": NO,
                "contraception": "none"}
    return {
        "childbearing_potential": _tri(r.childbearing_potential),
        "pregnant": _tri(r.pregnant),
        "breastfeeding": _tri(r.breastfeeding),
        "contraception": r.contraception,
    }


def _drug_facts(drug: str, courses: list[Course], p: Patient,
                per_kg: float | None) -> dict[str, Any]:
    if not courses:
        return {f"{drug}_status": "never", f"{drug}_dose_reduced": NO,
                f"{drug}_ever_responded": NO, f"{drug}_adverse_event": NO}
    courses = sorted(courses, key=course_key)
    ongoing = [c for c in courses if c.stop is None]
    # An ongoing course is the current one, even when a later course overlaps it.
    latest = ongoing[-1] if ongoing else courses[-1]
    current = latest.stop is None
    end = latest.stop or p.as_of
    out: dict[str, Any] = {
        f"{drug}_status": "current" if current else "stopped",
        f"{drug}_response": latest.response,
        f"{drug}_months": _num(_days(latest.start, end) / DAYS_PER_MONTH),
        f"{drug}_ever_responded": _tri(any(c.response in ("partial", "complete")
                                           for c in courses)),
        f"{drug}_adverse_event": _tri(any(c.stop_reason == "adverse_event"
                                          for c in courses)),
    }
    if latest.stop is not None:  # not current
        out[f"{drug}_weeks_since_stop"] = _num(_days(latest.stop, p.as_of) / 7)
        if latest.stop_reason:
            out[f"{drug}_stop_reason"] = latest.stop_reason
    dose = _daily_dose(latest)
    if current and dose is not None:
        out[f"{drug}_dose_mg_per_day"] = _num(dose)
        if per_kg:  # the dose basis's weight (missing data: the fact is not known)
            out[f"{drug}_dose_mg_per_kg"] = _num(dose / per_kg)
    reduced = [c for c in courses if c is not latest and c.stop_reason == "dose_reduced"
               and c.stop is not None and c.stop <= latest.start]
    out[f"{drug}_dose_reduced"] = _tri(current and bool(reduced))
    last_cut = reduced[-1].stop if reduced else None
    if current and last_cut is not None:
        out[f"{drug}_weeks_since_dose_reduction"] = _num(_days(last_cut, p.as_of) / 7)
    return out


def _course_facts(drug: str, view: CourseView | None) -> dict[str, Any]:
    if view is None:
        return {f"{drug}_phase": "not_taken", f"{drug}_at_max_dose": NO,
                f"{drug}_dose_wrong_unit": NO, f"{drug}_dose_above_max": NO}
    out: dict[str, Any] = {
        f"{drug}_dose_wrong_unit": YES if view.current and view.wrong_unit else NO,
        f"{drug}_dose_above_max": YES if view.current and view.above_max else NO,
        f"{drug}_at_max_dose": (_tri(view.at_max_dose) if view.current else NO),
    }
    out[f"{drug}_phase"] = view.phase or "unjudged"
    return out


def vte_risk_factors(p: Patient, thresholds: dict[str, float]) -> list[str]:
    """The thrombosis risk factors on record, in words; counted together, because each
    one a patient has adds to the clotting risk of thalidomide and lenalidomide
    (palumbo-2008). Unknown is not counted here: the rules ask for it."""
    rep = p.reproductive
    present = set(p.conditions)
    out = []
    if "venous_thromboembolism" in present:
        out.append("past venous thromboembolism")
    if "antiphospholipid_antibodies" in present:
        out.append("antiphospholipid antibodies")
    if rep is not None and rep.oestrogen_contraception is True:
        out.append("oestrogen-containing contraception")
    if p.smoker is True:
        out.append("smoking")
    if "immobility" in present:
        out.append("immobility")
    age = thresholds.get("vte_risk_age_years")
    if age is not None and p.demographics.age >= age:
        out.append(f"age {p.demographics.age:g}")
    return out


def patient_facts(p: Patient, ruleset: Any,
                  views: dict[str, CourseView] | None = None) -> dict[str, Any]:
    """All facts of one patient, keyed by fact name (see fact_specs). `ruleset` gives
    the drug catalogue and the named thresholds the course model needs."""
    drug_classes: dict[str, str] = ruleset.drug_classes
    teratogens: frozenset[str] = ruleset.teratogens
    if views is None:
        views = course_views(p, ruleset.drugs, ruleset.thresholds, ruleset.days)
    d, dx = p.demographics, p.diagnosis
    f: dict[str, Any] = {"age": _num(d.age), "sex": d.sex}
    if d.weight_kg is not None:
        f["weight_kg"] = _num(d.weight_kg)
    f.update(_reproductive(p))
    f["smoker"] = _tri(p.smoker)
    f["antithrombotic"] = p.antithrombotic
    f["vte_risk_factors"] = len(vte_risk_factors(p, ruleset.thresholds))
    f["subtype"] = dx.subtype
    f["extent"] = dx.extent
    f["systemic_lupus"] = _tri(dx.systemic_lupus)
    f["drug_trigger_suspected"] = _tri(bool(dx.suspected_drug_trigger))

    # Same-day assessments: the higher activity counts as the later one (conservative).
    activity = sorted(p.activity, key=lambda a: (
        a.date, a.clasi_activity, a.clasi_damage if a.clasi_damage is not None else -1))
    if activity:
        latest = activity[-1]
        f["clasi_activity"] = _num(latest.clasi_activity)
        f["days_since_clasi"] = _days(latest.date, p.as_of)
        damage = [a.clasi_damage for a in activity if a.clasi_damage is not None]
        if damage:
            f["clasi_damage"] = _num(damage[-1])
        if len(activity) > 1:
            prev = activity[-2].clasi_activity
            f["clasi_activity_previous"] = _num(prev)
            f["clasi_activity_rise"] = _num(latest.clasi_activity - prev)
            if prev > 0:
                f["clasi_activity_rise_percent"] = _num(
                    100 * (latest.clasi_activity - prev) / prev)

    present = set(p.conditions)
    for word in V.CONDITIONS:
        f[word] = YES if word in present else NO
    symptoms = set(p.symptoms)
    for word in V.SYMPTOMS:
        f[word] = YES if word in symptoms else NO

    _lab_facts(p, f, present)

    plan = conception_plan(p, ruleset.drugs, ruleset.days)
    if plan is not None:
        for drug, stop in plan.stop_on.items():
            f[f"{drug}_conception_stop_weeks"] = _num((stop - p.as_of).days / 7)

    crcl = creatinine_clearance(p)
    if crcl is not None:
        f["creatinine_clearance"] = _num(round(crcl, 1))

    _eye_facts(p, f)

    _drug_course_facts(p, f, views, drug_classes, teratogens, ruleset.drugs)
    return f


def _lab_facts(p: Patient, f: dict[str, Any], present: set[str]) -> None:
    """Each lab's latest value and its age; G6PD from the lab or the problem list."""
    for lab in ("egfr", "neutrophils", "platelets", "alt", "creatinine"):
        value = getattr(p.labs, lab)
        if value is not None:
            f[lab] = _num(value.value)
            f[f"{lab}_age_days"] = _days(value.date, p.as_of)
    if p.labs.g6pd is not None:
        f["g6pd"] = p.labs.g6pd.value
        f["g6pd_age_days"] = _days(p.labs.g6pd.date, p.as_of)
    else:
        f["g6pd"] = "deficient" if "g6pd_deficiency" in present else UNKNOWN
    if "g6pd_deficiency" in present:
        f["g6pd"] = "deficient"


def _eye_facts(p: Patient, f: dict[str, Any]) -> None:
    """Retinal exams and cumulative antimalarial use (marmor-2016)."""
    exams = sorted(p.eye_exams, key=lambda e: (e.date, e.result))
    f["retinal_toxicity"] = YES if any(e.result == "toxicity" for e in exams) else NO
    if exams:
        f["days_since_eye_exam"] = _days(exams[-1].date, p.as_of)
    years = antimalarial_years(p, ANTIMALARIALS)
    first = first_antimalarial_start(p, ANTIMALARIALS)
    if years is not None and first is not None:
        f["antimalarial_years"] = _num(round(years, 2))
        f["antimalarial_months_since_first_start"] = _num(_days(first, p.as_of)
                                                          / DAYS_PER_MONTH)
        f["retinal_baseline_done"] = _tri(any(_days(e.date, first) <= 365 for e in exams))


def _drug_course_facts(p: Patient, f: dict[str, Any], views: dict[str, CourseView],
                       drug_classes: dict[str, str], teratogens: frozenset[str],
                       drugs: dict[str, Any]) -> None:
    """Each drug's course facts, and what is taken now by class."""
    by_drug: dict[str, list[Course]] = {}
    for c in p.treatments:
        by_drug.setdefault(c.drug, []).append(c)
    current_classes: set[str] = set()
    systemic = teratogen = False
    for drug, entry in drugs.items():  # the catalogue's drugs, in its order
        per_kg = dose_weight(entry, p.demographics) if entry.dose_limit \
            else p.demographics.weight_kg
        facts = _drug_facts(drug, by_drug.get(drug, []), p, per_kg)
        facts.update(_course_facts(drug, views.get(drug)))
        f.update(facts)
        if facts[f"{drug}_status"] == "current":
            current_classes.add(drug_classes.get(drug, ""))
            if drug_classes[drug] != "topical":
                systemic = True
            teratogen = teratogen or drug in teratogens
    for cls in sorted(set(drug_classes.values())):
        f[f"on_{cls}"] = YES if cls in current_classes else NO
    f["on_systemic_therapy"] = YES if systemic else NO
    f["on_teratogen"] = YES if teratogen else NO
