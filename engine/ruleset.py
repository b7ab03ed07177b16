"""Rule files: their format (pydantic models), and the load + validate step that turns a
rules folder into one checked RuleSet, or errors that name file, line and field.

A folder holds ``ruleset.yaml`` (provenance and named thresholds), ``evidence.yaml``
(references), ``drugs.yaml`` (the drug catalogue) and one file of rules per stage.
Nothing is evaluated on a rule set with any error in it.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError,
                      ValidationInfo, WithJsonSchema, model_validator)
from pydantic_core import PydanticCustomError

from . import catalogue
from . import conditions as C
from . import prose
from .errors import RuleError
from .facts import FactSpec, fact_specs
from .load import Document, format_path, parse, read_bytes
from .models import (DRUG_SCHEMA_MARK, Action, Drug, MonitoringWord, Severity, Stage,
                     enumerated_values)
from .signoff import ReviewRecord
from .validate import named_drugs, best_error, model_from_document

RULE_FILE_LIMIT = 1_000_000
SPECIAL_FILES = ("ruleset.yaml", "evidence.yaml", "drugs.yaml", "fhir-map.yaml",
                 catalogue.TEMPLATE_FILE)
Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=100)]
Word = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=80)]
Text = Annotated[str, Field(min_length=1, max_length=4000)]


class _Strict(BaseModel):
    # allow_inf_nan=False: a NaN or infinite number in a rule file is an error, never a
    # silently different comparison.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True,
                              allow_inf_nan=False)


class Threshold(_Strict):
    value: float = Field(allow_inf_nan=False)
    unit: str = ""
    evidence: list[str] = Field(default_factory=list)
    note: str = ""
    verify: bool = False
    # False: the number is a conservative choice that no cited source contains.
    number_in_source: bool = True
    review: list[ReviewRecord] = Field(default_factory=list)  # engine/signoff.py


DAYS_PER_UNIT = {"days": 1, "weeks": 7, "months": 30.44, "years": 365.25}


def threshold_days(threshold: Threshold) -> int:
    """A duration threshold in whole days (a unit that is not a duration counts as days)."""
    return int(round(threshold.value * DAYS_PER_UNIT.get(threshold.unit, 1)))


class Provenance(_Strict):
    name: Id
    version: Annotated[str, Field(min_length=1, max_length=40)]
    # approved (or active): every active rule, drug entry and threshold carries a current
    # approval (engine/signoff.py); check_folder refuses an untrue claim.
    status: Literal["draft", "approved", "active", "retired"]
    last_reviewed: dt.date
    reviewers: list[str] = Field(min_length=1)
    review_interval_months: int = Field(default=12, ge=1, le=60)
    description: str = ""
    thresholds: dict[Word, Threshold] = Field(default_factory=dict)
    # `rules check`: patients matching this condition must get a step from a rule other
    # than a catch-all (`when: always`); others are reported as gaps.
    gap_check: str | None = None
    gap_fallbacks: list[str] = Field(default_factory=list)  # rule ids that do not count


class EvidenceEntry(_Strict):
    citation: Text
    note: str = ""


class EvidenceFile(_Strict):
    evidence: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")], EvidenceEntry]


class DoseLimit(_Strict):
    mg_per_kg_per_day: float = Field(gt=0)
    # The weight the limit is per (engine/dosing.py BASES, each a named formula): real
    # body weight; ideal body weight (Devine: height, sex); lean body weight
    # (Janmahasatian: weight, height, sex). Never above real body weight.
    basis: Literal["real_body_weight", "ideal_body_weight", "lean_body_weight"] = \
        "real_body_weight"
    max_mg_per_day: float | None = Field(default=None, gt=0)
    round_down_to_mg: int = Field(default=1, ge=1)
    evidence: list[str] = Field(min_length=1)


Duration = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=80)]


class Tablet(_Strict):
    """One dispensable strength. For a salt, `base_mg` is the base it holds."""

    mg: float = Field(gt=0, le=5000)
    base_mg: float | None = Field(default=None, gt=0, le=5000)


class Dosing(_Strict):
    """How a drug is dosed: unit, start dose, steps, maximum, and what a pharmacy
    dispenses. Numbers are in `unit` (mg per day, or mg per week for weekly drugs)."""

    unit: Literal["mg_per_day", "mg_per_week"] = "mg_per_day"
    start: Text                       # the start dose as the prescriber writes it
    steps_mg: list[Annotated[float, Field(gt=0, le=5000)]] = Field(default_factory=list)
    max_mg: float | None = Field(default=None, gt=0, le=5000)  # above it: critical
    tablets: list[Tablet] = Field(default_factory=list)
    salt: str | None = None           # e.g. "phosphate": the mg above are of the salt
    evidence: list[str] = Field(min_length=1)
    note: str = ""

    @model_validator(mode="after")
    def _steps_ascend(self) -> "Dosing":
        if self.steps_mg != sorted(set(self.steps_mg)):
            raise ValueError("steps_mg must ascend without repeats")
        if self.max_mg is not None and self.steps_mg and self.steps_mg[-1] > self.max_mg:
            raise ValueError("the last dose step is above max_mg")
        return self


class RelapseProfile(_Strict):
    """Relapse after the drug is stopped or reduced in a responder: every such step
    gets a relapse watch, whichever rule made it."""

    review_every: Duration            # named threshold: how often the patient is seen
    window: Duration                  # named threshold: how long the watch lasts
    because: Text                     # how often and when relapse comes, in the source's words
    evidence: list[str] = Field(min_length=1)


class CourseProfile(_Strict):
    """How a course of the drug is judged, and what it may be taken with."""

    trial: Duration | None = None     # named threshold: how long before it is judged
    adjunct: bool = False             # topicals and the bridge sit beside any course
    combines_with: list[Drug] = Field(default_factory=list)
    relapse: RelapseProfile | None = None
    evidence: list[str] = Field(default_factory=list)
    note: str = ""


class WomanProfile(_Strict):
    """Pregnancy prevention for a woman of childbearing potential."""

    contraception: Literal["none", "one_method", "two_methods"] = "none"
    before_start: Duration | None = None        # named threshold
    after_last_dose: Duration | None = None     # named threshold: also the washout
    tests_before_start: int = Field(default=0, ge=0, le=3)
    tests_apart_days_min: int | None = Field(default=None, ge=0, le=60)
    tests_apart_days_max: int | None = Field(default=None, ge=0, le=60)
    last_test_within: Duration | None = None    # named threshold
    tests_during: str = ""                       # steady schedule text (monitoring)
    tests_start_phase: str = ""                  # schedule text for the first weeks
    tests_start_phase_until: Duration | None = None
    tests_after: str = ""                        # after the last dose (within the window)
    stop_before_conception: Duration | None = None
    breastfeeding: Literal["compatible", "avoid"] = "avoid"
    pregnancy: Literal["compatible", "contraindicated", "not_established"] = "contraindicated"
    evidence: list[str] = Field(min_length=1)
    note: str = ""


class ManProfile(_Strict):
    """What a man on the drug needs when a partner may conceive."""

    # required: the drug is not given to a man who does not use them (the label's
    # programme); advised: the label asks for them, guidelines differ: a warning says so.
    condoms: Literal["required", "advised", "no"] = "no"
    after_last_dose: Duration | None = None     # named threshold
    stop_before_conception: Duration | None = None
    disagreement: str = ""                      # where sources differ: said in the advice
    evidence: list[str] = Field(min_length=1)


class ReproductiveProfile(_Strict):
    woman: WomanProfile
    man: ManProfile | None = None


class MonitorSpec(_Strict):
    what: MonitoringWord
    when: Text
    drug: Drug | None = None
    # Optional schedule, counted from as_of or from a drug's start or last stop. Each is
    # a number of days or the name of a threshold (in days, weeks or months).
    every_days: Annotated[int, Field(ge=1, le=3650)] | Word | None = None
    until_day: Annotated[int, Field(ge=1, le=3650)] | Word | None = None
    first_in_days: Annotated[int, Field(ge=0, le=3650)] | Word | None = None
    counted_from_stop_of: Drug | None = None
    counted_from_start_of: Drug | None = None
    # Shown only in a window of the drug's course (days from its continuous start; a
    # drug not yet started is at day 0): start-only items vanish, steady ones follow.
    shown_from_day: Annotated[int, Field(ge=0, le=36500)] | Word | None = None
    shown_until_day: Annotated[int, Field(ge=1, le=36500)] | Word | None = None


class DrugMonitoring(_Strict):
    """A drug's monitoring in its catalogue entry: items as in a rule's `monitor`
    (the drug is filled in), why, and the evidence."""

    items: list[MonitorSpec] = Field(min_length=1)
    because: Text
    evidence: list[str] = Field(min_length=1)


def _select_drugs(value: object, info: ValidationInfo) -> object:
    """`{drugs where: TEST}`: the catalogue's drugs whose properties meet TEST
    (engine/catalogue.py select), read with the catalogue the rule set checks (the
    validation context); a list of drugs stays as written."""
    if not isinstance(value, dict):
        return value
    if set(value) != {SELECT_KEY} or not isinstance(value[SELECT_KEY], str):
        raise PydanticCustomError("value_error", "{error}", {
            "error": f"a list of drugs, or {{{SELECT_KEY}: TEST}} (a test of the catalogue's "
                     f"properties: {', '.join(catalogue.SELECT_FIELDS)})"})
    entries = (info.context or {}).get("catalogue") if isinstance(info.context, dict) \
        else None
    if entries is None:
        raise PydanticCustomError("value_error", "{error}", {
            "error": f"{{{SELECT_KEY}: ...}} is read with the rule set's drugs.yaml"})
    try:
        chosen = catalogue.select(entries, value[SELECT_KEY])
    except catalogue.SelectError as exc:
        raise PydanticCustomError("value_error", "{error}", {"error": str(exc)}) from None
    if not chosen:
        raise PydanticCustomError("value_error", "{error}", {
            "error": f"'{value[SELECT_KEY]}' selects no drug of drugs.yaml"})
    return chosen


SELECT_KEY = "drugs where"
# A list of drugs, or the drugs of the catalogue with a property (read when the rule set
# is checked: a rule holds the list it selected).
Drugs = Annotated[list[Drug], BeforeValidator(_select_drugs), WithJsonSchema({"anyOf": [
    {"type": "array", "items": {"type": "string", DRUG_SCHEMA_MARK: True}},
    {"type": "object", "additionalProperties": False, "required": [SELECT_KEY],
     "properties": {SELECT_KEY: {"type": "string", "description": (
         "The catalogue's drugs whose properties meet this test, e.g. pregnancy == "
         "not_established, teratogenic, myelosuppressive and not teratogenic (properties: "
         + ", ".join(catalogue.SELECT_FIELDS) + ").")}}}]})]


class DrugEntry(_Strict):
    label: Text
    drug_class: Word = Field(alias="class")
    stage: Stage
    teratogenic: bool
    # Properties safety rules select drugs by (`{drugs where: pregnancy ==
    # not_established}`, engine/catalogue.py select). Not given: the conservative value
    # (pregnancy and breastfeeding not established; a teratogen contraindicated/avoid).
    pregnancy: Literal["compatible", "not_established", "contraindicated"] | None = None
    # caution: allowed, with a warning rule of its own (LactMed data).
    breastfeeding: Literal["compatible", "caution", "not_established", "avoid"] | None = None
    myelosuppressive: bool = False    # can suppress the marrow (blood-count holds)
    usual_dose: Text
    dose_limit: DoseLimit | None = None
    never_with: list[Drug] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)
    dosing: Dosing | None = None
    course: CourseProfile = Field(default_factory=CourseProfile)
    reproductive: ReproductiveProfile | None = None
    # The monitoring the drug needs, shown when it is taken or is the step (a rule
    # `catalogue.monitoring.<drug>`); monitoring rules may add more. A drug with none
    # anywhere is a `rules check` warning.
    monitoring: DrugMonitoring | None = None
    review: list[ReviewRecord] = Field(default_factory=list)  # engine/signoff.py


# A drug's name in the catalogue: an entry of drugs.yaml makes the drug (contract: the
# record's drugs are the catalogue's), named like a fact (`<name>_status`).
DrugName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)]


class DrugFile(_Strict):
    drugs: dict[DrugName, DrugEntry]


class RecommendSpec(_Strict):
    action: Action
    drug: Drug | None = None
    dose: str | None = None
    summary: str | None = None
    # For a stop of several possible drugs: the step names the current ones among these
    # (drug: the first; stops: all of them).
    among: Drugs | None = None
    # "No new drug now" (an infection, a cytopenia of unknown cause): while this is the
    # chosen step, steps that start a drug are not offered as alternatives; "why not"
    # says they wait for it.
    holds_starts: bool = False





class WarnSpec(_Strict):
    severity: Severity
    message: Text
    # The drugs the warning is about: a warning or info is not shown when every one of
    # them is out of play (stopped by the step, or not taken and ruled out).
    about: Drugs | None = None


class RequestSpec(_Strict):
    field: Annotated[str, Field(min_length=1, max_length=120)]
    why: Text
    ask: Annotated[str, Field(min_length=1, max_length=80)] | None = None
    branch: bool = Field(default=False, description=(
        "When this is the only fact the chosen gather_data step asks for and its value "
        "would change the step, show the step under each value (e.g. if localized: ...; "
        "if widespread: ...). The field must take a few fixed words (or true/false)."))

    @property
    def label(self) -> str:
        """What to collect, in a few words (defaults to the field's last part)."""
        return self.ask or self.field.rsplit(".", 1)[-1].replace("_", " ")


class DoseSpec(_Strict):
    """This patient's dose of a drug, wherever a step names it (e.g. a renal dose)."""

    drug: Drug
    dose: Text


class ThenSpec(_Strict):
    derive: Word | None = None
    recommend: RecommendSpec | None = None
    exclude: Drugs | None = None
    # With `exclude`: how the requirement can be met (add a method, wait until a date, do
    # a test). A step it blocks is then not dropped for a lower one: the step becomes
    # meeting the requirement, with the blocked step named as what follows.
    fix: Text | None = None
    # With `exclude`: what happens to an excluded drug the patient already takes (a
    # requirement it no longer meets): hold it until the requirement is met (the default,
    # fail safe), stop it, or continue it while the requirement is met. `start_only`: the
    # rule is about starting the drug; another rule decides a current course's fate.
    if_taken: Literal["hold", "stop", "continue", "start_only"] | None = None
    # With `exclude`: what else is done at once for a current drug (a test, a review).
    if_taken_also: Text | None = None
    monitor: list[MonitorSpec] | None = None
    warn: WarnSpec | None = None
    request: list[RequestSpec] | None = None
    dose: DoseSpec | None = None

    @model_validator(mode="after")
    def _something(self) -> "ThenSpec":
        if not any(v for v in self.model_dump().values()):
            raise ValueError("then must do something: derive, recommend, exclude, "
                             "monitor, warn or request")
        if (self.fix or self.if_taken or self.if_taken_also) and not self.exclude:
            raise ValueError("fix, if_taken and if_taken_also go with exclude")
        return self

    @property
    def kind(self) -> str:
        for kind in ("recommend", "exclude", "derive", "monitor", "warn", "request"):
            if getattr(self, kind):
                return kind
        return "warn"


class RuleSpec(_Strict):
    id: Id
    title: Text
    stage: Stage | None = None
    priority: int = Field(ge=0, le=100)
    status: Literal["active", "draft", "retired"] = "active"
    when: Any = None
    then: ThenSpec
    because: Text
    evidence: list[str] = Field(default_factory=list)
    last_reviewed: dt.date | None = None
    review: list[ReviewRecord] = Field(default_factory=list)  # engine/signoff.py


class RuleFile(_Strict):
    stage: Stage
    description: str = ""
    rules: list[RuleSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Rule:
    """A checked, active rule with its parsed condition."""

    spec: RuleSpec
    stage: str
    condition: C.Node
    normal: C.Node
    file: str
    line: int | None

    @cached_property
    def id(self) -> str:  # read hundreds of times per patient: computed once
        return self.spec.id

    @cached_property
    def kind(self) -> str:
        return self.spec.then.kind

    @cached_property
    def asserted(self) -> str:
        """What the rule asserts, in the trace's words."""
        then = self.spec.then
        if self.kind == "derive":
            return then.derive or ""
        if self.kind == "recommend" and then.recommend:
            return " ".join(x for x in (then.recommend.action, then.recommend.drug) if x)
        if self.kind == "exclude":
            return ", ".join(then.exclude or [])
        if self.kind == "monitor":
            return ", ".join(m.what for m in then.monitor or [])
        if self.kind == "warn" and then.warn:
            return then.warn.severity
        return ", ".join(r.field for r in then.request or [])


@dataclass(frozen=True)
class RuleSet:
    """Everything `evaluate` needs, already checked."""

    provenance: Provenance
    evidence: dict[str, EvidenceEntry]
    drugs: dict[str, DrugEntry]
    rules: tuple[Rule, ...]
    facts: dict[str, FactSpec]
    derived: frozenset[str]
    sha256: str
    folder: str
    inactive: tuple[RuleSpec, ...] = ()
    thresholds: dict[str, float] = field(default_factory=dict)
    # The hash of the files alone (sha256 adds the rules generated from drugs.yaml): what
    # the rule-set cache can check before anything is generated.
    files_sha256: str = ""

    @cached_property
    def by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}

    @cached_property
    def teratogens(self) -> frozenset[str]:
        return frozenset(name for name, d in self.drugs.items() if d.teratogenic)

    def days(self, value: int | str | None) -> int | None:
        """A schedule value in days: a number, or a named threshold in its unit."""
        if value is None or isinstance(value, int):
            return value
        return threshold_days(self.provenance.thresholds[value])

    def span(self, name: str) -> str:
        """A named duration in words ("2 weeks", "1 month")."""
        t = self.provenance.thresholds[name]
        return f"{t.value:g} {t.unit if t.value != 1 else t.unit.rstrip('s')}"

    @cached_property
    def recommenders(self) -> dict[str, tuple[Rule, ...]]:
        """Drug -> the rules that may recommend it (for "why not")."""
        out: dict[str, list[Rule]] = {}
        for r in self.rules:
            rec = r.spec.then.recommend
            if rec and rec.drug:
                out.setdefault(rec.drug, []).append(r)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def drugs_sorted(self) -> tuple[tuple[str, "DrugEntry"], ...]:
        return tuple(sorted(self.drugs.items()))

    @cached_property
    def drug_classes(self) -> dict[str, str]:
        return {name: d.drug_class for name, d in self.drugs.items()}


@dataclass(frozen=True)
class Finding:
    """One problem found in a rule set (an error stops evaluation)."""

    severity: Literal["error", "warning"]
    code: str
    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None
    rules: tuple[str, ...] = ()

    def __str__(self) -> str:
        return str(RuleError(self.message, self.file, self.line, self.field))


def considered_fact(drug: str) -> str:
    """The fact a recommend rule asserts so that monitoring rules can plan ahead."""
    return f"{drug}_considered"


STARTING_ACTIONS = ("start", "add", "switch", "reintroduce")


def start_considered_fact(drug: str) -> str:
    """Asserted when a rule suggests starting (or adding, switching to, reintroducing) a
    drug: pre-start requirements (tests, contraception) depend on it alone, without a
    test on the patient fact (see durable_rules' match limit)."""
    return f"{drug}_start_considered"


def _rules_hash(files: list[tuple[str, str]]) -> str:
    """One hash over every file's name and content hash, independent of listing order."""
    h = hashlib.sha256()
    for name, digest in sorted(files):
        h.update(f"{name}\0{digest}\n".encode())
    return h.hexdigest()


def _generated_hash(rules: list[Rule]) -> tuple[str, str]:
    """The rules generated from drugs.yaml (engine/catalogue.py) as an entry of the rule
    set's hash: a change to the generator changes the rules applied, so it changes the
    version every result names, although no rules file changed."""
    import json
    made = sorted((r.spec.model_dump(mode="json", exclude={"review"}) for r in rules),
                  key=lambda d: d["id"])
    text = json.dumps(made, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "(rules generated from drugs.yaml)", hashlib.sha256(text.encode()).hexdigest()


def _doc(folder: Path, name: str) -> Document:
    path = folder / name
    if not path.exists():
        raise RuleError(f"missing {name} in the rules folder", str(path))
    return _rule_doc(path)


def _rule_doc(path: Path) -> Document:
    """A rule file parsed, or its parse from the cache (engine/parsecache.py): the same
    data and lines either way, checked the same way afterwards."""
    from . import parsecache
    raw = read_bytes(path, RuleError, RULE_FILE_LIMIT)
    doc = parsecache.get(raw, str(path))
    if doc is None:
        doc = parse(raw, str(path), RuleError)
        parsecache.put(raw, doc)
    return doc


def _check_evidence(keys: list[str], known: dict[str, Any], doc: Document,
                    where: tuple[Any, ...], out: list[Finding]) -> None:
    for i, key in enumerate(keys):
        if key not in known:
            out.append(Finding("error", "unknown-evidence",
                               f"unknown evidence key '{key}' (not in evidence.yaml)",
                               doc.file, doc.line_of(where + (i,)),
                               format_path(where + (i,))))


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Cycles among derived facts (fact -> facts its derivation depends on)."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def _durations(entry: DrugEntry) -> list[tuple[tuple[str, ...], str]]:
    """(where in the entry, threshold name) for every named duration of a drug."""
    out: list[tuple[tuple[str, ...], str]] = []
    if entry.course.trial:
        out.append((("course", "trial"), entry.course.trial))
    if entry.course.relapse:
        out.append((("course", "relapse", "review_every"), entry.course.relapse.review_every))
        out.append((("course", "relapse", "window"), entry.course.relapse.window))
    if entry.reproductive:
        for who in ("woman", "man"):
            profile = getattr(entry.reproductive, who)
            if profile is None:
                continue
            for key in ("before_start", "after_last_dose", "last_test_within",
                        "stop_before_conception", "tests_start_phase_until"):
                value = getattr(profile, key, None)
                if value:
                    out.append((("reproductive", who, key), value))
    return out


PROFILE_FIELDS = {"woman": frozenset(WomanProfile.model_fields),
                  "man": frozenset(ManProfile.model_fields)}


def _catalogue_made(drugs: dict[str, DrugEntry], provenance: Provenance, doc: Document,
                    templates: catalogue.TemplateFile, tdoc: Document,
                    findings: list[Finding]) -> list[dict[str, Any]]:
    """The rules drugs.yaml implies (engine/catalogue.py and the rule templates), as
    data; nothing when a duration or a template is wrong (each named FILE:LINE)."""
    bad = False
    for name, entry in drugs.items():
        for where, value in _durations(entry):
            t = provenance.thresholds.get(value)
            path = ("drugs", name) + where
            if t is None or t.unit not in DAYS_PER_UNIT:
                findings.append(Finding("error", "unknown-threshold",
                                        f"'{value}' is not a named threshold in days, weeks, "
                                        "months or years", doc.file, doc.line_of(path),
                                        format_path(path)))
                bad = True
    wrong = catalogue.check(templates, PROFILE_FIELDS)
    for exc in wrong:
        findings.append(Finding("error", "template", str(exc), tdoc.file,
                                tdoc.line_of(exc.path), format_path(exc.path)))
    if bad or wrong:
        return []

    def days(name: str) -> int | None:
        return threshold_days(provenance.thresholds[name])

    try:
        made: list[dict[str, Any]] = list(catalogue.generated_rules(
            drugs, provenance.thresholds, days, templates, PROFILE_FIELDS))
    except catalogue.TemplateError as exc:
        findings.append(Finding("error", "template", str(exc), tdoc.file,
                                tdoc.line_of(exc.path), format_path(exc.path)))
        return []
    first: dict[Any, dict[str, Any]] = {}
    told = set()
    for g in made:
        rid = g.get("id")
        other = first.setdefault(rid, g)
        mine = _origin(g) or _origin(other)
        if other is not g and mine and (_origin(g), _origin(other)) not in told:
            told.add((_origin(g), _origin(other)))
            also = (f"the template at line {tdoc.line_of(_origin(other) or ())}"
                    if _origin(other) and _origin(g) else "engine/catalogue.py")
            findings.append(Finding("error", "duplicate-id", f"generated rule id '{rid}' "
                                    f"is made twice (also by {also})", tdoc.file,
                                    tdoc.line_of(mine), format_path(mine), (str(rid),)))
    return made


def _origin(data: dict[str, Any]) -> tuple[Any, ...] | None:
    """The template a generated rule came from (its path in the template file)."""
    return getattr(data, "template", None)


def _catalogue_rules(made: list[dict[str, Any]], drugs: dict[str, DrugEntry],
                     doc: Document, tdoc: Document, vocab: C.Vocabulary,
                     seen: dict[str, Any], findings: list[Finding]) -> list[Rule]:
    """The generated rules checked like rule files. Each names its drug's entry in
    drugs.yaml; a mistake in one made from a template names the template's line."""
    out: list[Rule] = []
    told: set[tuple[Any, ...]] = set()  # a template's mistake once, not once per drug
    context = {"drugs": tuple(drugs), "catalogue": drugs}
    for data in made:
        template = _origin(data)
        drug = str(data.get("id", "")).rsplit(".", 1)[-1]
        line = doc.line_of(("drugs", drug)) if drug in drugs else doc.line_of(("drugs",))
        try:
            spec = RuleSpec.model_validate(data, context=context)
            node = C.parse(spec.when, vocab)
            out.append(Rule(spec, spec.stage or "general", node, C.nnf(node, vocab),
                            doc.file, line))
        except (ValidationError, C.ConditionError) as exc:
            message, loc = best_error(exc) if isinstance(exc, ValidationError) else \
                (str(exc), ("when",))
            if template is None:
                where: tuple[Any, ...] = (doc.file, line, None)
            elif (template, loc, message) in told:
                continue
            else:
                told.add((template, loc, message))
                path = template + loc
                where = (tdoc.file, tdoc.line_of(path), format_path(path))
            findings.append(Finding("error", "catalogue", f"generated rule {data.get('id')}: "
                                    f"{message}", where[0], where[1], where[2],
                                    (str(data.get("id")),)))
            continue
        if spec.id in seen:
            findings.append(Finding("error", "duplicate-id", f"rule id '{spec.id}' is "
                                    "reserved for rules generated from drugs.yaml",
                                    seen[spec.id][0], seen[spec.id][1], None, (spec.id,)))
    return out


# What durable_rules 2.0.28 compiles and runs in bounded time, measured on the project
# machine with the shipped rules plus generated ones (docs/safety.md, "Bad input"): about 460
# distinct numeric tests run, 466 hang in the first evaluation; 220 rules with the same
# condition compile, 300 fail (error 108); 1,250 rules with shared tests run in 17 ms a
# patient; about 253 keys per fact. Each limit sits below the failure.
LIMITS = {
    "branches": 1000,          # rules after splitting `any` over derived facts
    "numeric_tests": 400,      # distinct (fact, comparison, number) tests
    "same_condition": 150,     # rules whose conditions are identical
    "patient_facts": 200,      # distinct patient facts the rules read
}


def _limit_findings(rules: list[Rule], folder: str) -> list[Finding]:
    """Refuse rule sets that durable_rules cannot compile or run in bounded time."""
    out: list[Finding] = []
    total = 0
    for rule in rules:
        total += C.count_branches(rule.normal)
        if total > LIMITS["branches"]:
            return [Finding("error", "limit", f"more than {LIMITS['branches']} rules (after "
                            "splitting `any` over derived facts): durable_rules' limit here",
                            rule.file, rule.line, None, (rule.id,))]
    numeric: set[tuple[str, str, float]] = set()
    facts: set[str] = set()
    same: dict[Any, list[str]] = {}
    for rule in rules:
        for b in C.branches(rule.normal):
            same.setdefault((b.patient, b.derived), []).append(rule.id)
            for node in b.patient:
                facts.update(node.facts())
                stack = [node]
                while stack:
                    n = stack.pop()
                    if isinstance(n, C.Leaf):
                        if n.op in ("ge", "gt", "le", "lt"):
                            numeric.add((n.fact, n.op, n.value))
                    elif isinstance(n, (C.All, C.Any_)):
                        stack.extend(n.items)
    if len(numeric) > LIMITS["numeric_tests"]:
        out.append(Finding("error", "limit", f"{len(numeric)} distinct numeric tests; "
                           f"durable_rules hangs above about 460: the limit is "
                           f"{LIMITS['numeric_tests']}", folder))
    if len(facts) > LIMITS["patient_facts"]:
        out.append(Finding("error", "limit", f"the rules read {len(facts)} patient facts; the "
                           f"limit is {LIMITS['patient_facts']} (durable_rules: about 253 "
                           "keys per fact)", folder))
    worst = max(same.values(), key=len, default=[])
    if len(worst) > LIMITS["same_condition"]:
        out.append(Finding("error", "limit", f"{len(worst)} rules share one condition (e.g. "
                           f"'{worst[0]}'); the limit is {LIMITS['same_condition']} "
                           "(durable_rules error 108 above about 220)", folder,
                           None, None, tuple(worst[:3])))
    return out


@dataclass(frozen=True)
class _Special:
    """The files of a rules folder that are not rule files, read and validated."""

    meta_doc: Document
    ev_doc: Document
    drug_doc: Document
    tdoc: Document
    provenance: Provenance
    evidence: dict[str, EvidenceEntry]
    drugs: dict[str, DrugEntry]
    templates: catalogue.TemplateFile


def _read_special(folder: Path) -> _Special:
    """ruleset.yaml, evidence.yaml, drugs.yaml and the rule templates (a RuleError:
    nothing else can be checked without them)."""
    meta_doc = _doc(folder, "ruleset.yaml")
    ev_doc = _doc(folder, "evidence.yaml")
    drug_doc = _doc(folder, "drugs.yaml")
    tdoc = _doc(folder, catalogue.TEMPLATE_FILE)
    return _Special(meta_doc, ev_doc, drug_doc, tdoc,
                    model_from_document(Provenance, meta_doc, RuleError),
                    model_from_document(EvidenceFile, ev_doc, RuleError).evidence,
                    model_from_document(DrugFile, drug_doc, RuleError,
                                        context=named_drugs(drug_doc.data)).drugs,
                    model_from_document(catalogue.TemplateFile, tdoc, RuleError))


def _drug_prose(sp: _Special, findings: list[Finding]) -> _Special:
    """drugs.yaml's texts with their threshold placeholders filled in (its own dose
    limits included), validated again when anything was filled."""
    values, units = _threshold_values(sp)
    doc = _fill_prose(sp.drug_doc, "drugs", values, units, findings, own=True)
    if doc is sp.drug_doc:
        return sp
    import dataclasses
    try:
        drugs = model_from_document(DrugFile, doc, RuleError,
                                    context=named_drugs(doc.data)).drugs
    except RuleError as exc:  # a placeholder filled where a number was expected
        findings.append(_format_finding(exc))
        return sp
    return dataclasses.replace(sp, drug_doc=doc, drugs=drugs)


def _format_finding(exc: RuleError) -> Finding:
    return Finding("error", "format", exc.message, exc.file, exc.line, exc.field)


def _hash_codemap(folder: Path, hashed: list[tuple[str, str]],
                  findings: list[Finding]) -> None:
    """The FHIR code map changes results: it is hashed with the rules."""
    codemap = folder / "fhir-map.yaml"
    if codemap.exists():
        try:
            hashed.append((codemap.name, hashlib.sha256(
                read_bytes(codemap, RuleError, RULE_FILE_LIMIT)).hexdigest()))
        except RuleError as exc:
            findings.append(_format_finding(exc))


def _check_special_evidence(sp: _Special, findings: list[Finding]) -> None:
    """Every evidence key of drugs.yaml and ruleset.yaml is in evidence.yaml."""
    evidence, drug_doc = sp.evidence, sp.drug_doc
    for name, entry in sorted(sp.drugs.items()):
        where: tuple[Any, ...] = ("drugs", name)
        _check_evidence(entry.evidence, evidence, drug_doc, where + ("evidence",), findings)
        if entry.dose_limit:
            _check_evidence(entry.dose_limit.evidence, evidence, drug_doc,
                            where + ("dose_limit", "evidence"), findings)
        if entry.dosing:
            _check_evidence(entry.dosing.evidence, evidence, drug_doc,
                            where + ("dosing", "evidence"), findings)
        _check_evidence(entry.course.evidence, evidence, drug_doc,
                        where + ("course", "evidence"), findings)
        if entry.monitoring:
            _check_evidence(entry.monitoring.evidence, evidence, drug_doc,
                            where + ("monitoring", "evidence"), findings)
        for who in ("woman", "man"):
            profile = getattr(entry.reproductive, who, None) if entry.reproductive else None
            if profile is not None:
                _check_evidence(profile.evidence, evidence, drug_doc,
                                where + ("reproductive", who, "evidence"), findings)
    for name, t in sp.provenance.thresholds.items():
        _check_evidence(t.evidence, evidence, sp.meta_doc, ("thresholds", name, "evidence"),
                        findings)


def _threshold_values(sp: _Special) -> tuple[dict[str, float], dict[str, str]]:
    """Every threshold by the name conditions and texts use, with its unit: those of
    ruleset.yaml and each drug's dose limit (one place for a dose limit: drugs.yaml)."""
    values = {k: t.value for k, t in sp.provenance.thresholds.items()}
    units = {k: t.unit for k, t in sp.provenance.thresholds.items()}
    for name, entry in sp.drugs.items():
        if entry.dose_limit:
            values[f"{name}{prose.DOSE_LIMIT_SUFFIX}"] = entry.dose_limit.mg_per_kg_per_day
            units[f"{name}{prose.DOSE_LIMIT_SUFFIX}"] = "mg/kg"
    return values, units


def threshold_values(folder: Path | str) -> dict[str, float]:
    """What threshold placeholders in texts are filled with ({} when the special files
    cannot be read): `rules review` hashes a unit as the engine reads it."""
    try:
        return _threshold_values(_read_special(Path(folder)))[0]
    except RuleError:
        return {}


def _prose_findings(doc: Document, problems: list[prose.Problem],
                    findings: list[Finding]) -> None:
    findings.extend(Finding(p.severity, p.code, p.message, doc.file,  # type: ignore[arg-type]
                            doc.line_of(p.path), format_path(p.path)) for p in problems)


def _fill_prose(doc: Document, top: str, values: dict[str, float], units: dict[str, str],
                findings: list[Finding], own: Any = None) -> Document:
    """The document with the threshold placeholders of each rule (top "rules") or drug
    entry (top "drugs") filled in; unknown placeholders are errors, numbers that repeat
    a threshold warnings (engine/prose.py)."""
    data = doc.data if isinstance(doc.data, dict) else {}
    items: Any = data.get(top)
    if not isinstance(items, (list, dict)):
        return doc  # not a list of rules: the format check says so
    keys = range(len(items)) if isinstance(items, list) else list(items)
    changed = False
    new_items: Any = list(items) if isinstance(items, list) else dict(items)
    for key in keys:
        where: tuple[Any, ...] = (top, key)
        item = items[key]
        new, problems = prose.filled(item, values, where)
        also = {f"{key}{prose.DOSE_LIMIT_SUFFIX}"} if own else set()
        problems += prose.repeated_numbers(item, values, units, also, where, by_block=own)
        _prose_findings(doc, problems, findings)
        if new is not item:
            new_items[key] = new
            changed = True
    if not changed:
        return doc
    import dataclasses
    return dataclasses.replace(doc, data={**data, top: new_items})


def _read_rule_files(folder: Path, hashed: list[tuple[str, str]], findings: list[Finding],
                     drugs: dict[str, DrugEntry], sp: _Special | None = None
                     ) -> list[tuple[Document, RuleFile]]:
    rule_docs: list[tuple[Document, RuleFile]] = []
    # A rule names the catalogue's drugs, or selects them by their properties.
    context = {"drugs": tuple(drugs), "catalogue": drugs}
    values, units = _threshold_values(sp) if sp is not None else ({}, {})
    for path in sorted(folder.glob("*.yaml")):
        if path.name in SPECIAL_FILES:
            continue
        try:
            doc = _rule_doc(path)
            hashed.append((path.name, doc.sha256))
            if sp is not None:
                doc = _fill_prose(doc, "rules", values, units, findings)
            rule_docs.append((doc, model_from_document(RuleFile, doc, RuleError,
                                                       context=context)))
        except RuleError as exc:
            findings.append(_format_finding(exc))
    if not rule_docs and not findings:
        findings.append(Finding("error", "no-rules", "no rule files in the folder",
                                str(folder)))
    return rule_docs


@dataclass
class _Declared:
    """The rule files' rules by id: the active ones to check, the others kept aside,
    and every fact some rule derives."""

    derived: set[str]
    seen: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    entries: list[tuple[Document, int, RuleSpec, str]] = field(default_factory=list)
    inactive: list[RuleSpec] = field(default_factory=list)


def _declare(rule_docs: list[tuple[Document, RuleFile]], derived: set[str],
             findings: list[Finding]) -> _Declared:
    out = _Declared(derived)
    for doc, rf in rule_docs:
        for i, spec in enumerate(rf.rules):
            where = ("rules", i, "id")
            if spec.id in out.seen:
                first = out.seen[spec.id]
                findings.append(Finding("error", "duplicate-id",
                                        f"duplicate rule id '{spec.id}' (first at "
                                        f"{first[0]}:{first[1]})", doc.file,
                                        doc.line_of(where), format_path(where), (spec.id,)))
                continue
            out.seen[spec.id] = (doc.file, doc.line_of(where))
            if spec.status != "active":
                out.inactive.append(spec)
                continue
            out.entries.append((doc, i, spec, spec.stage or rf.stage))
            if spec.then.derive:
                out.derived.add(spec.then.derive)
    return out


def _vocabulary(sp: _Special, derived: set[str],
                findings: list[Finding]) -> tuple[dict[str, FactSpec], C.Vocabulary]:
    """The words conditions may use: patient facts, derived facts, named thresholds
    (with each drug's dose limit); the gap check is read with them."""
    specs = fact_specs(sp.drugs)
    for name in derived:
        if name in specs:
            findings.append(Finding("error", "derived-shadows-fact",
                                    f"derived fact '{name}' has the name of a patient fact"))
    thresholds, _ = _threshold_values(sp)
    vocab = C.Vocabulary(specs, frozenset(derived), thresholds)
    if sp.provenance.gap_check:
        try:
            C.nnf(C.parse(sp.provenance.gap_check, vocab), vocab)
        except C.ConditionError as exc:
            findings.append(Finding("error", "condition", str(exc), sp.meta_doc.file,
                                    sp.meta_doc.line_of(("gap_check",)), "gap_check"))
    return specs, vocab


def _check_rule(doc: Document, i: int, spec: RuleSpec, stage: str, sp: _Special,
                vocab: C.Vocabulary, findings: list[Finding]) -> Rule | None:
    """One active rule of a rule file: its evidence, drugs, thresholds and condition."""
    base: tuple[Any, ...] = ("rules", i)
    line = doc.line_of(base + ("id",))
    _check_evidence(spec.evidence, sp.evidence, doc, base + ("evidence",), findings)
    if not spec.evidence:
        findings.append(Finding("warning", "no-evidence", f"rule '{spec.id}' cites no "
                                "evidence", doc.file, line, None, (spec.id,)))
    then = spec.then
    for j, drug in enumerate(then.exclude or []):
        if drug not in sp.drugs:
            findings.append(Finding("error", "unknown-drug", f"'{drug}' is not in "
                                    "drugs.yaml", doc.file,
                                    doc.line_of(base + ("then", "exclude", j)),
                                    format_path(base + ("then", "exclude", j)), (spec.id,)))
    if then.recommend and then.recommend.drug and then.recommend.drug not in sp.drugs:
        findings.append(Finding("error", "unknown-drug", f"'{then.recommend.drug}' is not "
                                "in drugs.yaml", doc.file,
                                doc.line_of(base + ("then", "recommend", "drug")),
                                format_path(base + ("then", "recommend", "drug")),
                                (spec.id,)))
    for j, req in enumerate(then.request or []):
        if req.branch and enumerated_values(req.field) is None:
            where = base + ("then", "request", j, "branch")
            findings.append(Finding("error", "branch-fact", f"'{req.field}' is not a record "
                                    "field with a few fixed values: its branches cannot be "
                                    "shown", doc.file, doc.line_of(where), format_path(where),
                                    (spec.id,)))
    for j, item in enumerate(then.monitor or []):
        for key in ("every_days", "until_day", "first_in_days", "shown_from_day",
                    "shown_until_day"):
            value = getattr(item, key)
            if isinstance(value, str) and value not in vocab.thresholds:
                where = base + ("then", "monitor", j, key)
                findings.append(Finding("error", "unknown-threshold",
                                        f"'{value}' is not a named threshold",
                                        doc.file, doc.line_of(where), format_path(where),
                                        (spec.id,)))
    try:
        node = C.parse(spec.when, vocab)
        normal = C.nnf(node, vocab)
    except C.ConditionError as exc:
        findings.append(Finding("error", "condition", str(exc), doc.file,
                                doc.line_of(base + ("when",)),
                                format_path(base + ("when",)), (spec.id,)))
        return None
    return Rule(spec, stage, node, normal, doc.file, line)


def check_folder(folder: Path | str) -> tuple[RuleSet | None, list[Finding]]:
    """Load and check a rules folder; all errors found, and the RuleSet when none."""
    folder = Path(folder)
    findings: list[Finding] = []
    if not folder.is_dir():
        return None, [Finding("error", "no-folder", "rules folder not found", str(folder))]
    try:
        sp = _read_special(folder)
    except RuleError as exc:
        return None, [_format_finding(exc)]
    hashed = [(Path(d.file).name, d.sha256)
              for d in (sp.meta_doc, sp.ev_doc, sp.drug_doc, sp.tdoc)]
    _hash_codemap(folder, hashed, findings)
    _check_special_evidence(sp, findings)
    sp = _drug_prose(sp, findings)
    rule_docs = _read_rule_files(folder, hashed, findings, sp.drugs, sp)

    # Which facts are derived: by active rules and the catalogue's, plus the automatic
    # '<drug>_considered' and '<drug>_start_considered'.
    derived: set[str] = {considered_fact(d) for d in sp.drugs}
    derived |= {start_considered_fact(d) for d in sp.drugs}
    made = _catalogue_made(sp.drugs, sp.provenance, sp.drug_doc, sp.templates, sp.tdoc,
                           findings)
    derived |= catalogue.static_derived(sp.templates)
    derived |= {g["then"]["derive"] for g in made if isinstance(g.get("then"), dict)
                and isinstance(g["then"].get("derive"), str)}
    declared = _declare(rule_docs, derived, findings)
    specs, vocab = _vocabulary(sp, derived, findings)
    rules: list[Rule] = []
    depends: dict[str, set[str]] = {}
    for doc, i, spec, stage in declared.entries:
        rule = _check_rule(doc, i, spec, stage, sp, vocab, findings)
        if rule is None:
            continue
        rules.append(rule)
        if spec.then.derive:
            depends.setdefault(spec.then.derive, set()).update(
                f for f in rule.condition.facts() if f in derived)
    generated = _catalogue_rules(made, sp.drugs, sp.drug_doc, sp.tdoc, vocab, declared.seen,
                                 findings)
    rules += generated
    findings += _monitoring_findings(rules, sp.drugs, sp.drug_doc)
    findings += _limit_findings(rules, str(folder))
    for cycle in _cycles(depends):
        findings.append(Finding("error", "circular", "circular derivation: "
                                + " -> ".join(cycle), str(folder)))
    findings += _signoff_findings(sp.provenance, sp.drugs, rule_docs, sp.meta_doc,
                                  sp.drug_doc)
    if any(f.severity == "error" for f in findings):
        return None, findings
    return RuleSet(
        provenance=sp.provenance, evidence=dict(sp.evidence), drugs=dict(sp.drugs),
        rules=tuple(sorted(rules, key=lambda r: r.id)), facts=specs,
        derived=frozenset(derived), sha256=_rules_hash(hashed + [_generated_hash(generated)]),
        folder=str(folder), inactive=tuple(declared.inactive),
        thresholds=dict(vocab.thresholds), files_sha256=_rules_hash(hashed)), findings


def _monitoring_findings(rules: list[Rule], drugs: dict[str, DrugEntry],
                         doc: Document) -> list[Finding]:
    """A drug that a rule may start with no monitoring item naming it (its catalogue
    `monitoring`, or a monitoring rule's `drug:`) is a warning: what is watched while it
    is taken is part of adding it. Adjuncts and a specialist's drugs are left out."""
    named = {m.drug for r in rules for m in r.spec.then.monitor or [] if m.drug}
    out = []
    for name, entry in drugs.items():
        if name in named or entry.course.adjunct or entry.stage == "specialist":
            continue
        where = ("drugs", name)
        out.append(Finding("warning", "no-monitoring", f"{name} has no monitoring items: "
                           "give its entry `monitoring` (items, because, evidence), or name "
                           f"it in a monitoring rule's item (drug: {name})", doc.file,
                           doc.line_of(where), format_path(where)))
    return out


def _signoff_findings(provenance: Provenance, drugs: dict[str, DrugEntry],
                      rule_docs: list[tuple[Document, RuleFile]], meta_doc: Document,
                      drug_doc: Document) -> list[Finding]:
    """Stale review records (warnings), and an `approved` status that is not true
    (an error per unit without a current approval). Free when nothing is reviewed and
    nothing claims approval (the shipped draft)."""
    from .signoff import gate, is_approved, units
    specs = [(doc, i, spec, rf.stage) for doc, rf in rule_docs
             for i, spec in enumerate(rf.rules)]
    if not is_approved(provenance.status) and not any(s.review for _, _, s, _ in specs) \
            and not any(d.review for d in drugs.values()) \
            and not any(t.review for t in provenance.thresholds.values()):
        return []
    lines: dict[tuple[str, str], tuple[str | None, int | None]] = {}
    rules = []
    for doc, i, spec, stage in specs:
        if ("rule", spec.id) not in lines:  # a duplicate id is an error of its own
            lines["rule", spec.id] = (doc.file, doc.line_of(("rules", i, "id")))
            rules.append((spec, spec.stage or stage, spec.status == "active"))
    for name in drugs:
        lines["drug", name] = (drug_doc.file, drug_doc.line_of(("drugs", name)))
    for name in provenance.thresholds:
        lines["threshold", name] = (meta_doc.file, meta_doc.line_of(("thresholds", name)))
    found = units(rules, drugs, provenance.thresholds, lambda k, n: lines[k, n])
    return [Finding(severity, "review", message, u.file, u.line, None,  # type: ignore[arg-type]
                    (u.id,) if u.kind == "rule" else ())
            for severity, message, u in gate(provenance.status, found)]


def default_rules_dir() -> Path:
    """The rule set shipped inside the package: in a checkout installed editable (`make
    install`), the checkout's own rules/, so that an edit takes effect at once."""
    from importlib.resources import files
    return Path(str(files("cledecide.rules")))


def shown_folder(folder: str | Path) -> str:
    """The folder rules came from, as every output names it: relative to the working
    directory when inside it ("rules"), else absolute (an installed copy shows its
    site-packages path, so a reviewer sees which rules were used)."""
    import os
    return _shown(str(folder), os.getcwd())


@functools.lru_cache(maxsize=64)
def _shown(folder: str, cwd: str) -> str:
    path = Path(cwd, folder).resolve()
    try:
        return str(path.relative_to(Path(cwd).resolve())) or "."
    except ValueError:
        return str(path)

