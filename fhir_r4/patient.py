"""Patient: the id, the age on `as_of` (from birthDate) and the sex the record needs."""
from __future__ import annotations

import datetime as dt
from typing import Any

from .reading import Entry, Fail, Report, date_of


def age_on(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def read_patient(p: Entry, as_of: dt.date, today: bool, report: Report) -> dict[str, Any]:
    """The record's start (id, as_of, demographics); what cannot be read is a Fail:
    the result names the patient, and the safety rules need the age and sex."""
    res = p.resource
    if not res.id:
        raise Fail(p.path + ("id",), "Patient.id is missing: the result names the patient")
    if res.birthDate is None or date_of(res.birthDate) is None:
        raise Fail(p.path + ("birthDate",), "Patient.birthDate (a full date) is needed "
                                            "for the age")
    if res.gender not in ("female", "male"):
        raise Fail(p.path + ("gender",), f"Patient.gender is '{res.gender}': the safety "
                                         "rules need female or male (pregnancy prevention)")
    birth = date_of(res.birthDate)
    assert birth is not None
    if birth > as_of:
        raise Fail(p.path + ("birthDate",), f"birthDate {birth} is after as_of {as_of}")
    record: dict[str, Any] = {"id": res.id, "as_of": as_of.isoformat(),
                              "demographics": {"age": age_on(birth, as_of), "sex": res.gender}}
    report.used.append(f"{p.label}: id, age {record['demographics']['age']} from birthDate "
                       f"on {as_of}, sex {res.gender}")
    report.used.append(f"as_of {as_of}: " + ("today's date (the input gives no "
                       "Bundle.timestamp)" if today else "from the input"))
    return record
