"""A patient the CLE ladder has nothing to say about: dead on `as_of`, or with no
cutaneous lupus on record. Not an error (exit 0; cohorts count them apart from
failures) and not advice: a plain result that says why, traceable like any result (rule
set, engine, input hash). Contract section 4: `cledecide/no-advice@1`."""
from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..engine.models import EngineInfo, RulesetInfo, Warning

FORMAT = "cledecide/no-advice@1"
Reason = Literal["deceased", "no_cle"]
HEADLINE = {"deceased": "Deceased: no advice.",
            "no_cle": "No cutaneous lupus on record: no CLE advice."}


class _NoAdviceWhy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason
    message: str


class NoAdviceModel(BaseModel):
    """The machine contract of a patient with no advice (`cledecide schema no-advice`)."""

    model_config = ConfigDict(extra="forbid", title="NoAdviceResult")
    format: Literal["cledecide/no-advice@1"]
    patient_id: str
    as_of: str
    ruleset: RulesetInfo
    engine: EngineInfo
    input_sha256: str
    no_advice: _NoAdviceWhy
    warnings: list[Warning]
    disclaimer: str


@dataclass(frozen=True)
class NoAdvice:
    """What the import found instead of a patient to advise on."""

    reason: Reason
    patient_id: str
    as_of: str
    message: str


@dataclass(frozen=True)
class NoAdviceResult:
    """The contract form (`data`) and its two views."""

    data: dict[str, Any]

    def json(self) -> str:
        return json.dumps(self.data, indent=2, ensure_ascii=False) + "\n"

    def text(self) -> str:
        d = self.data
        out = [f"NO ADVICE: {HEADLINE[d['no_advice']['reason']]}",
               *textwrap.wrap(d["no_advice"]["message"], 78, initial_indent="  ",
                              subsequent_indent="  "),
               f"  patient {d['patient_id']}, as of {d['as_of']}", ""]
        for w in d["warnings"]:
            out += textwrap.wrap(f"{w['severity']}: {w['message']}", 78,
                                 initial_indent="  ", subsequent_indent="    ")
        rs = d["ruleset"]
        folder = f" from {rs['folder']}/" if rs.get("folder") else ""
        out += ["", f"Rule set {rs['name']} {rs['version']}{folder}, sha256 "
                    f"{rs['sha256'][:16]}; engine sha256 {d['engine']['sha256'][:16]}; "
                    f"input sha256 {d['input_sha256'][:16]}", d["disclaimer"]]
        return "\n".join(out) + "\n"


def no_advice_result(item: NoAdvice, ruleset: Any, input_sha256: str,
                     report: Any = None) -> NoAdviceResult:
    """The result of a patient with no advice, under the rule set that was loaded."""
    from ..engine.explain import DISCLAIMER, IMPORT_RULE
    from ..engine.identity import engine_sha256
    from ..engine.ruleset import shown_folder
    prov = ruleset.provenance
    warnings = [{"severity": s, "message": m, "rule": IMPORT_RULE}
                for s, m in dict.fromkeys(report.warnings if report else [])]
    return NoAdviceResult({
        "format": FORMAT, "patient_id": item.patient_id, "as_of": item.as_of,
        "ruleset": {"name": prov.name, "version": prov.version, "sha256": ruleset.sha256,
                    "status": prov.status, "folder": shown_folder(ruleset.folder)},
        "engine": {"name": "cledecide", "sha256": engine_sha256()},
        "input_sha256": input_sha256,
        "no_advice": {"reason": item.reason, "message": item.message},
        "warnings": warnings, "disclaimer": DISCLAIMER})
