"""Data models between the pipeline stages: the patient record (contract section 1)
and the result (contract section 2). Pydantic gives us strict validation with field
paths and JSON Schema documents from one definition."""
from __future__ import annotations

import datetime as dt
import re
import types
import typing
from typing import Annotated, Any, Literal, Union

from typing_extensions import Self

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo,
                      WithJsonSchema, model_validator)
from pydantic_core import PydanticCustomError

from . import vocabulary as V

DRUG_NAME = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
# The JSON Schema of a drug name: schemas/ writes the catalogue's drugs in its place.
DRUG_SCHEMA_MARK = "x-cledecide-catalogue-drug"


def _choices(names: Any) -> str:
    quoted = [f"'{n}'" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _catalogue_drug(value: object, info: ValidationInfo) -> object:
    """A drug is a name of the catalogue (drugs.yaml) of the rule set in use, given as
    the validation context {"drugs": names}; without one (the catalogue's own entries,
    a record read before its rules), any well-formed name, and the pipeline checks it
    against the catalogue before anything is evaluated."""
    drugs = (info.context or {}).get("drugs") if isinstance(info.context, dict) else None
    if drugs is not None:
        if not isinstance(value, str) or value not in drugs:
            raise PydanticCustomError("literal_error", "Input should be {expected}",
                                      {"expected": _choices(drugs)})
        return value
    if not isinstance(value, str) or not DRUG_NAME.match(value):
        raise PydanticCustomError(
            "value_error", "{error}", {"error": "must be a drug name (lower-case letters, "
                                                "digits and _, starting with a letter)"})
    return value


# Drugs come from the catalogue of the rule set in use, not from this code.
Drug = Annotated[str, BeforeValidator(_catalogue_drug),
                 WithJsonSchema({"type": "string", DRUG_SCHEMA_MARK: True})]
Condition = Literal[V.CONDITIONS]  # type: ignore[valid-type]
Symptom = Literal[V.SYMPTOMS]  # type: ignore[valid-type]
MonitoringWord = Literal[V.MONITORING]  # type: ignore[valid-type]
Action = Literal[V.ACTIONS]  # type: ignore[valid-type]
Stage = Literal[V.STAGES]  # type: ignore[valid-type]
Severity = Literal[V.SEVERITIES]  # type: ignore[valid-type]

TriState = Union[Annotated[bool, Field(strict=True)], Literal["unknown"]]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}$")


def _iso_date(value: object) -> object:
    """Dates are YYYY-MM-DD (a YAML date, or the string in JSON); a number is never read
    as a Unix time, and a date with a time of day is refused."""
    if isinstance(value, dt.datetime) or not isinstance(value, (dt.date, str)):
        raise ValueError("must be a date written YYYY-MM-DD")
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


def _blank_is_absent(value: object) -> object:
    """A text of only spaces says nothing: it counts as absent."""
    if isinstance(value, str) and not value.strip():
        return None
    return value.strip() if isinstance(value, str) else value


def _not_blank(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be blank")
    return value


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]


class _Strict(BaseModel):
    # defer_build: validators are built on first use, inlined into the parent model's;
    # this halves the start-up cost of the CLI.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


_set_attr = object.__setattr__


def bare(cls: type[BaseModel], data: dict[str, Any], fields_set: set[str]) -> Any:
    """A model instance around data already checked (made by the pipeline, or validated
    before and read back from the rule cache): no validation, like model_construct, and
    cheaper. model_dump and JSON Schema are unchanged."""
    obj = cls.__new__(cls)
    _set_attr(obj, "__dict__", data)
    _set_attr(obj, "__pydantic_fields_set__", fields_set)
    _set_attr(obj, "__pydantic_extra__", None)
    _set_attr(obj, "__pydantic_private__", None)
    return obj


class _Out(BaseModel):
    model_config = ConfigDict(defer_build=True)

    @classmethod
    def build(cls, **values: Any) -> "Self":
        """An output model from values the pipeline made itself (`bare`): explain builds
        dozens per patient. Missing fields take their defaults."""
        names = cls.__dict__.get("_build_names")
        if names is None:
            names = tuple(cls.model_fields)
            cls._build_names = names  # type: ignore[attr-defined]
        if tuple(values) == names:  # every field, in order (the usual call)
            data = values
        else:
            data = {name: values[name] if name in values
                    else info.get_default(call_default_factory=True)
                    for name, info in cls.model_fields.items()}  # field order: the JSON's
        return bare(cls, data, set(values))

    @classmethod
    def maker(cls) -> Any:
        """A constructor taking every field in order, for the models made per firing
        (the trace): as build, without the keyword round trip. All fields are given, so
        every instance shares one fields-set (pydantic only ever adds a field to it)."""
        names = tuple(cls.model_fields)
        given = set(names)

        def make(*values: Any) -> Any:
            return bare(cls, dict(zip(names, values)), given)
        return make


class Demographics(_Strict):
    age: Annotated[Number, Field(ge=0, le=120)]
    sex: Literal["female", "male"]
    weight_kg: Annotated[Number, Field(ge=2, le=400)] | None = None
    height_cm: Annotated[Number, Field(ge=30, le=275)] | None = Field(
        default=None, description="Height in cm: a dose limit per kg of ideal or lean "
        "body weight needs it (without it no such dose is named and it is asked for).")


class Reproductive(_Strict):
    childbearing_potential: TriState = "unknown"
    pregnant: TriState = "unknown"
    breastfeeding: TriState = "unknown"
    contraception: Literal[V.CONTRACEPTION] = "unknown"  # type: ignore[valid-type]
    contraception_since: IsoDate | None = Field(
        default=None, description="When the current contraception began: the '4 weeks / "
        "1 month before the start' checks need it; unknown means a start waits.")
    oestrogen_contraception: TriState = Field(
        default="unknown", description="Combined (oestrogen-containing) hormonal "
        "contraception: a thrombosis risk with thalidomide, lenalidomide or aPL.")
    last_negative_pregnancy_test: IsoDate | None = Field(
        default=None, description="One-date shorthand for negative_pregnancy_tests.")
    negative_pregnancy_tests: list[IsoDate] = Field(
        default_factory=list, max_length=100,
        description="Dates of negative pregnancy tests (e.g. two, 10-14 days apart, "
        "before thalidomide or lenalidomide).")
    planning_pregnancy: TriState = Field(default="unknown",
                                         description="A woman planning a pregnancy.")
    partner_may_conceive: TriState = Field(
        default="unknown", description="Men: a partner who may conceive.")
    condom_use: TriState = Field(default="unknown", description="Men: uses condoms.")
    partner_pregnant: TriState = Field(
        default="unknown", description="Men: a pregnant partner (condoms are still needed "
        "with thalidomide or lenalidomide; conservative: treated as a partner who may "
        "conceive).")
    planning_to_father: TriState = Field(
        default="unknown", description="Men: planning to father a child.")

    def negative_tests(self) -> list[dt.date]:
        """Every negative pregnancy test date, oldest first (the one-date shorthand
        included)."""
        dates = set(self.negative_pregnancy_tests)
        if self.last_negative_pregnancy_test is not None:
            dates.add(self.last_negative_pregnancy_test)
        return sorted(dates)


class Diagnosis(_Strict):
    subtype: Literal[V.SUBTYPES]  # type: ignore[valid-type]
    extent: Literal["localized", "widespread", "unknown"] = Field(
        description="'unknown' (a compatible addition) when no record says it, e.g. a FHIR "
        "record without an extent Observation: the rules then ask for it.")
    systemic_lupus: TriState = False
    suspected_drug_trigger: Annotated[Annotated[str, Field(min_length=1, max_length=80)] | None,
                                      BeforeValidator(_blank_is_absent)] = None


class Assessment(_Strict):
    date: IsoDate
    clasi_activity: Annotated[Number, Field(ge=0, le=70)]
    clasi_damage: Annotated[Number, Field(ge=0, le=56)] | None = None


class Course(_Strict):
    drug: Drug
    dose_mg_per_day: Annotated[Number, Field(gt=0, le=5000)] | None = None
    dose_mg_per_week: Annotated[Number, Field(gt=0, le=5000)] | None = None
    start: IsoDate
    stop: IsoDate | None = None
    stop_reason: Literal[V.STOP_REASONS] | None = None  # type: ignore[valid-type]
    response: Literal[V.RESPONSES] = "unknown"  # type: ignore[valid-type]
    adverse_events: list[Symptom] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _dates_in_order(self) -> "Course":
        if self.stop is not None and self.stop < self.start:
            raise ValueError("stop is before start")
        if self.dose_mg_per_day is not None and self.dose_mg_per_week is not None:
            raise ValueError("give dose_mg_per_day or dose_mg_per_week, not both")
        return self


class NumericLab(_Strict):
    value: Annotated[Number, Field(ge=0, le=100000)]
    date: IsoDate


class G6pdLab(_Strict):
    value: Literal["normal", "deficient"]
    date: IsoDate


class Labs(_Strict):
    egfr: NumericLab | None = None
    neutrophils: NumericLab | None = None
    platelets: NumericLab | None = None
    alt: NumericLab | None = None
    creatinine: NumericLab | None = Field(
        default=None, description="Serum creatinine in umol/L (Cockcroft-Gault creatinine "
        "clearance, with age, weight and sex).")
    g6pd: G6pdLab | None = None


class EyeExam(_Strict):
    date: IsoDate
    result: Literal["normal", "toxicity"]


class Patient(_Strict):
    """One patient record, contract section 1."""

    format: Literal["cledecide/patient@1"] = "cledecide/patient@1"
    id: Annotated[str, Field(min_length=1, max_length=200), BeforeValidator(_not_blank)]
    as_of: IsoDate
    demographics: Demographics
    reproductive: Reproductive | None = None
    smoker: TriState = "unknown"
    antithrombotic: Literal[V.ANTITHROMBOTIC] = Field(  # type: ignore[valid-type]
        default="unknown", description="Thromboprophylaxis or anticoagulation taken now "
        "(none, aspirin, anticoagulant): thalidomide and lenalidomide with two or more "
        "thrombosis risk factors need an anticoagulant.")
    diagnosis: Diagnosis
    activity: list[Assessment] = Field(default_factory=list, max_length=500)
    treatments: list[Course] = Field(default_factory=list, max_length=500)
    conditions: list[Condition] = Field(default_factory=list, max_length=50)
    symptoms: list[Symptom] = Field(default_factory=list, max_length=50)
    labs: Labs = Field(default_factory=Labs)
    eye_exams: list[EyeExam] = Field(default_factory=list, max_length=500)


def enumerated_values(path: str) -> tuple[Any, ...] | None:
    """The values a record field takes when it is known, if they are a few fixed words
    (or true and false): diagnosis.extent -> ('localized', 'widespread'). None for a
    field that is not enumerated (a number, a date, a list) or not in the record."""
    model: Any = Patient
    annotation: Any = None
    for part in path.split("."):
        info = getattr(model, "model_fields", {}).get(part)
        if info is None:
            return None
        annotation = info.annotation
        model = _optional_model(annotation)
    values: list[Any] = []
    union = typing.get_origin(annotation) in (Union, types.UnionType)
    for arg in typing.get_args(annotation) if union else (annotation,):
        base = typing.get_args(arg)[0] if typing.get_origin(arg) is Annotated else arg
        if typing.get_origin(base) is Literal:
            values += [v for v in typing.get_args(base) if v != "unknown"]
        elif base is bool:
            values += [True, False]
        else:
            return None
    return tuple(values) if len(values) >= 2 else None


def _optional_model(annotation: Any) -> Any:
    """The model inside `Model | None` (a record section), or None."""
    for arg in typing.get_args(annotation) or (annotation,):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def value_at(patient: Patient, path: str) -> Any:
    """A record field's value by its dotted path (None where a section is absent)."""
    node: Any = patient
    for part in path.split("."):
        node = getattr(node, part, None)
    return node


def with_value(patient: Patient, path: str, value: Any) -> Patient:
    """The same record with one field set (a value of enumerated_values(path): nothing
    to validate). The record is frozen: each section on the path is copied."""
    head, _, rest = path.partition(".")
    if not rest:
        return patient.model_copy(update={head: value})
    section = getattr(patient, head)
    return patient.model_copy(update={head: with_value(section, rest, value)})


# ---------------------------------------------------------------- result (section 2)

class RulesetInfo(_Out):
    name: str
    version: str
    sha256: str
    # Compatible addition: draft | approved | active | retired (ruleset.yaml). Only
    # approved and active rule sets are clinically signed (engine/signoff.py).
    status: str = "draft"
    # Compatible addition: the folder the rules were read from (relative to the working
    # directory when inside it, else absolute): which copy of the rules was used.
    folder: str | None = None


class Recommendation(_Out):
    action: Action
    drug: Drug | None
    dose: str | None
    stage: Stage
    summary: str
    rule: str
    rationale: str
    evidence: list[str]
    # Compatible addition: the drugs this step stops (a switch names what stops).
    stops: list[Drug] = Field(default_factory=list)


class Alternative(_Out):
    action: Action
    drug: Drug | None
    rule: str
    rationale: str


class Exclusion(_Out):
    drug: Drug
    rule: str
    reason: str


class MonitoringItem(_Out):
    what: MonitoringWord
    when: str
    rule: str
    reason: str


class Warning(_Out):
    severity: Severity
    message: str
    rule: str


class MissingData(_Out):
    field: str
    why: str


class CourseSummary(_Out):
    """Compatible addition: each drug's latest course and its phase, as the rules saw it."""

    drug: Drug
    start: str
    stop: str | None
    phase: str
    months: float
    dose: str | None
    at_max_dose: bool | None
    trial_until: str | None


class TraceEntry(_Out):
    rule: str
    kind: Literal["derive", "recommend", "exclude", "monitor", "warn", "request"]
    matched: dict[str, Union[str, float, int, bool, None]]
    asserted: str


class EngineInfo(_Out):
    """The code that applied the rules: the same rule set can advise differently under
    another version of the engine."""

    name: str
    sha256: str


class Branch(_Out):
    """One value of the unknown fact and the step this record would get with it."""

    value: Union[str, bool] = Field(description="The fact's value in this branch (the "
                                    "record's word, e.g. localized).")
    recommendation: Recommendation = Field(description="The step with this value: its "
                                           "action, drug, dose, rule, rationale, evidence.")
    warnings: list[Warning] = Field(default_factory=list, description="Critical warnings "
                                    "this branch adds to the result's own.")


class Conditional(_Out):
    """Compatible addition: the step is to record one fact, and the steps that follow
    differ by its value; each branch names its step, rule and why."""

    fact: str = Field(description="The record field that is not known (e.g. "
                      "diagnosis.extent).")
    rule: str = Field(description="The rule that asks for it (the recommendation's rule).")
    why: str
    branches: list[Branch]


class Result(_Out):
    """The machine contract of `cledecide evaluate --format json`."""

    format: Literal["cledecide/result@1"] = "cledecide/result@1"
    patient_id: str
    as_of: str
    ruleset: RulesetInfo
    input_sha256: str
    recommendation: Recommendation
    # Compatible addition, present only when the step is gather_data for one fact whose
    # value would change the step (docs/contract.md section 4).
    conditional: Conditional | None = None
    alternatives: list[Alternative]
    excluded: list[Exclusion]
    monitoring: list[MonitoringItem]
    warnings: list[Warning]
    missing_data: list[MissingData]
    trace: list[TraceEntry]
    disclaimer: str
    courses: list[CourseSummary] = Field(default_factory=list)
    engine: EngineInfo | None = None
