"""One small family of errors, each naming the file, line and field it is about.

The CLI prints ``str(error)`` and exits 2 for these; nothing else catches broadly.
"""
from __future__ import annotations


class CledecideError(Exception):
    """Base: a problem the user can fix (bad input or bad rules), never a bug."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class InputError(CledecideError):
    """The patient record is unreadable or breaks the contract."""


class RuleError(CledecideError):
    """A rule file is unreadable or breaks the rule format; nothing is evaluated."""


class EvaluationError(CledecideError):
    """The rule engine could not finish an evaluation (e.g. a durable_rules limit)."""


class ManyPatients(InputError):
    """One file holds several patients (a FHIR Bundle): a cohort, not one evaluation."""
