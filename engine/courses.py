"""The course model: each drug's latest course, with the phase the rules judge it by.

Part of the facts step. A course is `in_trial` while it is younger than the drug's trial
period (a named threshold in drugs.yaml `course.trial`), then `responding`, `partial`
or `failed` from the clinician's `response`, and, where the response is not recorded,
from the CLASI trend since the course began (klein-2011: a fall of
`clasi_meaningful_change` points or `clasi_meaningful_change_percent` per cent). A fall
in CLASI never makes a course `failed` on its own: without the clinician's judgement an
unimproved course stays unknown, and the rules ask for the judgement (fail safe).

Doses are compared with the catalogue: `at_max_dose` against the dose steps or the
weight limit turned into a dispensable regimen; a weekly drug recorded per day, or a
dose above the catalogue's maximum, is flagged for a critical warning.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .dosing import Regimen, basis_weight, best_regimen
from .models import Course, Patient
from .vocabulary import RESPONSES

DAYS_PER_MONTH = 30.44
# stopped_early: a course stopped inside its trial period, never judged. unjudged: past
# its trial with no recorded response and no meaningful CLASI fall (ask the clinician).
PHASES = ("not_taken", "in_trial", "responding", "partial", "failed", "stopped_early",
          "unjudged")


@dataclass(frozen=True)
class CourseView:
    """One drug's latest course as the rules see it."""

    drug: str
    start: dt.date          # start of continuous treatment (dose changes do not reset it)
    stop: dt.date | None
    phase: str | None       # one of PHASES, or None when it cannot be judged
    months: float
    dose: float | None      # in the catalogue's unit (mg/day or mg/week)
    unit: str               # "mg/day" | "mg/week"
    wrong_unit: bool        # a weekly drug recorded per day
    above_max: bool
    at_max_dose: bool | None
    trial_until: dt.date | None
    adverse_events: tuple[str, ...]

    @property
    def current(self) -> bool:
        return self.stop is None

    @property
    def dose_text(self) -> str:
        if self.dose is None:
            return "no dose recorded"
        if self.wrong_unit:
            return f"{self.dose:g} mg per day"
        return f"{self.dose:g} {self.unit}"


def course_key(c: Course) -> tuple[Any, ...]:
    """A total order of courses (by dates, then the rest) so that the order in which
    the record lists them never changes a fact; the facts step and the course model
    share it, so both see the same latest course."""
    return (c.start, c.stop or dt.date.max, c.dose_mg_per_day or 0, c.dose_mg_per_week or 0,
            RESPONSES.index(c.response), c.stop_reason or "", tuple(sorted(c.adverse_events)))


def dose_weight(entry: Any, demographics: Any) -> float | None:
    """The weight (kg) a drug's dose limit is per: its basis (engine/dosing.py) from the
    record, or None when a datum it needs is missing (no dose is then named)."""
    limit = entry.dose_limit
    if limit is None:
        return None
    return basis_weight(limit.basis, demographics.weight_kg, demographics.height_cm,
                        demographics.sex)


def weight_regimen(entry: Any, weight: float | None) -> tuple[Regimen | None, float | None]:
    """The best dispensable regimen within a weight limit (`weight`: the limit's basis
    weight, dose_weight), and the limit in mg/day."""
    limit = entry.dose_limit
    if limit is None or weight is None:
        return None, None
    cap = limit.mg_per_kg_per_day * weight
    if limit.max_mg_per_day:
        cap = min(cap, limit.max_mg_per_day)
    tablets = tuple(t.mg for t in entry.dosing.tablets) if entry.dosing else ()
    return best_regimen(cap, tablets), cap


def _continuous_start(courses: list[Course], latest: Course) -> dt.date:
    """Dose changes (a course ending where the next of the same drug starts) do not
    restart the trial: walk back through touching courses."""
    start = latest.start
    changed = True
    while changed:
        changed = False
        for c in courses:
            if c is latest or c.stop is None:
                continue
            if c.start < start and c.stop >= start - dt.timedelta(days=1):
                start = c.start
                changed = True
    return start


def _trend(p: Patient, since: dt.date, until: dt.date, change: float,
           percent: float) -> bool | None:
    """Did CLASI activity fall meaningfully between the start and the end of a course?"""
    acts = sorted(p.activity, key=lambda a: (a.date, a.clasi_activity))
    before = [a for a in acts if a.date <= since]
    after = [a for a in acts if since < a.date <= until]
    if not before or not after:
        return None
    base, last = before[-1].clasi_activity, after[-1].clasi_activity
    fall = base - last
    return fall >= change or (base > 0 and 100 * fall / base >= percent)


def course_views(p: Patient, drugs: Mapping[str, Any], thresholds: Mapping[str, float],
                 days: Callable[[str], int | None]) -> dict[str, CourseView]:
    """Each drug's latest course (the ongoing one if any), with its phase."""
    by_drug: dict[str, list[Course]] = {}
    for c in p.treatments:
        by_drug.setdefault(c.drug, []).append(c)
    change = thresholds.get("clasi_meaningful_change", 4)
    percent = thresholds.get("clasi_meaningful_change_percent", 20)
    active = thresholds.get("moderate_clasi_activity", 10)
    out: dict[str, CourseView] = {}
    for drug, courses in by_drug.items():
        courses = sorted(courses, key=course_key)
        ongoing = [c for c in courses if c.stop is None]
        latest = ongoing[-1] if ongoing else courses[-1]
        entry = drugs.get(drug)
        start = _continuous_start(courses, latest)
        end = latest.stop or p.as_of
        months = (end - start).days / DAYS_PER_MONTH
        trial_days = days(entry.course.trial) if entry is not None and entry.course.trial else None
        trial_until = start + dt.timedelta(days=trial_days) if trial_days else None
        if latest.response == "complete":
            phase: str | None = "responding"
        elif trial_until is not None and end < trial_until:
            phase = "in_trial" if latest.stop is None else "stopped_early"
        elif latest.response == "partial":
            phase = "partial"
        elif latest.response == "none":
            phase = "failed"
        else:
            improved = _trend(p, start, end, change, percent)
            if improved:
                last = max((a for a in p.activity if a.date <= end),
                           key=lambda a: (a.date, a.clasi_activity))
                phase = "responding" if last.clasi_activity < active else "partial"
            else:
                phase = None  # the clinician's judgement is needed
        dosing = entry.dosing if entry is not None else None
        weekly = dosing is not None and dosing.unit == "mg_per_week"
        wrong_unit = weekly and latest.dose_mg_per_day is not None
        if weekly:
            dose = latest.dose_mg_per_week if latest.dose_mg_per_week is not None \
                else latest.dose_mg_per_day
            unit = "mg/week"
        else:
            dose = latest.dose_mg_per_day if latest.dose_mg_per_day is not None else (
                latest.dose_mg_per_week / 7 if latest.dose_mg_per_week is not None else None)
            unit = "mg/day"
        above = bool(dosing and dosing.max_mg is not None and dose is not None
                     and not wrong_unit and dose > dosing.max_mg + 1e-9)
        at_max: bool | None = None
        if dose is not None and not wrong_unit and entry is not None:
            if entry.dose_limit is not None:
                regimen, _ = weight_regimen(entry, dose_weight(entry, p.demographics))
                if regimen is not None:
                    at_max = dose >= regimen.mean - 1e-9
            elif dosing is not None and dosing.steps_mg:
                at_max = dose >= dosing.steps_mg[-1] - 1e-9
            elif dosing is not None and dosing.max_mg is not None:
                at_max = dose >= dosing.max_mg - 1e-9
        out[drug] = CourseView(drug, start, latest.stop, phase, round(months, 2), dose, unit,
                               wrong_unit, above, at_max, trial_until,
                               tuple(sorted(latest.adverse_events)))
    return out


def next_step(entry: Any, dose: float | None) -> float | None:
    """The catalogue's next dose step above a dose, or None at the top."""
    if entry is None or entry.dosing is None or dose is None:
        return None
    higher = [s for s in entry.dosing.steps_mg if s > dose + 1e-9]
    return higher[0] if higher else None


def antimalarial_years(p: Patient, antimalarials: tuple[str, ...]) -> float | None:
    """Cumulative years of 4-aminoquinoline use across courses (overlaps counted once)."""
    days = antimalarial_days(p, antimalarials)
    return None if days is None else days / 365.25


def antimalarial_days(p: Patient, antimalarials: tuple[str, ...]) -> int | None:
    """Cumulative days of 4-aminoquinoline use across courses (overlaps counted once)."""
    spans = sorted((c.start, c.stop or p.as_of) for c in p.treatments if c.drug in antimalarials)
    if not spans:
        return None
    total, cur_start, cur_end = 0, spans[0][0], spans[0][1]
    for s, e in spans[1:]:
        if s <= cur_end:
            cur_end = max(cur_end, e)
        else:
            total += (cur_end - cur_start).days
            cur_start, cur_end = s, e
    total += (cur_end - cur_start).days
    return total


def first_antimalarial_start(p: Patient, antimalarials: tuple[str, ...]) -> dt.date | None:
    starts = [c.start for c in p.treatments if c.drug in antimalarials]
    return min(starts) if starts else None


def creatinine_clearance(p: Patient) -> float | None:
    """Cockcroft-Gault creatinine clearance (mL/min) from serum creatinine in umol/L:
    (140 - age) x weight (kg) x 1.23 (men) or 1.04 (women) / creatinine."""
    lab = p.labs.creatinine
    w = p.demographics.weight_kg
    if lab is None or w is None or lab.value <= 0:
        return None
    factor = 1.23 if p.demographics.sex == "male" else 1.04
    return max(0.0, (140 - p.demographics.age) * w * factor / lab.value)


@dataclass(frozen=True)
class Window:
    """One drug's interval before a conception: counted from its last dose, or, for a
    drug taken now, from the day it is stopped."""

    drug: str
    stop: dt.date | None     # the last dose; None: taken now
    days: int                # the catalogue's interval (stop_before_conception)
    ends: dt.date            # the earliest conception this drug allows


@dataclass(frozen=True)
class ConceptionPlan:
    """The earliest conception date is the latest end of every window, of every drug
    taken now or in the past; each drug taken now stops its own interval before it
    (never before today), not all of them today."""

    earliest: dt.date
    set_by: Window
    windows: tuple[Window, ...]
    stop_on: dict[str, dt.date]


def conception_plan(p: Patient, drugs: Mapping[str, Any],
                    days: Callable[[str], int | None]) -> ConceptionPlan | None:
    """The plan for a planned conception (by the woman's or the man's profiles), or None
    when no drug taken now or before has an interval."""
    who = "man" if p.demographics.sex == "male" else "woman"
    windows: list[Window] = []
    by_drug: dict[str, list[Course]] = {}
    for c in p.treatments:
        by_drug.setdefault(c.drug, []).append(c)
    for drug, courses in sorted(by_drug.items()):
        repro = drugs[drug].reproductive if drug in drugs else None
        profile = getattr(repro, who, None) if repro else None
        name = getattr(profile, "stop_before_conception", None) or (
            getattr(profile, "after_last_dose", None) if who == "woman" else None)
        if not name:
            continue
        interval = days(name) or 0
        if any(c.stop is None for c in courses):
            windows.append(Window(drug, None, interval, p.as_of + dt.timedelta(days=interval)))
        else:
            last = max(c.stop for c in courses if c.stop is not None)
            windows.append(Window(drug, last, interval, last + dt.timedelta(days=interval)))
    if not windows:
        return None
    latest = max(windows, key=lambda w: (w.ends, w.drug))
    earliest = max(latest.ends, p.as_of)
    stop_on = {w.drug: max(p.as_of, earliest - dt.timedelta(days=w.days))
               for w in windows if w.stop is None}
    return ConceptionPlan(earliest, latest, tuple(windows), stop_on)
