"""Patient: the id, the age on `as_of` (from birthDate) and the sex the record needs; and
whether the patient had died by `as_of` (then there is no advice at all)."""
from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from .reading import Entry, Fail, Report


def age_on(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def date_range(text: str) -> tuple[dt.date, dt.date]:
    """The first and last day a FHIR date or dateTime (YYYY, YYYY-MM, a full date) can
    mean; the models have checked its form."""
    year = int(text[:4])
    if len(text) == 4:
        return dt.date(year, 1, 1), dt.date(year, 12, 31)
    month = int(text[5:7])
    if len(text) == 7:
        return dt.date(year, month, 1), dt.date(year, month,
                                                calendar.monthrange(year, month)[1])
    day = dt.date.fromisoformat(text[:10])
    return day, day


def _age(p: Entry, as_of: dt.date, report: Report) -> int:
    """The age in whole years; a partial birthDate is read when every day it can mean
    gives the same age on as_of, else refused (an age is never guessed)."""
    text = p.resource.birthDate
    if text is None:
        raise Fail(p.path + ("birthDate",), "Patient.birthDate is needed for the age")
    first, last = date_range(text)
    if first > as_of:
        raise Fail(p.path + ("birthDate",), f"birthDate {text} is after as_of {as_of}")
    oldest, youngest = age_on(first, as_of), age_on(min(last, as_of), as_of)
    if oldest != youngest:
        raise Fail(p.path + ("birthDate",), f"birthDate {text} gives age {youngest} or "
                   f"{oldest} on {as_of}: a full birthDate is needed for the age")
    if first != last:
        report.used.append(f"{p.label}: birthDate {text} (partial) gives age {oldest} on "
                           f"{as_of} whatever its day")
    return oldest


def read_patient(p: Entry, as_of: dt.date, today: bool, report: Report) -> dict[str, Any]:
    """The record's start (id, as_of, demographics); what cannot be read is a Fail:
    the result names the patient, and the safety rules need the age and sex."""
    res = p.resource
    if not res.id:
        raise Fail(p.path + ("id",), "Patient.id is missing: the result names the patient")
    if res.gender not in ("female", "male"):
        raise Fail(p.path + ("gender",), f"Patient.gender is '{res.gender}': the safety "
                                         "rules need female or male (pregnancy prevention)")
    age = _age(p, as_of, report)
    record: dict[str, Any] = {"id": res.id, "as_of": as_of.isoformat(),
                              "demographics": {"age": age, "sex": res.gender}}
    report.used.append(f"{p.label}: id, age {age} from birthDate on {as_of}, sex {res.gender}")
    report.used.append(f"as_of {as_of}: " + ("today's date (the input gives no "
                       "Bundle.timestamp)" if today else "from the input"))
    return record


def deceased(p: Entry, as_of: dt.date, report: Report) -> str | None:
    """Why the patient is dead on as_of (no advice is given), or None."""
    res = p.resource
    if res.deceasedBoolean is True:
        return "recorded as deceased (Patient.deceasedBoolean)"
    if res.deceasedDateTime is not None:
        first, _ = date_range(res.deceasedDateTime)
        if first <= as_of:
            return f"deceased on {res.deceasedDateTime[:10]} (Patient.deceasedDateTime)"
        report.used.append(f"{p.label}: deceased on {res.deceasedDateTime[:10]}, after "
                           f"as_of {as_of}: alive on as_of")
    return None
