"""Rule files: their format (pydantic models), and the load + validate step that turns a
rules folder into one checked RuleSet, or errors that name file, line and field.

A folder holds ``ruleset.yaml`` (provenance and named thresholds), ``evidence.yaml``
(references), ``drugs.yaml`` (the drug catalogue) and one file of rules per stage.
Nothing is evaluated on a rule set with any error in it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import conditions as C
from . import vocabulary as V
from .errors import RuleError
from .facts import FactSpec, fact_specs
from .load import Document, format_path, load_file
from .models import Action, Drug, MonitoringWord, Severity, Stage
from .validate import model_from_document

RULE_FILE_LIMIT = 1_000_000
SPECIAL_FILES = ("ruleset.yaml", "evidence.yaml", "drugs.yaml")
Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=100)]
Word = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=80)]
Text = Annotated[str, Field(min_length=1, max_length=4000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Threshold(_Strict):
    value: float
    unit: str = ""
    evidence: list[str] = Field(default_factory=list)
    note: str = ""
    verify: bool = False


class Provenance(_Strict):
    name: Id
    version: Annotated[str, Field(min_length=1, max_length=40)]
    status: Literal["draft", "active", "retired"]
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
    basis: Literal["real_body_weight"] = "real_body_weight"
    max_mg_per_day: float | None = Field(default=None, gt=0)
    round_down_to_mg: int = Field(default=1, ge=1)
    evidence: list[str] = Field(min_length=1)


class DrugEntry(_Strict):
    label: Text
    drug_class: Word = Field(alias="class")
    stage: Stage
    teratogenic: bool
    usual_dose: Text
    dose_limit: DoseLimit | None = None
    never_with: list[Drug] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)


class DrugFile(_Strict):
    drugs: dict[Drug, DrugEntry]


class RecommendSpec(_Strict):
    action: Action
    drug: Drug | None = None
    dose: str | None = None
    summary: str | None = None


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


class WarnSpec(_Strict):
    severity: Severity
    message: Text


class RequestSpec(_Strict):
    field: Annotated[str, Field(min_length=1, max_length=120)]
    why: Text
    ask: Annotated[str, Field(min_length=1, max_length=80)] | None = None

    @property
    def label(self) -> str:
        """What to collect, in a few words (defaults to the field's last part)."""
        return self.ask or self.field.rsplit(".", 1)[-1].replace("_", " ")


class ThenSpec(_Strict):
    derive: Word | None = None
    recommend: RecommendSpec | None = None
    exclude: list[Drug] | None = None
    monitor: list[MonitorSpec] | None = None
    warn: WarnSpec | None = None
    request: list[RequestSpec] | None = None

    @model_validator(mode="after")
    def _something(self) -> "ThenSpec":
        if not any(v for v in self.model_dump().values()):
            raise ValueError("then must do something: derive, recommend, exclude, "
                             "monitor, warn or request")
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

    @property
    def id(self) -> str:
        return self.spec.id


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
        threshold = self.provenance.thresholds[value]
        per = {"days": 1, "weeks": 7, "months": 30.44}.get(threshold.unit, 1)
        return int(round(threshold.value * per))

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


def _rules_hash(files: list[tuple[str, str]]) -> str:
    """One hash over every file's name and content hash, independent of listing order."""
    h = hashlib.sha256()
    for name, digest in sorted(files):
        h.update(f"{name}\0{digest}\n".encode())
    return h.hexdigest()


def _doc(folder: Path, name: str) -> Document:
    path = folder / name
    if not path.exists():
        raise RuleError(f"missing {name} in the rules folder", str(path))
    return load_file(path, RuleError, RULE_FILE_LIMIT)


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


def check_folder(folder: Path | str) -> tuple[RuleSet | None, list[Finding]]:
    """Load and check a rules folder; all errors found, and the RuleSet when none."""
    folder = Path(folder)
    findings: list[Finding] = []
    if not folder.is_dir():
        return None, [Finding("error", "no-folder", "rules folder not found", str(folder))]
    try:
        meta_doc = _doc(folder, "ruleset.yaml")
        ev_doc = _doc(folder, "evidence.yaml")
        drug_doc = _doc(folder, "drugs.yaml")
        provenance = model_from_document(Provenance, meta_doc, RuleError)
        evidence = model_from_document(EvidenceFile, ev_doc, RuleError).evidence
        drugs = model_from_document(DrugFile, drug_doc, RuleError).drugs
    except RuleError as exc:
        return None, [Finding("error", "format", exc.message, exc.file, exc.line, exc.field)]
    hashed = [(Path(d.file).name, d.sha256) for d in (meta_doc, ev_doc, drug_doc)]
    for name, entry in sorted(drugs.items()):
        where = ("drugs", name)
        _check_evidence(entry.evidence, evidence, drug_doc, where + ("evidence",), findings)
        if entry.dose_limit:
            _check_evidence(entry.dose_limit.evidence, evidence, drug_doc,
                            where + ("dose_limit", "evidence"), findings)
    for name, t in provenance.thresholds.items():
        _check_evidence(t.evidence, evidence, meta_doc, ("thresholds", name, "evidence"),
                        findings)

    rule_docs: list[tuple[Document, RuleFile]] = []
    for path in sorted(folder.glob("*.yaml")):
        if path.name in SPECIAL_FILES:
            continue
        try:
            doc = load_file(path, RuleError, RULE_FILE_LIMIT)
            hashed.append((path.name, doc.sha256))
            rule_docs.append((doc, model_from_document(RuleFile, doc, RuleError)))
        except RuleError as exc:
            findings.append(Finding("error", "format", exc.message, exc.file, exc.line,
                                    exc.field))
    if not rule_docs and not findings:
        findings.append(Finding("error", "no-rules", "no rule files in the folder",
                                str(folder)))

    # Which facts are derived: by active rules, plus the automatic '<drug>_considered'.
    derived: set[str] = {considered_fact(d) for d in V.DRUGS}
    seen: dict[str, tuple[str, int | None]] = {}
    entries: list[tuple[Document, int, RuleSpec, str]] = []
    inactive: list[RuleSpec] = []
    for doc, rf in rule_docs:
        for i, spec in enumerate(rf.rules):
            where = ("rules", i, "id")
            if spec.id in seen:
                first = seen[spec.id]
                findings.append(Finding("error", "duplicate-id",
                                        f"duplicate rule id '{spec.id}' (first at "
                                        f"{first[0]}:{first[1]})", doc.file,
                                        doc.line_of(where), format_path(where), (spec.id,)))
                continue
            seen[spec.id] = (doc.file, doc.line_of(where))
            if spec.status != "active":
                inactive.append(spec)
                continue
            entries.append((doc, i, spec, spec.stage or rf.stage))
            if spec.then.derive:
                derived.add(spec.then.derive)

    specs = fact_specs({e.drug_class for e in drugs.values()})
    for name in derived:
        if name in specs:
            findings.append(Finding("error", "derived-shadows-fact",
                                    f"derived fact '{name}' has the name of a patient fact"))
    thresholds = {k: t.value for k, t in provenance.thresholds.items()}
    for name, entry in drugs.items():
        if entry.dose_limit:  # one place for a dose limit: drugs.yaml
            thresholds[f"{name}_max_mg_per_kg"] = entry.dose_limit.mg_per_kg_per_day
    vocab = C.Vocabulary(specs, frozenset(derived), thresholds)
    if provenance.gap_check:
        try:
            C.nnf(C.parse(provenance.gap_check, vocab), vocab)
        except C.ConditionError as exc:
            findings.append(Finding("error", "condition", str(exc), meta_doc.file,
                                    meta_doc.line_of(("gap_check",)), "gap_check"))
    rules: list[Rule] = []
    depends: dict[str, set[str]] = {}
    for doc, i, spec, stage in entries:
        base = ("rules", i)
        line = doc.line_of(base + ("id",))
        _check_evidence(spec.evidence, evidence, doc, base + ("evidence",), findings)
        if not spec.evidence:
            findings.append(Finding("warning", "no-evidence", f"rule '{spec.id}' cites no "
                                    "evidence", doc.file, line, None, (spec.id,)))
        then = spec.then
        for j, drug in enumerate(then.exclude or []):
            if drug not in drugs:
                findings.append(Finding("error", "unknown-drug", f"'{drug}' is not in "
                                        "drugs.yaml", doc.file,
                                        doc.line_of(base + ("then", "exclude", j)),
                                        format_path(base + ("then", "exclude", j)), (spec.id,)))
        if then.recommend and then.recommend.drug and then.recommend.drug not in drugs:
            findings.append(Finding("error", "unknown-drug", f"'{then.recommend.drug}' is not "
                                    "in drugs.yaml", doc.file,
                                    doc.line_of(base + ("then", "recommend", "drug")),
                                    format_path(base + ("then", "recommend", "drug")),
                                    (spec.id,)))
        for j, item in enumerate(then.monitor or []):
            for key in ("every_days", "until_day", "first_in_days"):
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
            continue
        rules.append(Rule(spec, stage, node, normal, doc.file, line))
        if then.derive:
            depends.setdefault(then.derive, set()).update(
                f for f in node.facts() if f in derived)
    for cycle in _cycles(depends):
        findings.append(Finding("error", "circular", "circular derivation: "
                                + " -> ".join(cycle), str(folder)))
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        return None, findings
    ruleset = RuleSet(
        provenance=provenance, evidence=dict(evidence), drugs=dict(drugs),
        rules=tuple(sorted(rules, key=lambda r: r.id)), facts=specs,
        derived=frozenset(derived), sha256=_rules_hash(hashed), folder=str(folder),
        inactive=tuple(inactive), thresholds=dict(vocab.thresholds))
    return ruleset, findings


def load_ruleset(folder: Path | str) -> RuleSet:
    """A checked RuleSet, or the first error (by file and line) as a RuleError."""
    ruleset, findings = check_folder(folder)
    if ruleset is None:
        # Unreadable files first: their rules are missing, which causes the rest.
        errors = sorted((f for f in findings if f.severity == "error"),
                        key=lambda f: (f.code != "format", f.file or "", f.line or 0))
        first = errors[0]
        more = f" (and {len(errors) - 1} more errors; run 'cledecide rules check')" \
            if len(errors) > 1 else ""
        raise RuleError(first.message + more, first.file, first.line, first.field)
    return ruleset


def default_rules_dir() -> Path:
    """The rule set shipped inside the package."""
    from importlib.resources import files
    return Path(str(files("cledecide.rules")))
