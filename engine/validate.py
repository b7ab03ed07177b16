"""Validate stage: turn a parsed Document into a model, or one clear error.

Errors name the file, the line and the field path, most specific first, in the form
the contract shows: ``patient.yaml:14: treatments[0].dose_mg_per_day: must be a
number, got 'lots'``.
"""
from __future__ import annotations

import datetime as dt
import functools
import os
from pathlib import Path
from typing import Any, Collection, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import CledecideError, InputError, RuleError
from .load import Document, format_path, parse, read_bytes
from .models import Patient

M = TypeVar("M", bound=BaseModel)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _literal_choices(error: dict[str, Any]) -> str:
    expected = str(error.get("ctx", {}).get("expected", ""))
    return expected.replace("'", "")


def friendly_message(error: Any) -> str:
    """Pydantic's error, reworded for a clinician or a rule reviewer."""
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx", {})
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in ("float_type", "float_parsing", "int_type", "int_parsing", "int_from_float"):
        return f"must be a number, got {_shown(value)}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {"greater_than_equal": ">=", "greater_than": ">",
                "less_than_equal": "<=", "less_than": "<"}[kind]
        limit = next(iter(ctx.values()), "?")
        return f"must be {sign} {limit}, got {_shown(value)}"
    if kind == "literal_error":
        return f"must be one of {_literal_choices(error)}; got {_shown(value)}"
    if kind.startswith("date"):
        return f"must be a date (YYYY-MM-DD), got {_shown(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false, got {_shown(value)}"
    if kind in ("string_type",):
        return f"must be text, got {_shown(value)}"
    if kind in ("list_type",):
        return f"must be a list, got {_shown(value)}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping of fields, got {_shown(value)}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"too many items (at most {ctx.get('max_length')})"
    if kind == "string_too_long":
        return f"text too long (at most {ctx.get('max_length')} characters)"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(ctx.get("error", error.get("msg", "invalid value")))
    return str(error.get("msg", "invalid value"))


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union/literal branch labels (e.g. 'bool', "literal['unknown']")."""
    out = []
    for part in loc:
        if isinstance(part, str) and (part in ("bool", "float", "int", "str", "date",
                                                "function-after[_dates_in_order()]")
                                      or part.startswith(("literal[", "function-",
                                                          "NumericLab", "G6pdLab",
                                                          "constrained-"))):
            continue
        out.append(part)
    return tuple(out)


def _rank(error: Any) -> tuple[int, int]:
    # Most specific first: deeper paths, and real problems before union noise.
    return (-len(_clean_loc(error["loc"])), 1 if error["type"] == "literal_error" else 0)


def best_error(exc: ValidationError) -> tuple[str, tuple[Any, ...]]:
    """The most specific of pydantic's errors, reworded, and the field path it names."""
    best = sorted(exc.errors(), key=_rank)[0]
    return friendly_message(best), _clean_loc(best["loc"])


def model_from_document(model: type[M], doc: Document, error: type[CledecideError],
                        prefix: tuple[Any, ...] = (), context: Any = None) -> M:
    """Validate doc.data (or a part of it) against a model; raise the best error.
    `context`: {"drugs": names}, the catalogue a drug name must be in (models.Drug)."""
    data = doc.data
    for part in prefix:
        data = data[part]
    if not isinstance(data, dict):
        raise error(f"must be a mapping of fields, got {type(data).__name__}", doc.file,
                    doc.line_of(prefix), format_path(prefix) or None)
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        message, loc = best_error(exc)
        loc = prefix + loc
        raise error(message, doc.file, doc.line_of(loc), format_path(loc) or None) from None


def _check_dates(patient: Patient, doc: Document) -> None:
    def late(path: tuple[Any, ...], value: dt.date | None) -> None:
        if value is not None and value > patient.as_of:
            raise InputError(f"date {value} is after as_of {patient.as_of}", doc.file,
                             doc.line_of(path), format_path(path))

    for i, a in enumerate(patient.activity):
        late(("activity", i, "date"), a.date)
    for i, c in enumerate(patient.treatments):
        late(("treatments", i, "start"), c.start)
        late(("treatments", i, "stop"), c.stop)
        if c.stop is None and c.stop_reason is not None:
            raise InputError("stop_reason given for an ongoing course (no stop date)",
                             doc.file, doc.line_of(("treatments", i, "stop_reason")),
                             f"treatments[{i}].stop_reason")
    for name in ("egfr", "neutrophils", "platelets", "alt", "creatinine", "g6pd"):
        lab = getattr(patient.labs, name)
        if lab is not None:
            late(("labs", name, "date"), lab.date)
    for i, e in enumerate(patient.eye_exams):
        late(("eye_exams", i, "date"), e.date)
    r = patient.reproductive
    if r is not None:
        late(("reproductive", "last_negative_pregnancy_test"), r.last_negative_pregnancy_test)
        late(("reproductive", "contraception_since"), r.contraception_since)
        for i, test in enumerate(r.negative_pregnancy_tests):
            late(("reproductive", "negative_pregnancy_tests", i), test)
        if patient.demographics.sex == "male":
            for name in ("pregnant", "breastfeeding", "planning_pregnancy"):
                if getattr(r, name) is True:
                    raise InputError(f"{name} is true for a male patient", doc.file,
                                     doc.line_of(("reproductive", name)),
                                     f"reproductive.{name}")
        elif r.childbearing_potential is False:
            # Contradictions are errors, not guesses: which answer is wrong is unknown.
            for name in ("pregnant", "planning_pregnancy"):
                if getattr(r, name) is True:
                    raise InputError(f"{name} is true but childbearing_potential is false",
                                     doc.file, doc.line_of(("reproductive", name)),
                                     f"reproductive.{name}")


def catalogue_drugs(folder: Path | str | None = None) -> tuple[str, ...]:
    """The drugs of a rules folder's catalogue (drugs.yaml's entries, in its order), the
    shipped rule set's by default: the drugs are data, never a list in the code. Read
    without checking the rest of the folder (a record's words, schemas, synthetic
    patients); a rule set is checked in full by engine/ruleset.py."""
    return _catalogue_drugs(_shipped_rules() if folder is None else str(folder))


@functools.lru_cache(maxsize=1)
def _shipped_rules() -> str:
    """The shipped rules folder, found once per process (importlib.resources costs
    ~0.15 ms, and every record validated without a catalogue asks for it)."""
    from importlib.resources import files
    return str(files("cledecide.rules"))


def _catalogue_drugs(folder: str) -> tuple[str, ...]:
    path = Path(folder) / "drugs.yaml"
    try:
        st = os.stat(path)
    except OSError:
        raise RuleError("missing drugs.yaml in the rules folder", str(path)) from None
    return _drugs_at(str(path), st.st_mtime_ns, st.st_size, st.st_ino)


@functools.lru_cache(maxsize=8)
def _drugs_at(path: str, mtime_ns: int, size: int, inode: int) -> tuple[str, ...]:
    """Keyed by the file's identity, size and modification time: an edited drugs.yaml
    is read again, and an unchanged one costs a stat per record, not a read."""
    return _drugs_of(read_bytes(Path(path), RuleError, 1_000_000), path)


@functools.lru_cache(maxsize=8)
def _drugs_of(raw: bytes, name: str) -> tuple[str, ...]:
    """Keyed by the file's bytes: an edited drugs.yaml is read again."""
    doc = parse(raw, name, RuleError)
    named = named_drugs(doc.data)
    if named is None:
        raise RuleError("must hold a mapping 'drugs'", doc.file, doc.line_of(()))
    return named["drugs"]


def named_drugs(data: Any) -> dict[str, tuple[str, ...]] | None:
    """The drugs drugs.yaml names (its entries' keys): the only drugs its entries and
    the rule files may name (the validation context of models.Drug)."""
    drugs = data.get("drugs") if isinstance(data, dict) else None
    if not isinstance(drugs, dict):
        return None
    return {"drugs": tuple(str(k) for k in drugs)}


def validate_patient(doc: Document, drugs: Collection[str] | None = None) -> Patient:
    """A contract-conforming Patient, or an InputError naming file, line and field.
    `drugs`: the catalogue of the rule set in use, whose drugs are the record's words
    (the shipped catalogue's by default)."""
    if drugs is None:
        drugs = catalogue_drugs()
    if not isinstance(doc.data, dict):
        raise InputError(f"a patient record must be a mapping of fields, got "
                         f"{type(doc.data).__name__}", doc.file, doc.line_of(()))
    patient = model_from_document(Patient, doc, InputError,
                                  context=None if drugs is None else {"drugs": tuple(drugs)})
    _check_dates(patient, doc)
    return patient


def check_drugs(patient: Patient, drugs: Collection[str]) -> None:
    """Every drug of the record is in the rule set's catalogue: a course of a drug the
    rules do not know would be silently ignored, so it is refused (validate_patient with
    the catalogue says so with the line; this guards every other way in)."""
    for i, course in enumerate(patient.treatments):
        if course.drug not in drugs:
            raise InputError(f"must be one of {', '.join(drugs)}; got {_shown(course.drug)} "
                             "(the drugs of the rule set's catalogue, drugs.yaml)", None,
                             None, f"treatments[{i}].drug")
