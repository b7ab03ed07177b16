"""`rules check` runs the scenarios too: a rule that changes the outcome of a scenario
it was not written for is reported at the rule's FILE:LINE before `rules test` is run.

Priority is one global number, so a new rule can win a decision far from the one its
author had in mind. Each failing scenario is reported with the rule that now decides
it; when the failure is about the step (action, drug, rule, stage, dose, stops) and the
scenario does not name that rule (in `expect.rule` or `expect.rules_fired`), the finding
says so: that rule took over a scenario written for something else.

To keep the check quick in the edit loop, the outcome of each scenario is kept in the
user's cache (JSON, as the other caches) with the facts it was evaluated on and the
rules that fired. After an edit a scenario runs again only if a rule that fired on it
changed or went, or a new or changed rule's condition is not false on its facts; any
change to thresholds, drugs, the templates or the code runs every scenario again.
`CLEDECIDE_NO_CACHE=1` runs them all every time.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..engine import conditions as C
from ..engine.compile import CompiledRules, compile_rules
from ..engine.errors import CledecideError, InputError
from ..engine.identity import engine_sha256
from ..engine.load import load_file
from ..engine.parsecache import cache_dir, prune, read_trusted, write_atomic
from ..engine.ruleset import Finding, RuleSet
from ..engine.signoff import content_sha256
from .scenarios import EXPECT_KEYS, compare, expand, run_case, scenario_files

FORMAT = 1
KEEP = 40
# The expectations about the step itself: a failure of these is a rule taking over.
STEP_KEYS = ("action", "drug", "rule", "stage", "dose", "stops", "summary")


@dataclass(frozen=True)
class Case:
    file: str
    line: int | None
    name: str
    record: dict[str, Any]
    expect: dict[str, Any]
    key: str


@dataclass
class Ran:
    """What a scenario gave: its failures, the rule that decided its step, and what the
    cache needs to tell whether an edit can change it."""

    failures: list[str]
    winner: str | None
    step: str
    fired: list[str]
    facts: dict[str, Any] | None
    derived: list[str]


@lru_cache(maxsize=1)
def _code_digest() -> str:
    here = Path(__file__).parent
    source = b"".join((here / n).read_bytes() for n in ("outcomes.py", "scenarios.py"))
    return hashlib.sha256(source + engine_sha256().encode() + str(FORMAT).encode()
                          ).hexdigest()


def _cases(folder: Path, findings: list[Finding]) -> list[Case]:
    out = []
    for path in scenario_files(folder):
        try:
            doc = load_file(path, InputError)
        except CledecideError as exc:
            findings.append(Finding("warning", "scenario-file", str(exc), str(path)))
            continue
        data = doc.data if isinstance(doc.data, dict) else {}
        for i, sc in enumerate(data.get("scenarios") or []):
            if not isinstance(sc, dict) or not isinstance(sc.get("expect") or {}, dict):
                continue
            unknown = [k for k in sc.get("expect") or {} if k not in EXPECT_KEYS]
            line = doc.line_of(("scenarios", i, "name"))
            if unknown:
                findings.append(Finding("warning", "scenario-file",
                                        f"unknown expectation '{unknown[0]}'", str(path),
                                        line))
                continue
            try:
                expanded = expand({"base": data.get("base"), "scenarios": [sc]})
            except (CledecideError, KeyError, TypeError) as exc:
                findings.append(Finding("warning", "scenario-file", f"cannot expand: {exc}",
                                        str(path), line))
                continue
            for name, record, expect in expanded:
                key = hashlib.sha256(json.dumps([path.name, name, record, expect],
                                                default=str, sort_keys=True).encode()
                                     ).hexdigest()
                out.append(Case(str(path), line, name, record, expect, key))
    return out


def _base(ruleset: RuleSet) -> str:
    """What every scenario depends on besides the rules: thresholds, drugs, the facts'
    vocabulary, the code."""
    data = [ruleset.thresholds, {k: v.model_dump(mode="json") for k, v in ruleset.drugs.items()},
            sorted(ruleset.facts), sorted(ruleset.derived), _code_digest()]
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _rule_hashes(ruleset: RuleSet) -> dict[str, str]:
    return {r.id: content_sha256("rule", r.id, r.spec, r.stage) for r in ruleset.rules}


def _run(case: Case, ruleset: RuleSet, compiled: CompiledRules) -> Ran:
    try:
        ev, result = run_case(case.record, f"{Path(case.file).name}: {case.name}", ruleset,
                              compiled)
    except CledecideError as exc:
        return Ran([f"error: {exc}"], None, "", [], None, [])
    rec = result["recommendation"]
    facts: dict[str, Any] | None = dict(ev.facts)
    try:
        json.dumps(facts, allow_nan=False)
    except (TypeError, ValueError):
        facts = None  # never reused: run again next time
    return Ran(compare(result, case.expect), rec.get("rule"),
               f"{rec['action']} {rec.get('drug') or ''}".strip(), sorted(ev.fired_ids()),
               facts, sorted(ev.derived))


def _reusable(old: dict[str, Any] | None, changed: set[str], new_rules: list[Any]) -> bool:
    """Whether a cached outcome still holds after the rules changed by `changed` (ids
    changed, added or removed; new_rules: the current rules among them)."""
    if not old or old.get("facts") is None:
        return False
    if changed & set(old["fired"]):
        return False
    derived = frozenset(old["derived"])
    return all(C.truth(r.condition, old["facts"], derived) is False for r in new_rules)


def scenario_outcomes(ruleset: RuleSet, folder: Path) -> tuple[list[tuple[Case, Ran]], int,
                                                               list[Finding]]:
    """Every scenario's outcome under this rule set: (case, outcome) pairs, how many
    were run (the others came from the cache), and problems reading the files."""
    findings: list[Finding] = []
    cases = _cases(folder, findings)
    place = cache_dir("scenarios")
    key = hashlib.sha256(f"{_code_digest()}|{Path(ruleset.folder).resolve()}|"
                         f"{folder.resolve()}".encode()).hexdigest()
    entry = read_trusted(place / f"{key}.json") if place else None
    base, hashes = _base(ruleset), _rule_hashes(ruleset)
    old_cases: dict[str, Any] = {}
    changed: set[str] = set()
    if entry and entry.get("format") == FORMAT and entry.get("key") == key \
            and entry.get("base") == base and isinstance(entry.get("cases"), dict):
        old_hashes = entry.get("rules") or {}
        changed = {i for i in set(hashes) | set(old_hashes)
                   if hashes.get(i) != old_hashes.get(i)}
        old_cases = entry["cases"]
    new_rules = [ruleset.by_id[i] for i in sorted(changed) if i in ruleset.by_id]
    compiled: CompiledRules | None = None
    out: list[tuple[Case, Ran]] = []
    ran = 0
    for case in cases:
        old = old_cases.get(case.key)
        if old_cases and _reusable(old, changed, new_rules):
            out.append((case, Ran(**old)))
            continue
        compiled = compiled or compile_rules(ruleset)
        out.append((case, _run(case, ruleset, compiled)))
        ran += 1
    if place is not None and (ran or not entry):
        body = {"format": FORMAT, "key": key, "base": base, "rules": hashes,
                "cases": {c.key: r.__dict__ for c, r in out}}
        write_atomic(place, f"{key}.json", body)
        prune(place, KEEP)
    return out, ran, findings


def scenario_findings(ruleset: RuleSet, folder: Path) -> tuple[list[Finding], str]:
    """A warning per failing scenario, at the FILE:LINE of the rule that now decides
    it when the step is what changed, and one line saying what was run."""
    outcomes, ran, findings = scenario_outcomes(ruleset, folder)
    failing = 0
    for case, r in outcomes:
        if not r.failures:
            continue
        failing += 1
        where = f"{Path(case.file).name}:{case.line}"
        first = r.failures[0] + (f" (and {len(r.failures) - 1} more)"
                                 if len(r.failures) > 1 else "")
        named = {case.expect.get("rule")} if isinstance(case.expect.get("rule"), str) \
            else set(case.expect.get("rule") or [])
        named |= set(case.expect.get("rules_fired") or [])
        rule = ruleset.by_id.get(r.winner or "")
        about_step = any(f.split(":", 1)[0] in STEP_KEYS for f in r.failures)
        if rule is not None and about_step and rule.id not in named:
            findings.append(Finding(
                "warning", "scenario-outcome",
                f"rule '{rule.id}' (priority {rule.spec.priority}) now decides scenario "
                f"'{case.name}' ({where}), which does not name it: {r.step}; {first}",
                rule.file, rule.line, None, (rule.id,)))
        else:
            findings.append(Finding(
                "warning", "scenario-outcome",
                f"scenario '{case.name}' fails"
                + (f" (step {r.step} from {r.winner})" if r.winner else "") + f": {first}",
                case.file, case.line))
    summary = (f"scenarios: {len(outcomes)} in {folder}, {failing} failing "
               f"({ran} run, {len(outcomes) - ran} unchanged by the edit since the last "
               "check)")
    return findings, summary
