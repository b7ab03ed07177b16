"""Decide stage: exactly one next step from the fired rules.

Candidates are the fired `recommend` rules, best priority first. A drug that a safety
rule excluded is never chosen; when the best candidate is excluded only for want of
data (pregnancy status, a recent blood count), the step is `gather_data` and the safe
candidates stay as alternatives. Everything else becomes alternatives, exclusions,
monitoring, warnings and missing data, each with the rule it came from.

Course invariants hold for every rule file, not only the shipped one (drugs.yaml
`course`): no new drug while a current one is in its trial period (the step is to
continue it, with a review date); a new drug that the catalogue does not let a current
one be taken with replaces it (a switch, naming what stops); a partial response below
the top dose step is escalated before a switch; never two drugs of a `never_with` pair.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace
from typing import Any

from .courses import CourseView, course_key, next_step, weight_regimen
from .dosing import BASES, basis_weight
from .texts import Overlay, context, render_text
from .words import fact_words, unmet_words
from .evaluate import Evaluation
from .facts import NO
from .models import Patient
from .ruleset import MonitorSpec, Rule, RuleSet

GUARD_RULE = "engine.teratogen-guard"
FALLBACK_RULE = "engine.no-candidate"
TRIAL_RULE = "engine.course-in-trial"
ESCALATE_RULE = "engine.escalate-first"
# Steps and items the engine itself makes, from drugs.yaml, for every rule file.
RELAPSE_RULE = "engine.relapse-watch"
AFTER_DOSE_RULE = "engine.after-last-dose"
ENGINE_RULES = (GUARD_RULE, FALLBACK_RULE, TRIAL_RULE, ESCALATE_RULE,
                "engine.course-unjudged", RELAPSE_RULE, AFTER_DOSE_RULE)
LADDER = ("topical", "antimalarial", "bridge", "immunosuppressant", "refractory",
          "specialist")
# The stage after each; the corticosteroid bridge is an adjunct beside the antimalarials.
NEXT_STAGES = {"topical": ("antimalarial",), "antimalarial": ("bridge", "immunosuppressant"),
               "bridge": ("immunosuppressant",), "immunosuppressant": ("refractory",),
               "refractory": ("specialist",), "specialist": ()}
STOPPING = ("stop", "reduce")
# Steps that put a drug forward (a stop or a reduction lowers exposure: never blocked).
STARTING = ("start", "add", "switch", "reintroduce")
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Candidate:
    action: str
    drug: str | None
    stage: str
    priority: int
    rule: Rule | None  # None for the engine's own steps (fallback, trial hold, escalation)
    dose: str | None
    summary: str
    stops: tuple[str, ...] = ()       # what a switch or a stop stops
    engine_rule: str | None = None    # the engine invariant that made this step
    note: str = ""                    # its rationale, for engine steps
    requirement: bool = False         # a current drug's unmet requirement (never excluded)
    also_rules: tuple[str, ...] = ()  # rules whose orders the step's text also carries
    resumes: tuple[str, ...] = ()     # held drugs its 'Then' continues (they keep monitoring)

    @property
    def rule_id(self) -> str:
        if self.engine_rule:
            return self.engine_rule
        return self.rule.id if self.rule else FALLBACK_RULE


@dataclass(frozen=True)
class Excluded:
    drug: str
    rule: str
    reason: str
    data_only: bool  # lifted by collecting the missing data
    fix: str | None = None     # how the requirement is met (then the blocked step follows)
    if_taken: str = "hold"     # a current drug's fate: hold | stop | continue | start_only
    priority: int = 100
    facts: str = ""            # this patient's facts that broke the requirement
    also: str | None = None    # what else is done at once for a current drug

    @property
    def liftable(self) -> bool:
        """Lifted by data or by meeting the requirement: a step it blocks waits for it
        rather than giving way to a lower one."""
        return self.data_only or self.fix is not None


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
    status: str  # excluded | outranked | not_indicated | combination | current | waiting
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


def _basis_requests(ruleset: RuleSet, ev: Evaluation, steps: list[Any],
                    requests: dict[str, str]) -> None:
    """The record fields a weight-based dose of a step needs and lacks (its basis:
    real body weight; ideal or lean body weight also need the height)."""
    d = ev.patient.demographics
    for step in steps:
        limit = ruleset.drugs[step.drug].dose_limit if step.drug else None
        if limit is None:
            continue
        basis = BASES[limit.basis]
        for need in basis.needs:
            if getattr(d, need.rsplit(".", 1)[1]) is None:
                requests.setdefault(need, basis.why)


def _label(ruleset: RuleSet, drug: str | None) -> str:
    if drug is None:
        return ""
    entry = ruleset.drugs.get(drug)
    return entry.label if entry else drug.replace("_", " ")


def weight_dose(ruleset: RuleSet, drug: str, weight: float | None,
                height_cm: float | None = None, sex: str | None = None
                ) -> tuple[str, int | None]:
    """A dispensable regimen within the drug's weight limit (never above it), as text,
    and the limit in whole mg/day. `weight` is real body weight; the limit is per kg of
    its basis (engine/dosing.py), which may need height and sex too: without them no
    dose is named."""
    entry = ruleset.drugs[drug]
    limit = entry.dose_limit
    assert limit is not None
    basis = BASES[limit.basis]
    per = basis_weight(limit.basis, weight, height_cm, sex)
    if per is None:
        todo = "weigh the patient" if limit.basis == "real_body_weight" else \
            "record the height and weight"
        return (f"at most {limit.mg_per_kg_per_day:g} mg/kg {basis.words} per day; "
                f"{todo} before dosing", None)
    if limit.basis != "real_body_weight":
        per = round(per, 1)  # as the text shows it
    weight = per
    regimen, cap = weight_regimen(entry, weight)
    assert cap is not None
    maximum = int(math.floor(cap + 1e-9))
    salt = entry.dosing.salt if entry.dosing else None
    of = f" of {salt}" if salt else ""
    limit_text = (f"at most {limit.mg_per_kg_per_day:g} mg/kg {basis.words} x {weight:g} kg "
                  f"= {maximum} mg/day{of}")
    if regimen is None:
        return (f"no dispensable regimen is within the limit ({limit_text}): a specialist "
                "decides the dose", maximum)
    base = {t.mg: t.base_mg for t in entry.dosing.tablets if t.base_mg} if entry.dosing else {}
    text = regimen.text(salt=salt, base_of=base)
    per_kg = regimen.mean / weight
    return (f"{text}; {per_kg:.1f} mg/kg/day{of} ({limit_text})", maximum)


def _body(ev: Evaluation) -> tuple[float | None, float | None, str]:
    """Real body weight, height and sex: what a dose basis is computed from."""
    d = ev.patient.demographics
    return ev.facts.get("weight_kg"), d.height_cm, d.sex


def _course_doses(ev: Evaluation, drug: str) -> list[tuple[Any, float | None, str, str | None]]:
    """A drug's courses in order with their doses (every candidate of the drug asks:
    computed once per evaluation)."""
    cache = ev.__dict__.setdefault("_course_doses", {})
    found = cache.get(drug)
    if found is None:
        found = cache[drug] = _doses_of(ev.patient, drug)
    return found


def _doses_of(patient: Patient, drug: str) -> list[tuple[Any, float | None, str, str | None]]:
    courses = sorted((c for c in patient.treatments if c.drug == drug), key=course_key)
    out: list[tuple[Any, float | None, str, str | None]] = []
    for c in courses:
        if c.dose_mg_per_day is not None:
            out.append((c, c.dose_mg_per_day, "mg/day", c.stop_reason))
        elif c.dose_mg_per_week is not None:
            out.append((c, c.dose_mg_per_week, "mg/week", c.stop_reason))
        else:
            out.append((c, None, "", c.stop_reason))
    return out


def _dose_rules(ev: Evaluation) -> dict[str, tuple[str, str]]:
    """Drug -> (dose, rule id) from fired rules that set this patient's dose (computed
    once per evaluation: every candidate asks)."""
    cached = ev.__dict__.get("_dose_rules")
    if cached is not None:
        return cached
    out: dict[str, tuple[str, str]] = {}
    dosing = [f for f in ev.fired if f.rule.spec.then.dose is not None]
    for fired in sorted(dosing, key=lambda f: (-f.rule.spec.priority, f.rule.id)):
        spec = fired.rule.spec.then.dose
        assert spec is not None
        out.setdefault(spec.drug, (spec.dose.strip(), fired.rule.id))
    ev.__dict__["_dose_rules"] = out
    return out


def _step_text(ruleset: RuleSet, drug: str, amount: float) -> str:
    dosing = ruleset.drugs[drug].dosing
    if dosing is not None and dosing.unit == "mg_per_week":
        return f"{amount:g} mg once WEEKLY"
    return f"{amount:g} mg once daily"


def _dose_for(ruleset: RuleSet, ev: Evaluation, action: str, drug: str | None,
              rule_dose: str | None) -> str | None:
    if drug is None:
        return rule_dose
    entry = ruleset.drugs[drug]
    courses = _course_doses(ev, drug)
    override = _dose_rules(ev).get(drug)
    if override and action in ("start", "add", "switch", "reintroduce", "reduce"):
        return f"{override[0]} [{override[1]}]"
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
        view = ev.courses.get(drug)
        if entry.dose_limit:
            text, _ = weight_dose(ruleset, drug, *_body(ev))
            return "raise to " + text
        following = next_step(entry, view.dose if view else None)
        if following is not None:
            return f"{_step_text(ruleset, drug, following)} (the next dose step)"
    if entry.dose_limit and action in ("start", "add", "switch", "reintroduce", "reduce"):
        text, _ = weight_dose(ruleset, drug, *_body(ev))
        return ("reduce to " + text) if action == "reduce" else text
    if action in ("start", "add", "switch") and entry.dosing is not None and not rule_dose:
        return entry.dosing.start
    return rule_dose or entry.usual_dose


def _summary(ruleset: RuleSet, ev: Evaluation, rule: Rule, action: str, drug: str | None,
             dose: str | None, ctx: dict[str, Any]) -> str:
    spec = rule.spec.then.recommend
    if spec and spec.summary:
        if "{" not in spec.summary:
            return spec.summary
        trigger = ev.patient.diagnosis.suspected_drug_trigger or "the suspected drug"
        current = _current(ruleset, ev)
        values = Overlay(
            ctx, trigger=trigger, drug=_label(ruleset, drug), dose=dose or "",
            current=", ".join(_label(ruleset, d) for d in current) or "no drug",
            current_teratogens=", ".join(_label(ruleset, d) for d in current
                                         if ruleset.drugs[d].teratogenic) or "none")
        return render_text(spec.summary, values)
    words = {"gather_data": "Gather data", "reintroduce": "Reintroduce"}
    text = words.get(action, action.capitalize())
    if drug:
        text += f" {_label(ruleset, drug)}"
    if dose and action not in ("stop", "continue"):
        text += f", {dose}"
    return text


def _is_systemic(ruleset: RuleSet, drug: str | None) -> bool:
    return drug is not None and ruleset.drugs[drug].stage != "topical"


def _main_current_drug(ruleset: RuleSet, ev: Evaluation) -> str | None:
    """The current drug highest on the ladder (drugs.yaml order breaks ties), or None."""
    current = _current(ruleset, ev)
    if not current:
        return None
    rank = {stage: i for i, stage in enumerate(LADDER)}
    return max(current, key=lambda d: (rank.get(ruleset.drugs[d].stage, -1),
                                       -list(ruleset.drugs).index(d)))


def _current(ruleset: RuleSet, ev: Evaluation) -> list[str]:
    """The drugs taken now, in drugs.yaml order (asked by every candidate: kept)."""
    found = ev.__dict__.get("_current_drugs")
    if found is None:
        found = [d for d in ruleset.drugs if ev.facts.get(f"{d}_status") == "current"]
        ev.__dict__["_current_drugs"] = found
    return list(found)


def _adjunct(ruleset: RuleSet, drug: str) -> bool:
    return ruleset.drugs[drug].course.adjunct


def combinable(ruleset: RuleSet, a: str, b: str) -> bool:
    """May a and b be taken together (either lists the other in course.combines_with,
    or one is an adjunct)?"""
    ea, eb = ruleset.drugs[a], ruleset.drugs[b]
    return (ea.course.adjunct or eb.course.adjunct or b in ea.course.combines_with
            or a in eb.course.combines_with)


def _conflicts(ruleset: RuleSet, ev: Evaluation, drug: str) -> tuple[str, ...]:
    """Current drugs a new `drug` cannot be taken with: they stop when it starts."""
    return tuple(d for d in _current(ruleset, ev)
                 if d != drug and not combinable(ruleset, drug, d))


def _in_trial(ruleset: RuleSet, ev: Evaluation, drug: str | None) -> list[CourseView]:
    """Current courses (other than `drug`, and not adjuncts) still in their trial."""
    return [v for d, v in ev.courses.items()
            if v.current and d != drug and v.phase == "in_trial"
            and d in ruleset.drugs and not _adjunct(ruleset, d)]


def _candidates(ruleset: RuleSet, ev: Evaluation, ctx: dict[str, Any]) -> list[Candidate]:
    out = []
    on_systemic = ev.facts.get("on_systemic_therapy") == "yes"
    for fired in ev.fired:
        spec = fired.rule.spec.then.recommend
        if not spec:
            continue
        action = spec.action
        drug = spec.drug
        stops: tuple[str, ...] = ()
        if spec.among:
            taken = tuple(d for d in spec.among if ev.facts.get(f"{d}_status") == "current")
            drug = taken[0] if taken else None
            stops = taken if action == "stop" else ()
        elif action == "stop" and drug:
            stops = (drug,)
        if action in ("start", "add", "switch", "reintroduce") and drug and \
                ev.facts.get(f"{drug}_status") != "current":
            stops = _conflicts(ruleset, ev, drug)
            if stops and action != "switch":
                action = "switch"  # the catalogue does not let them be taken together
            elif not stops and action == "start" and on_systemic and \
                    _is_systemic(ruleset, drug):
                action = "add"  # the patient keeps the systemic drugs already taken
        if action == "continue" and drug is None:
            drug = _main_current_drug(ruleset, ev)  # contract: the drug continued
        dose = _dose_for(ruleset, ev, "start" if action == "switch" else action,
                         spec.drug, spec.dose)
        summary = _summary(ruleset, ev, fired.rule, action, spec.drug, dose, ctx)
        if action == "stop":
            dose = None
        if stops and action == "switch" and (spec.action != "switch" or not spec.summary):
            summary = (f"Switch {', '.join(_label(ruleset, d) for d in stops)} to "
                       f"{_label(ruleset, drug)}" + (f", {dose}" if dose else ""))
        out.append(Candidate(action, drug, fired.rule.stage, fired.rule.spec.priority,
                             fired.rule, dose, summary, stops))
    return sorted(out, key=lambda c: (-c.priority, c.rule_id))


REQUIREMENT_FATE = {"hold": "Hold", "stop": "Stop", "continue": "Continue"}
# A current drug's unmet requirement ranks with the safety steps, below the most urgent
# (a pregnancy, a low count, retinal toxicity); whichever is chosen, the others are
# critical warnings, never silent.
REQUIREMENT_PRIORITY = 90
# A held drug whose 'Then' is one of these goes on: its monitoring goes on too.
RESUMING = ("continue", "increase", "reintroduce")


def _requirement_steps(ruleset: RuleSet, ev: Evaluation, candidates: list[Candidate],
                       excluded: list[Excluded]) -> list[Candidate]:
    """A current drug that a safety rule now excludes (a requirement it no longer meets)
    is never excluded silently: unless a fired rule already decides its fate, its step
    is the rule's `if_taken` (hold by default: fail safe) with how to meet the
    requirement. Data-only exclusions are asked for by their own step instead."""
    # Only a rule that stops the drug itself decides its fate; a switch to a drug that
    # may well be excluded too (chloroquine after retinopathy) does not.
    decided = set().union(*(stopped_by(c.action, c.drug, c.stops) for c in candidates
                            if c.action == "stop"))
    out = []
    for drug in _current(ruleset, ev):
        mine = [e for e in excluded if e.drug == drug and e.if_taken != "start_only"
                and not e.data_only and e.rule in ruleset.by_id]
        if not mine or drug in decided:
            continue
        rank = {"stop": 0, "hold": 1, "continue": 2}
        e = min(mine, key=lambda x: (rank[x.if_taken], -x.priority, x.rule))
        held_for_data = any(x.drug == drug and x.data_only and x.if_taken in ("hold", "stop")
                            for x in excluded)
        if e.if_taken == "continue" and (held_for_data or _guard(ruleset, ev, drug, "continue")):
            continue  # never "continue" a drug another requirement holds until it is known
        rule = ruleset.by_id[e.rule]
        label = _label(ruleset, drug)
        fix = "".join(f" {t}" for t in (e.fix, e.also) if t)
        requirement = rule.spec.title[:1].lower() + rule.spec.title[1:]
        facts = f" (this patient: {e.facts})" if e.facts else ""
        stops: tuple[str, ...] = ()
        if e.if_taken == "continue":
            summary = f"Continue {label}; a requirement is not met: {requirement}{facts}.{fix}"
            action = "continue"
        else:
            until = " until the requirement is met" if e.if_taken == "hold" else ""
            summary = (f"{REQUIREMENT_FATE[e.if_taken]} {label} now{until}: "
                       f"{requirement}{facts}.{fix}")
            action, stops = "stop", (drug,)
        # What the drug's own rules would do once the requirement is met (a hold only).
        wanted = [c for c in candidates if c.drug == drug and c.action not in STOPPING
                  and not _keeps_whole_plan(c)]
        # A hold lasts until the requirement is met (a lasting contraindication is a
        # stop): the drug goes on then, and so does its monitoring, unless its 'Then'
        # is another step.
        resumes: tuple[str, ...] = ()
        if e.if_taken == "hold" and (not wanted or wanted[0].action in RESUMING):
            resumes = (drug,)
        if wanted and e.if_taken == "hold":
            summary += f" Then: {wanted[0].summary[:1].lower()}{wanted[0].summary[1:]}."
        out.append(Candidate(action, drug, ruleset.drugs[drug].stage,
                             min(e.priority, REQUIREMENT_PRIORITY), rule, None, summary,
                             stops, requirement=True, resumes=resumes))
    return out


def _keeps_whole_plan(c: Candidate) -> bool:
    """A `continue` that names no drug of its own ("continue the current plan (...)"):
    it lists every current drug, so it is never the 'Then' of one drug's hold."""
    spec = c.rule.spec.then.recommend if c.rule is not None else None
    return c.action == "continue" and spec is not None and spec.drug is None \
        and not spec.among


# Steps at or above this priority are the safety band: a stop, hold or reduction there
# means the current plan is not safe to keep as it is (a taper in remission, at 80, is not).
SAFETY_PRIORITY = 81


def _status_quo_unsafe(ruleset: RuleSet, ev: Evaluation, candidates: list[Candidate],
                       excluded: list[Excluded]) -> bool:
    """Keeping every current drug as it is breaks a safety rule: then "continue" is never
    offered, as a step's alternative or as what follows a hold."""
    current = set(_current(ruleset, ev))
    for c in candidates:
        if c.priority >= SAFETY_PRIORITY and c.action in STOPPING and \
                (stopped_by(c.action, c.drug, c.stops) | {c.drug}) & current:
            return True
    return any(e.drug in current and e.if_taken in ("hold", "stop") for e in excluded)


def _not_restarted(ruleset: RuleSet, rec: Candidate, excluded: list[Excluded]) -> Candidate:
    """A step that holds or stops a drug says so when a safety rule rules the drug out
    for good for this patient (a contraindication, not a fixable requirement): a
    temporary hold must not read as 'restart later'."""
    notes, rules = [], []
    for drug in sorted(stopped_by(rec.action, rec.drug, rec.stops)):
        lasting = [e for e in excluded if e.drug == drug and e.if_taken == "stop"
                   and not e.liftable and e.rule != rec.rule_id and e.rule in ruleset.by_id]
        if not lasting:
            continue
        e = max(lasting, key=lambda x: (x.priority, x.rule))
        title = ruleset.by_id[e.rule].spec.title
        facts = f" (this patient: {e.facts})" if e.facts else ""
        also = f" {e.also}" if e.also else ""
        rules.append(e.rule)
        notes.append(f"{_cap(_label(ruleset, drug))} is not restarted: "
                     f"{title[:1].lower()}{title[1:]}{facts}.{also}")
    if not notes:
        return rec
    return replace(rec, summary=rec.summary.rstrip(".") + ". " + " ".join(notes),
                   also_rules=rec.also_rules + tuple(rules))


def _ruled_out_above(ruleset: RuleSet, rec: Candidate,
                     split: _Split) -> list[tuple[str, str, str]]:
    """A step that would come first but is ruled out for this patient is named, with
    why: the clinical state that called for it (a relapse, a flare) is not lost when the
    step falls back to a lower one."""
    if rec.action == "gather_data":
        return []
    out: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for c, why in split.ruled_out:
        if c.priority <= rec.priority or c.rule is None or c.rule_id in seen \
                or c.action not in KEEPING:
            continue
        seen.add(c.rule_id)
        titles = (ruleset.by_id[e.rule].spec.title if e.rule in ruleset.by_id else e.reason
                  for e in why)
        reasons = "; ".join(dict.fromkeys(t[:1].lower() + t[1:] for t in titles))
        out.append(("warning", f"{c.rule.spec.title}, which would come first "
                    f"({c.summary[:1].lower()}{c.summary[1:]}), is not advised for this "
                    f"patient: {reasons}. The step above takes "
                    "its place.", c.rule_id))
    return out[:2]


def _escalation(ruleset: RuleSet, ev: Evaluation, c: Candidate,
                excluded: list[Excluded]) -> Candidate | None:
    """Escalate before switching: a stopped drug with a partial response below its top
    dose step goes up first, unless a safety rule excludes it or it caused an adverse
    event."""
    for d in c.stops:
        v = ev.courses.get(d)
        if v is None or v.phase != "partial" or v.at_max_dose is not False or v.adverse_events:
            continue
        if any(e.drug == d for e in excluded) or ev.facts.get(f"{d}_adverse_event") == "yes":
            continue
        dose = _dose_for(ruleset, ev, "increase", d, None)
        if not dose or dose == ruleset.drugs[d].usual_dose:
            continue
        note = (f"{c.summary} ({c.rule_id}) would stop {_label(ruleset, d)}, which has a "
                f"partial response at {v.dose_text}, below its top dose step: the dose goes "
                "up before a switch (the drug catalogue's dose steps).")
        return Candidate("increase", d, ruleset.drugs[d].stage, c.priority, None, dose,
                         f"Increase {_label(ruleset, d)} to {dose} before switching",
                         engine_rule=ESCALATE_RULE, note=note)
    return None


UNJUDGED_RULE = "engine.course-unjudged"
KEEPING = ("continue", "increase", "reintroduce", "start", "add")


def stopped_by(action: str, drug: str | None, stops: Any) -> set[str]:
    """The drugs a step stops: those it names in `stops`, and its drug if it is a stop."""
    return set(stops or ()) | ({drug} if action == "stop" and drug else set())


def _unjudged(ev: Evaluation, c: Candidate) -> list[str]:
    """Drugs a step would stop although their response has not been judged."""
    return [d for d in c.stops if ev.courses.get(d) is not None
            and ev.courses[d].phase is None]


def _judge_first(ruleset: RuleSet, c: Candidate, drugs: list[str]) -> Candidate:
    names = ", ".join(_label(ruleset, d) for d in drugs)
    note = (f"{c.summary} ({c.rule_id}) would stop {names}, whose response is not recorded "
            "and cannot be read from the CLASI trend: the response is judged before a "
            "switch (fail safe).")
    return Candidate("gather_data", None, c.stage, c.priority, None, None,
                     f"Record the clinician's judgement of the response to {names} before "
                     "switching", engine_rule=UNJUDGED_RULE, note=note)


def _trial_hold(ruleset: RuleSet, c: Candidate, trials: list[CourseView]) -> Candidate:
    """`continue` the drug in its trial instead of a step that adds or swaps in another."""
    v = min(trials, key=lambda t: (t.trial_until or dt.date.max, t.drug))
    label = _label(ruleset, v.drug)
    note = (f"{c.summary} ({c.rule_id}) waits: {label}, started {v.start}, is within its "
            f"trial period until {v.trial_until} (the drug catalogue's trial period). "
            "No second drug "
            "is added, or swapped in, while one is being judged.")
    return Candidate("continue", v.drug, ruleset.drugs[v.drug].stage, c.priority, None, None,
                     f"Continue {label}; judge the response on {v.trial_until} before adding "
                     "or switching", engine_rule=TRIAL_RULE, note=note)


def _patient_words(matched: dict[str, Any]) -> str:
    """The patient's facts a rule matched, as words ('contraception none')."""
    # A fact that is "no" did not break the requirement (an `any` reads all its parts).
    words = [fact_words(name, value) for name, value in matched.items()
             if value is not True and value != "no" and not name.endswith("considered")]
    return "; ".join(words)


def _exclusions(ruleset: RuleSet, ev: Evaluation, ctx: dict[str, Any]) -> list[Excluded]:
    """Every exclusion names the requirement (the rule's `because`) and this patient's
    facts that broke it."""
    out = []
    for fired in ev.fired:
        then = fired.rule.spec.then
        if not then.exclude:
            continue
        reason = render_text(fired.rule.spec.because.strip(), ctx)
        facts = _patient_words(fired.matched)
        if facts:
            reason = f"{reason.rstrip('.')}. This patient: {facts}."
        fix = render_text(then.fix.strip(), ctx) if then.fix else None
        also = render_text(then.if_taken_also.strip(), ctx) if then.if_taken_also else None
        for drug in then.exclude:
            out.append(Excluded(drug, fired.rule.id, reason, bool(then.request), fix,
                                then.if_taken or "hold", fired.rule.spec.priority, facts,
                                also))
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
    if c.drug is None or c.action not in ("start", "add", "reintroduce", "switch"):
        return None
    partners = set(ruleset.drugs[c.drug].never_with)
    partners |= {d for d, e in ruleset.drugs.items() if c.drug in e.never_with}
    for other in sorted(partners - set(c.stops)):
        if ev.facts.get(f"{other}_status") == "current":
            return f"never combined with {_label(ruleset, other)} (the drug catalogue)"
    return None


def _anchor(spec: MonitorSpec, ev: Evaluation) -> tuple[dt.date, str]:
    """Where a schedule is counted from: as_of, or a drug's current start or last stop."""
    if spec.counted_from_start_of:
        view = ev.courses.get(spec.counted_from_start_of)
        if view is not None and view.current:
            return view.start, f"after the start on {view.start}"
        return ev.patient.as_of, "from the start"
    if spec.counted_from_stop_of:
        stops = [c.stop for c in ev.patient.treatments
                 if c.drug == spec.counted_from_stop_of and c.stop is not None]
        if stops:
            return max(stops), f"after the stop on {max(stops)}"
    return ev.patient.as_of, "from today"


def _in_window(spec: MonitorSpec, ev: Evaluation, ruleset: RuleSet) -> bool:
    """Is today inside the item's window of the course (a drug not yet taken is at
    day 0)? Start-only items vanish later; steady-state ones appear."""
    if spec.shown_from_day is None and spec.shown_until_day is None:
        return True
    drug = spec.counted_from_start_of or spec.drug
    view = ev.courses.get(drug) if drug else None
    day = (ev.patient.as_of - view.start).days if view is not None and view.current else 0
    low = ruleset.days(spec.shown_from_day) or 0
    high = ruleset.days(spec.shown_until_day)
    return low <= day and (high is None or day < high)


def _schedule(spec: MonitorSpec, ev: Evaluation, ruleset: RuleSet,
              ctx: dict[str, Any]) -> str:
    """The item's words plus its dates, counted from as_of or from a start or stop."""
    as_of = ev.patient.as_of
    base, origin = _anchor(spec, ev)
    text = render_text(spec.when, ctx)
    first, every = ruleset.days(spec.first_in_days), ruleset.days(spec.every_days)
    if first is None and not every:
        if origin == "from the start":
            return text
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
                rec_rule: str, ctx: dict[str, Any], blocked: set[str]) -> list[Monitor]:
    """The items of the fired rules that follow the step: not those of a drug the step
    stops, nor of a drug that is not taken and cannot be started (`blocked`)."""
    out: dict[tuple[str, str], Monitor] = {}
    stopping = _stopping(rec)
    rec_drug = rec.drug if rec is not None else None
    for fired in ev.fired:
        specs = fired.rule.spec.then.monitor or []
        for spec in specs:
            if fired.rule.spec.then.recommend and fired.rule.id != rec_rule:
                continue  # the plan of a step that was not chosen
            current = ev.facts.get(f"{spec.drug}_status") == "current"
            ordered = rec is not None and fired.rule.id in rec.also_rules  # said in the step
            keep = (spec.drug is None or ordered
                    or (fired.rule.id == rec_rule and (current or spec.drug == rec_drug))
                    or (rec is not None and spec.drug == rec_drug and rec.action != "stop")
                    or (current and spec.drug not in stopping))
            if spec.drug in blocked and not current and spec.drug != rec_drug:
                keep = False
            if not keep or not _in_window(spec, ev, ruleset):
                continue
            item = Monitor(spec.what, _schedule(spec, ev, ruleset, ctx)
                           + _then(spec, specs, ctx), fired.rule.id,
                           fired.rule.spec.because.strip(), spec.drug)
            out.setdefault((spec.what, fired.rule.id), item)
    return sorted(out.values(), key=lambda m: (m.what, m.rule))


def _stopping(rec: Candidate | None) -> set[str]:
    """The drugs the step takes away: those it stops, but not a held drug its 'Then'
    continues (that drug's monitoring and warnings go on)."""
    if rec is None:
        return set()
    return stopped_by(rec.action, rec.drug, rec.stops) - set(rec.resumes)


def _then(spec: MonitorSpec, specs: list[MonitorSpec], ctx: dict[str, Any]) -> str:
    """A first-weeks schedule always says what follows it: the item of the same rule,
    kind and drug shown from the day it ends ('weekly in the first 4 weeks, then every
    4 weeks'), so a list read before the start is never the first weeks alone."""
    if spec.shown_until_day is None:
        return ""
    for other in specs:
        if (other is not spec and other.what == spec.what and other.drug == spec.drug
                and other.shown_from_day == spec.shown_until_day):
            return f", then {render_text(other.when, ctx)}"
    return ""


def _after_last_dose(ruleset: RuleSet, ev: Evaluation, rec: Candidate) -> list[Monitor]:
    """A teratogen's pregnancy prevention outlasts its last dose: for a woman who may
    conceive, every teratogen the step stops, and every one stopped before whose
    after-the-last-dose interval still runs, states its contraception until that
    interval ends (and, for a drug the step stops, the tests after it), whether or not
    a deficit is recorded (drugs.yaml reproductive.woman; the brief's table)."""
    if ev.facts.get("pregnant") == "yes" or "may_conceive" not in ev.derived:
        return []
    stopping = _stopping(rec)
    out = []
    for drug in sorted(ruleset.teratogens):
        repro = ruleset.drugs[drug].reproductive
        woman = repro.woman if repro else None
        if woman is None or not woman.after_last_dose:
            continue
        days = ruleset.days(woman.after_last_dose) or 0
        view = ev.courses.get(drug)
        if view is None or (view.current and drug not in stopping):
            continue
        last = view.stop if view.stop is not None else ev.patient.as_of
        ends = last + dt.timedelta(days=days)
        if ends <= ev.patient.as_of:
            continue
        label, span = _label(ruleset, drug), ruleset.span(woman.after_last_dose)
        since = "stopped by this step" if view.current else f"stopped {view.stop}"
        out.append(Monitor("contraception",
                           f"until {ends}: {CONTRACEPTION_AFTER[woman.contraception]}, "
                           f"{span} after the last dose of {label} ({since})",
                           AFTER_DOSE_RULE,
                           f"The pregnancy prevention of {label} lasts {span} after the "
                           "last dose, with the same contraception as during treatment.",
                           drug))
        if view.current and woman.tests_after:
            out.append(Monitor("pregnancy_test", f"{woman.tests_after} (the interval ends "
                               f"{ends})",
                               AFTER_DOSE_RULE, f"{label}: pregnancy tests after the last "
                               "dose.", drug))
    return out


# What each contraception level of drugs.yaml asks for after the last dose (the same
# words as the templates' contraception table).
CONTRACEPTION_AFTER = {
    "one_method": "one reliable contraception method (two preferred)",
    "two_methods": "two reliable contraception methods used together (or continuous "
                   "abstinence)",
    "none": "contraception as advised",
}


def _relapse_watch(ruleset: RuleSet, ev: Evaluation, rec: Candidate) -> list[Monitor]:
    """Every step that stops or reduces a drug the patient responded to gets the watch
    its catalogue entry gives (course.relapse), whichever rule made the step."""
    drugs = stopped_by(rec.action, rec.drug, rec.stops)
    if rec.action == "reduce" and rec.drug:
        drugs.add(rec.drug)
    out = []
    for drug in sorted(drugs):
        relapse = ruleset.drugs[drug].course.relapse if drug in ruleset.drugs else None
        if relapse is None or ev.facts.get(f"{drug}_ever_responded") != "yes":
            continue
        every, window = ruleset.days(relapse.review_every), ruleset.days(relapse.window)
        assert every and window
        start = ev.patient.as_of
        dates = [start + dt.timedelta(days=d) for d in range(every, window + 1, every)]
        label = _label(ruleset, drug)
        when = (f"review every {ruleset.span(relapse.review_every)} for "
                f"{ruleset.span(relapse.window)} after {label} is "
                f"{'reduced' if rec.action == 'reduce' else 'stopped'} "
                f"({', '.join(str(d) for d in dates)}): CLASI activity at each review; a "
                "relapse is judged then (reintroduction only if it was not stopped for harm)")
        out.append(Monitor("relapse_watch", when, RELAPSE_RULE,
                           relapse.because.strip(), drug))
    return out


def _why_not(ruleset: RuleSet, ev: Evaluation, rec: Candidate, candidates: list[Candidate],
             excluded: list[Excluded], combos: dict[str, str],
             waiting: dict[str, str]) -> list[WhyNot]:
    stages = {rec.stage}
    for drug in _current(ruleset, ev):
        stages.add(ruleset.drugs[drug].stage)
    ladder_pos = [LADDER.index(s) for s in stages if s in LADDER]
    if ladder_pos:
        stages.update(NEXT_STAGES[LADDER[max(ladder_pos)]])
    out = []
    fired = ev.fired_ids()
    by_drug: dict[str, list[Excluded]] = {}
    for e in excluded:
        by_drug.setdefault(e.drug, []).append(e)
    for drug, entry in ruleset.drugs_sorted:
        mine = by_drug.get(drug, ())
        if drug == rec.drug or (entry.stage not in stages and not mine):
            continue
        if mine:
            out.append(WhyNot(drug, "excluded", "; ".join(
                f"{e.rule}: {e.reason.rstrip('.')}" for e in mine) + ".",
                tuple(e.rule for e in mine)))
            continue
        if drug in combos:
            out.append(WhyNot(drug, "combination", combos[drug]))
            continue
        if drug in waiting:
            out.append(WhyNot(drug, "waiting", waiting[drug]))
            continue
        if ev.facts.get(f"{drug}_status") == "current":
            out.append(WhyNot(drug, "current", "already taken; it continues unless the "
                              "step says otherwise"))
            continue
        offered = [c for c in candidates if c.drug == drug]
        if offered:
            c = offered[0]
            what = c.rule.spec.title if c.rule is not None else c.summary
            out.append(WhyNot(drug, "outranked", f"{c.rule_id} ({what[:1].lower()}{what[1:]}) "
                              f"is outranked by the chosen step, {rec.rule_id}",
                              (c.rule_id, rec.rule_id)))
            continue
        silent = [r for r in ruleset.recommenders.get(drug, ())
                  if r.id not in fired and r.spec.then.recommend is not None
                  and r.spec.then.recommend.action in STARTING][:2]
        if silent:  # the two shown: their unmet conditions are computed, no others
            reasons = "; ".join(
                f"{r.id} needs "
                + ("; ".join(unmet_words(r.condition, ev.facts, ev.derived, ruleset))
                   or "its conditions")
                for r in silent)
            out.append(WhyNot(drug, "not_indicated", reasons, tuple(r.id for r in silent)))
        else:
            out.append(WhyNot(drug, "not_indicated", "no rule recommends it here"))
    return out


@dataclass
class _Split:
    eligible: list[Candidate]
    blocked_by_data: list[Candidate]
    combos: dict[str, str]
    waiting: dict[str, str]
    # Steps a requirement that cannot be met today rules out, with what rules them out.
    ruled_out: list[tuple[Candidate, list[Excluded]]] = field(default_factory=list)


def _partition(ruleset: RuleSet, ev: Evaluation, candidates: list[Candidate],
               excluded: list[Excluded]) -> _Split:
    """Split candidates into eligible ones, ones waiting only for data (ranked above every
    eligible one), drugs dropped for a forbidden combination, and steps that wait for a
    course in its trial. Adds guard exclusions and the engine's course steps."""
    split = _Split([], [], {}, {})
    held: list[tuple[Candidate, list[CourseView]]] = []
    for c in candidates:
        if c.requirement:
            if c.action not in STOPPING and _guard(ruleset, ev, c.drug, c.action):
                continue  # defence in depth: a teratogen continues only if pregnancy is ruled out
            split.eligible.append(c)
            continue
        guard = _guard(ruleset, ev, c.drug, c.action)
        if guard and not any(e.drug == c.drug for e in excluded):
            excluded.append(guard)
        mine = [e for e in excluded if e.drug == c.drug] \
            if c.drug and c.action not in STOPPING else []
        if c.action in ("continue", "increase") and c.drug in _current(ruleset, ev):
            # A rule about starting the drug says nothing about keeping a current course,
            # and one whose current course continues does not block continuing it.
            mine = [e for e in mine if e.if_taken not in ("start_only", "continue")]
        if mine:
            if all(e.liftable for e in mine) and not split.eligible:
                split.blocked_by_data.append(c)
            elif not all(e.liftable for e in mine):
                split.ruled_out.append((c, [e for e in mine if not e.liftable]))
            continue
        if c.action in STARTING and c.drug and not _adjunct(ruleset, c.drug):
            # A course a safety rule excludes is not waited for: it is not continued.
            trials = [v for v in _in_trial(ruleset, ev, c.drug)
                      if not any(e.drug == v.drug for e in excluded)]
            if trials:
                held.append((c, trials))
                split.waiting.setdefault(c.drug, _trial_hold(ruleset, c, trials).note)
                continue
        reason = _never_with(ruleset, ev, c)
        if reason:
            split.combos.setdefault(c.drug or "", reason)
            continue
        if c.stops and c.action != "stop":
            # A switch waits for the response to be judged, and a partial response goes
            # up first; a stop is a safety step (e.g. a hold at a low count): never.
            unjudged = _unjudged(ev, c)
            if unjudged:
                split.eligible.append(_judge_first(ruleset, c, unjudged))
                split.waiting.setdefault(c.drug or "", split.eligible[-1].note)
                continue
            escalate = _escalation(ruleset, ev, c, excluded)
            if escalate is not None:
                split.eligible.append(escalate)
        split.eligible.append(c)
    if held and (not split.eligible or held[0][0].priority > split.eligible[0].priority):
        split.eligible.insert(0, _trial_hold(ruleset, *held[0]))
    return split


def _gather_step(ruleset: RuleSet, ev: Evaluation, wanted: Candidate,
                 excluded: list[Excluded],
                 requests: dict[str, str]) -> tuple[Candidate, str, list[str]]:
    """`gather_data` for a step on hold: what to collect, and why."""
    holds = [e for e in excluded if e.drug == wanted.drug]
    rule = ruleset.by_id.get(holds[0].rule) if holds and holds[0].rule in ruleset.by_id \
        else wanted.rule
    asks = [r.label for f in ev.fired if f.rule.id in {e.rule for e in holds}
            for r in f.rule.spec.then.request or []]
    fixes = list(dict.fromkeys(e.fix for e in holds if e.fix and not e.data_only))
    asks = list(dict.fromkeys(asks)) or ([] if fixes else sorted(requests))
    if fixes:
        asks = fixes + [a for a in asks if a not in fixes]
        summary = f"Before the next step ({wanted.summary}): " + _numbered(asks)
    else:
        before = f"before {_label(ruleset, wanted.drug)}" if wanted.drug else "before deciding"
        summary = f"Gather data {before}: " + "; ".join(asks)
    step = Candidate("gather_data", None, wanted.stage, wanted.priority, rule, None,
                     summary)
    waits = ("It waits for what this step asks, because: " if fixes else
             "It is on hold until this is known: ")
    rationale = (f"The next step on the ladder would be: {wanted.summary} "
                 f"({wanted.rule_id}). " + waits + " ".join(e.reason for e in holds))
    evidence = sorted(set(wanted.rule.spec.evidence if wanted.rule else [])
                      | set(rule.spec.evidence if rule else []))
    return step, rationale, evidence


def _numbered(asks: list[str]) -> str:
    """Several things to do before a step, each its own numbered sentence (one run-on
    paragraph hid the last of them: reader C, F7)."""
    if len(asks) == 1:
        return _cap(asks[0].strip())
    return " ".join(f"({i}) {_cap(a.strip().rstrip('.;'))}." for i, a in enumerate(asks, 1))


def _unmet_while_taken(ruleset: RuleSet, ev: Evaluation, rec: Candidate,
                       requirements: list[Candidate], excluded: list[Excluded],
                       also_stop: list[Candidate]) -> list[tuple[str, str, str]]:
    """Critical warnings for current drugs whose requirement the chosen step does not
    address: a second unmet requirement is never silent."""
    done = stopped_by(rec.action, rec.drug, rec.stops) | {rec.drug}
    for c in also_stop:
        done |= stopped_by(c.action, c.drug, c.stops)
    out = [("critical", c.summary, c.rule_id) for c in requirements
           if c is not rec and c.drug not in done]
    said = {c.drug for c in requirements}
    rank = {"stop": 0, "hold": 1, "continue": 2}
    worst: dict[str, Excluded] = {}
    for e in excluded:  # every other current drug that a requirement no longer covers
        if (e.if_taken != "start_only" and e.drug not in done and e.drug not in said
                and ev.facts.get(f"{e.drug}_status") == "current" and e.rule != GUARD_RULE):
            old = worst.get(e.drug)
            if old is None or (rank[e.if_taken], not e.data_only) < (rank[old.if_taken],
                                                                       not old.data_only):
                worst[e.drug] = e
    for drug, e in worst.items():
        fate = {"stop": "stop it", "hold": "hold it until the requirement is met",
                "continue": "it continues while the requirement is met"}[e.if_taken]
        known = "is not known to be met" if e.data_only else "is not met"
        extra = "".join(f" {t}" for t in (e.fix, e.also) if t)
        out.append(("critical", f"{_cap(_label(ruleset, drug))} is taken, but a requirement "
                    f"{known}: {fate} ({e.reason.rstrip('.')}).{extra}", e.rule))
    return out


def _nothing_open(rec: Candidate, why_not: list[WhyNot]) -> tuple[Candidate, str]:
    """No step is open: say what blocks each option, not "refer to a specialist" (the
    reader is often the specialist)."""
    blocked = [w for w in why_not if w.status in ("excluded", "waiting", "combination")]
    names = ", ".join(w.drug.replace("_", " ") for w in blocked) or "none"
    summary = (f"No step on the ladder is open for this patient: every option is blocked "
               f"({names}); decide with the team what can change")
    rationale = ("No rule recommends a step that is not blocked. What blocks each option: "
                 + " ".join(f"{w.drug.replace('_', ' ')}: {w.reason}" for w in blocked)
                 if blocked else "No rule of the rule set recommends a step for this "
                 "patient; the clinical team decides.")
    return Candidate(rec.action, None, rec.stage, rec.priority, None, None, summary), rationale


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass
class _Choice:
    rec: Candidate
    rationale: str
    evidence: list[str]
    alternatives: list[Candidate]
    wanted: Candidate | None = None  # the step a gather_data waits for


def _choose(ruleset: RuleSet, ev: Evaluation, split: _Split, excluded: list[Excluded],
            requests: dict[str, str], ctx: dict[str, Any]) -> _Choice:
    """The step: the best eligible candidate, or gathering what the best blocked one
    waits for when it ranks at least as high, or the fallback."""
    eligible, blocked_by_data = split.eligible, split.blocked_by_data
    best = eligible[0] if eligible else None
    if blocked_by_data and (best is None or blocked_by_data[0].priority >= best.priority):
        wanted = blocked_by_data[0]
        rec, rationale, evidence = _gather_step(ruleset, ev, wanted, excluded, requests)
        return _Choice(rec, rationale, evidence, eligible, wanted)
    if best is None:
        rec = Candidate("refer", None, "specialist", 0, None, None,
                        "Refer to a CLE specialist: no rule applies to this patient")
        return _Choice(rec, "No rule of the rule set recommends a step for this patient, "
                       "or every option is excluded; a specialist decides.", [], [])
    if best.rule is not None:
        return _Choice(best, render_text(best.rule.spec.because.strip(), ctx),
                       list(best.rule.spec.evidence), eligible[1:])
    entry = ruleset.drugs[best.drug] if best.drug else None  # an engine step: a course
    evidence = sorted(set(entry.course.evidence if entry else [])  # invariant of the catalogue
                      | set(entry.dosing.evidence if entry and entry.dosing else []))
    return _Choice(best, best.note, evidence, eligible[1:])


def _arrange(rec: Candidate, alternatives: list[Candidate],
             split: _Split) -> tuple[list[Candidate], list[Candidate]]:
    """The alternatives worth showing, and the other safety stops that are done too."""
    seen = {(rec.action, rec.drug)}
    # A step that stops drugs is not undone by an alternative that keeps one of them.
    stopped = stopped_by(rec.action, rec.drug, rec.stops)
    spec = rec.rule.spec.then.recommend if rec.rule is not None else None
    holds = bool(spec and spec.holds_starts and not rec.engine_rule)
    unique_alts: list[Candidate] = []
    also_stop: list[Candidate] = []
    for alt in alternatives:
        if alt.drug in stopped and alt.action not in ("stop", "gather_data", "refer"):
            continue  # a reduction keeps the drug too (reader D: retinal toxicity)
        if alt.action == "stop" and rec.action != "gather_data" and \
                alt.priority >= REQUIREMENT_PRIORITY and \
                not stopped_by(alt.action, alt.drug, alt.stops) <= stopped:
            also_stop.append(alt)  # a second safety stop is done too, not an option
            stopped |= stopped_by(alt.action, alt.drug, alt.stops)
            continue
        if holds and alt.drug and alt.action in STARTING:  # "no new drug now"
            assert rec.rule is not None
            split.waiting.setdefault(alt.drug, f"waits: no new drug starts while the step "
                                     f"is {rec.rule_id}: {rec.rule.spec.title}")
            continue
        if (alt.action, alt.drug) not in seen:
            seen.add((alt.action, alt.drug))
            unique_alts.append(alt)
    return unique_alts, also_stop


def _warnings(ruleset: RuleSet, ev: Evaluation, ctx: dict[str, Any], rec: Candidate,
              requirements: list[Candidate], exclusions: list[Excluded],
              also_stop: list[Candidate], gone: set[str]) -> list[tuple[str, str, str]]:
    """The rules' warnings, the other safety stops and unmet requirements. A warning
    `about` drugs is left out when each of them is out of play (`gone`: stopped by the
    step, or not taken and ruled out) and it is not critical."""
    warnings = []
    for fired in ev.fired:
        warn = fired.rule.spec.then.warn
        if warn and warn.about and warn.severity != "critical" and set(warn.about) <= gone \
                and not any(ev.facts.get(f"{d}_status") == "current" and d not in
                            _stopping(rec) for d in warn.about):
            continue
        if warn:
            warnings.append((warn.severity, render_text(warn.message.strip(), ctx),
                             fired.rule.id))
    warnings += [("critical", f"Also now: {c.summary}", c.rule_id)
                 for c in also_stop]
    warnings += _unmet_while_taken(ruleset, ev, rec, requirements, exclusions, also_stop)
    warnings.sort(key=lambda w: (SEVERITY_RANK[w[0]], w[2]))
    return warnings


def _blocked(excluded: list[Excluded]) -> set[str]:
    """Drugs ruled out by a requirement that cannot be met today (no data, no fix)."""
    by_drug: dict[str, list[Excluded]] = {}
    for e in excluded:
        by_drug.setdefault(e.drug, []).append(e)
    return {d for d, es in by_drug.items() if not all(e.liftable for e in es)}


def _all_monitoring(ruleset: RuleSet, ev: Evaluation, rec: Candidate,
                    ctx: dict[str, Any], blocked: set[str]) -> list[Monitor]:
    """The rules' items for the chosen step, the relapse watch of what it stops, and the
    review date of a course in its trial."""
    rec_rule = rec.rule_id if rec.action != "gather_data" else ""
    chosen = rec if rec.action != "gather_data" else None
    monitoring = _monitoring(ruleset, ev, chosen, rec_rule, ctx, blocked)
    if chosen is not None:
        have = {(m.what, m.drug) for m in monitoring}
        monitoring += [m for m in _relapse_watch(ruleset, ev, chosen)
                       if (m.what, m.drug) not in have]
    monitoring += _after_last_dose(ruleset, ev, rec)
    if rec.engine_rule == TRIAL_RULE and rec.drug:
        until = ev.courses[rec.drug].trial_until
        monitoring.append(Monitor("clasi_review", f"due {until}: judge the response to "
                                  f"{_label(ruleset, rec.drug)} (end of its trial period)",
                                  TRIAL_RULE, rec.note, rec.drug))
    return monitoring


def _requests(ev: Evaluation, blocked: set[str]) -> dict[str, str]:
    """The data the fired rules ask for, but not data only a drug ruled out anyway would
    need (an unknown pregnancy status is always asked: principle 1)."""
    requests: dict[str, str] = {}
    for fired in ev.fired:
        then = fired.rule.spec.then
        drugs = set(then.exclude or ())
        moot = bool(drugs) and drugs <= blocked and not any(
            ev.facts.get(f"{d}_status") == "current" for d in drugs)
        for req in then.request or []:
            if not (moot and req.field != "reproductive.pregnant"):
                requests.setdefault(req.field, req.why.strip())
    return requests


def decide(ruleset: RuleSet, ev: Evaluation) -> Decision:
    """Pick one next step; keep the rest as alternatives, with reasons for all."""
    ctx = context(ruleset, ev)
    candidates = _candidates(ruleset, ev, ctx)
    every_exclusion = _exclusions(ruleset, ev, ctx)
    requirements = _requirement_steps(ruleset, ev, candidates, every_exclusion)
    if requirements:
        candidates = sorted(candidates + requirements, key=lambda c: (-c.priority, c.rule_id))
    # A rule about starting a drug, or one under which a current course continues, does
    # not exclude the course the patient takes: its requirement is a step or a warning.
    current = set(_current(ruleset, ev))
    excluded = [e for e in every_exclusion
                if not (e.drug in current and e.if_taken in ("start_only", "continue"))]
    split = _partition(ruleset, ev, candidates, excluded)
    blocked = _blocked(excluded)
    requests = _requests(ev, blocked)
    choice = _choose(ruleset, ev, split, excluded, requests, ctx)
    rec, rationale = choice.rec, choice.rationale
    if rec.engine_rule == UNJUDGED_RULE:
        requests.setdefault("treatments[].response", rec.note)
    unique_alts, also_stop = _arrange(rec, choice.alternatives, split)
    if _status_quo_unsafe(ruleset, ev, candidates, excluded):
        unique_alts = [a for a in unique_alts if a.action != "continue"]
    rec = _not_restarted(ruleset, rec, every_exclusion)
    warnings = _warnings(ruleset, ev, ctx, rec, requirements, every_exclusion, also_stop,
                         blocked | _stopping(rec))
    warnings += _ruled_out_above(ruleset, rec, split)
    warnings.sort(key=lambda w: (SEVERITY_RANK[w[0]], w[2]))
    _basis_requests(ruleset, ev, [rec] + unique_alts, requests)
    ex_sorted = sorted({(e.drug, e.rule): e for e in excluded}.values(),
                       key=lambda e: (e.drug, e.rule))
    monitoring = _all_monitoring(ruleset, ev, rec, ctx, blocked)
    why_not = _why_not(ruleset, ev, rec, candidates, ex_sorted, split.combos, split.waiting)
    if rec.rule is None and rec.engine_rule is None and rec.action == "refer":
        rec, rationale = _nothing_open(rec, why_not)
    return Decision(recommendation=rec, rationale=rationale, evidence=choice.evidence,
                    alternatives=unique_alts, excluded=ex_sorted, monitoring=monitoring,
                    warnings=warnings, missing_data=sorted(requests.items()),
                    why_not=why_not, on_hold=choice.wanted)
