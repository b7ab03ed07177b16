"""The condition language of rule files: parsing, three-valued meaning, and the
normal form the compiler hands to durable_rules.

A leaf reads like the clinic: ``clasi_activity >= severe_clasi_activity``,
``subtype in [DLE, SCLE]``, ``pregnant``, ``pregnant is unknown``, or a derived fact
such as ``antimalarial_refractory``. Groups are ``all``, ``any`` and ``not``.

Logic is Kleene's: an unknown fact makes a leaf unknown, ``not unknown`` is unknown, and
only a true condition lets a rule fire. So "pregnancy unknown" never satisfies
``not pregnant``. The compiler pushes ``not`` down to the leaves (negation normal form),
where a negated leaf again requires a known value; that keeps the same meaning in
durable_rules, which only sees positive tests.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterator, Union

from .facts import NO, UNKNOWN, YES, FactSpec

NUMERIC_OPS = (">=", "<=", ">", "<")
_LEAF = re.compile(
    r"^\s*(?P<name>[a-z][a-z0-9_]*)\s*"
    r"(?:(?P<is>is\s+(?:not\s+)?(?:unknown|known))"
    r"|(?P<op>==|!=|>=|<=|>|<|not\s+in|in)\s*(?P<value>.+?))?\s*$")


class ConditionError(ValueError):
    """A condition that cannot be read; the message says what is wrong."""


@dataclass(frozen=True)
class Leaf:
    """One test on one fact. op: eq, in, ge, gt, le, lt, known, unknown, derived."""

    fact: str
    op: str
    value: Any = None
    text: str = ""

    def facts(self) -> Iterator[str]:
        yield self.fact


@dataclass(frozen=True)
class All:
    items: tuple["Node", ...]

    def facts(self) -> Iterator[str]:
        for item in self.items:
            yield from item.facts()


@dataclass(frozen=True)
class Any_:
    items: tuple["Node", ...]

    def facts(self) -> Iterator[str]:
        for item in self.items:
            yield from item.facts()


@dataclass(frozen=True)
class Not:
    item: "Node"

    def facts(self) -> Iterator[str]:
        yield from self.item.facts()


Node = Union[Leaf, All, Any_, Not]
TRUE = All(())


@dataclass(frozen=True)
class Vocabulary:
    """What a condition may name: patient facts, derived facts, named thresholds."""

    facts: dict[str, FactSpec]
    derived: frozenset[str]
    thresholds: dict[str, float]


def _words(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    return [w.strip() for w in value.split(",") if w.strip()]


def _number(word: str, vocab: Vocabulary, text: str) -> float:
    if word in vocab.thresholds:
        value = vocab.thresholds[word]
    else:
        try:
            value = float(word)
        except ValueError:
            raise ConditionError(f"'{word}' is neither a number nor a named threshold "
                                 f"(in '{text}')") from None
    if not math.isfinite(value):
        raise ConditionError(f"'{word}' is not a finite number (in '{text}')")
    return value


def _bool_word(word: str, text: str) -> str:
    if word in ("true", "yes"):
        return YES
    if word in ("false", "no"):
        return NO
    raise ConditionError(f"a yes/no fact compares with true or false, not '{word}' "
                         f"(in '{text}')")


MAX_DEPTH = 12  # nested groups in one condition (durable_rules and readers both suffer)


def parse_leaf(text: str, vocab: Vocabulary, depth: int = 0) -> Node:
    """Read one condition string into a leaf (or its negation)."""
    if not isinstance(text, str):
        raise ConditionError(f"a condition must be text, got {text!r}")
    if depth > MAX_DEPTH:
        raise ConditionError(f"condition nested more than {MAX_DEPTH} levels deep")
    stripped = text.strip()
    if stripped.startswith("not ") and " in " not in stripped:
        return Not(parse_leaf(stripped[4:], vocab, depth + 1))
    m = _LEAF.match(text)
    if not m:
        raise ConditionError(f"cannot read condition '{text}': expected "
                             f"'fact', 'fact OP value', 'fact in [..]' or 'fact is unknown'")
    name = m["name"]
    if name in vocab.derived:
        if m["is"] or m["op"]:
            raise ConditionError(f"derived fact '{name}' is tested by its name alone "
                                 f"(in '{text}')")
        return Leaf(name, "derived", True, text)
    spec = vocab.facts.get(name)
    if spec is None:
        raise ConditionError(f"unknown fact '{name}' (in '{text}')")
    if m["is"]:
        negated = "not" in m["is"]
        wants_unknown = m["is"].endswith("unknown") != negated
        return Leaf(name, "unknown" if wants_unknown else "known", None, text)
    op = m["op"]
    if op is None:
        if spec.kind != "bool":
            raise ConditionError(f"'{name}' is not a yes/no fact; compare it "
                                 f"(in '{text}')")
        return Leaf(name, "eq", YES, text)
    op = re.sub(r"\s+", " ", op)
    raw = m["value"].strip()
    if spec.kind == "number":
        if op in ("in", "not in"):
            raise ConditionError(f"use <, <=, >, >= or == with number '{name}' (in '{text}')")
        value = _number(raw, vocab, text)
        if op in ("==", "!="):
            leaf = All((Leaf(name, "ge", value, text), Leaf(name, "le", value, text)))
            return Not(leaf) if op == "!=" else leaf
        return Leaf(name, {">=": "ge", "<=": "le", ">": "gt", "<": "lt"}[op], value, text)
    if op in NUMERIC_OPS:
        raise ConditionError(f"'{name}' is not a number; use == or in (in '{text}')")
    if spec.kind == "bool":
        words = [_bool_word(w, text) for w in _words(raw)]
    else:
        words = _words(raw)
        for w in words:
            if w not in spec.values:
                raise ConditionError(f"'{w}' is not a value of '{name}' (one of "
                                     f"{', '.join(spec.values)}) (in '{text}')")
    if not words:
        raise ConditionError(f"no value given (in '{text}')")
    if op in ("==", "!=") and len(words) != 1:
        raise ConditionError(f"use 'in [..]' for several values (in '{text}')")
    test = Leaf(name, "eq", words[0], text) if len(words) == 1 else \
        Leaf(name, "in", tuple(sorted(words)), text)
    return Not(test) if op in ("!=", "not in") else test


def parse(spec: Any, vocab: Vocabulary, path: str = "when", depth: int = 0) -> Node:
    """Read a `when` block: text, or a mapping with one of all / any / not."""
    if depth > MAX_DEPTH:
        raise ConditionError(f"{path}: condition nested more than {MAX_DEPTH} levels deep "
                             "(the limit)")
    if spec is None or spec == "always":
        return TRUE
    if isinstance(spec, str):
        return parse_leaf(spec, vocab, depth)
    if isinstance(spec, dict):
        if len(spec) != 1:
            raise ConditionError(f"{path}: a group has exactly one of all, any, not; "
                                 f"got {', '.join(map(str, spec)) or 'nothing'}")
        (key, value), = spec.items()
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise ConditionError(f"{path}.{key}: must be a non-empty list")
            items = tuple(parse(v, vocab, f"{path}.{key}[{i}]", depth + 1)
                          for i, v in enumerate(value))
            return All(items) if key == "all" else Any_(items)
        if key == "not":
            return Not(parse(value, vocab, f"{path}.not", depth + 1))
        raise ConditionError(f"{path}: unknown group '{key}' (use all, any or not)")
    if isinstance(spec, list):
        return All(tuple(parse(v, vocab, f"{path}[{i}]", depth + 1)
                         for i, v in enumerate(spec)))
    raise ConditionError(f"{path}: a condition must be text or a group, got {spec!r}")


# ------------------------------------------------------------------ normal form

def _negate_leaf(leaf: Leaf, vocab: Vocabulary) -> Node:
    if leaf.op == "derived":
        raise ConditionError(f"'not {leaf.fact}': a derived fact cannot be negated "
                             f"(durable_rules negation is not retroactive); derive the "
                             f"positive fact you mean instead")
    if leaf.op == "unknown":
        return Leaf(leaf.fact, "known", None, f"{leaf.fact} is known")
    if leaf.op == "known":
        return Leaf(leaf.fact, "unknown", None, f"{leaf.fact} is unknown")
    flipped = {"ge": "lt", "gt": "le", "le": "gt", "lt": "ge"}
    if leaf.op in flipped:
        return Leaf(leaf.fact, flipped[leaf.op], leaf.value, f"not ({leaf.text})")
    spec = vocab.facts[leaf.fact]
    chosen = {leaf.value} if leaf.op == "eq" else set(leaf.value)
    rest = tuple(v for v in spec.domain if v not in chosen)
    text = f"not ({leaf.text})"
    if not rest:
        return Any_(())  # can never be true
    return Leaf(leaf.fact, "eq", rest[0], text) if len(rest) == 1 else \
        Leaf(leaf.fact, "in", rest, text)


def nnf(node: Node, vocab: Vocabulary, negate: bool = False) -> Node:
    """Push every `not` down to the leaves, keeping Kleene meaning."""
    if isinstance(node, Not):
        return nnf(node.item, vocab, not negate)
    if isinstance(node, Leaf):
        return _negate_leaf(node, vocab) if negate else node
    items = tuple(nnf(i, vocab, negate) for i in node.items)
    if isinstance(node, All):
        return Any_(items) if negate else All(items)
    return All(items) if negate else Any_(items)


def has_derived(node: Node) -> bool:
    if isinstance(node, Leaf):
        return node.op == "derived"
    if isinstance(node, Not):
        return has_derived(node.item)
    return any(has_derived(i) for i in node.items)


@dataclass(frozen=True)
class Branch:
    """One conjunction the compiler can give durable_rules: tests on the patient fact
    (possibly with inner any-groups) and the derived facts that must exist."""

    patient: tuple[Node, ...]
    derived: tuple[str, ...]


def count_branches(node: Node) -> int:
    """How many branches `branches` would make, without making them (a product can
    explode: the rule set's limit is checked on this count first)."""
    if isinstance(node, Leaf):
        return 1
    if isinstance(node, Any_):
        return (1 if node.items else 0) if not has_derived(node) else \
            sum(count_branches(i) for i in node.items)
    if isinstance(node, All):
        n = 1
        for item in node.items:
            n *= count_branches(item)
        return n
    return 1


def branches(node: Node) -> list[Branch]:
    """Disjunctive form over derived facts only (patient-only `any` stays inside)."""
    if isinstance(node, Leaf):
        if node.op == "derived":
            return [Branch((), (node.fact,))]
        return [Branch((node,), ())]
    if isinstance(node, Any_):
        if not has_derived(node):
            return [Branch((node,), ())] if node.items else []
        out: list[Branch] = []
        for item in node.items:
            out.extend(branches(item))
        return out
    if isinstance(node, All):
        acc = [Branch((), ())]
        for item in node.items:
            acc = [Branch(a.patient + b.patient, tuple(sorted(set(a.derived + b.derived))))
                   for a in acc for b in branches(item)]
        return acc
    raise TypeError(f"not in normal form: {node!r}")


# ------------------------------------------------------------ three-valued meaning

def truth(node: Node, facts: dict[str, Any], derived: set[str] | frozenset[str]) -> bool | None:
    """Kleene value of a condition: True, False, or None for unknown."""
    if isinstance(node, Leaf):
        if node.op == "derived":
            return node.fact in derived
        value = facts.get(node.fact)
        known = value is not None and value != UNKNOWN
        if node.op == "known":
            return known
        if node.op == "unknown":
            return not known
        if value == UNKNOWN and node.op in ("eq", "in"):
            # A rule that names the word `unknown` asks for it explicitly.
            named = node.value == UNKNOWN if node.op == "eq" else UNKNOWN in node.value
            return True if named else None
        if not known:
            return None
        if node.op == "eq":
            return value == node.value
        if node.op == "in":
            return value in node.value
        return {"ge": value >= node.value, "gt": value > node.value,
                "le": value <= node.value, "lt": value < node.value}[node.op]
    if isinstance(node, Not):
        v = truth(node.item, facts, derived)
        return None if v is None else not v
    values = [truth(i, facts, derived) for i in node.items]
    if isinstance(node, All):
        if any(v is False for v in values):
            return False
        return None if any(v is None for v in values) else True
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


def describe(node: Node) -> str:
    """The condition as a reviewer wrote it."""
    if isinstance(node, Leaf):
        return node.text or f"{node.fact} {node.op} {node.value}"
    if isinstance(node, Not):
        return f"not ({describe(node.item)})"
    word = "all of" if isinstance(node, All) else "any of"
    return f"{word} [{'; '.join(describe(i) for i in node.items)}]"


def unmet(node: Node, facts: dict[str, Any], derived: set[str] | frozenset[str]) -> list[str]:
    """The top-level parts of a condition that are not true, each marked false or
    unknown: the raw 'why not' of a rule that did not fire."""
    parts = node.items if isinstance(node, All) else (node,)
    out = []
    for part in parts:
        v = truth(part, facts, derived)
        if v is not True:
            out.append(f"{describe(part)} ({'unknown' if v is None else 'false'})")
    return out
