"""Compile stage, and the only module that imports durable_rules.

durable_rules' last release was in 2020; keeping it behind this one module means a swap
to another engine touches one file. Here a checked RuleSet becomes a durable_rules
ruleset (plain JSON definitions generated from the YAML), registered once per process,
and ``CompiledRules.run`` evaluates one patient in its own session.

Traps handled (see durable-rules-notes.md): two conditions on one fact go in one
``$and`` (two entries would be a join); derived facts are asserted once, and only when a
rule consumes them (else MessageNotHandled / MessageObserved); actions are pure, catch
their own exceptions, and never touch the durable state; some rule fires for every
patient (a catch-all is added when no `when: always` rule exists) so that delete_state
never meets an untouched session; the host runs no
timer threads; numbers are cast before asserting; error 303 becomes a clear error.
The actions durable_rules schedules are run by CompiledRules._fire, a short loop over
durable_rules' own C functions (its Python host's per-firing objects and state write-back
were ~70% of the run: 1.13 -> 0.33 ms a patient, outputs byte-identical).
"""
from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Optional

import logging

import durable_rules_engine as _native
from durable import engine as durable_engine

from . import conditions as C
from .errors import EvaluationError, RuleError
from .facts import UNKNOWN
from .ruleset import STARTING_ACTIONS, Rule, RuleSet, considered_fact, start_considered_fact

# durable_rules logs exceptions with the message they were handling: that can be a
# patient fact. Nothing of a patient goes to logs, so its logger stays silent; errors
# still reach the caller as EvaluationError (without the fact).
logging.getLogger("durable").disabled = True

PATIENT, DERIVED = "p", "d"


class _QuietHost(durable_engine.Host):
    """A durable_rules host without its timer threads: actions run on the caller's
    thread only, so a trace is always complete when assert_fact returns."""

    def _run(self) -> None:  # noqa: D401 - overrides the timer loop
        return None


class _OrJson:
    """durable_rules' own JSON round trips (one per firing: the state out, the matched
    facts back) through orjson: the engine stage runs about 1.4x faster, measured on the
    shipped rules (benchmarks/run.py). Our facts are finite numbers, text and small
    integers, where orjson and json agree; durable_rules' engine.py is pinned (2.0.28)."""

    @staticmethod
    def loads(text: str | bytes) -> Any:
        return orjson.loads(text)

    @staticmethod
    def dumps(value: Any, ensure_ascii: bool = False) -> str:
        return orjson.dumps(value).decode()


try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; json still works
    pass
else:
    durable_engine.json = _OrJson

_host = _QuietHost()
_compiled: dict[str, "CompiledRules"] = {}
_lock = threading.Lock()
_sids = itertools.count(1)


class Firing(NamedTuple):
    """One rule that fired, with the branch of its condition that matched (a tuple:
    ~25 are made per patient)."""

    rule: str
    branch: int


@dataclass
class _Session:
    firings: list[Firing] = field(default_factory=list)
    fired: set[str] = field(default_factory=set)
    derived: list[str] = field(default_factory=list)
    asserted: set[str] = field(default_factory=set)
    error: str | None = None


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(float(value), 6)


class _Codec:
    """Short keys and small-integer words for the patient fact sent to durable_rules.

    Most of durable_rules' time goes to JSON between Python and C (every firing sends
    the matched fact back), so the fact is kept small: 'k17' instead of
    'hydroxychloroquine_status', 2 instead of 'current'. Only this module sees codes.
    """

    def __init__(self, names: list[str], specs: dict[str, Any]) -> None:
        self.keys = {name: f"k{i}" for i, name in enumerate(sorted(names))}
        self.words: dict[str, dict[str, int]] = {}
        # Closed-world facts with their usual value are not sent at all: absent means
        # the default (a symptom not listed, a drug never taken).
        self.defaults = {name: specs[name].default for name in names
                         if specs[name].default is not None}
        for name in names:
            spec = specs[name]
            if spec.kind in ("bool", "enum"):
                values = list(spec.domain) + [UNKNOWN]
                self.words[name] = {v: i for i, v in enumerate(values)}

    def value(self, name: str, value: Any) -> Any:
        words = self.words.get(name)
        if words is not None:
            return words[value]
        return _number(value) if isinstance(value, (int, float)) else value


ALWAYS = {"t": PATIENT}
NEVER = {"t": "never"}


def _leaf(leaf: C.Leaf, kind: str, codec: _Codec) -> dict[str, Any]:
    f = codec.keys[leaf.fact]
    default = codec.defaults.get(leaf.fact)
    if default is not None and leaf.op in ("eq", "in", "known", "unknown"):
        words = {leaf.value} if leaf.op == "eq" else set(leaf.value or ())
        if leaf.op == "known":
            return ALWAYS
        if leaf.op == "unknown":
            return NEVER
        tests = [{"$nex": {f: 1}}] if default in words else []
        tests += [{f: codec.value(leaf.fact, w)} for w in sorted(words - {default, UNKNOWN})]
        return tests[0] if len(tests) == 1 else ({"$or": tests} if tests else NEVER)
    if leaf.op == "eq":
        return {f: codec.value(leaf.fact, leaf.value)}
    if leaf.op == "in":
        return {"$or": [{f: codec.value(leaf.fact, v)} for v in leaf.value]}
    if leaf.op in ("ge", "gt", "le", "lt"):
        op = {"ge": "$gte", "gt": "$gt", "le": "$lte", "lt": "$lt"}[leaf.op]
        return {op: {f: _number(leaf.value)}}
    if leaf.op == "known":
        if kind == "number":
            return {"$ex": {f: 1}}
        return {"$and": [{"$ex": {f: 1}}, {"$neq": {f: codec.value(leaf.fact, UNKNOWN)}}]}
    if leaf.op == "unknown":
        if kind == "number":
            return {"$nex": {f: 1}}
        return {"$or": [{"$nex": {f: 1}}, {f: codec.value(leaf.fact, UNKNOWN)}]}
    raise ValueError(f"cannot compile leaf {leaf!r}")


def _describe(exc: BaseException) -> str:
    """durable_rules' error, without the patient fact some of its messages carry."""
    text = str(getattr(exc, "message", exc))
    if "303" in text:
        return "more than 64 rules match one patient fact at once (durable_rules error 303)"
    code = re.search(r"error code: (\d+)", text)
    if code:
        return f"durable_rules error {code.group(1)}"
    return type(exc).__name__  # e.g. MessageNotHandledException: its text holds the fact


@dataclass(frozen=True)
class _Shape:
    """What the compiled rules look at: each rule's branches (`any` split over derived
    facts), the derived facts some branch waits for, the patient facts any reads, and
    per branch the facts the trace names (in name order; a derived one marked True)."""

    branches: dict[str, list[C.Branch]]
    consumed: frozenset[str]
    patient_facts: frozenset[str]
    matched_names: dict[str, list[tuple[tuple[str, bool], ...]]]


def _shape(ruleset: RuleSet) -> _Shape:
    branches: dict[str, list[C.Branch]] = {}
    consumed: set[str] = set()
    patient_facts: set[str] = set()
    for rule in ruleset.rules:
        branches[rule.id] = C.branches(rule.normal)
        for b in branches[rule.id]:
            consumed.update(b.derived)
            for node in b.patient:
                patient_facts.update(node.facts())
    matched_names: dict[str, list[tuple[tuple[str, bool], ...]]] = {}
    for rule_id, rule_branches in branches.items():
        per_branch = []
        for b in rule_branches:
            found: dict[str, bool] = {}
            for node in b.patient:
                for name in node.facts():
                    found[name] = False
            for name in b.derived:
                found[name] = True
            per_branch.append(tuple(sorted(found.items())))
        matched_names[rule_id] = per_branch
    return _Shape(branches, frozenset(consumed), frozenset(patient_facts), matched_names)


class CompiledRules:
    """A RuleSet registered with durable_rules, ready to evaluate patients."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.name = f"cledecide-{ruleset.sha256[:20]}"
        self._shape = shape = _shape(ruleset)
        self.branches = shape.branches
        self.consumed = shape.consumed
        self.matched_names = shape.matched_names
        self.patient_fact_names = shape.patient_facts
        self._codec = _Codec(sorted(shape.patient_facts), ruleset.facts)
        self._send = tuple((name, self._codec.keys[name])
                           for name in sorted(shape.patient_facts))
        self._sessions: dict[str, _Session] = {}
        self._run_lock = threading.Lock()
        definer = self._definer()
        definition = definer.rulesets()
        self._actions = definer.actions
        try:
            _host.register_rulesets({self.name: definition})
        except Exception as exc:  # durable_rules' own errors (e.g. 108, 202)
            raise RuleError(f"the rule engine refused the rule set: {_describe(exc)}",
                            ruleset.folder) from None
        self._durable = _host.get_ruleset(self.name)
        self._handle = self._durable._handle

    def _definition(self) -> dict[str, Any]:
        return self._definer().rulesets()

    def _definer(self) -> "_Definition":
        return _Definition(self.ruleset, self._shape, self._codec, self._sessions)

    def run(self, facts: dict[str, Any]) -> tuple[list[Firing], list[str]]:
        """Fire the rules for one patient in an isolated session, then delete it."""
        fact: dict[str, Any] = {"t": PATIENT}
        value_of = self._codec.value
        defaults = self._codec.defaults
        for name, key in self._send:
            value = facts.get(name)
            if value is not None and value != defaults.get(name):
                fact[key] = value_of(name, value)
        with self._run_lock:
            sid = str(next(_sids))
            fact["sid"] = sid
            session = _Session()
            self._sessions[sid] = session
            try:
                self._fire(fact, sid, session)
            except Exception as exc:  # durable_rules' own errors
                # No delete_state here: on a session where no action ran it can crash
                # the process; a failed assert leaves at most one small session behind.
                self._sessions.pop(sid, None)
                raise EvaluationError(f"rule engine failed: {_describe(exc)}") from None
            self._sessions.pop(sid, None)
            _native.delete_state(self._handle, sid)
        if session.error:  # a bug in an action, not the user's input: exit 1, not 2
            raise RuntimeError(f"rule action failed: {session.error}")
        return session.firings, session.derived

    def _fire(self, fact: dict[str, Any], sid: str, session: _Session) -> None:
        """Assert the patient fact and run every action durable_rules schedules, on this
        thread, as durable_rules' host does (engine.py: do_actions, _flush_actions), without
        what our actions never use: the state and the matched facts parsed into Python
        objects per firing, the state written back after each action (our actions never
        change it, and no rule matches a state fact), timers and leases. durable_rules
        still matches every rule and orders the firings; the action to run is the name
        its message starts with ({"r12":...})."""
        handle = self._handle
        actions = self._actions
        state = _checked(_native.assert_fact(handle, _dumps(fact)), fact)

        def assert_derived(name: str) -> None:
            derived = {"t": DERIVED, "n": name, "sid": sid}
            _checked(_native.assert_fact(handle, _dumps(derived)), derived)

        started = _native.start_action_for_state(handle, state)
        if not started:
            return
        messages: str | None = started[1]
        try:
            while messages:
                actions[messages[2:messages.index('"', 2)]](session, assert_derived)
                messages = _native.complete_and_start_action(handle, state)
        except BaseException:
            _native.abandon_action(handle, state)
            raise


def _dumps(value: dict[str, Any]) -> str:
    return orjson.dumps(value).decode()


def _checked(result: tuple[int, int], message: dict[str, Any]) -> int:
    """The session's state offset of an assert, or durable_rules' own exceptions (as its
    Ruleset._handle_result raises them)."""
    if result[0] == 1:
        raise durable_engine.MessageNotHandledException(message)
    if result[0] == 2:
        raise durable_engine.MessageObservedException(message)
    return 0 if result[0] == 3 else result[1]


class _Definition:
    """The durable_rules definition of a rule set: one durable rule per branch, in
    firing order (derivations first, then by priority), each running an action that
    records the firing in the patient's session."""

    def __init__(self, ruleset: RuleSet, shape: _Shape, codec: "_Codec",
                 sessions: dict[str, _Session]) -> None:
        self.ruleset, self.shape, self.codec, self.sessions = ruleset, shape, codec, sessions
        self.actions: dict[str, _Action] = {}

    def _expr(self, node: C.Node) -> dict[str, Any]:
        if isinstance(node, C.Leaf):
            return _leaf(node, self.ruleset.facts[node.fact].kind, self.codec)
        if isinstance(node, C.All):
            if not node.items:
                return {"t": PATIENT}
            return {"$and": [self._expr(i) for i in node.items]}
        if isinstance(node, C.Any_):
            if not node.items:
                return {"t": "never"}
            return {"$or": [self._expr(i) for i in node.items]}
        raise TypeError(f"not in normal form: {node!r}")

    def rulesets(self) -> dict[str, Any]:
        order = sorted(self.ruleset.rules,
                       key=lambda r: (r.spec.then.kind != "derive", -r.spec.priority, r.id))
        out: dict[str, Any] = {}
        pri = 0
        for rule in order:
            for index, branch in enumerate(self.shape.branches[rule.id]):
                pri += 1
                elements: list[dict[str, Any]] = []
                tests = [self._expr(n) for n in branch.patient]
                if tests or not branch.derived:
                    elements.append({"p": {"$and": [{"t": PATIENT}] + tests}})
                for k, name in enumerate(branch.derived):
                    elements.append({f"d{k}": {"$and": [{"t": DERIVED}, {"n": name}]}})
                out[f"r{pri}"] = {"all": elements, "pri": pri,
                                  "run": self._run(f"r{pri}", rule, index)}
        # Some rule must fire for every patient: delete_state on a session where no
        # action ran can crash the process. A `when: always` rule does; else add one.
        if not any(rule.condition == C.TRUE for rule in self.ruleset.rules):
            out["r_done"] = {"all": [{"p": {"t": PATIENT}}], "pri": pri + 1,
                             "run": self._run("r_done", None, 0)}
        return out

    def _run(self, name: str, rule: Rule | None, branch: int) -> Callable[[Any], None]:
        """The action under `name`, kept for CompiledRules.run, and the one-parameter
        function durable_rules' host would call (registration requires one)."""
        action = self.actions[name] = self._action(rule, branch)
        sessions = self.sessions

        def run(c: Any) -> None:  # exactly one parameter: two would make it async
            def assert_derived(fact_name: str) -> None:
                c.assert_fact({"t": DERIVED, "n": fact_name})
            action(sessions.get(c.s.sid), assert_derived)

        return run

    def _action(self, rule: Rule | None, branch: int) -> "_Action":
        rule_id = rule.id if rule else None
        then = rule.spec.then if rule else None
        emits: list[str] = []
        if then is not None and then.derive:
            emits.append(then.derive)
        if then is not None and then.recommend and then.recommend.drug:
            emits.append(considered_fact(then.recommend.drug))
            if then.recommend.action in STARTING_ACTIONS:
                emits.append(start_considered_fact(then.recommend.drug))
        consumed = self.shape.consumed

        def action(session: _Session | None, assert_derived: Callable[[str], None]) -> None:
            if session is None or rule_id is None:
                return
            try:
                if rule_id in session.fired:
                    return  # another branch of the same rule already fired
                session.fired.add(rule_id)
                session.firings.append(Firing(rule_id, branch))
                for name in emits:
                    if name in session.asserted:
                        continue
                    session.asserted.add(name)
                    session.derived.append(name)
                    if name in consumed:
                        assert_derived(name)
            except BaseException as exc:  # noqa: BLE001 - reported after the run
                session.error = f"{rule_id}: {_describe(exc)}"

        return action


_Action = Callable[[Optional[_Session], Callable[[str], None]], None]


def compile_rules(ruleset: RuleSet) -> CompiledRules:
    """Compile once per process per rule-set content (durable_rules cannot replace a
    ruleset under the same name, so the name carries the content hash)."""
    with _lock:
        compiled = _compiled.get(ruleset.sha256)
        if compiled is None:
            compiled = CompiledRules(ruleset)
            _compiled[ruleset.sha256] = compiled
        return compiled
