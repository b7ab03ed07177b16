"""Conditions in plain words, for readers who do not read the rule language: each test
with the fact's meaning, each named threshold with its value and unit. The rulebook
shows rules with it; "why not" shows a silent rule's unmet conditions with it."""
from __future__ import annotations

import re
from typing import Any

from ..engine import conditions as C
from ..engine.ruleset import RuleSet

SYMBOL = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
_WORD = re.compile(r"[a-z][a-z0-9_]*")


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def human(name: str) -> str:
    return name.replace("_", " ")


# A fact's value as a prescriber says it (the raw words stay in the JSON trace).
STATUS_WORDS = {"never": "never taken", "current": "taken now", "stopped": "stopped"}
PHASE_WORDS = {"not_taken": "not taken", "in_trial": "in its trial period",
               "responding": "responding", "partial": "partial response",
               "failed": "no response", "stopped_early": "stopped before it could be judged",
               "unjudged": "response not judged"}


def value_words(fact: str, value: Any) -> str:
    """One fact's value in words: 'taken now', not 'current'; 'partial response', not
    'partial'; yes/no facts as yes/no."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    text = str(value)
    if fact.endswith("_status") and text in STATUS_WORDS:
        return STATUS_WORDS[text]
    if fact.endswith("_phase") and text in PHASE_WORDS:
        return PHASE_WORDS[text]
    return human(text)


def derived_words(fact: str) -> str:
    """A derived fact as words: 'X_failed' covers a partial response too, so it reads
    'X insufficient', never 'X failed' for a partial responder."""
    if fact.endswith("_failed"):
        return f"{human(fact[:-len('_failed')])} insufficient or not tolerated"
    return human(fact)


def fact_words(fact: str, value: Any) -> str:
    """'hydroxychloroquine: partial response', 'egfr 26', 'alcohol misuse'."""
    for suffix in ("_status", "_phase"):
        if fact.endswith(suffix) and not isinstance(value, bool):
            return f"{human(fact[:-len(suffix)])}: {value_words(fact, value)}"
    if value is True:
        return derived_words(fact)
    return f"{human(fact)} {value_words(fact, value)}"


def thresholds_in(leaf: C.Leaf, ruleset: RuleSet) -> list[str]:
    """The named thresholds a test reads (from the condition as written)."""
    _, _, rest = leaf.text.partition(leaf.fact)
    return [w for w in dict.fromkeys(_WORD.findall(rest)) if w in ruleset.thresholds]


def threshold_text(name: str, ruleset: RuleSet) -> str:
    t = ruleset.provenance.thresholds.get(name)
    if t is not None:
        return f"{number(t.value)} {t.unit}".strip()
    return f"{number(ruleset.thresholds[name])} mg/kg/day (the drug catalogue's dose limit)"


def _as_leaf(node: C.Node) -> C.Leaf | None:
    """`x == 5` is parsed into two tests (>= and <=) with one text: one leaf to a reader."""
    if isinstance(node, C.All) and len(node.items) == 2 and all(
            isinstance(i, C.Leaf) and i.op in ("ge", "le") for i in node.items):
        texts = {i.text for i in node.items if isinstance(i, C.Leaf)}
        if len(texts) == 1 and next(iter(texts)):
            first = node.items[0]
            assert isinstance(first, C.Leaf)
            return C.Leaf(first.fact, "eq_number", first.value, first.text)
    return node if isinstance(node, C.Leaf) else None


def leaf_words(leaf: C.Leaf, ruleset: RuleSet) -> str:
    """One test in words."""
    if leaf.op == "derived":
        return derived_words(leaf.fact)
    spec = ruleset.facts.get(leaf.fact)
    what = spec.description if spec is not None else human(leaf.fact)
    unit = spec.unit if spec is not None else ""
    if leaf.op in ("unknown", "known"):
        return f"{what}: {'not recorded (unknown)' if leaf.op == 'unknown' else 'recorded'}"
    if leaf.op == "in" and leaf.fact.endswith(("_status", "_phase")):
        return " or ".join(fact_words(leaf.fact, v) for v in leaf.value)
    if leaf.op == "in":
        return f"{human(leaf.fact)} is one of {', '.join(map(str, leaf.value))}"
    if leaf.op == "eq" and spec is not None and spec.kind == "bool":
        return what if leaf.value == "yes" else f"{what}: {leaf.value}"
    if leaf.op == "eq" and leaf.fact.endswith(("_status", "_phase")):
        return fact_words(leaf.fact, leaf.value)
    if leaf.op == "eq":
        return f"{human(leaf.fact)} is {leaf.value}"
    names = thresholds_in(leaf, ruleset)
    value = (f"{threshold_text(names[0], ruleset)} ({names[0]})" if names
             else f"{number(leaf.value)} {unit}".strip())
    symbol = "=" if leaf.op == "eq_number" else SYMBOL.get(leaf.op, leaf.op)
    return f"{what} {symbol} {value}"


def condition_words(node: C.Node, ruleset: RuleSet) -> str:
    """A whole condition on one line."""
    if node == C.TRUE:
        return "always"
    leaf = _as_leaf(node)
    if leaf is not None:
        return leaf_words(leaf, ruleset)
    if isinstance(node, C.Not):
        return f"not ({condition_words(node.item, ruleset)})"
    assert isinstance(node, (C.All, C.Any_))
    joiner = " and " if isinstance(node, C.All) else " or "
    parts = [condition_words(i, ruleset) for i in node.items]
    return joiner.join(p if _as_leaf(i) is not None else f"({p})"
                       for p, i in zip(parts, node.items))


def condition_tree(node: C.Node, ruleset: RuleSet,
                   derivers: dict[str, list[str]]) -> dict[str, Any]:
    """A condition for a template: groups with items, and leaves with their words, the
    text as written, the thresholds they read and the rules deriving a derived fact."""
    if node == C.TRUE:
        return {"kind": "always"}
    leaf = _as_leaf(node)
    if leaf is not None:
        return {"kind": "leaf", "words": leaf_words(leaf, ruleset), "text": leaf.text,
                "fact": leaf.fact, "derived": leaf.op == "derived",
                "derived_by": derivers.get(leaf.fact, []) if leaf.op == "derived" else [],
                "thresholds": thresholds_in(leaf, ruleset)}
    if isinstance(node, C.Not):
        return {"kind": "not", "items": [condition_tree(node.item, ruleset, derivers)]}
    assert isinstance(node, (C.All, C.Any_))
    return {"kind": "all" if isinstance(node, C.All) else "any",
            "items": [condition_tree(i, ruleset, derivers) for i in node.items]}


def top_parts(node: C.Node) -> tuple[C.Node, ...]:
    """The parts a worked example checks one by one."""
    if isinstance(node, C.All) and _as_leaf(node) is None:
        return node.items
    return (node,) if node != C.TRUE else ()


def unmet_words(node: C.Node, facts: dict[str, Any], derived: Any,
                ruleset: RuleSet) -> list[str]:
    """The parts of a silent rule's condition that are not true, in words, each with
    this patient's value: "severe disease (not the case)", "hydroxychloroquine: phase
    of the latest course is in_trial (this patient: responding)"."""
    parts = node.items if isinstance(node, C.All) and _as_leaf(node) is None else (node,)
    out = []
    for part in parts:
        v = C.truth(part, facts, derived)
        if v is True:
            continue
        words = condition_words(part, ruleset)
        leaf = _as_leaf(part)
        if v is None:
            out.append(f"{words} (not recorded)")
        elif leaf is not None and leaf.op != "derived" and leaf.fact in facts and \
                not (leaf.op == "eq" and facts[leaf.fact] in ("yes", "no")):
            out.append(f"{words} (this patient: {value_words(leaf.fact, facts[leaf.fact])})")
        else:
            out.append(f"{words} (not the case)")
    return out
