"""Every scenario run once against the rule set, keeping what a rule page shows: which
rules fired, the facts the rules saw, the expected and actual outcome, pass or fail."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine import conditions as C
from ..engine.compile import compile_rules
from ..engine.decide import decide
from ..engine.errors import CledecideError, InputError
from ..engine.evaluate import evaluate
from ..engine.explain import explain
from ..engine.load import load_file, parse
from ..engine.render import result_dict
from ..engine.ruleset import RuleSet
from ..engine.validate import validate_patient
from ..reviewer.scenarios import compare, expand, scenario_files


@dataclass
class Run:
    """One scenario (one combination of an expanded one)."""

    index: int
    name: str
    file: str
    expect: dict[str, Any]
    record: dict[str, Any]
    failures: list[str]
    result: dict[str, Any] | None = None
    fired: frozenset[str] = frozenset()
    facts: dict[str, Any] = field(default_factory=dict)
    derived: frozenset[str] = frozenset()

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def chosen(self) -> str | None:
        return self.result["recommendation"]["rule"] if self.result else None

    @property
    def actual(self) -> str:
        if self.result is None:
            return "; ".join(self.failures)
        rec = self.result["recommendation"]
        return f"{rec['action']} {rec['drug'] or ''}".strip() + f" [{rec['rule']}]"

    @property
    def expected(self) -> str:
        parts = []
        for key, value in self.expect.items():
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(f"{key.replace('_', ' ')}: {shown}")
        return "; ".join(parts) or "(no expectation: runs without error)"

    def truth(self, node: C.Node) -> bool | None:
        return C.truth(node, self.facts, self.derived)


def run_all(folder: Path | str, ruleset: RuleSet) -> list[Run]:
    """Run every scenario file under a folder (as `rules test` does)."""
    compiled = compile_rules(ruleset)
    runs: list[Run] = []
    for path in scenario_files(Path(folder)):
        doc = load_file(path, InputError)
        rel = path.name
        for name, record, expect in expand(doc.data):
            run = Run(len(runs), name, rel, expect, record, [])
            try:
                raw = json.dumps(record, default=str).encode()
                patient = validate_patient(parse(raw, f"{rel}: {name}"), ruleset.drugs)
                ev = evaluate(patient, compiled)
                run.result = result_dict(explain(ruleset, ev, decide(ruleset, ev), ""))
                run.failures = compare(run.result, expect)
                run.fired = frozenset(ev.fired_ids())
                run.facts = dict(ev.facts)
                run.derived = frozenset(ev.derived)
            except CledecideError as exc:
                run.failures = [f"error: {exc}"]
            runs.append(run)
    return runs
