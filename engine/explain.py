"""Explain stage: the decision as the contract's Result, plus the "why" and "why not"
a clinician reads. Nothing is re-derived here; it only arranges what the evaluate and
decide stages recorded."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .branches import Branching
from .decide import Decision, WhyNot
from .evaluate import Evaluation, Fired
from .identity import engine_sha256
from .models import (Alternative, Branch, Conditional, CourseSummary, EngineInfo, Exclusion,
                     MissingData, MonitoringItem, Recommendation, Result, RulesetInfo,
                     TraceEntry, Warning)
from .ruleset import RuleSet, shown_folder

DISCLAIMER = "Decision support for a clinician; not a prescription."


@dataclass(frozen=True)
class Explanation:
    """The Result and what the text view adds to it."""

    result: Result
    why: list[Fired]
    why_not: list[WhyNot]
    references: dict[str, str]
    ruleset_status: str
    fired_count: int = 0
    alternatives: tuple[str, ...] = ()  # each alternative's one-line summary


def _chain(ev: Evaluation, decision: Decision) -> list[Fired]:
    """The rules behind the chosen step: its rule, the rules that derived the facts it
    used (recursively), and for gather_data the step on hold and what holds it."""
    by_id = {f.rule.id: f for f in ev.fired}
    derivers: dict[str, list[str]] = {}
    for f in ev.fired:
        if f.rule.spec.then.derive:
            derivers.setdefault(f.rule.spec.then.derive, []).append(f.rule.id)
    start = [decision.recommendation.rule_id]
    if decision.on_hold and decision.on_hold.rule:
        start.append(decision.on_hold.rule.id)
        start += [e.rule for e in decision.excluded if e.drug == decision.on_hold.drug]
    wanted: set[str] = set()
    todo = [r for r in start if r in by_id]
    while todo:
        rule_id = todo.pop()
        if rule_id in wanted:
            continue
        wanted.add(rule_id)
        for name in by_id[rule_id].matched:
            todo.extend(derivers.get(name, []))
    return [f for f in ev.fired if f.rule.id in wanted]


def _course(v: Any) -> CourseSummary:
    return CourseSummary.build(
        drug=v.drug, start=str(v.start), stop=str(v.stop) if v.stop else None,
        phase=v.phase or "unjudged",
        months=v.months, dose=v.dose_text if v.dose is not None else None,
        at_max_dose=v.at_max_dose, trial_until=str(v.trial_until) if v.trial_until else None)


_YES_NO = {"yes": True, "no": False}  # the trace shows booleans as JSON true/false
_trace = TraceEntry.maker()  # rule, kind, matched, asserted: ~26 per patient
_exclusion = Exclusion.maker()  # drug, rule, reason: ~10 per patient
_monitor = MonitoringItem.maker()  # what, when, rule, reason
_warning = Warning.maker()  # severity, message, rule
_missing = MissingData.maker()  # field, why


def _recommendation(decision: Decision) -> Recommendation:
    rec = decision.recommendation
    return Recommendation.build(
        action=rec.action, drug=rec.drug, dose=rec.dose, stage=rec.stage,
        summary=rec.summary, rule=rec.rule_id, rationale=decision.rationale,
        evidence=decision.evidence, stops=list(rec.stops))


def _conditional(decision: Decision, branching: Branching | None) -> Conditional | None:
    """Each value's step, and the critical warnings a branch adds to the result's own."""
    if branching is None:
        return None
    own = {(s, m, r) for s, m, r in decision.warnings}
    fact = branching.fact
    return Conditional.build(
        fact=fact.field, rule=fact.rule, why=fact.why,
        branches=[Branch.build(value=b.value, recommendation=_recommendation(b.decision),
                               warnings=[_warning(s, m, r) for s, m, r in b.decision.warnings
                                         if s == "critical" and (s, m, r) not in own])
                  for b in branching.branches])


def explain(ruleset: RuleSet, ev: Evaluation, decision: Decision,
            input_sha256: str, branching: Branching | None = None) -> Explanation:
    """Assemble the Result (contract section 2) and the explanation around it; with
    `branching`, each value's step of the one unknown fact (branches.py)."""
    prov = ruleset.provenance
    result = Result.build(
        patient_id=ev.patient.id,
        as_of=ev.patient.as_of.isoformat(),
        ruleset=RulesetInfo.build(name=prov.name, version=prov.version, sha256=ruleset.sha256,
                                  status=prov.status, folder=shown_folder(ruleset.folder)),
        input_sha256=input_sha256,
        recommendation=_recommendation(decision),
        conditional=_conditional(decision, branching),
        alternatives=[Alternative.build(
            action=a.action, drug=a.drug, rule=a.rule_id,
            rationale=a.summary + ". " + (a.rule.spec.because.strip() if a.rule else a.note))
            for a in decision.alternatives],
        excluded=[_exclusion(e.drug, e.rule, e.reason) for e in decision.excluded],
        monitoring=[_monitor(m.what, m.when, m.rule, m.reason) for m in decision.monitoring],
        warnings=[_warning(s, m, r) for s, m, r in decision.warnings],
        missing_data=[_missing(f, w) for f, w in decision.missing_data],
        trace=[_trace(f.rule.id, f.rule.kind,
                      {k: _YES_NO.get(v, v) if type(v) is str else v
                       for k, v in f.matched.items()},
                      f.rule.asserted) for f in ev.fired],
        disclaimer=DISCLAIMER,
        courses=[_course(v) for _, v in sorted(ev.courses.items())],
        engine=EngineInfo.build(name="cledecide", sha256=engine_sha256()),
    )
    keys: list[str] = list(decision.evidence)
    for b in branching.branches if branching else ():
        keys.extend(b.decision.evidence)
    why = _chain(ev, decision)
    for f in why:
        keys.extend(f.rule.spec.evidence)
    excluding = {e.rule for e in decision.excluded}
    for f in ev.fired:
        if f.rule.id in excluding:
            keys.extend(f.rule.spec.evidence)
    references = {k: ruleset.evidence[k].citation for k in dict.fromkeys(keys)
                  if k in ruleset.evidence}
    return Explanation(result, why, decision.why_not, references, prov.status,
                       len(ev.fired), tuple(a.summary for a in decision.alternatives))


IMPORT_RULE = "import.fhir"


def add_import_notes(explanation: Explanation, report: Any) -> None:
    """What a FHIR import could not use goes into the result, so that nothing dropped
    is invisible to the clinician (missing data, and warnings under rule import.fhir)."""
    result = explanation.result
    seen = {(m.field, m.why) for m in result.missing_data}
    for name, why in report.missing:
        if (name, why) not in seen:
            seen.add((name, why))
            result.missing_data.append(MissingData.build(field=name, why=why))
    for severity, message in dict.fromkeys(report.warnings):
        result.warnings.append(Warning.build(severity=severity, message=message,
                                                       rule=IMPORT_RULE))
