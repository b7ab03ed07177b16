"""The rule set as a FHIR R4 PlanDefinition (`cledecide export plandefinition`): one
action per active recommend rule, its condition in words and as written, its evidence
as citations, and the sign-off as the artifact's metadata (status, approvalDate,
lastReviewDate, reviewer, endorser) from the review records.

Validated with fhir.resources' R4B models before it is written: every element used
here has the same shape in R4.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..engine.rulecache import load_ruleset
from ..engine.ruleset import RuleSet, default_rules_dir
from ..engine.signoff import is_approved, ruleset_units, status_label
from ..engine.words import condition_words

SYSTEM = "urn:cledecide"
STATE_EXTENSION = "https://cledecide.invalid/fhir/StructureDefinition/review-state"
_DOI = re.compile(r"doi:\s*(10\.\S+?)[.,;]?(?:\s|$)", re.I)
_PMID = re.compile(r"PMID:?\s*(\d+)")
_URL = re.compile(r"https?://[^\s)>\]]+")


def citation_links(citation: str) -> list[str]:
    """Links a citation names: DOI, PubMed and plain URLs."""
    links = [u.rstrip(".,;") for u in _URL.findall(citation)]
    links += [f"https://doi.org/{d.rstrip('.,;')}" for d in _DOI.findall(citation)]
    links += [f"https://pubmed.ncbi.nlm.nih.gov/{p}/" for p in _PMID.findall(citation)]
    return list(dict.fromkeys(links))


def _artifact(key: str, citation: str) -> dict[str, Any]:
    text = " ".join(citation.split())
    out: dict[str, Any] = {"type": "citation", "label": key, "citation": text}
    links = citation_links(text)
    if links:
        out["url"] = links[0]
    return out


def _fhir_status(status: str) -> str:
    return "active" if is_approved(status) else ("retired" if status == "retired" else "draft")


def _contacts(names: list[str]) -> list[dict[str, Any]]:
    return [{"name": n} for n in dict.fromkeys(names)]


def plandefinition(ruleset: RuleSet) -> dict[str, Any]:
    """The PlanDefinition as JSON-ready data (validated by `export_text`)."""
    prov = ruleset.provenance
    units = ruleset_units(ruleset)
    by_rule = {u.id: u for u in units if u.kind == "rule"}
    records = [r for u in units for r in u.records]
    approvals = [u.approval for u in units if u.approval is not None]
    out: dict[str, Any] = {
        "resourceType": "PlanDefinition",
        "id": prov.name,
        "url": f"{SYSTEM}:ruleset:{prov.name}",
        "identifier": [{"system": f"{SYSTEM}:ruleset-sha256", "value": ruleset.sha256}],
        "version": prov.version,
        "name": "".join(w.capitalize() for w in re.split(r"[^A-Za-z0-9]+", prov.name) if w),
        "title": f"cledecide rule set {prov.name} ({status_label(prov.status)})",
        "type": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/plan-definition-type",
            "code": "eca-rule", "display": "ECA Rule"}]},
        "status": _fhir_status(prov.status),
        "experimental": not is_approved(prov.status),
        "date": prov.last_reviewed.isoformat(),
        "description": " ".join(prov.description.split()) or prov.name,
        "purpose": "Decision support for a clinician treating cutaneous lupus "
                   "erythematosus; never an order.",
    }
    if is_approved(prov.status) and approvals:
        # the day the last current approval completed the sign-off
        out["approvalDate"] = max(r.date for r in approvals).isoformat()
    if records:
        out["lastReviewDate"] = max(r.date for r in records).isoformat()
        out["reviewer"] = _contacts([f"{r.by} ({r.role})" for r in records])
    if approvals:
        out["endorser"] = _contacts([f"{r.by} ({r.role})" for r in approvals])
    cited = list(dict.fromkeys(k for r in ruleset.rules for k in r.spec.evidence))
    out["relatedArtifact"] = [_artifact(k, ruleset.evidence[k].citation) for k in cited
                              if k in ruleset.evidence]
    actions = []
    for rule in sorted(ruleset.rules, key=lambda r: (-r.spec.priority, r.id)):
        rec = rule.spec.then.recommend
        if rec is None:
            continue
        unit = by_rule.get(rule.id)
        action: dict[str, Any] = {
            "id": rule.id,
            "title": rule.spec.title,
            "description": " ".join(rule.spec.because.split()),
            "textEquivalent": " ".join(x for x in (rec.action, rec.drug or "", rec.dose or "")
                                       if x) + f" (priority {rule.spec.priority})",
            "code": [{"coding": [{"system": f"{SYSTEM}:action", "code": rec.action}]}],
            "condition": [{"kind": "applicability", "expression": {
                "description": condition_words(rule.condition, ruleset),
                "language": "text/plain",
                "expression": json.dumps(rule.spec.when, ensure_ascii=False)
                if not isinstance(rule.spec.when, str) else rule.spec.when or "always"}}],
        }
        docs = [_artifact(k, ruleset.evidence[k].citation) for k in rule.spec.evidence
                if k in ruleset.evidence]
        if docs:
            action["documentation"] = docs
        state = unit.state if unit is not None else "covered by its drug entries"
        action["extension"] = [{"url": STATE_EXTENSION, "valueString": state}]
        actions.append(action)
    out["action"] = actions
    return out


def validate(data: dict[str, Any]) -> None:
    """Refuse anything fhir.resources does not accept as a PlanDefinition."""
    from fhir.resources.R4B.plandefinition import PlanDefinition
    PlanDefinition.model_validate(data)
    # fhir.resources checks types and elements, not required code bindings
    if data.get("status") not in ("draft", "active", "retired", "unknown"):
        raise ValueError(f"PlanDefinition.status {data.get('status')!r} is not a "
                         "PublicationStatus code")


def export_text(folder: Path | str | None = None) -> str:
    """The PlanDefinition as JSON text, validated."""
    ruleset = load_ruleset(Path(folder) if folder else default_rules_dir())
    data = plandefinition(ruleset)
    validate(data)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
