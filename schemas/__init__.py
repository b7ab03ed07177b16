"""JSON Schema (2020-12) of every file format, generated from the models, so that editors
can complete and check patient records and rule files while they are typed. The
*.schema.json files beside this module are its output (tests/update_golden.py)."""
from __future__ import annotations

from typing import Any, Sequence

from pydantic import BaseModel

from ..engine.catalogue import TemplateFile
from ..engine.models import DRUG_SCHEMA_MARK, Patient, Result
from ..engine.ruleset import DrugFile, EvidenceFile, Provenance, RuleFile
from ..engine.validate import catalogue_drugs
from ..fhir_r4.codemap import CodeMapFile
from ..fhir_r4.noadvice import NoAdviceModel

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "patient": (Patient, "cledecide patient record, contract version 1"),
    "result": (Result, "cledecide result (evaluate --format json), contract version 1"),
    "rules": (RuleFile, "cledecide rule file (one stage)"),
    "ruleset": (Provenance, "cledecide ruleset.yaml (provenance and thresholds)"),
    "drugs": (DrugFile, "cledecide drugs.yaml (drug catalogue)"),
    "evidence": (EvidenceFile, "cledecide evidence.yaml (references)"),
    "reproductive-templates": (TemplateFile, "cledecide reproductive-templates.yaml (rule "
                               "templates filled from drugs.yaml)"),
    "fhir-map": (CodeMapFile, "cledecide fhir-map.yaml (the FHIR code map)"),
    "no-advice": (NoAdviceModel, "cledecide result of a patient with no advice (deceased, "
                                 "no CLE on record), contract version 1"),
}


def schema(name: str, drugs: Sequence[str] | None = None) -> dict[str, Any]:
    """The JSON Schema of one document kind (see SCHEMAS). A drug is one of `drugs`,
    the catalogue of the rule set in use (drugs.yaml; the shipped one by default): the
    drugs are the catalogue's, so the schema lists that catalogue's."""
    model, title = SCHEMAS[name]
    mode = "serialization" if name in ("result", "no-advice") else "validation"
    doc = _with_drugs(model.model_json_schema(mode=mode, by_alias=True),
                      list(catalogue_drugs() if drugs is None else drugs))
    return {"$schema": DIALECT, "$id": f"https://cledecide.invalid/schema/{name}.json",
            "title": title, **{k: v for k, v in doc.items() if k != "title"}}


def _with_drugs(node: Any, drugs: list[str]) -> Any:
    """Every drug name's schema (models.Drug) as the catalogue's list of drugs."""
    if isinstance(node, dict):
        out = {k: _with_drugs(v, drugs) for k, v in node.items() if k != DRUG_SCHEMA_MARK}
        if node.get(DRUG_SCHEMA_MARK):
            out["enum"] = list(drugs)
        return out
    if isinstance(node, list):
        return [_with_drugs(v, drugs) for v in node]
    return node
