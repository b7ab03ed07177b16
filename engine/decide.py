"""Decide stage: exactly one next step from the fired rules.

Candidates are the fired `recommend` rules, best priority first. A drug that a safety
rule excluded is never chosen; when the best candidate is excluded only for want of
data (pregnancy status, a recent blood count), the step is `gather_data` and the safe
candidates stay as alternatives. Everything else becomes alternatives, exclusions,
monitoring, warnings and missing data, each with the rule it came from.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from .evaluate import Evaluation
from .facts import NO, course_key
from .models import Patient
from .ruleset import MonitorSpec, Rule, RuleSet

GUARD_RULE = "engine.teratogen-guard"
FALLBACK_RULE = "engine.no-candidate"
LADDER = ("topical", "antimalarial", "bridge", "immunosuppressant", "refractory",
          "specialist")
# The stage after each; the corticosteroid bridge is an adjunct beside the antimalarials.
NEXT_STAGES = {"topical": ("antimalarial",), "antimalarial": ("bridge", "immunosuppressant"),
               "bridge": ("immunosuppressant",), "immunosuppressant": ("refractory",),
               "refractory": ("specialist",), "specialist": ()}
STOPPING = ("stop", "reduce")
STARTING = ("start", "add", "switch", "reintroduce")  # never blocked by an exclusion: they lower exposure
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Candidate:
    action: str
    drug: str | None
    stage: str
    priority: int
    rule: Rule | None  # None only for the engine's fallback step
    dose: str | None
    summary: str

    @property
    def rule_id(self) -> str:
        return self.rule.id if self.rule else FALLBACK_RULE


@dataclass(frozen=True)
class Excluded:
    drug: str
    rule: str
    reason: str
    data_only: bool  # lifted by collecting the missing data


@dataclass(frozen=True)
class Monitor:
    what: str
    when: str
    rule: str
    reason: str
    drug: str | None


@dataclass(frozen=True)
class WhyNot:
    drug: str
    status: str  # excluded | outranked | not_indicated | combination | current
    reason: str
    rules: tuple[str, ...] = ()


@dataclass
class Decision:
    recommendation: Candidate
    rationale: str
    evidence: list[str]
    alternatives: list[Candidate]
    excluded: list[Excluded]
    monitoring: list[Monitor]
    warnings: list[tuple[str, str, str]]  # severity, message, rule
    missing_data: list[tuple[str, str]]  # field, why
    why_not: list[WhyNot] = field(default_factory=list)
    on_hold: Candidate | None = None  # the step gather_data waits for


def _label(ruleset: RuleSet, drug: str | None) -> str:
    if drug is None:
        return ""
    entry = ruleset.drugs.get(drug)
    return entry.label if entry else drug.replace("_", " ")


def _floor(value: float, step: int) -> int:
    return int(math.floor(value / step) * step)


def weight_dose(ruleset: RuleSet, drug: str, weight: float | None) -> tuple[str, int | None]:
    """Dose text within the drug's weight limit, and the daily maximum in mg."""
    limit = ruleset.drugs[drug].dose_limit
    assert limit is not None
    if weight is None:
        return (f"at most {limit.mg_per_kg_per_day:g} mg/kg real body weight per day; "
                f"weigh the patient before dosing", None)
    cap = limit.mg_per_kg_per_day * weight
    if limit.max_mg_per_day:
        cap = min(cap, limit.max_mg_per_day)
    maximum = int(math.floor(cap))
    dose = _floor(cap, limit.round_down_to_mg) or maximum
    return (f"{dose} mg per day (at most {limit.mg_per_kg_per_day:g} mg/kg real body "
            f"weight x {weight:g} kg = {maximum} mg/day)", maximum)


def _course_doses(patient: Patient, drug: str) -> list[tuple[Any, float | None, str, str | None]]:
    courses = sorted((c for c in patient.treatments if c.drug == drug), key=course_key)
    out = []
    for c in courses:
        if c.dose_mg_per_day is not None:
            out.append((c, c.dose_mg_per_day, "mg/day", c.stop_reason))
        elif c.dose_mg_per_week is not None:
            out.append((c, c.dose_mg_per_week, "mg/week", c.stop_reason))
        else:
            out.append((c, None, "", c.stop_reason))
    return out


def _dose_for(ruleset: RuleSet, ev: Evaluation, action: str, drug: str | None,
              rule_dose: str | None) -> str | None:
    if drug is None:
        return rule_dose
    entry = ruleset.drugs[drug]
    courses = _course_doses(ev.patient, drug)
    if action == "reintroduce":
        effective = [(d, u) for c, d, u, _ in courses
                     if d is not None and c.response in ("partial", "complete")]
        if effective:
            d, u = effective[-1]
            return f"{d:g} {u} (the last effective dose)"
    if action == "increase":
        previous = [(d, u) for c, d, u, reason in courses[:-1]
                    if d is not None and reason == "dose_reduced"]
        if previous:
            d, u = previous[-1]
            return f"{d:g} {u} (the previous effective dose)"
    if entry.dose_limit and action in ("start", "add", "switch", "reintroduce", "reduce"):
        text, _ = weight_dose(ruleset, drug, ev.facts.get("weight_kg"))
        return ("reduce to " + text) if action == "reduce" else text
    return rule_dose or entry.usual_dose


def _summary(ruleset: RuleSet, ev: Evaluation, rule: Rule, action: str, drug: str | None,
             dose: str | None) -> str:
    spec = rule.spec.then.recommend
    trigger = ev.patient.diagnosis.suspected_drug_trigger or "the suspected drug"
    current = [d for d in ruleset.drugs if ev.facts.get(f"{d}_status") == "current"]
    if spec and spec.summary:
        return spec.summary.format(
            trigger=trigger, drug=_label(ruleset, drug), dose=dose or "",
            current=", ".join(_label(ruleset, d) for d in current) or "no drug",
            current_teratogens=", ".join(_label(ruleset, d) for d in current
                                         if ruleset.drugs[d].teratogenic) or "none")
    words = {"gather_data": "Gather data", "reintroduce": "Reintroduce"}
    text = words.get(action, action.capitalize())
    if drug:
        text += f" {_label(ruleset, drug)}"
    if dose and action not in ("stop", "continue"):
        text += f", {dose}"
    return text


def _is_systemic(ruleset: RuleSet, drug: str | None) -> bool:
    return bool(drug) and ruleset.drugs[drug].stage != "topical"


def _main_current_drug(ruleset: RuleSet, ev: Evaluation) -> str | None:
    """The current drug highest on the ladder (drugs.yaml order breaks ties), or None."""
    current = [d for d in ruleset.drugs if ev.facts.get(f"{d}_status") == "current"]
    if not current:
        return None
    rank = {stage: i for i, stage in enumerate(LADDER)}
    return max(current, key=lambda d: (rank.get(ruleset.drugs[d].stage, -1),
                                       -list(ruleset.drugs).index(d)))


def _candidates(ruleset: RuleSet, ev: Evaluation) -> list[Candidate]:
    out = []
    on_systemic = ev.facts.get("on_systemic_therapy") == "yes"
    for fired in ev.fired:
        spec = fired.rule.spec.then.recommend
        if not spec:
            continue
        action = spec.action
        if action == "start" and on_systemic and _is_systemic(ruleset, spec.drug) and \
                ev.facts.get(f"{spec.drug}_status") != "current":
            action = "add"  # the patient keeps the systemic drugs already taken
        drug = spec.drug
        if action == "continue" and drug is None:
            drug = _main_current_drug(ruleset, ev)  # contract: the drug continued
        dose = _dose_for(ruleset, ev, action, spec.drug, spec.dose)
        out.append(Candidate(action, drug, fired.rule.stage, fired.rule.spec.priority,
                             fired.rule, dose,
                             _summary(ruleset, ev, fired.rule, action, spec.drug, dose)))
    return sorted(out, key=lambda c: (-c.priority, c.rule.id))


def _exclusions(ruleset: RuleSet, ev: Evaluation) -> list[Excluded]:
    out = []
    for fired in ev.fired:
        then = fired.rule.spec.then
        for drug in then.exclude or []:
            out.append(Excluded(drug, fired.rule.id, fired.rule.spec.because.strip(),
                                bool(then.request)))
    return out


def _guard(ruleset: RuleSet, ev: Evaluation, drug: str | None,
           action: str) -> Excluded | None:
    """Defence in depth: a teratogen is never chosen unless pregnancy is ruled out,
    whatever the rules say. The shipped rules exclude these first; tests check the
    guard never has to act for them."""
    if not drug or not ruleset.drugs[drug].teratogenic or action in STOPPING:
        return None
    if ev.facts.get("pregnant") == NO:
        return None
    return Excluded(drug, GUARD_RULE, "teratogenic, and pregnancy is not ruled out",
                    ev.facts.get("pregnant") == "unknown")


def _never_with(ruleset: RuleSet, ev: Evaluation, c: Candidate) -> str | None:
    if c.drug is None or c.action not in ("start", "add", "reintroduce"):
        return None
    partners = set(ruleset.drugs[c.drug].never_with)
    partners |= {d for d, e in ruleset.drugs.items() if c.drug in e.never_with}
    for other in sorted(partners):
        if ev.facts.get(f"{other}_status") == "current":
            return f"never combined with {_label(ruleset, other)} (drugs.yaml never_with)"
    return None


def _anchor(spec: MonitorSpec, ev: Evaluation) -> tuple[dt.date, str]:
    """Where a schedule is counted from: as_of, or a drug's current start or last stop."""
    if spec.counted_from_start_of:
        starts = [c.start for c in ev.patient.treatments
                  if c.drug == spec.counted_from_start_of and c.stop is None]
        if starts:
            return max(starts), f"after the start on {max(starts)}"
        return ev.patient.as_of, "after the start"
    if spec.counted_from_stop_of:
        stops = [c.stop for c in ev.patient.treatments
                 if c.drug == spec.counted_from_stop_of and c.stop is not None]
        if stops:
            return max(stops), f"after the stop on {max(stops)}"
    return ev.patient.as_of, "from today"


def _schedule(spec: MonitorSpec, ev: Evaluation, ruleset: RuleSet) -> str:
    """The item's words plus its dates, counted from as_of or from a start or stop."""
    as_of = ev.patient.as_of
    base, origin = _anchor(spec, ev)
    text = spec.when
    first, every = ruleset.days(spec.first_in_days), ruleset.days(spec.every_days)
    if first is None and not every:
        return f"from {as_of}: {text}" if origin == "from today" else f"{text} ({origin})"
    if first is not None:
        due = base + dt.timedelta(days=first)
        text = (f"due {due}: {text}" if due >= as_of else f"due now (was {due}): {text}")
    if every:
        until = ruleset.days(spec.until_day) or every * 4
        dates = [base + dt.timedelta(days=d) for d in range(every, until + 1, every)]
        dates = [d for d in dates if d >= as_of]
        if dates:
            text += " (" + ", ".join(str(d) for d in dates) + f"; day {until} {origin})"
        else:
            text += f" (the {until}-day window {origin} has passed)"
    return text


def _monitoring(ruleset: RuleSet, ev: Evaluation, rec: Candidate | None,
                rec_rule: str) -> list[Monitor]:
    out: dict[tuple[str, str], Monitor] = {}
    for fired in ev.fired:
        for spec in fired.rule.spec.then.monitor or []:
            if fired.rule.spec.then.recommend and fired.rule.id != rec_rule:
                continue  # the plan of a step that was not chosen
            keep = (spec.drug is None or fired.rule.id == rec_rule
                    or (rec is not None and spec.drug == rec.drug
                        and rec.action not in ("stop", "switch"))
                    or (ev.facts.get(f"{spec.drug}_status") == "current"
                        and not (rec is not None and rec.drug == spec.drug
                                 and rec.action in ("stop", "switch"))))
            if not keep:
                continue
            item = Monitor(spec.what, _schedule(spec, ev, ruleset), fired.rule.id,
                           fired.rule.spec.because.strip(), spec.drug)
            out.setdefault((spec.what, fired.rule.id), item)
    return sorted(out.values(), key=lambda m: (m.what, m.rule))


def _why_not(ruleset: RuleSet, ev: Evaluation, rec: Candidate, candidates: list[Candidate],
             excluded: list[Excluded], combos: dict[str, str]) -> list[WhyNot]:
    stages = {rec.stage}
    for drug, entry in ruleset.drugs.items():
        if ev.facts.get(f"{drug}_status") == "current":
            stages.add(entry.stage)
    ladder_pos = [LADDER.index(s) for s in stages if s in LADDER]
    if ladder_pos:
        stages.update(NEXT_STAGES[LADDER[max(ladder_pos)]])
    out = []
    fired = ev.fired_ids()
    for drug in sorted(ruleset.drugs):
        mine = [e for e in excluded if e.drug == drug]
        if drug == rec.drug or (ruleset.drugs[drug].stage not in stages and not mine):
            continue
        if mine:
            out.append(WhyNot(drug, "excluded", "; ".join(
                f"{e.rule}: {e.reason.rstrip('.')}" for e in mine) + ".",
                tuple(e.rule for e in mine)))
            continue
        if drug in combos:
            out.append(WhyNot(drug, "combination", combos[drug]))
            continue
        if ev.facts.get(f"{drug}_status") == "current":
            out.append(WhyNot(drug, "current", "already taken; it continues unless the "
                              "step says otherwise"))
            continue
        offered = [c for c in candidates if c.drug == drug]
        if offered:
            c = offered[0]
            out.append(WhyNot(drug, "outranked", f"{c.rule.id} (priority {c.priority}) "
                              f"is outranked by {rec.rule_id} (priority {rec.priority})",
                              (c.rule.id, rec.rule_id)))
            continue
        silent = [(r, ev.unmet(r.id)) for r in ruleset.recommenders.get(drug, ())
                  if r.id not in fired and r.spec.then.recommend.action in STARTING]
        if silent:
            reasons = "; ".join(f"{r.id} needs {', '.join(unmet) or 'its conditions'}"
                                for r, unmet in silent[:2])
            out.append(WhyNot(drug, "not_indicated", reasons,
                              tuple(r.id for r, _ in silent[:2])))
        else:
            out.append(WhyNot(drug, "not_indicated", "no rule recommends it here"))
    return out


def _partition(ruleset: RuleSet, ev: Evaluation, candidates: list[Candidate],
               excluded: list[Excluded]) -> tuple[list[Candidate], list[Candidate], dict[str, str]]:
    """Split candidates into eligible ones, ones waiting only for data (ranked above every
    eligible one), and drugs dropped for a forbidden combination. Adds guard exclusions."""
    eligible: list[Candidate] = []
    blocked_by_data: list[Candidate] = []
    combos: dict[str, str] = {}
    for c in candidates:
        guard = _guard(ruleset, ev, c.drug, c.action)
        if guard and not any(e.drug == c.drug for e in excluded):
            excluded.append(guard)
        mine = [e for e in excluded if e.drug == c.drug] \
            if c.drug and c.action not in STOPPING else []
        if mine:
            if all(e.data_only for e in mine) and not eligible:
                blocked_by_data.append(c)
            continue
        reason = _never_with(ruleset, ev, c)
        if reason:
            combos.setdefault(c.drug or "", reason)
            continue
        eligible.append(c)
    return eligible, blocked_by_data, combos


def _gather_step(ruleset: RuleSet, ev: Evaluation, wanted: Candidate,
                 excluded: list[Excluded], requests: dict[str, str]) -> tuple[Candidate, str, list[str]]:
    """`gather_data` for a step on hold: what to collect, and why."""
    holds = [e for e in excluded if e.drug == wanted.drug]
    rule = ruleset.by_id.get(holds[0].rule) if holds and holds[0].rule in ruleset.by_id \
        else wanted.rule
    asks = [r.label for f in ev.fired if f.rule.id in {e.rule for e in holds}
            for r in f.rule.spec.then.request or []]
    asks = list(dict.fromkeys(asks)) or sorted(requests)
    step = Candidate("gather_data", None, wanted.stage, wanted.priority, rule, None,
                     "Gather data before deciding: " + "; ".join(asks))
    rationale = (f"The next step on the ladder would be: {wanted.summary} "
                 f"({wanted.rule_id}). It is on hold until this is known: "
                 + " ".join(e.reason for e in holds))
    evidence = sorted(set(wanted.rule.spec.evidence if wanted.rule else [])
                      | set(rule.spec.evidence if rule else []))
    return step, rationale, evidence


def decide(ruleset: RuleSet, ev: Evaluation) -> Decision:
    """Pick one next step; keep the rest as alternatives, with reasons for all."""
    candidates = _candidates(ruleset, ev)
    excluded = _exclusions(ruleset, ev)
    eligible, blocked_by_data, combos = _partition(ruleset, ev, candidates, excluded)
    requests: dict[str, str] = {}
    for fired in ev.fired:
        for req in fired.rule.spec.then.request or []:
            requests.setdefault(req.field, req.why.strip())

    best = eligible[0] if eligible else None
    wanted = None
    if blocked_by_data and (best is None or blocked_by_data[0].priority >= best.priority):
        wanted = blocked_by_data[0]
        rec, rationale, evidence = _gather_step(ruleset, ev, wanted, excluded, requests)
        alternatives = eligible
    elif best is not None:
        rec, rationale = best, best.rule.spec.because.strip()
        evidence = list(best.rule.spec.evidence)
        alternatives = eligible[1:]
    else:
        rec = Candidate("refer", None, "specialist", 0, None, None,
                        "Refer to a CLE specialist: no rule applies to this patient")
        rationale = ("No rule of the rule set recommends a step for this patient, or "
                     "every option is excluded; a specialist decides.")
        evidence, alternatives = [], []
    seen = {(rec.action, rec.drug)}
    unique_alts = []
    for alt in alternatives:
        if (alt.action, alt.drug) not in seen:
            seen.add((alt.action, alt.drug))
            unique_alts.append(alt)

    warnings = []
    for fired in ev.fired:
        warn = fired.rule.spec.then.warn
        if warn:
            warnings.append((warn.severity, warn.message.strip(), fired.rule.id))
    warnings.sort(key=lambda w: (SEVERITY_RANK[w[0]], w[2]))

    weight_missing = ev.facts.get("weight_kg") is None and any(
        c.drug and ruleset.drugs[c.drug].dose_limit for c in [rec] + unique_alts)
    if weight_missing:
        requests.setdefault("demographics.weight_kg",
                            "weight-based dose limit (real body weight)")
    ex_sorted = sorted({(e.drug, e.rule): e for e in excluded}.values(),
                       key=lambda e: (e.drug, e.rule))
    rec_rule = rec.rule_id if rec.action != "gather_data" else ""
    chosen = rec if rec.action != "gather_data" else None
    return Decision(
        recommendation=rec, rationale=rationale, evidence=evidence,
        alternatives=unique_alts, excluded=ex_sorted,
        monitoring=_monitoring(ruleset, ev, chosen, rec_rule),
        warnings=warnings,
        missing_data=sorted(requests.items()),
        why_not=_why_not(ruleset, ev, rec, candidates, ex_sorted, combos),
        on_hold=wanted,
    )
