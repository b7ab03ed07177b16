"""The matching limit, for the benchmark's reference row: the same rule conditions
compiled to Python closures, evaluated with forward chaining (derived facts re-run the
rules until nothing new fires). Not used by cledecide itself: durable_rules is the
engine; this says how far it is from the cost of matching alone."""
from __future__ import annotations

from typing import Any, Callable

from ..engine import conditions as C
from ..engine.facts import UNKNOWN
from ..engine.ruleset import STARTING_ACTIONS, RuleSet, considered_fact, \
    start_considered_fact

# A compiled condition gives True, False or None (unknown), like conditions.truth.
Test = Callable[[dict[str, Any], set[str]], Any]


def _leaf(leaf: C.Leaf) -> Test:
    name, op, value = leaf.fact, leaf.op, leaf.value
    if op == "derived":
        return lambda f, d: name in d
    if op == "known":
        return lambda f, d: f.get(name) not in (None, UNKNOWN)
    if op == "unknown":
        return lambda f, d: f.get(name) in (None, UNKNOWN)
    if op in ("eq", "in"):
        named = (value == UNKNOWN) if op == "eq" else (UNKNOWN in value)
        values = frozenset([value] if op == "eq" else value)

        def test(f: dict[str, Any], d: set[str]) -> Any:
            v = f.get(name)
            if v is None:
                return None
            if v == UNKNOWN:
                return True if named else None
            return v in values
        return test
    compare = {"ge": lambda v: v >= value, "gt": lambda v: v > value,
               "le": lambda v: v <= value, "lt": lambda v: v < value}[op]

    def number(f: dict[str, Any], d: set[str]) -> Any:
        v = f.get(name)
        return None if v is None or v == UNKNOWN else compare(v)
    return number


def compile_node(node: C.Node) -> Test:
    if isinstance(node, C.Leaf):
        return _leaf(node)
    if isinstance(node, C.Not):
        inner = compile_node(node.item)
        return lambda f, d: (lambda v: None if v is None else not v)(inner(f, d))
    items = [compile_node(i) for i in node.items]
    # all: the first False decides; any: the first True decides; else unknown wins
    decisive = False if isinstance(node, C.All) else True

    def combine(f: dict[str, Any], d: set[str]) -> Any:
        unknown = False
        for t in items:
            v = t(f, d)
            if v is decisive:
                return decisive
            if v is None:
                unknown = True
        return None if unknown else not decisive
    return combine


class ClosureRules:
    """Every active rule as (id, test, facts it derives), run to a fixed point."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.rules = []
        for rule in ruleset.rules:
            then = rule.spec.then
            emits = [then.derive] if then.derive else []
            if then.recommend and then.recommend.drug:
                emits.append(considered_fact(then.recommend.drug))
                if then.recommend.action in STARTING_ACTIONS:
                    emits.append(start_considered_fact(then.recommend.drug))
            self.rules.append((rule.id, compile_node(rule.normal), tuple(emits)))

    def run(self, facts: dict[str, Any]) -> list[str]:
        derived: set[str] = set()
        fired: list[str] = []
        done: set[str] = set()
        changed = True
        while changed:
            changed = False
            for rule_id, test, emits in self.rules:
                if rule_id in done or test(facts, derived) is not True:
                    continue
                done.add(rule_id)
                fired.append(rule_id)
                for name in emits:
                    if name not in derived:
                        derived.add(name)
                        changed = True
        return fired
