"""Rule-set analysis for reviewers, in the spirit of the Drools verifier and the DMN
analysers: conditions that can never be true (static), and conflicts, masked rules,
redundant rules and gaps (found by running the real engine over a searched patient
space: boundary values of every threshold plus seeded random records)."""
from __future__ import annotations

import re

import datetime as dt
import itertools
import random
from dataclasses import dataclass
from typing import Any, Iterable

from ..engine import conditions as C
from ..engine.compile import compile_rules
from ..engine.evaluate import Evaluation, evaluate
from ..engine.errors import EvaluationError
from ..engine.facts import UNKNOWN
from ..engine.models import Patient
from ..engine.ruleset import Finding, Rule, RuleSet
from .space import random_patient

MAX_CONJUNCTS = 512
MIN_HITS_FOR_MASKED = 5  # fewer sightings say more about the search than the rule


# ------------------------------------------------------------------ static

def dnf(node: C.Node) -> list[list[C.Leaf]]:
    """Every way a normal-form condition can be true, as lists of leaves."""
    if isinstance(node, C.Leaf):
        return [[node]]
    if isinstance(node, C.Any_):
        out: list[list[C.Leaf]] = []
        for item in node.items:
            out.extend(dnf(item))
        return out[:MAX_CONJUNCTS]
    if isinstance(node, C.All):
        acc: list[list[C.Leaf]] = [[]]
        for item in node.items:
            acc = [a + b for a in acc for b in dnf(item)][:MAX_CONJUNCTS]
        return acc
    raise TypeError(node)


def _satisfiable(leaves: list[C.Leaf], ruleset: RuleSet) -> bool:
    by_fact: dict[str, list[C.Leaf]] = {}
    for leaf in leaves:
        if leaf.op != "derived":
            by_fact.setdefault(leaf.fact, []).append(leaf)
    for fact, tests in by_fact.items():
        spec = ruleset.facts[fact]
        if spec.kind == "number":
            lo, lo_open, hi, hi_open = float("-inf"), False, float("inf"), False
            known = unknown = False
            for leaf in tests:
                if leaf.op == "unknown":
                    unknown = True
                    continue
                known = True
                if leaf.op in ("ge", "gt") and (leaf.value > lo or
                                                (leaf.value == lo and leaf.op == "gt")):
                    lo, lo_open = leaf.value, leaf.op == "gt"
                if leaf.op in ("le", "lt") and (leaf.value < hi or
                                                (leaf.value == hi and leaf.op == "lt")):
                    hi, hi_open = leaf.value, leaf.op == "lt"
            if (known and unknown) or lo > hi or (lo == hi and (lo_open or hi_open)):
                return False
        else:
            allowed = set(spec.domain) | {UNKNOWN}
            for leaf in tests:
                if leaf.op == "eq":
                    allowed &= {leaf.value}
                elif leaf.op == "in":
                    allowed &= set(leaf.value)
                elif leaf.op == "known":
                    allowed -= {UNKNOWN}
                elif leaf.op == "unknown":
                    allowed &= {UNKNOWN}
            if not allowed:
                return False
    return True


def never_true(rule: Rule, ruleset: RuleSet) -> bool:
    """The rule's own conditions contradict each other: it can never fire."""
    return not any(_satisfiable(c, ruleset) for c in dnf(rule.normal))


# ------------------------------------------------------------------ search

@dataclass(frozen=True)
class Sample:
    record: dict[str, Any]
    evaluation: Evaluation

    def recommenders(self) -> list[Rule]:
        return [f.rule for f in self.evaluation.fired if f.rule.spec.then.recommend]


@dataclass
class Failure:
    """A searched patient the engine could not evaluate (e.g. durable_rules error 303)."""

    record: dict[str, Any]
    message: str


def search(ruleset: RuleSet, samples: int = 1500, seed: int = 20261125,
           failures: list[Failure] | None = None) -> list[Sample]:
    """Run the real engine over a searched patient space (deterministic for a seed)."""
    compiled = compile_rules(ruleset)
    rng = random.Random(seed)
    out = []
    for i in range(samples):
        record = random_patient(rng, ruleset.thresholds, i, drugs=tuple(ruleset.drugs))
        try:
            out.append(Sample(record, evaluate(Patient.model_validate(record), compiled)))
        except EvaluationError as exc:
            if failures is not None:
                failures.append(Failure(record, exc.message))
    return out


def _step(rule: Rule) -> tuple[str, str | None]:
    rec = rule.spec.then.recommend
    assert rec is not None
    return rec.action, rec.drug


def _example(sample: Sample, rules: Iterable[Rule], extra: Iterable[str] = ()) -> str:
    names: list[str] = list(extra)
    for rule in rules:
        names.extend(n for n in rule.condition.facts() if n not in names)
    facts = sample.evaluation.facts
    shown = [f"{n}={facts[n]}" for n in names if n in facts and facts[n] != UNKNOWN][:10]
    derived = sorted(d for d in sample.evaluation.derived if d in names)
    return "example patient: " + ", ".join(shown + derived)


def _finding(code: str, message: str, rules: list[Rule], sample: Sample | None,
             extra: Iterable[str] = ()) -> Finding:
    first = rules[0]
    text = message + (f" ({_example(sample, rules, extra)})" if sample else "")
    return Finding("warning", code, text, first.file, first.line, None,
                   tuple(r.id for r in rules))


def _is_catch_all(rule: Rule) -> bool:
    return rule.condition == C.TRUE


def _refute(ruleset: RuleSet, predicate, budget: int) -> Sample | None:
    """Ask hypothesis for a patient that satisfies `predicate` (a Sample -> bool);
    None when it finds none within the budget. Deterministic (derandomized)."""
    if budget <= 0:
        return None
    _hypothesis_home()
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis import strategies as st
    from hypothesis.errors import NoSuchExample

    from .strategies import patients, refractory_patients
    compiled = compile_rules(ruleset)

    def sample(record: dict[str, Any]) -> Sample:
        return Sample(record, evaluate(Patient.model_validate(record), compiled))

    def holds(record: dict[str, Any]) -> bool:
        try:
            return predicate(sample(record))
        except EvaluationError:
            return False

    try:
        record = find(st.one_of(patients(), refractory_patients()), holds,
                      settings=settings(max_examples=budget, database=None, derandomize=True,
                                        phases=[Phase.generate],  # an example, not a minimal one
                                        suppress_health_check=list(HealthCheck)))
    except NoSuchExample:
        return None
    return sample(record)


def search_findings(ruleset: RuleSet, found: list[Sample],
                    hypothesis_budget: int = 300, deep: bool = True) -> list[Finding]:
    """Conflicts and gaps, each with an example patient; deep: also the rules never
    reached, masked or redundant (claims about every patient, which hypothesis tries
    to refute before they are made)."""
    out = _conflicts(ruleset, found)
    if deep:
        fired_in = _fired_in(found)  # the searched patients (hypothesis's are added)
        out += _unreached_and_masked(ruleset, found, fired_in, hypothesis_budget)
        out += _redundant(ruleset, found, fired_in)
    return out + _gaps(ruleset, found)


def _fired_in(found: list[Sample]) -> dict[str, list[int]]:
    """Rule id -> the searched patients it fired for."""
    fired_in: dict[str, list[int]] = {}
    for i, s in enumerate(found):
        for f in s.evaluation.fired:
            fired_in.setdefault(f.rule.id, []).append(i)
    return fired_in


def _conflicts(ruleset: RuleSet, found: list[Sample]) -> list[Finding]:
    out: list[Finding] = []
    conflicts: dict[tuple[str, str], int] = {}
    for i, s in enumerate(found):
        recs = s.recommenders()
        for a, b in itertools.combinations(sorted(recs, key=lambda r: r.id), 2):
            if a.spec.priority == b.spec.priority and _step(a) != _step(b):
                conflicts.setdefault((a.id, b.id), i)
    for (a, b), i in sorted(conflicts.items()):
        rules = [ruleset.by_id[a], ruleset.by_id[b]]
        out.append(_finding("conflict", f"'{a}' and '{b}' have the same priority "
                            f"({rules[0].spec.priority}) and recommend different steps for "
                            f"a patient both match", rules, found[i]))
    return out


def _unreached_and_masked(ruleset: RuleSet, found: list[Sample],
                          fired_in: dict[str, list[int]],
                          hypothesis_budget: int) -> list[Finding]:
    out: list[Finding] = []
    for rule in ruleset.rules:
        if not rule.spec.then.recommend or _is_catch_all(rule) or \
                rule.id in ruleset.provenance.gap_fallbacks:
            continue
        hits = fired_in.get(rule.id, [])
        if not hits:
            extra = _refute(ruleset, lambda s, r=rule: r.id in s.evaluation.fired_ids(),
                            hypothesis_budget)
            if extra is None:
                out.append(_finding("unreached", f"'{rule.id}' fired for none of "
                                    f"{len(found)} searched patients nor {hypothesis_budget} "
                                    f"hypothesis examples", [rule], None))
                continue
            found.append(extra)
            hits = [len(found) - 1]
        masks = None
        for i in hits:
            higher = {r.id for r in found[i].recommenders()
                      if r.spec.priority > rule.spec.priority}
            masks = higher if masks is None else masks & higher
            if not masks:
                break
        if masks:
            # Try to refute: a patient for whom the rule fires and nothing ranked higher.
            def wins(s: Sample, r: Rule = rule) -> bool:
                recs = s.recommenders()
                return any(o.id == r.id for o in recs) and \
                    not any(o.spec.priority > r.spec.priority for o in recs)
            if _refute(ruleset, wins, hypothesis_budget) is not None:
                masks = None
        if masks and len(hits) >= MIN_HITS_FOR_MASKED:
            by = ruleset.by_id[sorted(masks)[0]]
            out.append(_finding("masked", f"'{rule.id}' can never win: '{by.id}' (priority "
                                f"{by.spec.priority}) matched every time it did "
                                f"({len(hits)} patients)", [rule, by], found[hits[0]]))
    return out


def _redundant(ruleset: RuleSet, found: list[Sample],
                fired_in: dict[str, list[int]]) -> list[Finding]:
    out: list[Finding] = []
    effects: dict[str, list[Rule]] = {}
    for rule in ruleset.rules:
        key = rule.spec.then.model_dump_json(exclude_none=True)
        effects.setdefault(key, []).append(rule)
    for group in effects.values():
        for a, b in itertools.permutations(group, 2):
            ha, hb = set(fired_in.get(a.id, [])), set(fired_in.get(b.id, []))
            if ha and ha <= hb and (ha != hb or a.id > b.id) and \
                    a.spec.priority <= b.spec.priority:
                out.append(_finding("redundant", f"'{a.id}' does what '{b.id}' does, and "
                                    f"only for patients '{b.id}' also matches",
                                    [a, b], found[min(ha)]))
    return out


def _gaps(ruleset: RuleSet, found: list[Sample]) -> list[Finding]:
    out: list[Finding] = []
    gap_rule = ruleset.provenance.gap_check
    vocab = C.Vocabulary(ruleset.facts, ruleset.derived, ruleset.thresholds)
    must = C.parse(gap_rule, vocab) if gap_rule else C.TRUE
    fallbacks = set(ruleset.provenance.gap_fallbacks)
    for s in found:
        if C.truth(must, s.evaluation.facts, s.evaluation.derived) is not True:
            continue
        real = [r for r in s.recommenders()
                if not _is_catch_all(r) and r.id not in fallbacks]
        if not real:
            catch = [r for r in s.recommenders()] or list(ruleset.rules[:1])
            facts = s.evaluation.facts
            shown = list(must.facts()) + [k for k, v in sorted(facts.items())
                                          if k.endswith("_status") and v != "never"]
            out.append(_finding("gap", f"no rule suggests a step (beyond the catch-all) "
                                f"for a patient with {gap_rule or 'any record'}", catch, s,
                                shown))
            break
    return out


def review_due(ruleset: RuleSet, today: dt.date) -> list[Finding]:
    """The rule set, or a rule, past its review interval."""
    months = ruleset.provenance.review_interval_months
    limit = dt.timedelta(days=int(months * 30.44))
    out = []
    if today - ruleset.provenance.last_reviewed > limit:
        out.append(Finding("warning", "review-due", f"rule set last reviewed "
                           f"{ruleset.provenance.last_reviewed}, more than {months} months "
                           f"ago", f"{ruleset.folder}/ruleset.yaml"))
    for rule in ruleset.rules:
        if rule.spec.last_reviewed and today - rule.spec.last_reviewed > limit:
            out.append(Finding("warning", "review-due", f"rule '{rule.id}' last reviewed "
                               f"{rule.spec.last_reviewed}, more than {months} months ago",
                               rule.file, rule.line, None, (rule.id,)))
    return out


def static_findings(ruleset: RuleSet) -> list[Finding]:
    """Contradictory conditions (errors) and evidence nobody cites (warnings)."""
    out = [Finding("error", "never-fires", f"rule '{r.id}': its conditions contradict each "
                   f"other, so it can never fire", r.file, r.line, "when", (r.id,))
           for r in ruleset.rules if never_true(r, ruleset)]
    cited = {k for r in ruleset.rules for k in r.spec.evidence}
    cited |= {k for d in ruleset.drugs.values() for k in d.evidence}
    cited |= {k for d in ruleset.drugs.values() if d.dose_limit for k in d.dose_limit.evidence}
    cited |= {k for d in ruleset.drugs.values() if d.dosing for k in d.dosing.evidence}
    cited |= {k for d in ruleset.drugs.values() for k in d.course.evidence}
    cited |= {k for t in ruleset.provenance.thresholds.values() for k in t.evidence}
    for key in sorted(set(ruleset.evidence) - cited):
        out.append(Finding("warning", "uncited-evidence", f"evidence '{key}' is cited by no "
                           f"rule", f"{ruleset.folder}/evidence.yaml"))
    return out + threshold_source_findings(ruleset)


# A note that says its number is not from the cited source.
_NOT_IN_SOURCE = re.compile(r"conservative choice|not in the brief|not in (its|the) "
                            r"(cited )?source|no source (here )?(says|gives)", re.I)


def threshold_source_findings(ruleset: RuleSet) -> list[Finding]:
    """Never cite a source for a number it does not contain: a threshold marked
    `number_in_source: false` cites nothing, and a note that says the number is a
    conservative choice must carry that mark."""
    out = []
    where = f"{ruleset.folder}/ruleset.yaml"
    for name, t in sorted(ruleset.provenance.thresholds.items()):
        if not t.number_in_source and t.evidence:
            out.append(Finding("warning", "threshold-source", f"threshold '{name}' cites "
                               f"{', '.join(t.evidence)} for a number none of them contains "
                               "(number_in_source: false); name them in the note instead",
                               where, None, f"thresholds.{name}"))
        elif t.number_in_source and _NOT_IN_SOURCE.search(t.note or ""):
            out.append(Finding("warning", "threshold-source", f"threshold '{name}': its note "
                               "says the number is not in its cited source; mark it "
                               "number_in_source: false and cite nothing for it",
                               where, None, f"thresholds.{name}"))
    return out


def _hypothesis_home() -> None:
    """Hypothesis keeps its files in the user's cache folder, never in the current
    directory (`rules check` leaves nothing behind where it runs)."""
    import os
    from pathlib import Path
    from hypothesis.configuration import set_hypothesis_home_dir
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        set_hypothesis_home_dir(Path(base) / "cledecide" / "hypothesis")


DURABLE_MATCH_LIMIT = 64  # durable_rules fails (error 303) past this many at once


def patient_matches(ruleset: RuleSet, found: list[Sample],
                    limit: int = 400) -> tuple[int, Sample | None]:
    """The most durable_rules rules whose tests on the patient fact were all true at once
    for one searched patient (durable_rules stops with error 303 past 64)."""
    compiled = compile_rules(ruleset)
    best, example = 0, None
    for s in found[:limit]:
        count = 0
        for rule in ruleset.rules:
            for branch in compiled.branches[rule.id]:
                if (branch.patient or not branch.derived) and all(
                        C.truth(node, s.evaluation.facts, s.evaluation.derived) is True
                        for node in branch.patient):
                    count += 1
        if count > best:
            best, example = count, s
    return best, example


def match_limit_findings(ruleset: RuleSet, found: list[Sample]) -> tuple[int, list[Finding]]:
    most, example = patient_matches(ruleset, found)
    out = []
    if most >= DURABLE_MATCH_LIMIT * 3 // 4:
        out.append(Finding("warning", "match-limit", f"up to {most} rules match one patient "
                           f"fact at once; durable_rules fails above {DURABLE_MATCH_LIMIT} "
                           f"(error 303)", f"{ruleset.folder}"))
    return most, out
