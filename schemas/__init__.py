"""JSON Schema (2020-12) of every file format, generated from the models, so that editors
can complete and check patient records and rule files while they are typed. The
*.schema.json files beside this module are its output (tests/update_golden.py)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..engine.catalogue import TemplateFile
from ..engine.models import Patient, Result
from ..engine.ruleset import DrugFile, EvidenceFile, Provenance, RuleFile
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


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of one document kind (see SCHEMAS)."""
    model, title = SCHEMAS[name]
    mode = "serialization" if name in ("result", "no-advice") else "validation"
    doc = model.model_json_schema(mode=mode, by_alias=True)
    return {"$schema": DIALECT, "$id": f"https://cledecide.invalid/schema/{name}.json",
            "title": title, **{k: v for k, v in doc.items() if k != "title"}}
