"""What the reviewer commands say about rules beyond the checked rule set: the rules that
are not run (retired, draft) with FILE:LINE, and which rules compete for one decision
(what a rule outranks and what outranks it)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..engine.errors import RuleError
from ..engine.load import load_file
from ..engine.ruleset import RULE_FILE_LIMIT, SPECIAL_FILES, Rule, RuleSet, RuleSpec


@dataclass(frozen=True)
class Inactive:
    """A rule written in a rule file but not run: `status: retired` or `draft`."""

    spec: RuleSpec
    stage: str
    file: str
    line: int | None


def inactive_rules(ruleset: RuleSet) -> list[Inactive]:
    """The rule set's retired and draft rules, each with the file and line it is
    written at (the checked rule set keeps their content, not where they are)."""
    wanted = {s.id for s in ruleset.inactive}
    if not wanted:
        return []
    out: list[Inactive] = []
    for path in sorted(Path(ruleset.folder).glob("*.yaml")):
        if path.name in SPECIAL_FILES:
            continue
        doc = load_file(path, RuleError, RULE_FILE_LIMIT)
        for i, item in enumerate(doc.data.get("rules") or []):
            if isinstance(item, dict) and item.get("id") in wanted:
                spec = next(s for s in ruleset.inactive if s.id == item["id"])
                wanted.discard(spec.id)
                out.append(Inactive(spec, spec.stage or doc.data.get("stage", ""),
                                    doc.file, doc.line_of(("rules", i, "id"))))
    return out


# ------------------------------------------------------------------- priorities

def _decision(rule: Rule, ruleset: RuleSet) -> set[str]:
    """What decision a rule takes part in, as keys two competing rules share: a
    recommending rule competes for the next step of its stage and of its drug; an
    excluding rule for each drug it excludes; a warning, monitoring or dose rule for
    its drug. Derived facts and requests take part in no decision by priority."""
    then = rule.spec.then
    keys: set[str] = set()
    if then.recommend:
        keys.add(f"step of stage {rule.stage}")
        if then.recommend.drug:
            keys.add(f"drug {then.recommend.drug}")
        for drug in then.recommend.among or []:
            keys.add(f"drug {drug}")
    if then.exclude:
        keys.update(f"drug {d}" for d in then.exclude)
    if then.dose:
        keys.add(f"drug {then.dose.drug}")
    return keys


@dataclass(frozen=True)
class Rank:
    """One rule's place among the rules it competes with."""

    outranks: list[tuple[Rule, str]]      # lower priority, and why they compete
    outranked_by: list[tuple[Rule, str]]  # higher priority
    ties: list[tuple[Rule, str]]          # the same priority: the check's conflict search


def rank(rule: Rule, ruleset: RuleSet) -> Rank:
    """The rules that can compete with this one for the same decision (a recommendation
    of the same stage or drug, an exclusion of the same drug), split by priority. The
    engine's priority is one global number; this shows it relative to the rules it
    matters against."""
    mine = _decision(rule, ruleset)
    rank_ = Rank([], [], [])
    if not mine:
        return rank_
    for other in sorted(ruleset.rules, key=lambda r: (-r.spec.priority, r.id)):
        if other.id == rule.id:
            continue
        shared = mine & _decision(other, ruleset)
        # an exclusion and a recommendation of one drug do not compete by priority:
        # a safety exclusion always wins (decide never recommends an excluded drug)
        if rule.kind != other.kind:
            continue
        if not shared:
            continue
        why = ", ".join(sorted(shared))
        p, q = rule.spec.priority, other.spec.priority
        (rank_.outranks if p > q else rank_.outranked_by if q > p else rank_.ties).append(
            (other, why))
    return rank_
