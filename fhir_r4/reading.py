"""What every FHIR resource reader shares: the report of what was used and ignored,
the entry (a resource and where it sits in the input), the one-line failure, and the
small readers of codings, dates and numbers.

Codes mean what the code map says, nothing else; a value never gets a meaning by
guessing.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from decimal import Decimal
from typing import Any, Iterable

from .codemap import CodeMap, Meaning
from ..engine.errors import InputError
from ..engine.load import Document, Path_, format_path


@dataclass
class Report:
    """What an import used and ignored, for `cledecide import fhir` and the result."""

    used: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    # (field, why) for missing_data, (severity, message) for warnings in the result
    missing: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    def ignore(self, where: str, why: str, missing_field: str | None = None,
               warning: str | None = None) -> None:
        self.ignored.append(f"{where}: {why}")
        if missing_field is not None:
            self.missing.append((missing_field, f"{where}: {why}"))
        if warning is not None:
            self.warnings.append(("warning", warning))


@dataclass
class Imported:
    """One patient of a FHIR input: the record (a Document for the validate stage), or
    the error that patient alone met (in a bundle of several, the others still go on)."""

    document: Document | None
    report: Report | None
    label: str = ""
    error: InputError | None = None
    no_advice: Any = None    # a NoAdvice (deceased, no CLE on record): not evaluated


class Fail(Exception):
    """A record that cannot be read: where in the input (JSON path) and why."""

    def __init__(self, path: Path_, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


@dataclass
class Entry:
    """One resource of the input and where it is (for errors and the report)."""

    resource: Any            # a model of fhir_r4.models
    path: Path_
    full_url: str | None

    @property
    def kind(self) -> str:
        return self.resource.resourceType

    @cached_property
    def label(self) -> str:  # once per entry: several report lines name it
        rid = getattr(self.resource, "id", None)
        rid = rid if isinstance(rid, str) else None
        return f"{format_path(self.path)} ({self.kind}{'/' + rid if rid else ''})"


class NoAdviceFound(Exception):
    """A patient who gets no advice (dead on as_of, no CLE on record): not an error."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def codings(concept: Any) -> list[Any]:
    return list(getattr(concept, "coding", None) or []) if concept is not None else []


def meaning(codemap: CodeMap, concept: Any, sections: Iterable[str]) -> Meaning | None:
    """The first coding the map knows in one of the sections (several codings per
    concept are normal: a standard code and a local one)."""
    wanted = tuple(sections)
    for c in codings(concept):
        m = codemap.meaning(c.system, c.code)
        if m is not None and m.section in wanted:
            return m
    return None


def shown(concept: Any) -> str:
    """A concept as the report and warnings name it: its codings, else its text."""
    codes = [f"{c.system or '?'}|{c.code or '?'}" + (f" '{c.display}'" if c.display else "")
             for c in codings(concept)]
    text = getattr(concept, "text", None) if concept is not None else None
    return ", ".join(codes) or (f"text '{text}'" if text else "no code")


def texts(concept: Any) -> list[str]:
    """What a concept says in words: its text and its codings' displays."""
    if concept is None:
        return []
    out = [c.display for c in codings(concept) if c.display]
    text = getattr(concept, "text", None)
    return ([text] if text else []) + out


def name_match(codemap: CodeMap, words: list[str]) -> str | None:
    """The one catalogue drug the words name (a whole word, any case), or None: none, or
    several (ambiguous), or a topical/eye form of a systemic drug."""
    found = set()
    for text in words:
        low = text.lower()
        tokens = set(re.findall(r"[a-z]+", low))
        if tokens & set(codemap.spec.name_excluding_words):
            continue
        for drug, names in codemap.spec.drug_names.items():
            if any(name in tokens for name in names):
                found.add(drug)
    return found.pop() if len(found) == 1 else None


def answer(codemap: CodeMap, concept: Any, answers: dict[str, Any]) -> tuple[bool, Any]:
    for c in codings(concept):
        for key, value in answers.items():
            name, code = key.split("#", 1)
            if codemap.uri(name) == c.system and code == c.code:
                return True, value
    return False, None


def date_of(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and len(value) >= 10 and (len(value) == 10 or value[10] == "T"):
        try:  # a FHIR date or dateTime: its date, as written (the record's local date)
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def when(resource: Any) -> dt.date | None:
    """The clinically relevant date of a resource (effective, performed, issued)."""
    for name in ("effectiveDateTime", "occurrenceDateTime", "performedDateTime", "date"):
        got = date_of(getattr(resource, name, None))
        if got is not None:
            return got
    for name in ("effectivePeriod", "performedPeriod"):
        period = getattr(resource, name, None)
        if period is not None and period.start is not None:
            return date_of(period.start)
    return date_of(getattr(resource, "issued", None))


def number(value: Any) -> float | None:
    if isinstance(value, (Decimal, int, float)) and not isinstance(value, bool):
        f = float(value)
        return f if math.isfinite(f) else None
    return None


def clean(value: float) -> float | int:
    rounded = round(value, 6)
    return int(rounded) if rounded == int(rounded) and abs(rounded) < 1e15 else rounded


def set_field(record: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = record
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
