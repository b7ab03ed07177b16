"""The FHIR code map (rules/fhir-map.yaml): which codes mean what, as reviewable data.

Loaded only when a FHIR record arrives (or by `rules check`), so YAML evaluation keeps
its cold start. Checks: every standard code says where it was verified, no code means
two things, unit factors are finite and positive, and words are the contract's.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from ..engine import vocabulary as V
from ..engine.errors import RuleError
from ..engine.load import Document, load_file
from ..engine.models import Drug

MAP_FILE = "fhir-map.yaml"
# The rule set's thresholds for a recent weight (rules/ruleset.yaml); these apply to a
# rules folder that does not name them.
WEIGHT_RECENT = (90, 30)
LOCAL_PREFIX = "urn:cledecide:"
Kind = Literal["quantity", "boolean", "coded", "date", "text"]
Answer = Union[bool, str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodeEntry(_Strict):
    code: str = Field(pattern=r"^[a-z0-9]+#\S+$", description="SYSTEM#CODE")
    display: str = Field(min_length=1)
    checked: str | None = Field(default=None, description="Where this standard code was "
                                "verified (required unless the system is urn:cledecide:*).")
    prefix: bool = False


class ProductEntry(CodeEntry):
    """A product (RxNorm SCD, SBD, brand, salt) of a catalogue drug."""

    unit_mg: float | None = Field(default=None, gt=0, description="mg in one tablet or "
                                  "capsule (from the RxNorm name): a dose of '2 TAB' is 2 x this")
    form: Literal["tablet", "capsule"] | None = None
    dose_equivalence: tuple[float, float] | None = Field(
        default=None, description="[a, b]: a mg of this product is about b mg of the "
        "catalogue drug (the label's equivalence)")
    dose_comparable: bool = Field(default=True, description="false: the product's mg are "
                                  "not the catalogue drug's mg and no factor is known: the "
                                  "dose stays unknown")


class ContraceptiveEntry(CodeEntry):
    """A contraceptive medication: the method it is, and whether it holds oestrogen."""

    method: Literal["intrauterine system", "pill", "implant", "injection", "vaginal ring",
                    "patch"]
    oestrogen: bool


class TimingCode(CodeEntry):
    """A timing abbreviation (BID...) as frequency per period."""

    frequency: int = Field(ge=1)
    period: float = Field(gt=0)
    period_unit: Literal["h", "d", "wk"]


class ObservationMap(_Strict):
    kind: Kind
    codes: list[CodeEntry] = Field(min_length=1)
    units: dict[str, float] = Field(default_factory=dict)
    answers: dict[str, Answer] = Field(default_factory=dict)
    # a result sent as text (valueString, or a concept's text): the words whose meaning is
    # clear, lower case; any other text leaves the value unknown
    text_answers: dict[str, Answer] = Field(default_factory=dict)
    many: bool = False


class CodedAnswers(_Strict):
    codes: list[CodeEntry] = Field(min_length=1)
    answers: dict[str, str] = Field(default_factory=dict)


class EyeExamMap(_Strict):
    codes: list[CodeEntry] = Field(min_length=1)
    outcomes: dict[str, Literal["normal", "toxicity"]]


class ClasiMap(_Strict):
    activity: list[CodeEntry] = Field(min_length=1)
    damage: list[CodeEntry] = Field(min_length=1)


class ConditionExtent(_Strict):
    """The extent read from the CLE Condition's body sites (issue 20): how many distinct
    sites make it widespread, and how few (if any) localized. Severity codes are read
    only to report them: severity is not extent."""

    widespread_from_sites: int | None = Field(default=None, ge=2, description="this many "
                                              "distinct body sites or more: widespread; "
                                              "absent: body sites are not read")
    localized_up_to_sites: int | None = Field(default=None, ge=1, description="this many "
                                              "distinct body sites or fewer: localized; "
                                              "absent: never localized from body sites")
    severity: dict[Literal["mild", "moderate", "severe"], list[CodeEntry]] = Field(
        default_factory=dict)


class Limits(_Strict):
    """How much one FHIR input may hold: entries (all Bundles together) and Bundles
    nested in Bundles. Bytes are not the measure: a 10 MB Synthea bundle is ordinary."""

    max_entries: int = Field(default=50_000, ge=1)
    max_nesting: int = Field(default=3, ge=1, le=16)


class CodeMapFile(_Strict):
    version: Literal[1]
    limits: Limits = Field(default_factory=Limits)
    condition_extent: ConditionExtent = Field(default_factory=ConditionExtent)
    systems: dict[str, str]
    ucum: str
    observations: dict[str, ObservationMap]
    clasi: ClasiMap
    course_response: CodedAnswers
    subtypes: dict[Literal[V.SUBTYPES], list[CodeEntry]]  # type: ignore[valid-type]
    systemic_lupus: list[CodeEntry]
    comorbidities: dict[Literal[V.CONDITIONS], list[CodeEntry]]  # type: ignore[valid-type]
    symptoms: dict[Literal[V.SYMPTOMS], list[CodeEntry]]  # type: ignore[valid-type]
    # Drugs are the catalogue's (drugs.yaml); a drug the catalogue lacks is refused
    # when a record naming it is validated against the rule set.
    medications: dict[Drug, list[CodeEntry]]
    medication_products: dict[Drug, list[ProductEntry]] = Field(default_factory=dict)
    drug_names: dict[Drug, list[str]] = Field(default_factory=dict)
    name_excluding_words: list[str] = Field(default_factory=list)
    contraceptives: list[ContraceptiveEntry] = Field(default_factory=list)
    subtype_unspecified: list[CodeEntry] = Field(default_factory=list)
    pregnancy_conditions: dict[Literal["pregnant", "not_pregnant"], list[CodeEntry]] = Field(
        default_factory=dict)
    breastfeeding_conditions: list[CodeEntry] = Field(default_factory=list)
    not_used: list[CodeEntry] = Field(default_factory=list)
    dose_units: dict[str, float]
    unit_text: dict[str, str] = Field(default_factory=dict)
    unit_doses: dict[Literal["tablet", "capsule"], list[str]] = Field(default_factory=dict)
    period_hours: dict[str, float]
    timing_codes: list[TimingCode] = Field(default_factory=list)
    stop_reasons: dict[Literal[V.STOP_REASONS], list[CodeEntry]]  # type: ignore[valid-type]
    eye_exam: EyeExamMap


# The record fields an Observation may fill, and what kind of value each takes.
OBSERVATION_FIELDS: dict[str, Kind] = {
    "demographics.weight_kg": "quantity", "labs.neutrophils": "quantity",
    "labs.platelets": "quantity", "labs.egfr": "quantity", "labs.creatinine": "quantity",
    "labs.alt": "quantity", "labs.g6pd": "coded", "reproductive.pregnant": "coded",
    "reproductive.negative_pregnancy_tests": "coded",
    "reproductive.childbearing_potential": "boolean", "reproductive.breastfeeding": "boolean",
    "reproductive.contraception": "coded", "reproductive.contraception_since": "date",
    "reproductive.oestrogen_contraception": "boolean",
    "reproductive.planning_pregnancy": "boolean",
    "reproductive.partner_may_conceive": "boolean", "reproductive.condom_use": "boolean",
    "reproductive.planning_to_father": "boolean", "smoker": "boolean",
    "diagnosis.extent": "coded", "diagnosis.suspected_drug_trigger": "text",
}


@dataclass(frozen=True)
class Meaning:
    """What one coding means: a section of the map and the word or field in it."""

    section: str  # "observation", "clasi", "response", "subtype", "sle", ...
    value: str
    display: str
    entry: Any = field(default=None, compare=False)  # the map's entry (a product's strength)


@dataclass(frozen=True)
class CodeMap:
    """The checked map, indexed by (system URI, code) for the importer."""

    spec: CodeMapFile
    sha256: str
    exact: dict[tuple[str, str], Meaning]
    prefixes: tuple[tuple[str, str, Meaning], ...]
    # days a weight stays usable for weight-based doses: adults, under 18 (ruleset.yaml)
    weight_recent: tuple[int, int] = WEIGHT_RECENT

    def weight_days(self, age: float) -> int:
        return self.weight_recent[1] if age < 18 else self.weight_recent[0]

    def meaning(self, system: str | None, code: str | None) -> Meaning | None:
        if not system or not code:
            return None
        if system in (self.spec.systems.get("icd10cm"), self.spec.systems.get("icd10")) \
                and "." not in code and len(code) > 3:
            code = code[:3] + "." + code[3:]  # claims write ICD-10 codes without the dot: L930
        found = self.exact.get((system, code))
        if found is not None:
            return found
        for sys_, start, m in self.prefixes:
            if sys_ == system and code.startswith(start):
                return m
        return None

    def uri(self, name: str) -> str:
        return self.spec.systems[name]

    def coding(self, entry: CodeEntry) -> dict[str, str]:
        """An entry as a FHIR Coding (for the test-data exporter)."""
        name, code = entry.code.split("#", 1)
        return {"system": self.spec.systems[name], "code": code, "display": entry.display}


def _entries(spec: CodeMapFile) -> list[tuple[tuple[Any, ...], CodeEntry, Meaning]]:
    out: list[tuple[tuple[Any, ...], CodeEntry, Meaning]] = []

    def add(where: tuple[Any, ...], entries: list[Any], section: str, value: str) -> None:
        for i, e in enumerate(entries):
            out.append((where + (i,), e, Meaning(section, value, e.display, e)))

    for name, obs in spec.observations.items():
        add(("observations", name, "codes"), obs.codes, "observation", name)
    add(("clasi", "activity"), spec.clasi.activity, "clasi", "activity")
    add(("clasi", "damage"), spec.clasi.damage, "clasi", "damage")
    add(("course_response", "codes"), spec.course_response.codes, "response", "response")
    for word, entries in spec.subtypes.items():
        add(("subtypes", word), entries, "subtype", word)
    add(("systemic_lupus",), spec.systemic_lupus, "sle", "systemic_lupus")
    for word, entries in spec.comorbidities.items():
        add(("comorbidities", word), entries, "comorbidity", word)
    for word, entries in spec.symptoms.items():
        add(("symptoms", word), entries, "symptom", word)
    for word, entries in spec.medications.items():
        add(("medications", word), entries, "medication", word)
    for word, products in spec.medication_products.items():
        add(("medication_products", word), products, "medication", word)
    for i, c in enumerate(spec.contraceptives):
        add(("contraceptives", i), [c], "contraceptive", c.method)
    add(("subtype_unspecified",), spec.subtype_unspecified, "subtype_unspecified", "CLE")
    for word, entries in spec.pregnancy_conditions.items():
        add(("pregnancy_conditions", word), entries, "pregnancy", word)
    add(("breastfeeding_conditions",), spec.breastfeeding_conditions, "breastfeeding",
        "breastfeeding")
    add(("not_used",), spec.not_used, "not_used", "not_used")
    for i, t in enumerate(spec.timing_codes):
        add(("timing_codes", i), [t], "timing", t.code)
    for word, entries in spec.stop_reasons.items():
        add(("stop_reasons", word), entries, "stop_reason", word)
    add(("eye_exam", "codes"), spec.eye_exam.codes, "eye_exam", "retinal_exam")
    for word, entries in spec.condition_extent.severity.items():
        add(("condition_extent", "severity", word), entries, "severity", word)
    return out


def check(spec: CodeMapFile, doc: Document) -> list[tuple[str, tuple[Any, ...]]]:
    """Every problem of a parsed map, as (message, field path)."""
    problems: list[tuple[str, tuple[Any, ...]]] = []
    seen: dict[str, tuple[Any, ...]] = {}
    for where, entry, _meaning in _entries(spec):
        name = entry.code.split("#", 1)[0]
        if name not in spec.systems:
            problems.append((f"unknown system '{name}' (not under systems)", where + ("code",)))
            continue
        local = spec.systems[name].startswith(LOCAL_PREFIX)
        if not local and not (entry.checked or "").strip():
            problems.append((f"standard code {entry.code} says nowhere where it was "
                             "verified (checked:)", where + ("code",)))
        if local and entry.prefix:
            problems.append(("prefix matching is for ICD-10-CM categories, not our codes",
                             where + ("prefix",)))
        key = spec.systems[name] + "|" + entry.code.split("#", 1)[1]
        if key in seen and seen[key][:2] != where[:2]:
            problems.append((f"{entry.code} already means something else "
                             f"({'.'.join(map(str, seen[key][:-1]))})", where + ("code",)))
        seen.setdefault(key, where)
    for name, obs in spec.observations.items():
        where = ("observations", name)
        expected = OBSERVATION_FIELDS.get(name)
        if expected is None:
            problems.append(("not a record field an Observation can fill", where))
        elif obs.kind != expected:
            problems.append((f"kind must be {expected} for this field", where + ("kind",)))
        if obs.kind == "quantity" and not obs.units:
            problems.append(("a quantity needs its units (UCUM code: factor)", where + ("units",)))
        if obs.kind == "coded" and not obs.answers:
            problems.append(("a coded value needs its answers", where + ("answers",)))
        if (obs.answers or obs.text_answers) and obs.kind not in ("coded", "boolean"):
            problems.append(("answers are for coded or boolean values", where + ("answers",)))
        for text in obs.text_answers:
            if text != text.strip().lower():
                problems.append(("a text answer is written lower case, without spaces "
                                 "around it", where + ("text_answers", text)))
        for unit, factor in obs.units.items():
            if not (math.isfinite(factor) and factor > 0):
                problems.append(("a unit factor must be a finite number above 0",
                                 where + ("units", unit)))
        for answer in obs.answers:
            if "#" not in answer or answer.split("#", 1)[0] not in spec.systems:
                problems.append((f"answer '{answer}' is not SYSTEM#CODE with a known system",
                                 where + ("answers", answer)))
    ext = spec.condition_extent
    if ext.localized_up_to_sites is not None and (
            ext.widespread_from_sites is None
            or ext.localized_up_to_sites >= ext.widespread_from_sites):
        problems.append(("localized_up_to_sites must be below widespread_from_sites",
                         ("condition_extent", "localized_up_to_sites")))
    for word, names in spec.drug_names.items():
        for i, name in enumerate(names):
            if name != name.strip().lower() or len(name) < 4:
                problems.append(("a drug name is lower case, at least 4 letters",
                                 ("drug_names", word, i)))
    for word, products in spec.medication_products.items():
        for i, pr in enumerate(products):
            if pr.dose_equivalence and not all(math.isfinite(x) and x > 0
                                               for x in pr.dose_equivalence):
                problems.append(("a dose equivalence is two mg amounts above 0",
                                 ("medication_products", word, i, "dose_equivalence")))
    for unit, ucum in spec.unit_text.items():
        if ucum not in spec.dose_units and not any(
                ucum in o.units for o in spec.observations.values()):
            problems.append((f"'{ucum}' is not a unit the map converts", ("unit_text", unit)))
    for table in ("dose_units", "period_hours"):
        for unit, factor in getattr(spec, table).items():
            if not (math.isfinite(factor) and factor > 0):
                problems.append(("a factor must be a finite number above 0", (table, unit)))
    return problems


def load_codemap(rules_dir: Path | str) -> CodeMap:
    """The checked map of a rules folder; a broken map is a RuleError (exit 2)."""
    return _load(_resolved(str(rules_dir), "" if os.path.isabs(rules_dir) else os.getcwd()))


@lru_cache(maxsize=16)
def _resolved(folder: str, cwd: str) -> str:
    """The folder's real path, found once per name (and working folder, for a relative
    name): a cohort or a benchmark reads one map for every record, and resolving a path
    costs a system call per component each time."""
    return str(Path(cwd, folder).resolve())


@lru_cache(maxsize=4)
def _load(folder: str) -> CodeMap:
    from ..engine.validate import catalogue_drugs, model_from_document
    path = Path(folder) / MAP_FILE
    if not path.exists():
        raise RuleError(f"missing {MAP_FILE}: FHIR input needs the code map", str(path))
    doc = load_file(path, RuleError)
    # Its drugs are those of the folder's catalogue (drugs.yaml), with FILE:LINE.
    spec = model_from_document(CodeMapFile, doc, RuleError,
                               context={"drugs": catalogue_drugs(folder)})
    problems = check(spec, doc)
    if problems:
        message, where = problems[0]
        raise RuleError(message, doc.file, doc.line_of(where), ".".join(map(str, where)))
    exact: dict[tuple[str, str], Meaning] = {}
    prefixes: list[tuple[str, str, Meaning]] = []
    for _, entry, meaning in _entries(spec):
        name, code = entry.code.split("#", 1)
        if entry.prefix:
            prefixes.append((spec.systems[name], code, meaning))
        else:
            exact[(spec.systems[name], code)] = meaning
    return CodeMap(spec, doc.sha256, exact, tuple(prefixes), _weight_recent(Path(folder)))


def _weight_recent(folder: Path) -> tuple[int, int]:
    """weight_recent_days and weight_recent_days_child of the folder's ruleset.yaml (the
    rule set's named thresholds; the rule set loader checks their form)."""
    path = folder / "ruleset.yaml"
    if not path.exists():
        return WEIGHT_RECENT
    data = load_file(path, RuleError).data
    found = (data.get("thresholds") or {}) if isinstance(data, dict) else {}
    out = []
    for name, default in zip(("weight_recent_days", "weight_recent_days_child"), WEIGHT_RECENT):
        t = found.get(name)
        value = t.get("value") if isinstance(t, dict) else None
        out.append(int(value) if isinstance(value, (int, float)) and value > 0 else default)
    return out[0], out[1]


def check_file(folder: Path | str) -> list[tuple[str, str, int | None, str | None]]:
    """For `rules check`: (message, file, line, field) of every problem in the map."""
    path = Path(folder) / MAP_FILE
    if not path.exists():
        return []
    from ..engine.validate import model_from_document
    try:
        doc = load_file(path, RuleError)
        spec = model_from_document(CodeMapFile, doc, RuleError)
    except RuleError as exc:
        return [(exc.message, exc.file or str(path), exc.line, exc.field)]
    return [(m, doc.file, doc.line_of(w), ".".join(map(str, w))) for m, w in check(spec, doc)]
