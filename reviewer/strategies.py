"""Hypothesis strategies (used by `rules check` to search the patient space, and by the
property tests): valid patient records (every field and vocabulary word of the
contract, unknowns, stale labs, overlapping and stopped courses, boundary values of each
threshold of the shipped rules) and invalid ones."""
from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st

from ..engine import vocabulary as V
from ..engine.validate import catalogue_drugs

AS_OF = dt.date(2026, 11, 20)
TRI = st.sampled_from([True, False, "unknown"])

# Boundary values of the shipped thresholds, with a step either side.
CLASI = st.one_of(st.sampled_from([0, 3, 4, 9, 10, 11, 20, 21, 22, 70]),
                  st.integers(0, 70))
MONTHS_DAYS = st.one_of(st.sampled_from([1, 14, 60, 90, 91, 92, 120, 360, 366, 1825, 1830]),
                        st.integers(1, 4000))
WEEKS_DAYS = st.sampled_from([1, 13, 14, 27, 28, 55, 56, 57, 90, 400])
LAB_AGE = st.sampled_from([0, 29, 30, 31, 200])


def days_ago(n: int) -> str:
    return (AS_OF - dt.timedelta(days=n)).isoformat()


@st.composite
def courses(draw, drug: str | None = None) -> list[dict[str, Any]]:
    drug = drug or draw(st.sampled_from(catalogue_drugs()))
    length = draw(MONTHS_DAYS)
    stopped = draw(st.booleans())
    since = draw(WEEKS_DAYS) if stopped else 0
    course: dict[str, Any] = {"drug": drug, "start": days_ago(since + length),
                              "response": draw(st.sampled_from(V.RESPONSES))}
    if drug == "methotrexate":
        course["dose_mg_per_week"] = draw(st.sampled_from([7.5, 15, 25]))
    elif not drug.startswith("topical_") and draw(st.booleans()):
        course["dose_mg_per_day"] = draw(st.sampled_from([2.5, 5, 10, 50, 100, 150, 200,
                                                          250, 300, 400, 2000]))
    if stopped:
        course["stop"] = days_ago(since)
        course["stop_reason"] = draw(st.sampled_from(V.STOP_REASONS))
        if draw(st.booleans()):
            course["adverse_events"] = draw(st.lists(st.sampled_from(V.SYMPTOMS),
                                                     max_size=2, unique=True))
    out = [course]
    if stopped and course["stop_reason"] == "dose_reduced" and draw(st.booleans()):
        out.append({"drug": drug, "start": days_ago(since), "response": "unknown",
                    **({"dose_mg_per_day": course["dose_mg_per_day"] / 2}
                       if "dose_mg_per_day" in course else {})})
    return out


@st.composite
def labs(draw) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in (("egfr", [20, 29, 30, 31, 59, 60, 61, 90]),
                         ("neutrophils", [0.4, 0.9, 1.0, 1.1, 3.5]),
                         ("platelets", [29, 49, 50, 51, 74, 75, 76, 250]),
                         ("alt", [10, 25, 200])):
        if draw(st.integers(0, 5)):
            out[name] = {"value": draw(st.sampled_from(values)), "date": days_ago(draw(LAB_AGE))}
    if draw(st.booleans()):
        out["g6pd"] = {"value": draw(st.sampled_from(["normal", "deficient"])),
                       "date": days_ago(draw(st.integers(0, 3000)))}
    return out


@st.composite
def patients(draw) -> dict[str, Any]:
    """A valid contract record."""
    sex = draw(st.sampled_from(["female", "male"]))
    age = draw(st.one_of(st.sampled_from([11, 12, 30, 55, 56]), st.integers(0, 120)))
    record: dict[str, Any] = {
        "id": "prop", "as_of": AS_OF.isoformat(),
        "demographics": {"age": age, "sex": sex},
        "smoker": draw(TRI),
        "diagnosis": {"subtype": draw(st.sampled_from(V.SUBTYPES)),
                      "extent": draw(st.sampled_from(["localized", "widespread", "unknown"])),
                      "systemic_lupus": draw(TRI)},
        "activity": [{"date": days_ago(d), "clasi_activity": draw(CLASI)}
                     for d in draw(st.lists(st.sampled_from([0, 14, 28, 56, 120]),
                                            max_size=3, unique=True))],
        "treatments": [c for group in draw(st.lists(courses(), max_size=6)) for c in group],
        "conditions": draw(st.lists(st.sampled_from(V.CONDITIONS), max_size=3, unique=True)),
        "symptoms": draw(st.lists(st.sampled_from(V.SYMPTOMS), max_size=3, unique=True)),
        "labs": draw(labs()),
        "eye_exams": [{"date": days_ago(draw(st.integers(0, 2000))),
                       "result": draw(st.sampled_from(["normal", "toxicity"]))}
                      for _ in range(draw(st.integers(0, 2)))],
    }
    if draw(st.integers(0, 9)):
        record["demographics"]["weight_kg"] = draw(st.sampled_from([2, 40, 55, 70, 90, 400]))
    if draw(st.integers(0, 9)) == 0:
        record["diagnosis"]["suspected_drug_trigger"] = "hydrochlorothiazide"
    for clasi in record["activity"]:
        if draw(st.booleans()):
            clasi["clasi_damage"] = draw(st.integers(0, 56))
    if sex == "female" and draw(st.integers(0, 5)):
        rep: dict[str, Any] = {"childbearing_potential": draw(TRI), "pregnant": draw(TRI),
                               "breastfeeding": draw(TRI),
                               "contraception": draw(st.sampled_from(V.CONTRACEPTION))}
        if draw(st.booleans()):
            rep["last_negative_pregnancy_test"] = days_ago(draw(st.integers(0, 60)))
        if rep["childbearing_potential"] is False and rep["pregnant"] is True:
            rep["childbearing_potential"] = "unknown"  # a contradiction is invalid input
        record["reproductive"] = rep
    return record


@st.composite
def refractory_patients(draw) -> dict[str, Any]:
    """Valid records late in the ladder, where the teratogens are the candidates."""
    record = draw(patients())
    record["activity"] = [{"date": AS_OF.isoformat(), "clasi_activity": draw(st.integers(10, 70))}]
    record["treatments"] = [
        {"drug": "hydroxychloroquine", "dose_mg_per_day": 200, "start": days_ago(900),
         "response": "partial"},
        {"drug": "quinacrine", "dose_mg_per_day": 100, "start": days_ago(800),
         "stop": days_ago(600), "stop_reason": "inefficacy", "response": "none"},
        {"drug": "methotrexate", "dose_mg_per_week": 15, "start": days_ago(500),
         "stop": days_ago(300), "stop_reason": "inefficacy", "response": "none"},
    ] + [c for group in draw(st.lists(courses(), max_size=2)) for c in group]
    return record


# ----------------------------------------------------------------- invalid records

INVALID_CHANGES = [
    ("demographics.age", "old", "must be a number"),
    ("demographics.age", 121, "<= 120"),
    ("demographics.age", -1, ">= 0"),
    ("demographics.weight_kg", 1, ">= 2"),
    ("demographics.sex", "other", "must be one of"),
    ("diagnosis.subtype", "CCLE", "must be one of"),
    ("diagnosis.extent", "everywhere", "must be one of"),
    ("conditions", ["gout"], "must be one of"),
    ("symptoms", ["hiccups"], "must be one of"),
    ("activity", [{"date": "2026-12-01", "clasi_activity": 5}], "after as_of"),
    ("activity", [{"date": "2026-11-01", "clasi_activity": 80}], "<= 70"),
    ("treatments", [{"drug": "aspirin", "start": "2025-01-01"}], "must be one of"),
    ("treatments", [{"drug": "dapsone", "start": "2025-01-01", "dose_mg_per_day": "lots"}],
     "must be a number"),
    ("treatments", [{"drug": "dapsone", "start": "2025-02-01", "stop": "2025-01-01"}],
     "before start"),
    ("labs", {"egfr": {"value": "high", "date": "2026-01-01"}}, "must be a number"),
    ("labs", {"g6pd": {"value": "low", "date": "2026-01-01"}}, "must be one of"),
    ("surprise", 1, "unknown field"),
    ("as_of", "someday", "must be a date"),
]
