"""Scenario tests for rule reviewers, in the style of the CQL Testing Framework: YAML
files that name a patient (a base record plus changes), its fixed `as_of`, and the
expected outcome; `expand` runs one scenario over combinations of values.

    base: {...}                      # optional: a patient record every scenario starts from
    scenarios:
      - name: hydroxychloroquine inadequate -> add quinacrine
        set: {treatments[0].response: none}       # dotted paths (list indexes allowed)
        patient: {...}                            # or: a record merged over the base
        expand: {diagnosis.subtype: [DLE, SCLE]}  # one run per combination
        expect:
          action: add                 # a value or a list of acceptable values
          drug: quinacrine
          rule: antimalarial.quinacrine.add
          excluded_includes: [thalidomide]
          excluded_excludes: [hydroxychloroquine]
          never: [lenalidomide]       # not the step, not an alternative
          monitoring_includes: [retinal_exam]
          warnings_include: [critical]
          missing_data_includes: [reproductive.pregnant]
          rules_fired: [safety.pregnancy.unknown]
          summary_includes: "2027-01-22"  # words in the step's summary
          stops: [methotrexate]           # what a switch stops
          warning_text_includes: ["stopped 2025-12-20"]
"""
from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine import conditions as C
from ..engine.compile import CompiledRules, compile_rules
from ..engine.decide import decide
from ..engine.errors import CledecideError, InputError
from ..engine.evaluate import Evaluation, evaluate
from ..engine.explain import explain
from ..engine.load import load_file, parse
from ..engine.render import to_json
from ..engine.ruleset import RuleSet
from ..engine.validate import validate_patient

EXPECT_KEYS = {"action", "drug", "rule", "stage", "excluded_includes", "excluded_excludes",
               "never", "monitoring_includes", "warnings_include", "missing_data_includes",
               "rules_fired", "dose_includes", "summary_includes", "stops",
               "warning_text_includes", "monitoring_text_includes",
               "monitoring_text_excludes"}


@dataclass
class Outcome:
    name: str
    file: str
    failures: list[str]
    result: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class ScenarioReport:
    outcomes: list[Outcome] = field(default_factory=list)
    uncovered_rules: list[str] = field(default_factory=list)
    uncovered_conditions: list[str] = field(default_factory=list)
    total_conditions: int = 0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed]


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set `a.b[0].c` in nested data, creating mappings on the way."""
    parts = [(m.group(1), m.group(2)) for m in _STEP.finditer(path)]
    target: Any = data
    for i, (key, index) in enumerate(parts):
        last = i == len(parts) - 1
        slot: Any = int(index) if index is not None else key
        if isinstance(target, list) and isinstance(slot, int) and slot == len(target):
            target.append({} if not last else None)  # `list[n]` with n == len appends
        if isinstance(target, list) and (not isinstance(slot, int) or slot > len(target)):
            raise InputError(f"cannot set '{path}': no item {slot}")
        if last:
            if value is None and isinstance(target, dict):
                target.pop(slot, None)
            else:
                target[slot] = value
            return
        if isinstance(slot, str) and slot not in target:
            target[slot] = {}
        target = target[slot]


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return copy.deepcopy(over)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _short(value: Any) -> str:
    if isinstance(value, dict) and "drug" in value:
        return str(value["drug"])
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def expand(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, patient, expect) for every scenario and combination in a file."""
    base = doc.get("base") or {}
    out = []
    for sc in doc.get("scenarios") or []:
        patient = _merge(base, sc.get("patient") or {})
        axes = sc.get("expand") or {}
        keys = sorted(axes)
        for combo in itertools.product(*(_as_list(axes[k]) for k in keys)) if keys else [()]:
            record = copy.deepcopy(patient)
            for path, value in (sc.get("set") or {}).items():
                set_path(record, path, copy.deepcopy(value))
            for path, value in zip(keys, combo):
                set_path(record, path, copy.deepcopy(value))
            label = sc["name"] + ("" if not keys else " [" + ", ".join(
                f"{k}={_short(v)}" for k, v in zip(keys, combo)) + "]")
            out.append((label, record, sc.get("expect") or {}))
    return out


def compare(result: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    """Expected vs got, one line each ('- expected' / '+ got')."""
    bad: list[str] = []
    rec = result["recommendation"]
    for key in ("action", "drug", "rule", "stage"):
        if key in expect and rec.get(key) not in _as_list(expect[key]):
            bad.append(f"{key}: - expected {expect[key]!r}  + got {rec.get(key)!r}")
    if "summary_includes" in expect and str(expect["summary_includes"]) not in rec["summary"]:
        bad.append(f"summary: - expected to include {expect['summary_includes']!r}  "
                   f"+ got {rec['summary']!r}")
    if "stops" in expect and sorted(rec.get("stops") or []) != sorted(expect["stops"]):
        bad.append(f"stops: - expected {sorted(expect['stops'])}  + got {rec.get('stops')}")
    plans = " | ".join(f"{m['what']}: {m['when']}" for m in result["monitoring"])
    for words in _as_list(expect.get("monitoring_text_includes", [])):
        if str(words) not in plans:
            bad.append(f"monitoring: - expected an item with {words!r}  + got {plans!r}")
    for words in _as_list(expect.get("monitoring_text_excludes", [])):
        if str(words) in plans:
            bad.append(f"monitoring: - expected no item with {words!r}  + got {plans!r}")
    texts = " | ".join(w["message"] for w in result["warnings"])
    for words in _as_list(expect.get("warning_text_includes", [])):
        if str(words) not in texts:
            bad.append(f"warnings: - expected a message with {words!r}  + got {texts!r}")
    if "dose_includes" in expect and str(expect["dose_includes"]) not in (rec.get("dose") or ""):
        bad.append(f"dose: - expected to include {expect['dose_includes']!r}  "
                   f"+ got {rec.get('dose')!r}")
    groups = {
        "excluded_includes": {e["drug"] for e in result["excluded"]},
        "monitoring_includes": {m["what"] for m in result["monitoring"]},
        "warnings_include": {w["severity"] for w in result["warnings"]},
        "missing_data_includes": {m["field"] for m in result["missing_data"]},
        "rules_fired": {t["rule"] for t in result["trace"]},
    }
    for key, got in groups.items():
        missing = [x for x in expect.get(key, []) if x not in got]
        if missing:
            bad.append(f"{key}: - expected {sorted(missing)}  + got {sorted(got)}")
    excluded = groups["excluded_includes"]
    wrong = [d for d in expect.get("excluded_excludes", []) if d in excluded]
    if wrong:
        bad.append(f"excluded: - expected not {wrong}  + got {sorted(excluded)}")
    offered = {rec["drug"]} | {a["drug"] for a in result["alternatives"]}
    wrong = [d for d in expect.get("never", []) if d in offered]
    if wrong:
        bad.append(f"never: - expected not offered {wrong}  + got offered "
                   f"{sorted(x for x in offered if x)}")
    return bad


def default_scenarios_dir(rules_folder: Path) -> Path:
    """scenarios/ beside the rules folder, else the repository's or package's copy."""
    candidate = rules_folder.parent / "scenarios"
    if candidate.is_dir():
        return candidate
    from importlib.resources import files
    return Path(str(files("cledecide.scenarios")))


def scenario_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.yaml"))


def run_case(record: dict[str, Any], label: str, ruleset: RuleSet,
             compiled: CompiledRules) -> tuple[Evaluation, dict[str, Any]]:
    """One scenario's patient through the engine: its evaluation and its result as
    JSON data (what expectations compare)."""
    raw = json.dumps(record, default=str).encode()
    patient = validate_patient(parse(raw, label), ruleset.drugs)
    ev = evaluate(patient, compiled)
    return ev, json.loads(to_json(explain(ruleset, ev, decide(ruleset, ev), "")))


def run_scenarios(folder: Path | str, ruleset: RuleSet) -> ScenarioReport:
    """Run every scenario under a folder; collect outcomes and rule/condition coverage."""
    compiled = compile_rules(ruleset)
    report = ScenarioReport()
    fired: set[str] = set()
    truth_seen: dict[tuple[str, int], set[bool]] = {}
    for path in scenario_files(Path(folder)):
        doc = load_file(path, InputError)
        unknown = [k for sc in doc.data.get("scenarios") or [] for k in (sc.get("expect") or {})
                   if k not in EXPECT_KEYS]
        if unknown:
            raise InputError(f"unknown expectation '{unknown[0]}' (one of "
                             f"{', '.join(sorted(EXPECT_KEYS))})", str(path))
        for name, record, expect in expand(doc.data):
            try:
                ev, result = run_case(record, f"{path.name}: {name}", ruleset, compiled)
            except CledecideError as exc:
                report.outcomes.append(Outcome(name, str(path), [f"error: {exc}"]))
                continue
            fired |= ev.fired_ids()
            for rule in ruleset.rules:
                parts = rule.condition.items if isinstance(rule.condition, C.All) \
                    else (rule.condition,)
                for i, part in enumerate(parts):
                    truth_seen.setdefault((rule.id, i), set()).add(
                        C.truth(part, ev.facts, ev.derived) is True)
            report.outcomes.append(Outcome(name, str(path), compare(result, expect), result))
    report.uncovered_rules = sorted(r.id for r in ruleset.rules if r.id not in fired)
    report.total_conditions = len(truth_seen)
    for rule in ruleset.rules:
        parts = rule.condition.items if isinstance(rule.condition, C.All) else (rule.condition,)
        for i, part in enumerate(parts):
            seen = truth_seen.get((rule.id, i), set())
            if seen != {True, False} and rule.condition != C.TRUE:
                never = "true" if True not in seen else "false"
                report.uncovered_conditions.append(
                    f"{rule.id}: '{C.describe(part)}' never {never}")
    return report


def format_report(report: ScenarioReport, coverage: bool = True) -> str:
    lines = []
    for o in report.failed:
        lines.append(f"FAIL {o.name}  ({o.file})")
        lines += [f"    {f}" for f in o.failures]
    if coverage:
        n_rules = len(report.uncovered_rules)
        lines.append(f"rule coverage: {n_rules} rules fired in no scenario"
                     + (": " + ", ".join(report.uncovered_rules) if n_rules else ""))
        covered = report.total_conditions - len(report.uncovered_conditions)
        lines.append(f"condition coverage: {covered}/{report.total_conditions} conditions "
                     f"seen both true and not true")
        lines += [f"    {c}" for c in report.uncovered_conditions[:40]]
        if len(report.uncovered_conditions) > 40:
            lines.append(f"    ... and {len(report.uncovered_conditions) - 40} more")
    passed = len(report.outcomes) - len(report.failed)
    lines.append(f"{passed} passed, {len(report.failed)} failed")
    return "\n".join(lines) + "\n"
