"""Values rule texts may name, filled in when a step, warning or monitoring item is
shown: dates of this patient's courses ({stop_date[acitretin]},
{conception_from[methotrexate]}, {trial_until[lenalidomide]}, {in_trial_until}), retinal
screening dates ({retinal_due}, {retinal_annual_from}), the creatinine clearance with
its formula ({crcl_formula}), the recorded dose ({recorded_dose[methotrexate]}) and the
current drugs among a list ({current_among[thalidomide+lenalidomide]}). Part of the
decide stage; a missing value reads 'unknown', never an error."""
from __future__ import annotations

import datetime as dt
import math
from typing import Any

from .courses import antimalarial_days, conception_plan
from .evaluate import Evaluation
from .facts import ANTIMALARIALS, vte_risk_factors
from .ruleset import RuleSet


def _label(ruleset: RuleSet, drug: str) -> str:
    entry = ruleset.drugs.get(drug)
    return entry.label if entry else drug.replace("_", " ")


class Lookup(dict):
    """Placeholders in rule text: a missing one reads 'unknown', never an error."""

    def __missing__(self, key: str) -> str:
        return "unknown"


class _Among(dict):
    """{current_among[a+b]}: the current drugs of a list, by label; {conception_after[a+b]}:
    the latest conception date among them."""

    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def __missing__(self, key: str) -> str:
        return self.fn(key.split("+"))


class Overlay(Lookup):
    """Values of one text on top of the patient's context (which stays lazy)."""

    def __init__(self, base: dict[str, Any], **values: Any) -> None:
        super().__init__(**values)
        self._base = base

    def __missing__(self, key: str) -> Any:
        return self._base[key]


class _Context(Lookup):
    """The values, each computed the first time a text names one: most texts name none,
    so most patients never pay for retinal dates or conception windows."""

    def __init__(self, ruleset: RuleSet, ev: Evaluation) -> None:
        super().__init__()
        self._ruleset, self._ev = ruleset, ev

    def __missing__(self, key: str) -> Any:
        make = _MAKERS.get(key)
        if make is None:
            return "unknown"
        make(self, self._ruleset, self._ev)
        return dict.get(self, key, "unknown")


def _course_values(out: dict[str, Any], ruleset: RuleSet, ev: Evaluation) -> None:
    p, views = ev.patient, ev.courses
    male = p.demographics.sex == "male"
    stop_date, conception, recorded, trial = Lookup(), Lookup(), Lookup(), Lookup()
    for drug, v in views.items():
        recorded[drug] = v.dose_text
        if v.stop is not None:
            stop_date[drug] = str(v.stop)
        if v.trial_until is not None:
            trial[drug] = str(v.trial_until)
        repro = ruleset.drugs[drug].reproductive if drug in ruleset.drugs else None
        profile = (repro.man if male else repro.woman) if repro else None
        if profile is not None and profile.stop_before_conception:
            days = ruleset.days(profile.stop_before_conception) or 0
            conception[drug] = str((v.stop or p.as_of) + dt.timedelta(days=days))
    current = [d for d, v in views.items() if v.current]

    def among(drugs: list[str]) -> str:
        names = [_label(ruleset, d) for d in drugs if d in current]
        return " and ".join(names) if names else "none"

    plan = conception_plan(p, ruleset.drugs, ruleset.days)

    def after(drugs: list[str]) -> str:
        # The latest end of every window, past drugs' included: never only the drugs named.
        return str(plan.earliest) if plan is not None else "unknown"

    planning_stop = Lookup()
    window_end = Lookup()
    if plan is not None:
        for drug, stop in plan.stop_on.items():
            planning_stop[drug] = str(stop)
        for w in plan.windows:
            if w.stop is not None:
                window_end[w.drug] = str(w.ends)
    start_from = Lookup()  # the first day a start is allowed by the contraception's age
    since = p.reproductive.contraception_since if p.reproductive else None
    for drug, entry in ruleset.drugs.items():
        woman = entry.reproductive.woman if entry.reproductive else None
        if since is not None and woman is not None and woman.before_start:
            start_from[drug] = str(since + dt.timedelta(
                days=ruleset.days(woman.before_start) or 0))
    out.update(stop_date=stop_date, conception_from=conception, recorded_dose=recorded,
               trial_until=trial, current_among=_Among(among), conception_after=_Among(after),
               planning_stop_date=planning_stop, window_end=window_end, start_from=start_from,
               conception_plan=_plan_text(plan, ruleset, p.as_of, male))


def _plan_text(plan: Any, ruleset: RuleSet, today: dt.date, male: bool) -> str:
    """The conception plan in words: the earliest date, which window sets it, and when
    each drug taken now stops."""
    if plan is None:
        return "no drug taken now or before has an interval before conception"
    w = plan.set_by
    why = (f"{_label(ruleset, w.drug)}, stopped {w.stop}, needs {_days_words(w.days)} after "
           "the last dose" if w.stop is not None else
           f"{_label(ruleset, w.drug)} needs {_days_words(w.days)} after it is stopped")
    stops = "; ".join(f"stop {_label(ruleset, d)} "
                      + ("now" if s <= today else f"on {s}")
                      for d, s in sorted(plan.stop_on.items(), key=lambda x: (x[1], x[0])))
    return (f"conception from {plan.earliest} (the latest end of every window: {why}"
            f"{'' if male else _disagreement(ruleset, w.drug)})"
            + (f"; {stops}" if stops else ""))


def _disagreement(ruleset: RuleSet, drug: str) -> str:
    """Where the window that sets the date is a conservative default and sources give a
    shorter one (the woman's profile note, e.g. methotrexate: 6 months in the EU label,
    1-3 months in acr-2020 and bsr-2022), the date is said with the other reading."""
    repro = ruleset.drugs[drug].reproductive if drug in ruleset.drugs else None
    note = " ".join(repro.woman.note.split()) if repro and repro.woman.note else ""
    first = note.split(". ")[0].rstrip(".")  # the note's first sentence is the interval's
    return f"; {first}" if first else ""


def _days_words(days: int) -> str:
    for unit, size in (("years", 365.25), ("months", 30.44), ("weeks", 7)):
        n = days / size
        if n >= 1 and abs(n - round(n)) < 0.05:
            return f"{round(n)} {unit if round(n) != 1 else unit[:-1]}"
    return f"{days} days"


def _retinal_values(out: dict[str, Any], ruleset: RuleSet, ev: Evaluation) -> None:
    due, out["retinal_annual_from"] = _retinal_dates(ruleset, ev)
    out["retinal_due"] = due
    # A due date is never shown in the past as if it were to come.
    baseline = ev.facts.get("retinal_baseline_done") != "yes"
    out["retinal_when"] = (f"overdue since {due}: examine now" if due < str(ev.patient.as_of)
                           else f"due by {due}" if baseline else f"next due {due}")


def _trial_value(out: dict[str, Any], ruleset: RuleSet, ev: Evaluation) -> None:
    trials = sorted(str(v.trial_until) for v in ev.courses.values()
                    if v.current and v.phase == "in_trial" and v.trial_until)
    out["in_trial_until"] = trials[0] if trials else "unknown"


def _crcl_value(out: dict[str, Any], ruleset: RuleSet, ev: Evaluation) -> None:
    p = ev.patient
    crcl = ev.facts.get("creatinine_clearance")
    if crcl is not None and p.labs.creatinine is not None:
        factor = 1.23 if p.demographics.sex == "male" else 1.04
        out["crcl_formula"] = (
            f"{crcl:g} mL/min (Cockcroft-Gault: (140 - {p.demographics.age:g} y) x "
            f"{p.demographics.weight_kg:g} kg x {factor} / creatinine "
            f"{p.labs.creatinine.value:g} umol/L on {p.labs.creatinine.date})")


def _condom_values(out: dict[str, Any], ruleset: RuleSet, ev: Evaluation) -> None:
    out["condom_use_words"] = {"yes": "uses condoms", "no": "does not use condoms"}.get(
        ev.facts.get("condom_use", ""), "not documented")


def _vte_values(out: dict[str, Any], ruleset: RuleSet, ev: Evaluation) -> None:
    factors = vte_risk_factors(ev.patient, ruleset.thresholds)
    out["vte_factors"] = ", ".join(factors) or "none recorded"
    changeable = [f for f in factors if f in MODIFIABLE_VTE]
    out["vte_modifiable"] = ", ".join(changeable) or "nothing on record"


MODIFIABLE_VTE = ("oestrogen-containing contraception", "smoking", "immobility")


_MAKERS = {
    **dict.fromkeys(("stop_date", "conception_from", "recorded_dose", "trial_until",
                     "current_among", "conception_after", "planning_stop_date",
                     "window_end", "conception_plan", "start_from"), _course_values),
    **dict.fromkeys(("retinal_due", "retinal_annual_from", "retinal_when"), _retinal_values),
    "in_trial_until": _trial_value, "crcl_formula": _crcl_value,
    **dict.fromkeys(("vte_factors", "vte_modifiable"), _vte_values),
    "condom_use_words": _condom_values,
}


def context(ruleset: RuleSet, ev: Evaluation) -> dict[str, Any]:
    """Values rule texts may name: {stop_date[drug]}, {conception_from[drug]},
    {recorded_dose[drug]}, {trial_until[drug]}, {retinal_due}, {retinal_when},
    {retinal_annual_from}, {in_trial_until}, {crcl_formula}, {current_among[a+b]},
    {conception_after[a+b]}; computed when first named."""
    return _Context(ruleset, ev)


def _retinal_dates(ruleset: RuleSet, ev: Evaluation) -> tuple[str, str]:
    """When the next retinal exam is due, and when 5 years of use will be reached."""
    p, f = ev.patient, ev.facts
    months = f.get("antimalarial_months_since_first_start")
    years = f.get("antimalarial_years")
    if months is None or years is None:
        return str(p.as_of + dt.timedelta(days=365)), "unknown"
    first = p.as_of - dt.timedelta(days=round(months * 30.44))
    annual_after = ruleset.thresholds.get("retinal_annual_after_years", 5)
    interval = int(ruleset.thresholds.get("retinal_screening_interval_days", 365))
    used = antimalarial_days(p, ANTIMALARIALS) or 0
    five = p.as_of + dt.timedelta(days=max(0, math.ceil(annual_after * 365.25) - used))
    exams = sorted(e.date for e in p.eye_exams)
    if f.get("retinal_baseline_done") != "yes":
        baseline = int((ruleset.thresholds.get("retinal_baseline_months", 12)) * 30.44)
        return str(first + dt.timedelta(days=baseline)), str(five)
    annual = "retinal_annual_due" in ev.derived
    if annual:
        due = exams[-1] + dt.timedelta(days=interval) if exams else p.as_of
        return str(due), str(five)
    return str(five), str(five)


def render_text(text: str, ctx: dict[str, Any]) -> str:
    """A rule's text with its placeholders filled in (text without braces unchanged)."""
    if "{" not in text:
        return text
    try:
        return text.format_map(ctx)
    except (KeyError, IndexError, ValueError, AttributeError):
        return text
