"""Render stage: JSON for machines (the contract, byte-identical on re-run) and plain
text for a clinician, readable in an 80-column terminal."""
from __future__ import annotations

import json
import textwrap
from typing import Any

from .explain import Explanation
from .safetext import visible
from .signoff import status_label
from .words import fact_words

WIDTH = 80


def result_dict(ex: Explanation) -> dict[str, Any]:
    """The contract's result as plain data (what to_json writes)."""
    data: dict[str, Any] = ex.result.model_dump(mode="json")
    if data.get("conditional") is None:
        data.pop("conditional", None)  # only there when a fact's value decides the step
    # Compatible addition: the "why not" for other drugs of the current and next stage.
    data["not_recommended"] = [{"drug": w.drug, "status": w.status, "reason": w.reason,
                                "rules": list(w.rules)} for w in ex.why_not]
    return data


def to_json(ex: Explanation) -> str:
    """The contract's JSON; field order is the model's, so output is deterministic."""
    return json.dumps(result_dict(ex), indent=2, ensure_ascii=False) + "\n"


def _wrap(text: str, indent: str = "  ", first: str | None = None) -> list[str]:
    first = indent if first is None else first
    return textwrap.wrap(" ".join(text.split()), WIDTH, initial_indent=first,
                         subsequent_indent=indent + "  " if first != indent else indent,
                         break_on_hyphens=False) or [first.rstrip()]


def _facts(matched: dict[str, Any]) -> str:
    """The facts a rule matched, in words ('hydroxychloroquine: partial response', not
    'hydroxychloroquine_phase=partial'); the JSON trace keeps the raw names."""
    return ", ".join(fact_words(k, v) for k, v in matched.items())


def _section(title: str, empty: str, items: list[str]) -> list[str]:
    """A blank line, the heading, then one wrapped bullet per item (or the empty note)."""
    out = ["", title]
    if not items:
        out.append(f"  {empty}")
    for item in items:
        out += _wrap(f"- {item}", "    ", "  ")
    return out


def _word(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _conditional(c: Any) -> list[str]:
    """Each value's step, right under the step that asks for the fact: "if localized:
    ...; if widespread: ..." with each branch's rule and why."""
    name = c.fact.rsplit(".", 1)[-1].replace("_", " ")
    out = [""] + _wrap(f"The next step depends on the {name} ({c.fact}), which is not "
                       "recorded:", "  ", "")
    for b in c.branches:
        rec = b.recommendation
        out += _wrap(f"- if {_word(b.value)}: {rec.summary} [{rec.rule}]", "    ", "  ")
        out += _wrap(f"why: {rec.rationale}", "      ", "      ")
        for w in b.warnings:
            out += _wrap(f"{w.severity.upper()}: {w.message} [{w.rule}]", "      ", "      ")
    return out


def to_text(ex: Explanation) -> str:
    """The clinician's view: the step first, then why, why not, and what to watch."""
    r = ex.result
    rec = r.recommendation
    out: list[str] = []
    head = f"NEXT STEP ({rec.stage}): {rec.summary}"
    out += _wrap(head, "  ", "")
    out += _wrap(f"patient {r.patient_id}, as of {r.as_of}; rule {rec.rule}")
    if r.conditional is not None:
        out += _conditional(r.conditional)
    out.append("")
    out.append("Why")
    out += _wrap(r.recommendation.rationale)
    if ex.why:
        out.append("  The rule chain, in firing order, with the facts each matched:")
        for f in ex.why:
            kind = f.rule.spec.then.kind
            line = f"- {f.rule.id} [{kind}]: {f.rule.spec.title}"
            out += _wrap(line, "    ", "  ")
            if f.matched:
                out += _wrap(f"on: {_facts(f.matched)}", "      ", "      ")
    others = ex.fired_count - len(ex.why)
    if others > 0:
        out += _wrap(f"({others} other rules fired; --format json lists every rule in "
                     f"'trace'.)")
    out += _section("Not recommended", "(no other drug of the current or next stage)",
                    [f"{w.drug.replace('_', ' ')} ({w.status.replace('_', ' ')}): {w.reason}"
                     for w in ex.why_not])
    out += _section("Alternatives", "(none)",
                    [f"{text} [{a.rule}]" for text, a in zip(ex.alternatives, r.alternatives)])
    out += _section("Monitoring", "(nothing beyond routine review)",
                    [f"{m.what}: {m.when} [{m.rule}]" for m in r.monitoring])
    out += _section("Warnings", "(none)",
                    [f"{w.severity.upper()}: {w.message} [{w.rule}]" for w in r.warnings])
    if r.missing_data:
        out += _section("Missing data", "", [f"{m.field}: {m.why}" for m in r.missing_data])
    out.append("")
    out.append("Evidence")
    for key, citation in ex.references.items():
        out += _wrap(f"[{key}] {citation}", "    ", "  ")
    out.append("")
    engine = f"; engine sha256 {r.engine.sha256[:16]}" if r.engine else ""
    folder = f" from {r.ruleset.folder}/" if r.ruleset.folder else ""
    out += _wrap(f"Rule set {r.ruleset.name} {r.ruleset.version} "
                 f"({status_label(ex.ruleset_status)}){folder}, "
                 f"sha256 {r.ruleset.sha256[:16]}{engine}; input sha256 "
                 f"{r.input_sha256[:16]}",
                 "", "")
    out.append(r.disclaimer)
    return "\n".join(visible(line) for line in out) + "\n"
