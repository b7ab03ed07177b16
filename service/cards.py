"""CDS Hooks 2.0 cards from our results: the suggested next step for patient-view, and
a safety check of each draft order for order-sign. Pure functions; the HTTP service
(server.py) calls them. A card is decision support for a clinician, never an order."""
from __future__ import annotations

import uuid
from typing import Any

from ..engine.pipeline import evaluate_patient
from ..fhir_r4.codemap import CodeMap
from ..engine.decide import stopped_by
from ..engine.explain import Explanation
from ..engine.models import Patient
from ..engine.signoff import status_label

SUMMARY_MAX = 140
STARTS = ("start", "add", "switch", "reintroduce")
OVERRIDE_REASONS = [
    {"code": "benefit-outweighs-risk", "system": "urn:cledecide:override",
     "display": "Benefit outweighs the risk for this patient"},
    {"code": "data-out-of-date", "system": "urn:cledecide:override",
     "display": "The record is out of date (the data shown is wrong)"},
    {"code": "specialist-advice", "system": "urn:cledecide:override",
     "display": "Following specialist advice"},
]


def _short(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX else text[:SUMMARY_MAX - 1].rstrip() + "…"


def _source(explanation: Explanation) -> dict[str, Any]:
    rs = explanation.result.ruleset
    engine = explanation.result.engine
    refs = "; ".join(sorted(explanation.references)[:6])
    # the status first: a draft rule set's card says so where the clinician reads it
    return {"label": f"cledecide rule set {rs.name} {rs.version} "
                     f"({status_label(rs.status)}; {rs.sha256[:12]})"
                     + (f", engine {engine.sha256[:12]}" if engine else "")
                     + (f"; evidence: {refs}" if refs else ""),
            "topic": {"system": "urn:cledecide:rule", "code":
                      explanation.result.recommendation.rule}}


def _indicator(explanation: Explanation) -> str:
    severities = {w.severity for w in explanation.result.warnings}
    if "critical" in severities:
        return "critical"
    if "warning" in severities or explanation.result.recommendation.action == "gather_data":
        return "warning"
    return "info"


def _word(value: Any) -> str:
    return {True: "yes", False: "no"}.get(value, value) if isinstance(value, bool) \
        else str(value)


def _fact_name(fact: str) -> str:
    return fact.rsplit(".", 1)[-1].replace("_", " ")


def _branch_summary(explanation: Explanation) -> str | None:
    """The card's one line when the step depends on an unknown fact: each value's step
    in a few words ("localized: start topical corticosteroid; widespread: ...")."""
    c = explanation.result.conditional
    if c is None:
        return None
    steps = []
    for b in c.branches:
        rec = b.recommendation
        what = rec.action.replace("_", " ") + (f" {rec.drug.replace('_', ' ')}"
                                               if rec.drug else "")
        steps.append(f"{_word(b.value)}: {what}")
    return f"CLE next step depends on the {_fact_name(c.fact)} (record it): " + \
        "; ".join(steps)


def _branch_lines(explanation: Explanation) -> list[str]:
    """Each value's step, its rule and why, under the step that asks for the fact."""
    c = explanation.result.conditional
    if c is None:
        return []
    lines = [f"**Depends on the {_fact_name(c.fact)}** (`{c.fact}`, not recorded); once "
             "it is recorded:"]
    for b in c.branches:
        rec = b.recommendation
        lines.append(f"- **If {_word(b.value)}:** {rec.summary} (`{rec.rule}`). "
                     f"{rec.rationale}")
        lines += [f"  - **{w.severity.upper()}** {w.message} (`{w.rule}`)" for w in b.warnings]
    return lines + [""]


def _detail(explanation: Explanation) -> str:
    r = explanation.result
    rec = r.recommendation
    lines = [f"**Next step ({rec.stage}):** {rec.summary}", ""]
    lines += _branch_lines(explanation)
    lines += [f"**Why:** {rec.rationale}", ""]
    for w in r.warnings:
        if w.severity != "info":
            lines.append(f"- **{w.severity.upper()}** {w.message} (`{w.rule}`)")
    if r.excluded:
        lines += ["", "**Not recommended:**"]
        lines += [f"- {e.drug}: {e.reason} (`{e.rule}`)" for e in r.excluded]
    if r.missing_data:
        lines += ["", "**Missing data:**"]
        lines += [f"- {m.field}: {m.why}" for m in r.missing_data]
    if r.monitoring:
        lines += ["", "**Monitor:**"]
        lines += [f"- {m.what}: {m.when}" for m in r.monitoring]
    lines += ["", f"_{r.disclaimer}_ Rule `{rec.rule}`; input sha256 {r.input_sha256[:12]}."]
    return "\n".join(lines)


def medication_request(drug: str, patient_id: str, codemap: CodeMap,
                       dose: str | None) -> dict[str, Any]:
    """A FHIR MedicationRequest proposal (draft, intent proposal) for a suggestion."""
    entries = codemap.spec.medications[drug]
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest", "status": "draft", "intent": "proposal",
        "subject": {"reference": f"Patient/{patient_id}"},
        "medicationCodeableConcept": {"coding": [codemap.coding(e) for e in entries],
                                      "text": entries[0].display}}
    if dose:
        resource["dosageInstruction"] = [{"text": dose}]
    return resource


def patient_view_cards(explanation: Explanation, codemap: CodeMap) -> list[dict[str, Any]]:
    """One card: the suggested step, why and why not; a suggestion to order for a start,
    add or switch; override reasons when critical."""
    r = explanation.result
    rec = r.recommendation
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": _short(_branch_summary(explanation) or f"CLE next step: {rec.summary}"),
        "indicator": _indicator(explanation), "detail": _detail(explanation),
        "source": _source(explanation), "selectionBehavior": "at-most-one"}
    if rec.action in STARTS and rec.drug and rec.drug in codemap.spec.medications:
        actions: list[dict[str, Any]] = [{
            "type": "create", "description": f"Propose {rec.drug}",
            "resource": medication_request(rec.drug, r.patient_id, codemap, rec.dose)}]
        card["suggestions"] = [{"label": _short(rec.summary), "uuid": str(uuid.uuid4()),
                                "actions": actions}]
    if card["indicator"] == "critical":
        card["overrideReasons"] = OVERRIDE_REASONS
    return [card]


def order_sign_cards(patient: Patient, orders: list[tuple[str | None, str, Any]],
                     ruleset: Any, codemap: CodeMap, input_sha256: str,
                     report: Any = None) -> tuple[list[dict[str, Any]], Explanation]:
    """Each draft order checked as a candidate for this patient: a drug a safety rule
    excludes, one the suggested step stops (a hold at a low count), or one whose start
    would raise a critical warning (a pregnancy test missing, a dose above the limit, a
    pair never given together), gets a critical card that says why and what to do
    instead; any other order for a patient with critical warnings gets a warning card
    listing them, never a bare "info". `orders` are (drug or None, label, dose)."""
    base = evaluate_patient(patient, ruleset, input_sha256, report)
    excluded: dict[str, list[str]] = {}
    for e in base.result.excluded:
        excluded.setdefault(e.drug, []).append(f"{e.reason} (`{e.rule}`)")
    instead = base.result.recommendation
    stopping = stopped_by(instead.action, instead.drug, instead.stops)
    standing = [f"{w.message} (`{w.rule}`)" for w in base.result.warnings
                if w.severity == "critical"]
    cards: list[dict[str, Any]] = []
    for drug, label, dose in orders:
        if drug is None:
            cards.append(_order_card("warning", f"{label}: not in the code map; cledecide "
                                     "cannot check it", "The medication code is not in "
                                     "rules/fhir-map.yaml; no safety rule was applied to it.",
                                     base))
            continue
        reasons = list(excluded.get(drug, []))
        if drug in stopping:  # e.g. a renewal of a drug held at a low blood count
            reasons.append(f"The suggested step stops it: {instead.summary} "
                           f"(`{instead.rule}`)")
        trial = _with_course(patient, drug, dose)
        before = {(w.rule, w.message) for w in base.result.warnings if w.severity == "critical"}
        if trial is not None:
            checked = evaluate_patient(trial, ruleset, input_sha256, report)
            for w in checked.result.warnings:
                if w.severity == "critical" and (w.rule, w.message) not in before:
                    reasons.append(f"{w.message} (`{w.rule}`)")
        if reasons:
            detail = "\n".join(["**Do not sign as written.**", ""]
                               + [f"- {x}" for x in dict.fromkeys(reasons)]
                               + ["", f"**Instead:** {instead.summary} (`{instead.rule}`)",
                                  "", f"_{base.result.disclaimer}_"])
            card = _order_card("critical", f"{drug.replace('_', ' ')}: a safety rule "
                               "excludes it for this patient", detail, base)
            card["overrideReasons"] = OVERRIDE_REASONS
            cards.append(card)
        elif standing:  # nothing against this drug, but the patient has critical warnings
            detail = "\n".join(["No safety rule excludes it, but this patient has critical "
                                 "warnings:", ""] + [f"- {x}" for x in standing]
                                + ["", f"**Suggested step:** {instead.summary} "
                                   f"(`{instead.rule}`)", "", f"_{base.result.disclaimer}_"])
            cards.append(_order_card("warning", f"{drug.replace('_', ' ')}: check the "
                                     "patient's critical warnings first", detail, base))
        else:
            cards.append(_order_card("info", f"{drug.replace('_', ' ')}: no cledecide safety "
                                     "rule excludes it", "Checked against every safety rule "
                                     f"of the rule set. _{base.result.disclaimer}_", base))
    return cards, base


def _order_card(indicator: str, summary: str, detail: str, base: Explanation) -> dict[str, Any]:
    return {"uuid": str(uuid.uuid4()), "summary": _short(summary), "indicator": indicator,
            "detail": detail, "source": _source(base)}


def _with_course(patient: Patient, drug: str, dose: Any) -> Patient | None:
    """The patient as if the order were signed today (a new course of the drug)."""
    data = patient.model_dump(mode="json", exclude_none=True)
    course: dict[str, Any] = {"drug": drug, "start": patient.as_of.isoformat()}
    if dose is not None:
        course[dose[0]] = dose[1]
    data["treatments"] = [c for c in data.get("treatments", [])
                          if not (c["drug"] == drug and "stop" not in c)] + [course]
    try:
        return Patient.model_validate(data)
    except ValueError:
        return None

